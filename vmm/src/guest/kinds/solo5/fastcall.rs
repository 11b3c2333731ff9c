//! The Solo5 unikernel's user-mode `syscall` trampoline, with two calls
//! answered in user mode, without a VM exit: `clock_gettime` and the
//! yield's `timerfd_settime`.
//!
//! Where the backend keeps `syscall` in user mode (`kvm_pvm`, see
//! `vstate::backend`), `LSTAR` points at user-mode code the VMM provides
//! (the shared [`crate::hosted::trampoline`] makes every call a hypercall
//! exit). Each `solo5_yield` makes three calls (`clock_gettime` for its
//! deadline, `timerfd_settime`, `epoll_pwait`) and a served network frame
//! two more (`read`, `write`): five exits per ping. The first two need
//! nothing from the host but a clock and a place to keep the deadline, so
//! this trampoline serves them from the **clock page** ([`CLOCK_PAGE_VA`],
//! one user read/write page beside the trampoline):
//!
//! - `clock_gettime(CLOCK_REALTIME | CLOCK_MONOTONIC, ts)`:
//!   `mono = MONO_BASE + ((rdtsc - TSC_BASE) * MULT) >> 32`, realtime
//!   adds `REAL_MINUS_MONO`; written to `ts` when `ts` lies in
//!   `[WR_LO, WR_HI - 16]` (the heap and stack: always mapped writable).
//!   `MULT == 0` (not yet calibrated) takes the exit.
//! - `timerfd_settime(TIMER_FD, TFD_TIMER_ABSTIME, new, NULL)` with `new`
//!   in `[RD_LO, RD_HI - 32]` and a valid `new` (`tv_nsec` below 10^9,
//!   `tv_sec` not negative): stores the absolute deadline in `TIMER`
//!   (`u64::MAX`: disarmed; a zero value disarms), which the host's
//!   `epoll_pwait` reads. Relative times, an `old` pointer and every
//!   invalid argument take the exit and get the host's answer (errno
//!   included), so nothing Linux would refuse is accepted here.
//!
//! Anything else is a hypercall exit, as in the shared trampoline. The
//! fast paths keep every register but `rax` (the result), `rcx` and
//! `r11` (as `syscall` does), use the stack only below the red zone, and
//! return as `sysret` would (flags from `r11`, to `rcx`).
//!
//! The host keeps the page true ([`super::clock`]): it re-anchors
//! `TSC_BASE`/`MONO_BASE` and refines `MULT` against its own clock at each
//! exit that reads the time, never moving the monotonic clock back. The
//! page is the unikernel's to write (a unikernel that scribbles on it
//! corrupts only its own clock and timer: the host reads `TIMER` as any
//! other guest value).

#[cfg(test)]
use iced_x86::code_asm::*;

#[cfg(test)]
use super::layout::TIMER_FD;
#[cfg(test)]
use super::numbers::nr;
#[cfg(test)]
use crate::hosted::stub::abi::HCALL_PORT;
use crate::hosted::trampoline::TRAMPOLINE_VA;

// Generated (see `crate::hosted::prebuilt`): not formatted.
#[rustfmt::skip]
#[path = "fastcall_code.rs"]
mod prebuilt;

/// The clock page: one user read/write page below the trampoline.
pub const CLOCK_PAGE_VA: u64 = TRAMPOLINE_VA - 0x1000;

