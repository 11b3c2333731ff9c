//! What every guest-side benchmark program has in common: where it writes
//! its results, how it reads the time stamp counter, and how it ends.
//!
//! A benchmark guest is a user ELF (see `guest::kinds::abi_elf::example::assemble_elf`)
//! that maps a **results area** of guest RAM at [`RESULTS_VA`] (physical
//! [`RESULTS_PA`], through the guest-RAM provider), writes its raw
//! measurements there as u64 words — TSC cycle counts, guest-physical
//! addresses — and finally [`DONE`] into slot 0 before it writes the exit
//! port. The host reads the words from guest memory after the run (see
//! [`super::session`]) and converts cycles with the host-calibrated TSC
//! rate (see [`super::tsc`]). Nothing here interprets a result: a program
//! only counts.
//!
//! Register convention: `r15` holds [`RESULTS_VA`] from [`prologue`] on;
//! bodies must not change it. Hypercalls clobber `rax` and their argument
//! registers; [`tsc`] clobbers `rax` and `rdx`.
//!
//! This module does not run anything and does not time anything itself.

use iced_x86::code_asm::*;

use vmm::guest::asm::{hcall, Arg, AsmResult};
use vmm::hosted::stub::abi::{fd, map, nr, prot};
use vmm::layout::{FREE_PA, PAGE_SIZE};

/// Guest-virtual address of the results area (in the mmap window).
pub const RESULTS_VA: u64 = 0x1_0000_0000;
/// Guest-physical address behind it: the first page of free RAM.
pub const RESULTS_PA: u64 = FREE_PA;
/// Pages in the results area.
pub const RESULTS_PAGES: u64 = 4;
/// Bytes in the results area.
pub const RESULTS_LEN: u64 = RESULTS_PAGES * PAGE_SIZE;
/// u64 slots in the results area.
pub const SLOTS: usize = (RESULTS_LEN / 8) as usize;

/// What slot 0 holds once the program finished every measurement.
pub const DONE: u64 = 0x454e_4f44_4843_4e42; // "BNCHDONE"
/// Slot of the done marker.
pub const SLOT_DONE: usize = 0;
/// Slot of the TSC when the program started measuring.
pub const SLOT_TSC_START: usize = 1;
/// Slot of the TSC when it finished.
pub const SLOT_TSC_END: usize = 2;
/// First slot a program may use for its own results.
pub const SLOT_FIRST_FREE: usize = 4;

/// Exit-port value of a program that could not set itself up (its
/// process status is `(v << 1) | 1`).
pub const FAIL_SETUP: u32 = 0x40;
/// Exit-port value of a clean finish (status 1).
pub const EXIT_OK: u32 = 0;

// The layout of the results area, checked at compile time.
const _: () = {
    assert!(SLOTS == 2048);
    assert!(SLOT_FIRST_FREE > SLOT_TSC_END && SLOT_TSC_END > SLOT_TSC_START && SLOT_TSC_START > SLOT_DONE);
    assert!(RESULTS_PA % PAGE_SIZE == 0);
    // In the mmap window, which starts at 4 GiB.
    assert!(RESULTS_VA >= 1 << 32);
};

/// Where benchmark ranges are mapped (fixed addresses in the mmap window,
/// far apart so no two overlap).
pub mod va {
    /// The range of item 5 and 6.
    pub const RANGE: u64 = 0x2_0000_0000;
    /// A BAR window.
    pub const BAR: u64 = 0x3_0000_0000;
    /// A second window or guest-RAM range.
    pub const SECOND: u64 = 0x4_0000_0000;
}

/// The address of slot `slot` relative to `r15`.
pub fn slot(slot: usize) -> AsmMemoryOperand {
    qword_ptr(r15 + (slot as i32 * 8))
}

/// `dst = TSC` (`lfence; rdtsc`: earlier instructions have completed
/// before the counter is read). Clobbers `rax` and `rdx`.
pub fn tsc(a: &mut CodeAssembler, dst: AsmRegister64) -> AsmResult {
    a.lfence()?;
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)?;
    a.mov(dst, rax)
}

/// Stores `TSC - start` into `slot`. Clobbers `rax` and `rdx`.
pub fn store_elapsed(a: &mut CodeAssembler, start: AsmRegister64, at: usize) -> AsmResult {
    tsc(a, rax)?;
    a.sub(rax, start)?;
    a.mov(slot(at), rax)
}

/// Writes `value` to the exit port; the run ends there.
pub fn exit_port(a: &mut CodeAssembler, value: u32) -> AsmResult {
    a.mov(edx, u32::from(devices::legacy::EXIT_PORT))?;
    a.mov(eax, value)?;
    a.out(dx, eax)?;
    a.ud2()
}

/// A fixed mapping a program makes at start-up.
#[derive(Clone, Copy, Debug)]
pub struct FixedMap {
    /// Where (`MAP_FIXED`).
    pub addr: u64,
    /// Bytes.
    pub len: u64,
    /// `PROT_*` bits.
    pub prot: u64,
    /// `MAP_SHARED` or `MAP_PRIVATE`, plus any of `MAP_ANONYMOUS`.
    pub flags: u64,
    /// The provider handle (`fd`).
    pub handle: u64,
    /// Its offset.
    pub off: u64,
}

