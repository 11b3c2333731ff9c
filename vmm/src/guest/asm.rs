//! Helpers for writing guest code with `iced-x86`'s `CodeAssembler`:
//! hypercalls in the guest ABI and the check framework of the built-in
//! guest.
//!
//! Register use of generated checks: `r15` holds the vCPU index for the
//! whole program; within a check `r13` is the first failing step (0 =
//! none), `r12` what that step got and `rbx` what it expected. Hypercalls
//! clobber `rax` and their argument registers.

use iced_x86::code_asm::*;

use crate::hosted::stub::abi::nr;

/// Result of the assembler calls.
pub type AsmResult<T = ()> = Result<T, IcedError>;

/// Argument registers of the hypercall convention, in order.
pub const ARG_REGS: [AsmRegister64; 6] = [rdi, rsi, rdx, r10, r8, r9];

/// An argument to a hypercall.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// An immediate.
    Imm(u64),
    /// A register (must not be a later argument register).
    Reg(AsmRegister64),
    /// Leave the register as it is.
    Keep,
}

/// Emits `rax = nr; args...; out HCALL_PORT, al`.
pub fn hcall(a: &mut CodeAssembler, number: u64, args: &[Arg]) -> AsmResult {
    for (i, arg) in args.iter().enumerate() {
        let r = ARG_REGS[i];
        match *arg {
            Arg::Imm(v) => a.mov(r, v)?,
            Arg::Reg(src) if src != r => a.mov(r, src)?,
            _ => {}
        }
    }
    a.mov(rax, number)?;
    a.out(u32::from(crate::hosted::stub::abi::HCALL_PORT), al)
}

/// A check being assembled.
pub struct Check<'a> {
    a: &'a mut CodeAssembler,
    id: u64,
    step: u64,
}

impl<'a> Check<'a> {
    /// Starts check `id`: clears the failure registers.
    pub fn begin(a: &'a mut CodeAssembler, id: u64) -> AsmResult<Self> {
        a.xor(r13d, r13d)?;
        a.xor(r12d, r12d)?;
        a.xor(ebx, ebx)?;
        Ok(Check { a, id, step: 0 })
    }

    /// The assembler, to emit the check's own code.
    pub fn asm(&mut self) -> &mut CodeAssembler {
        self.a
    }

    /// Emits a step comparing `got` with the immediate `expected`; the
    /// first failing step is remembered. Clobbers `rax` when `expected`
    /// does not fit a sign-extended 32-bit immediate.
    pub fn expect_eq(&mut self, got: AsmRegister64, expected: u64) -> AsmResult<u64> {
        self.step += 1;
        let step = self.step;
        let a = &mut *self.a;
        let mut ok = a.create_label();
        if i32::try_from(expected as i64).is_ok() {
            a.cmp(got, expected as i64 as i32)?;
        } else {
            a.mov(rax, expected)?;
            a.cmp(got, rax)?;
        }
        a.je(ok)?;
        a.test(r13, r13)?;
        a.jnz(ok)?;
        a.mov(r13, step)?;
        a.mov(r12, got)?;
        a.mov(rbx, expected)?;
        a.set_label(&mut ok)?;
        // A label needs an instruction of its own.
        a.nop()?;
        Ok(step)
    }

    /// Like [`Check::expect_eq`] against another register.
    pub fn expect_eq_reg(&mut self, got: AsmRegister64, expected: AsmRegister64) -> AsmResult<u64> {
        self.step += 1;
        let step = self.step;
        let a = &mut *self.a;
        let mut ok = a.create_label();
        a.cmp(got, expected)?;
        a.je(ok)?;
        a.test(r13, r13)?;
        a.jnz(ok)?;
        a.mov(r13, step)?;
        a.mov(r12, got)?;
        a.mov(rbx, expected)?;
        a.set_label(&mut ok)?;
        // A label needs an instruction of its own.
        a.nop()?;
        Ok(step)
    }