/// Offsets of the clock page's `u64` fields.
pub mod field {
    /// The TSC at the anchor.
    pub const TSC_BASE: u64 = 0;
    /// `CLOCK_MONOTONIC` at the anchor, ns.
    pub const MONO_BASE: u64 = 8;
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC`, ns (wrapping).
    pub const REAL_MINUS_MONO: u64 = 16;
    /// Nanoseconds per TSC tick, 32.32 fixed point; 0: not calibrated.
    pub const MULT: u64 = 24;
    /// The armed timer's `CLOCK_MONOTONIC` deadline, ns; `u64::MAX`: none.
    pub const TIMER: u64 = 32;
    /// Lowest address the fast `clock_gettime` writes.
    pub const WR_LO: u64 = 40;
    /// End of the range it writes.
    pub const WR_HI: u64 = 48;
    /// Lowest address the fast `timerfd_settime` reads.
    pub const RD_LO: u64 = 56;
    /// End of the range it reads.
    pub const RD_HI: u64 = 64;
    /// The constant 10^9 (a `div` operand).
    pub const NSEC: u64 = 72;
    /// Bytes in use.
    pub const END: u64 = 80;
}

/// `TIMER` when no timer is armed.
pub const DISARMED: u64 = u64::MAX;

#[cfg(test)]
const CLOCK_REALTIME: i32 = 0;
#[cfg(test)]
const CLOCK_MONOTONIC: i32 = 1;
#[cfg(test)]
const TFD_TIMER_ABSTIME: i32 = 1;

/// The trampoline's code, linked at [`TRAMPOLINE_VA`]. Launches write the
/// same bytes from `fastcall_code.rs` (see [`crate::hosted::prebuilt`]);
/// this assembler runs only in the test that checks them.
#[cfg(test)]
pub fn code() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut slow = a.create_label();
    let mut ret = a.create_label();
    let mut clock = a.create_label();
    let mut timer = a.create_label();

    a.cmp(rax, nr::CLOCK_GETTIME as i32)?;
    a.je(clock)?;
    a.cmp(rax, nr::TIMERFD_SETTIME as i32)?;
    a.je(timer)?;
    a.set_label(&mut slow)?;
    a.out(u32::from(HCALL_PORT), al)?;
    a.set_label(&mut ret)?;
    // As the shared trampoline: flags from r11, to rcx, the red zone kept.
    a.lea(rsp, ptr(rsp - 128))?;
    a.push(r11)?;
    a.popfq()?;
    a.lea(rsp, ptr(rsp + 128))?;
    a.jmp(rcx)?;

    // clock_gettime(rdi = clock, rsi = ts)
    let mut clock_slow = a.create_label();
    let mut mono = a.create_label();
    a.set_label(&mut clock)?;
    a.cmp(rdi, CLOCK_MONOTONIC)?;
    a.ja(slow)?;
    a.lea(rsp, ptr(rsp - 128))?;
    a.push(rdx)?;
    a.push(r8)?;
    a.mov(r8, CLOCK_PAGE_VA)?;
    a.cmp(qword_ptr(r8 + field::MULT), 0)?;
    a.je(clock_slow)?;
    a.cmp(rsi, qword_ptr(r8 + field::WR_LO))?;
    a.jb(clock_slow)?;
    a.mov(rdx, qword_ptr(r8 + field::WR_HI))?;
    a.sub(rdx, 16)?;
    a.cmp(rsi, rdx)?;
    a.ja(clock_slow)?;
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)?;
    a.sub(rax, qword_ptr(r8 + field::TSC_BASE))?;
    // A TSC below the anchor (cannot happen on one constant TSC) counts
    // as the anchor itself, never as a huge delta.
    let mut forward = a.create_label();
    a.jae(forward)?;
    a.xor(eax, eax)?;
    a.set_label(&mut forward)?;
    a.mul(qword_ptr(r8 + field::MULT))?;
    a.shrd(rax, rdx, 32)?;
    a.add(rax, qword_ptr(r8 + field::MONO_BASE))?;
    a.cmp(rdi, CLOCK_REALTIME)?;
    a.jne(mono)?;
    a.add(rax, qword_ptr(r8 + field::REAL_MINUS_MONO))?;
    a.set_label(&mut mono)?;
    a.xor(edx, edx)?;
    a.div(qword_ptr(r8 + field::NSEC))?;
    a.mov(qword_ptr(rsi), rax)?;
    a.mov(qword_ptr(rsi + 8), rdx)?;
    a.pop(r8)?;
    a.pop(rdx)?;
    a.lea(rsp, ptr(rsp + 128))?;
    a.xor(eax, eax)?;
    a.jmp(ret)?;
    a.set_label(&mut clock_slow)?;
    a.pop(r8)?;
    a.pop(rdx)?;
    a.lea(rsp, ptr(rsp + 128))?;
    a.jmp(slow)?;

    // timerfd_settime(rdi = fd, rsi = flags, rdx = new, r10 = old)
    let mut timer_slow = a.create_label();
    let mut store = a.create_label();
    let mut disarm = a.create_label();
    a.set_label(&mut timer)?;
    a.cmp(rdi, TIMER_FD)?;
    a.jne(slow)?;
    a.cmp(rsi, TFD_TIMER_ABSTIME)?;
    a.jne(slow)?;
    a.test(r10, r10)?;
    a.jnz(slow)?;
    a.lea(rsp, ptr(rsp - 128))?;
    a.push(rdx)?;
    a.push(r8)?;
    a.push(r9)?;
    a.mov(r8, CLOCK_PAGE_VA)?;
    a.cmp(rdx, qword_ptr(r8 + field::RD_LO))?;
    a.jb(timer_slow)?;
    a.mov(r9, qword_ptr(r8 + field::RD_HI))?;
    a.sub(r9, 32)?;
    a.cmp(rdx, r9)?;
    a.ja(timer_slow)?;
    // it_value: tv_sec at +16, tv_nsec at +24.
    a.mov(r9, qword_ptr(rdx + 24))?;
    a.cmp(r9, qword_ptr(r8 + field::NSEC))?;
    a.jae(timer_slow)?;
    a.mov(rax, qword_ptr(rdx + 16))?;
    a.test(rax, rax)?;
    a.js(timer_slow)?;
    a.mul(qword_ptr(r8 + field::NSEC))?;
    // sec * 10^9 + nsec, saturating at u64::MAX (a deadline never met).
    a.test(rdx, rdx)?;
    let mut saturate = a.create_label();
    a.jnz(saturate)?;
    a.add(rax, r9)?;
    a.jc(saturate)?;
    a.test(rax, rax)?;
    a.jz(disarm)?;
    a.jmp(store)?;
    a.set_label(&mut saturate)?;
    a.mov(rax, -1i64)?;
    a.jmp(store)?;
    a.set_label(&mut disarm)?;
    a.mov(rax, -1i64)?;
    a.set_label(&mut store)?;
    a.mov(qword_ptr(r8 + field::TIMER), rax)?;
    a.pop(r9)?;
    a.pop(r8)?;
    a.pop(rdx)?;
    a.lea(rsp, ptr(rsp + 128))?;
    a.xor(eax, eax)?;
    a.jmp(ret)?;
    a.set_label(&mut timer_slow)?;
    a.pop(r9)?;
    a.pop(r8)?;
    a.pop(rdx)?;
    a.lea(rsp, ptr(rsp + 128))?;
    // rax was overwritten on some paths: the call's number again.
    a.mov(eax, nr::TIMERFD_SETTIME as u32)?;
    a.jmp(slow)?;

    a.assemble(TRAMPOLINE_VA)
}

/// The clock page's initial contents: no calibration yet (every
/// `clock_gettime` exits until the host has one), no timer, the ranges.
pub fn initial_page(wr: (u64, u64), rd: (u64, u64)) -> Vec<u8> {
    let mut p = vec![0u8; field::END as usize];
    let mut put = |off: u64, v: u64| p[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(field::TIMER, DISARMED);
    put(field::WR_LO, wr.0);
    put(field::WR_HI, wr.1);
    put(field::RD_LO, rd.0);
    put(field::RD_HI, rd.1);
    put(field::NSEC, 1_000_000_000);
    p
}

/// Writes the trampoline and the clock page into frames from `frames`
/// and maps them at [`TRAMPOLINE_VA`] (read/execute) and
/// [`CLOCK_PAGE_VA`] (read/write); returns the `LSTAR` to use.
pub fn install(
    mapper: &mut crate::hosted::mapper::Mapper,
    frames: &mut crate::memory::BootFrames,
    mem: &crate::memory::GuestMem,
    page: &[u8],
) -> Result<u64, String> {
    use crate::hosted::mapper::Access;
    let code = &prebuilt::CODE;
    let frame = frames.alloc(2).map_err(|e| e.to_string())?;
    let (code_frame, page_frame) = match frame.as_slice() {
        [c, p] => (*c, *p),
        _ => return Err("the frame allocator gave the wrong number of frames".into()),
    };
    vm_memory::Bytes::write_slice(mem, code, code_frame.addr())
        .map_err(|_| "cannot write the syscall trampoline".to_string())?;
    vm_memory::Bytes::write_slice(mem, page, page_frame.addr())
        .map_err(|_| "cannot write the clock page".to_string())?;
    let va = |a: u64| guest_mm::GuestVirtAddr::try_new(a).map_err(|e| e.to_string());
    mapper.map_user_pages(va(TRAMPOLINE_VA)?, &[code_frame], Access::RX).map_err(|e| e.to_string())?;
    mapper.map_user_pages(va(CLOCK_PAGE_VA)?, &[page_frame], Access::RW).map_err(|e| e.to_string())?;
    Ok(TRAMPOLINE_VA)
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};

    use super::*;

    #[test]
    fn prebuilt_trampoline_is_what_the_assembler_makes() {
        let code = code().unwrap();
        let body = crate::hosted::prebuilt::bytes_const("CODE", "The trampoline, linked at `TRAMPOLINE_VA`.", &code);
        let what = "Solo5's `syscall` trampoline (clock page fast paths) as `fastcall::code` assembles it.";
        crate::hosted::prebuilt::check_or_bless(
            "src/guest/kinds/solo5/fastcall_code.rs",
            &crate::hosted::prebuilt::file(what, &body),
        );
        assert_eq!(super::prebuilt::CODE.as_slice(), code.as_slice());
    }

    #[test]
    fn the_trampoline_fits_its_page_and_exits_only_on_the_hypercall_port() {
        let code = code().unwrap();
        assert!(code.len() < 0x1000);
        let outs: Vec<_> = Decoder::with_ip(64, &code, TRAMPOLINE_VA, DecoderOptions::NONE)
            .into_iter()
            .filter(|i| i.mnemonic() == Mnemonic::Out)
            .collect();
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].immediate8(), HCALL_PORT as u8);
    }

    #[test]
    fn the_page_starts_uncalibrated_with_no_timer() {
        let p = initial_page((0x20_0000, 0x40_0000), (0x1_0000, 0x40_0000));
        let at = |off: u64| u64::from_le_bytes(p[off as usize..off as usize + 8].try_into().unwrap());
        assert_eq!(at(field::MULT), 0);
        assert_eq!(at(field::TIMER), DISARMED);
        assert_eq!((at(field::WR_LO), at(field::WR_HI)), (0x20_0000, 0x40_0000));
        assert_eq!(at(field::NSEC), 1_000_000_000);
    }
}