/// `mmap`s `m` and, if the result is not `m.addr`, ends the run with
/// [`FAIL_SETUP`] + `code`.
pub fn mmap_or_fail(a: &mut CodeAssembler, m: FixedMap, code: u32) -> AsmResult {
    hcall(
        a,
        nr::MMAP,
        &[
            Arg::Imm(m.addr),
            Arg::Imm(m.len),
            Arg::Imm(m.prot),
            Arg::Imm(m.flags | map::FIXED),
            Arg::Imm(m.handle),
            Arg::Imm(m.off),
        ],
    )?;
    check_rax_or_fail(a, m.addr, code)
}

/// The results area as a [`FixedMap`].
pub const RESULTS_MAP: FixedMap = FixedMap {
    addr: RESULTS_VA,
    len: RESULTS_LEN,
    prot: prot::READ | prot::WRITE,
    flags: map::SHARED,
    handle: fd::GUEST_RAM,
    off: RESULTS_PA,
};

/// Ends the run with [`FAIL_SETUP`] + `code` unless `rax == want`.
/// Clobbers `rdx`.
pub fn check_rax_or_fail(a: &mut CodeAssembler, want: u64, code: u32) -> AsmResult {
    let mut ok = a.create_label();
    a.mov(rdx, want)?;
    a.cmp(rax, rdx)?;
    a.je(ok)?;
    exit_port(a, FAIL_SETUP + code)?;
    a.set_label(&mut ok)?;
    a.nop()
}

/// Maps the results area at [`RESULTS_VA`] and points `r15` at it; when
/// `by_hypercall` is false the host has mapped it already (the bare exit
/// loop has no hypercalls). Then stores the start TSC.
pub fn prologue(a: &mut CodeAssembler, by_hypercall: bool) -> AsmResult {
    if by_hypercall {
        mmap_or_fail(a, RESULTS_MAP, 0)?;
    }
    a.mov(r15, RESULTS_VA)?;
    tsc(a, rax)?;
    a.mov(slot(SLOT_TSC_START), rax)
}

/// Stores the end TSC and [`DONE`], then writes [`EXIT_OK`] to the exit
/// port.
pub fn finish(a: &mut CodeAssembler) -> AsmResult {
    tsc(a, rax)?;
    a.mov(slot(SLOT_TSC_END), rax)?;
    a.mov(rax, DONE)?;
    a.mov(slot(SLOT_DONE), rax)?;
    exit_port(a, EXIT_OK)
}

/// Emits `count` iterations of `body` with `counter` (not `rax`/`rdx`,
/// nor anything `body` uses) counting down.
pub fn repeat(
    a: &mut CodeAssembler,
    counter: AsmRegister64,
    count: u64,
    body: impl FnOnce(&mut CodeAssembler) -> AsmResult,
) -> AsmResult {
    let mut top = a.create_label();
    a.mov(counter, count)?;
    a.set_label(&mut top)?;
    body(a)?;
    a.dec(counter)?;
    a.jnz(top)
}

/// Times `chunks` runs of `per_chunk` iterations of `body` into
/// `chunks` consecutive slots from `first` (with `rbx` counting and
/// `r14` holding the start). Splitting a loop into chunks lets the host
/// take the median chunk, so a burst of host preemption in one chunk does
/// not decide the figure.
pub fn timed_chunks(
    a: &mut CodeAssembler,
    chunks: usize,
    per_chunk: u64,
    first: usize,
    body: fn(&mut CodeAssembler) -> AsmResult,
) -> AsmResult {
    for c in 0..chunks {
        tsc(a, r14)?;
        repeat(a, rbx, per_chunk, body)?;
        store_elapsed(a, r14, first + c)?;
    }
    Ok(())
}

/// The read loop of items 5 and 7c: reads `rcx` bytes (a positive multiple
/// of 64) from `rsi` with 16-byte SSE2 loads into four independent
/// accumulators, so loads, not an add chain, bound it. Clobbers `rsi`,
/// `rcx`, `xmm0`–`xmm3`. The host peer runs the same instructions (see
/// `host_read`).
pub fn read_loop(a: &mut CodeAssembler) -> AsmResult {
    let mut top = a.create_label();
    a.set_label(&mut top)?;
    a.paddq(xmm0, xmmword_ptr(rsi))?;
    a.paddq(xmm1, xmmword_ptr(rsi + 16))?;
    a.paddq(xmm2, xmmword_ptr(rsi + 32))?;
    a.paddq(xmm3, xmmword_ptr(rsi + 48))?;
    a.add(rsi, 64)?;
    a.sub(rcx, 64)?;
    a.jnz(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm::guest::kinds::abi_elf::example::assemble_elf;

    #[test]
    fn a_minimal_program_assembles() {
        let elf = assemble_elf(|a| {
            prologue(a, true)?;
            repeat(a, rbx, 3, |a| a.nop())?;
            a.mov(rsi, va::RANGE)?;
            a.mov(ecx, 4096)?;
            read_loop(a)?;
            finish(a)
        })
        .unwrap();
        assert!(elf.len() > 64);
    }
}
