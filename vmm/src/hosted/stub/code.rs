//! Generation of the kernel stub with `iced-x86`.
//!
//! ```text
//! exc_N:      [push 0]            ; vectors without an error code
//!             push N
//!             jmp exc_common
//! exc_common: out EXC_PORT, al    ; -> VMM, which reads the frame
//!                                 ;    [vector, error, RIP, CS, RFLAGS,
//!                                 ;    RSP] at RSP and CR2 from the vCPU.
//! exc_resume: mov [rsp+16], rcx   ; an expected fault: the VMM loaded
//!             add rsp, 16         ;    rax = vector, rdi = error, rsi =
//!             iretq               ;    CR2, rdx = RIP, rcx = resume RIP
//! exc_retry:  add rsp, 16         ; a fault the VMM resolved (a lazy
//!             iretq               ;    page): every register as it was,
//!                                 ;    the instruction runs again
//!
//! Exceptions are the fault path's hot loop, and CPL 0 is emulated
//! instruction by instruction on the software-assisted backend, so the
//! stub touches no register: a resolved fault costs five instructions at
//! CPL 0 (push, jmp, out, add, iretq).
//!
//! nmi:        push rax, rcx, rdx, rsi      ; TLB shootdown (IST2)
//!             swapgs                       ; gs: this vCPU's scratch page
//!             for each (start, pages) the VMM listed there:
//!                 invlpg every page        ; (count -1: reload CR3)
//!             swapgs; pop ...
//!             out FLUSH_ACK_PORT, al
//!             iretq
//!
//! The shootdown uses `invlpg` page by page rather than a CR3 reload: it
//! says exactly what changed, and on the software-assisted KVM backend
//! this project runs on, reloading an unchanged CR3 does not drop the
//! translations user mode runs on, while `invlpg` does.
//!
//! int80:      out HCALL_PORT, al  ; `int 0x80` hypercall entry
//!             iretq
//! syscall:    out HCALL_PORT, al  ; `syscall` hypercall entry (IA32_LSTAR)
//!             o64 sysret
//! ```
//!
//! The primary hypercall entry needs no kernel code at all: user mode
//! writes [`HCALL_PORT`] itself (the TSS I/O bitmap allows that one port).
//! `int 0x80` and `syscall` lead to the same port for guests that prefer
//! them, on KVM backends that implement them (the software-assisted backend
//! this project is developed on raises `#UD` for `int n` from user mode and
//! does not switch to CPL 0 on `syscall`). A caller that must flush its TLB
//! gets the shootdown NMI like every other vCPU. The stub runs with
//! interrupts off throughout.

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use thiserror::Error;

use super::abi::{EXC_PORT, FLUSH_ACK_PORT, HCALL_PORT};

// Generated (see `crate::hosted::prebuilt`): not formatted.
#[rustfmt::skip]
#[path = "prebuilt.rs"]
mod prebuilt;
use crate::hosted::arch::idt::{has_error_code, EXCEPTION_VECTORS};

/// Assembling the stub failed (a bug in this file, reported not panicked).
#[derive(Debug, Error)]
#[error("cannot assemble the kernel stub: {0}")]
pub struct StubError(String);

impl From<IcedError> for StubError {
    fn from(e: IcedError) -> Self {
        StubError(e.to_string())
    }
}

/// The assembled stub and the addresses the VMM needs.
#[derive(Clone, Debug)]
pub struct KernelStub {
    /// Machine code, to be placed at `base`.
    pub code: Vec<u8>,
    /// Virtual address the code was assembled for.
    pub base: u64,
    /// Entry of each exception vector.
    pub exception_entries: [u64; EXCEPTION_VECTORS],
    /// NMI entry.
    pub nmi_entry: u64,
    /// `IA32_LSTAR`.
    pub syscall_entry: u64,
    /// RIP right after the `syscall` entry's `out` (a hypercall exit from
    /// here returns with `sysret`: to `rcx`, with `r11`'s flags).
    pub syscall_return: u64,
    /// The `int 0x80` gate's handler.
    pub int80_entry: u64,
    /// RIP right after the exception report `out` (where an exit on
    /// [`EXC_PORT`] must come from).
    pub exc_report_rip: u64,
    /// Where the VMM resumes a vCPU whose fault it resolved: returns to
    /// the faulting instruction with every register as it was.
    pub exc_retry: u64,

    /// RIP right after the shootdown acknowledgement `out`.
    pub flush_ack_rip: u64,
}