    /// Ends the check: reports it.
    pub fn end(self) -> AsmResult {
        let a = self.a;
        // passed = (r13 == 0)
        a.xor(esi, esi)?;
        a.test(r13, r13)?;
        a.sete(sil)?;
        hcall(a, nr::REPORT, &[Arg::Imm(self.id), Arg::Keep, Arg::Reg(r12), Arg::Reg(rbx), Arg::Reg(r13)])
    }
}

/// Emits `mmap(addr, len, prot, flags, fd, off)`; the result is in `rax`.
pub fn mmap(a: &mut CodeAssembler, addr: Arg, len: u64, prot: u64, flags: u64, fd: u64, off: u64) -> AsmResult {
    hcall(a, nr::MMAP, &[addr, Arg::Imm(len), Arg::Imm(prot), Arg::Imm(flags), Arg::Imm(fd), Arg::Imm(off)])
}

impl Check<'_> {
    /// A step: `reg` holds a mapping address, not a `-errno`.
    pub fn expect_mapped(&mut self, reg: AsmRegister64) -> AsmResult<u64> {
        self.step += 1;
        let step = self.step;
        let a = &mut *self.a;
        let mut ok = a.create_label();
        // -4095..=-1 are errors.
        a.mov(rax, -4096i64)?;
        a.cmp(reg, rax)?;
        a.jbe(ok)?;
        a.test(r13, r13)?;
        a.jnz(ok)?;
        a.mov(r13, step)?;
        a.mov(r12, reg)?;
        a.xor(ebx, ebx)?;
        a.set_label(&mut ok)?;
        // A label needs an instruction of its own.
        a.nop()?;
        Ok(step)
    }

    /// A step: `rax` is `-errno`.
    pub fn expect_errno(&mut self, errno: i32) -> AsmResult<u64> {
        self.a.mov(r14, rax)?;
        self.expect_eq(r14, (-i64::from(errno)) as u64)
    }

    /// Steps: an access to `[addr]` (a read, or a write of 1) faults with
    /// `#PF` at exactly `addr` and the given error code. `addr` must not be
    /// one of the registers the fault report or hypercalls use (`rax`,
    /// `rcx`, `rdx`, `rsi`, `rdi`, `r8`, `r10`); `rbp`, `r9`, `r11` and
    /// `r14` are safe.
    pub fn expect_fault(&mut self, addr: AsmRegister64, write: bool, error_code: u64) -> AsmResult {
        let a = &mut *self.a;
        let mut resume = a.create_label();
        a.lea(rdi, ptr(resume))?;
        hcall(a, nr::EXPECT_FAULT, &[Arg::Keep])?;
        if write {
            a.mov(qword_ptr(addr), 1)?;
        } else {
            a.mov(rax, qword_ptr(addr))?;
        }
        // No fault: disarm, and make the steps below fail (falling through
        // to where a fault would have resumed).
        hcall(a, nr::EXPECT_FAULT, &[Arg::Imm(0)])?;
        a.mov(eax, 0xffff)?;
        a.xor(esi, esi)?;
        a.mov(rdi, u64::MAX)?;
        a.set_label(&mut resume)?;
        a.mov(r8, rax)?;
        self.expect_eq(r8, u64::from(crate::hosted::arch::idt::PF_VECTOR))?;
        self.expect_eq_reg(rsi, addr)?;
        self.expect_eq(rdi, error_code)?;
        Ok(())
    }
}

/// Emits code that writes the bytes at `label` (`len` bytes) to the
/// serial port directly with `out` (user mode may use it).
pub fn serial_print(a: &mut CodeAssembler, label: CodeLabel, len: u32) -> AsmResult {
    let mut lp = a.create_label();
    a.lea(rsi, ptr(label))?;
    a.mov(ecx, len)?;
    a.mov(edx, u32::from(devices::legacy::COM1_PORT))?;
    a.set_label(&mut lp)?;
    a.lodsb()?;
    a.out(dx, al)?;
    a.dec(ecx)?;
    a.jnz(lp)?;
    Ok(())
}