impl KernelStub {
    /// The stub as [`KernelStub::assemble`] makes it for
    /// [`KernelStub::PREBUILT_BASE`], from the bytes generated into
    /// `stub/prebuilt.rs` (see [`crate::hosted::prebuilt`]): what every
    /// launch writes, without assembling.
    pub fn prebuilt() -> Self {
        KernelStub {
            code: prebuilt::CODE.to_vec(),
            base: prebuilt::BASE,
            exception_entries: prebuilt::EXCEPTION_ENTRIES,
            nmi_entry: prebuilt::NMI_ENTRY,
            syscall_entry: prebuilt::SYSCALL_ENTRY,
            syscall_return: prebuilt::SYSCALL_RETURN,
            int80_entry: prebuilt::INT80_ENTRY,
            exc_report_rip: prebuilt::EXC_REPORT_RIP,
            exc_retry: prebuilt::EXC_RETRY,
            flush_ack_rip: prebuilt::FLUSH_ACK_RIP,
        }
    }

    /// The address [`KernelStub::prebuilt`] is linked at.
    pub const PREBUILT_BASE: u64 = prebuilt::BASE;

    /// Assembles the stub for virtual address `base`.
    pub fn assemble(base: u64) -> Result<Self, StubError> {
        let mut a = CodeAssembler::new(64)?;
        let mut entries: Vec<CodeLabel> = Vec::with_capacity(EXCEPTION_VECTORS);
        let mut common = a.create_label();
        for v in 0..EXCEPTION_VECTORS as u8 {
            let mut l = a.create_label();
            a.set_label(&mut l)?;
            if !has_error_code(v) {
                a.push(0)?;
            }
            a.push(i32::from(v))?;
            a.jmp(common)?;
            entries.push(l);
        }

        a.set_label(&mut common)?;
        a.out(u32::from(EXC_PORT), al)?;
        let mut exc_resume = a.create_label();
        a.set_label(&mut exc_resume)?;
        a.mov(qword_ptr(rsp + 16), rcx)?;
        a.add(rsp, 16)?;
        a.iretq()?;
        let mut exc_retry = a.create_label();
        a.set_label(&mut exc_retry)?;
        a.add(rsp, 16)?;
        a.iretq()?;

        // NMI: invalidate the ranges the VMM listed in this vCPU's scratch
        // page (see `FlushList`), or everything, then acknowledge.
        let mut nmi = a.create_label();
        let mut full = a.create_label();
        let mut next_range = a.create_label();
        let mut next_page = a.create_label();
        let mut range_done = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut nmi)?;
        a.push(rax)?;
        a.push(rcx)?;
        a.push(rdx)?;
        a.push(rsi)?;
        a.swapgs()?;
        a.mov(rcx, qword_ptr(0u64).gs())?;
        a.cmp(rcx, -1)?;
        a.je(full)?;
        a.xor(esi, esi)?;
        a.set_label(&mut next_range)?;
        a.test(rcx, rcx)?;
        a.jz(done)?;
        a.mov(rax, qword_ptr(rsi * 8 + 8).gs())?;
        a.mov(rdx, qword_ptr(rsi * 8 + 16).gs())?;
        a.set_label(&mut next_page)?;
        a.test(rdx, rdx)?;
        a.jz(range_done)?;
        a.invlpg(byte_ptr(rax))?;
        a.add(rax, 0x1000)?;
        a.dec(rdx)?;
        a.jmp(next_page)?;
        a.set_label(&mut range_done)?;
        a.add(rsi, 2)?;
        a.dec(rcx)?;
        a.jmp(next_range)?;
        a.set_label(&mut full)?;
        a.mov(rax, cr3)?;
        a.mov(cr3, rax)?;
        a.set_label(&mut done)?;
        a.swapgs()?;
        a.pop(rsi)?;
        a.pop(rdx)?;
        a.pop(rcx)?;
        a.pop(rax)?;
        a.out(u32::from(FLUSH_ACK_PORT), al)?;
        let mut ack = a.create_label();
        a.set_label(&mut ack)?;
        a.iretq()?;

        let mut int80 = a.create_label();
        a.set_label(&mut int80)?;
        a.out(u32::from(HCALL_PORT), al)?;
        a.iretq()?;

        let mut syscall = a.create_label();
        a.set_label(&mut syscall)?;
        a.out(u32::from(HCALL_PORT), al)?;
        let mut sysret = a.create_label();
        a.set_label(&mut sysret)?;
        a.sysretq()?;

        let res = a.assemble_options(base, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
        let mut exception_entries = [0u64; EXCEPTION_VECTORS];
        for (slot, l) in exception_entries.iter_mut().zip(&entries) {
            *slot = res.label_ip(l)?;
        }
        Ok(KernelStub {
            code: res.inner.code_buffer.clone(),
            base,
            exception_entries,
            nmi_entry: res.label_ip(&nmi)?,
            syscall_entry: res.label_ip(&syscall)?,
            syscall_return: res.label_ip(&sysret)?,
            int80_entry: res.label_ip(&int80)?,
            exc_report_rip: res.label_ip(&exc_resume)?,
            exc_retry: res.label_ip(&exc_retry)?,
            flush_ack_rip: res.label_ip(&ack)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};

    use super::*;

    const BASE: u64 = 0xffff_ff80_0000_4000;

    fn mnemonic_at(stub: &KernelStub, ip: u64) -> Mnemonic {
        let off = (ip - stub.base) as usize;
        let mut d = Decoder::with_ip(64, &stub.code[off..], ip, DecoderOptions::NONE);
        d.decode().mnemonic()
    }

    /// `stub/prebuilt.rs` as the assembler makes it for the address
    /// launches put the stub at.
    fn render(s: &KernelStub) -> String {
        let mut body = format!("/// Where the code is linked.\npub const BASE: u64 = {:#x};\n", s.base);
        body.push_str(&crate::hosted::prebuilt::bytes_const("CODE", "The code, linked at `BASE`.", &s.code));
        let entries: Vec<String> = s.exception_entries.iter().map(|e| format!("    {e:#x},\n")).collect();
        body.push_str(&format!(
            "/// Entry of each exception vector.\npub const EXCEPTION_ENTRIES: [u64; {}] = [\n{}];\n",
            entries.len(),
            entries.concat()
        ));
        for (name, v) in [
            ("NMI_ENTRY", s.nmi_entry),
            ("SYSCALL_ENTRY", s.syscall_entry),
            ("SYSCALL_RETURN", s.syscall_return),
            ("INT80_ENTRY", s.int80_entry),
            ("EXC_REPORT_RIP", s.exc_report_rip),
            ("EXC_RETRY", s.exc_retry),
            ("FLUSH_ACK_RIP", s.flush_ack_rip),
        ] {
            body.push_str(&format!("/// `KernelStub`'s field of that name.\npub const {name}: u64 = {v:#x};\n"));
        }
        crate::hosted::prebuilt::file("The kernel stub as `KernelStub::assemble` makes it for `BASE`.", &body)
    }

    #[test]
    fn prebuilt_stub_is_what_the_assembler_makes_where_launches_put_it() {
        let base = crate::layout::kernel_va(crate::layout::STUB_PA);
        let s = KernelStub::assemble(base).unwrap();
        crate::hosted::prebuilt::check_or_bless("src/hosted/stub/prebuilt.rs", &render(&s));
        let p = KernelStub::prebuilt();
        assert_eq!((p.base, KernelStub::PREBUILT_BASE), (base, base));
        assert_eq!(format!("{p:?}"), format!("{s:?}"), "every field as assembled");
    }

    #[test]
    fn labels_point_at_the_right_instructions() {
        let s = KernelStub::assemble(BASE).unwrap();
        assert!(s.code.len() < 0x1000);
        assert_eq!(s.exception_entries[0], BASE);
        assert_eq!(mnemonic_at(&s, s.exception_entries[14]), Mnemonic::Push);
        assert_eq!(mnemonic_at(&s, s.syscall_entry), Mnemonic::Out);
        assert_eq!(mnemonic_at(&s, s.int80_entry), Mnemonic::Out);
        assert_eq!(mnemonic_at(&s, s.syscall_return), Mnemonic::Sysretq);
        assert_eq!(mnemonic_at(&s, s.exc_report_rip), Mnemonic::Mov);
        assert_eq!(mnemonic_at(&s, s.flush_ack_rip), Mnemonic::Iretq);
        assert_eq!(mnemonic_at(&s, s.exc_retry), Mnemonic::Add);
        assert_eq!(mnemonic_at(&s, s.nmi_entry), Mnemonic::Push);
    }

    #[test]
    fn error_code_vectors_push_once() {
        let s = KernelStub::assemble(BASE).unwrap();
        // #PF (error code pushed by the CPU): push 14; jmp.
        let off = (s.exception_entries[14] - BASE) as usize;
        let mut d = Decoder::with_ip(64, &s.code[off..], s.exception_entries[14], DecoderOptions::NONE);
        let i = d.decode();
        assert_eq!(i.mnemonic(), Mnemonic::Push);
        assert_eq!(i.immediate8to64(), 14);
        assert_eq!(d.decode().mnemonic(), Mnemonic::Jmp);
        // #DE: push 0; push 0; jmp.
        let mut d = Decoder::with_ip(64, &s.code, BASE, DecoderOptions::NONE);
        assert_eq!(d.decode().immediate8to64(), 0);
        assert_eq!(d.decode().immediate8to64(), 0);
        assert_eq!(d.decode().mnemonic(), Mnemonic::Jmp);
    }
}
