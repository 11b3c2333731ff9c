//! Checks that need faults: touching an unmapped or write-protected page
//! faults at exactly that address; bad requests fail with the right
//! `-errno` and leave nothing mapped; and after a `munmap` on one vCPU
//! another vCPU can no longer use its cached translation.

use guest_mm::errno::{EEXIST, EINVAL, ENXIO, EPERM};
use iced_x86::code_asm::*;

use super::super::params::{id, shared, Data, Params};
use crate::guest::asm::{hcall, mmap, Arg, AsmResult, Check};
use crate::hosted::stub::abi::{fd, map, nr, prot};
use crate::layout::{BUILTIN_DATA_VA, PAGE_SIZE, TABLES_PA};

/// `#PF` error codes: user read of a not-present page; user write to a
/// present read-only page.
const PF_USER_READ_NP: u64 = 0x4;
const PF_USER_WRITE_PROT: u64 = 0x7;
const PF_USER_WRITE_NP: u64 = 0x6;

/// Check 6.
pub fn faults(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::FAULTS)?;
    mmap(c.asm(), Arg::Imm(0), 3 * PAGE_SIZE, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    a.mov(qword_ptr(rbp), 1)?;
    a.mov(qword_ptr(rbp + 0x1000), 2)?;
    a.mov(qword_ptr(rbp + 0x2000), 3)?;
    // munmap the middle page, then touch it.
    a.lea(rdi, qword_ptr(rbp + 0x1000))?;
    hcall(a, nr::MUNMAP, &[Arg::Keep, Arg::Imm(PAGE_SIZE)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().lea(r14, qword_ptr(rbp + 0x1018))?;
    c.expect_fault(r14, false, PF_USER_READ_NP)?;
    c.asm().lea(r14, qword_ptr(rbp + 0x1ff8))?;
    c.expect_fault(r14, true, PF_USER_WRITE_NP)?;
    // The neighbours are intact.
    c.asm().mov(r14, qword_ptr(rbp))?;
    c.expect_eq(r14, 1)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x2000))?;
    c.expect_eq(r14, 3)?;
    // mprotect the first page read-only: reads work, a write faults.
    let a = c.asm();
    hcall(a, nr::MPROTECT, &[Arg::Reg(rbp), Arg::Imm(PAGE_SIZE), Arg::Imm(prot::READ)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().lea(r14, qword_ptr(rbp + 0x28))?;
    c.expect_fault(r14, true, PF_USER_WRITE_PROT)?;
    c.asm().mov(r14, qword_ptr(rbp))?;
    c.expect_eq(r14, 1)?;
    // The third page is still writable.
    let a = c.asm();
    a.mov(qword_ptr(rbp + 0x2008), 9)?;
    a.mov(r14, qword_ptr(rbp + 0x2008))?;
    c.expect_eq(r14, 9)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(3 * PAGE_SIZE)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}

/// A fixed address the bad requests aim at (inside the mapper's window,
/// never mapped by anything else).
const FIX: u64 = 0x7_0000_0000;

/// `[FIX]` still faults (nothing was mapped there).
fn fix_still_faults(c: &mut Check<'_>) -> AsmResult {
    c.asm().mov(r14, FIX)?;
    c.expect_fault(r14, false, PF_USER_READ_NP)
}

/// Check 7.
pub fn bad_requests(a: &mut CodeAssembler, p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::BAD_REQUESTS)?;
    let ro_shared_fixed = map::SHARED | map::FIXED_NOREPLACE;
    // Overlap without MAP_FIXED: EEXIST, and the old mapping is untouched.
    mmap(c.asm(), Arg::Imm(0), PAGE_SIZE, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    c.asm().mov(qword_ptr(rbp), 0x77)?;
    let flags = map::PRIVATE | map::ANONYMOUS | map::FIXED_NOREPLACE;
    mmap(c.asm(), Arg::Reg(rbp), PAGE_SIZE, prot::READ, flags, 0, 0)?;
    c.expect_errno(EEXIST)?;
    c.asm().mov(r14, qword_ptr(rbp))?;
    c.expect_eq(r14, 0x77)?;
    hcall(c.asm(), nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(PAGE_SIZE)])?;
    // Frames outside guest RAM.
    mmap(c.asm(), Arg::Imm(FIX), PAGE_SIZE, prot::READ, ro_shared_fixed, fd::GUEST_RAM, p.mem_size)?;
    c.expect_errno(EINVAL)?;
    fix_still_faults(&mut c)?;
    // Frames the VMM owns: the GDT page, a page-table page.
    mmap(c.asm(), Arg::Imm(FIX), PAGE_SIZE, prot::READ, ro_shared_fixed, fd::GUEST_RAM, PAGE_SIZE)?;
    c.expect_errno(EPERM)?;
    mmap(c.asm(), Arg::Imm(FIX), PAGE_SIZE, prot::READ, ro_shared_fixed, fd::GUEST_RAM, TABLES_PA)?;
    c.expect_errno(EPERM)?;
    fix_still_faults(&mut c)?;
    // Overflowing lengths and offsets.
    mmap(c.asm(), Arg::Imm(0), u64::MAX - 0x800, prot::READ, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.expect_errno(EINVAL)?;
    mmap(c.asm(), Arg::Imm(FIX), 2 * PAGE_SIZE, prot::READ, ro_shared_fixed, fd::GUEST_RAM, !0xfff)?;
    c.expect_errno(EINVAL)?;
    fix_still_faults(&mut c)?;
    // Misaligned addresses.
    mmap(c.asm(), Arg::Imm(FIX + 0x123), PAGE_SIZE, prot::READ, map::PRIVATE | map::ANONYMOUS | map::FIXED, 0, 0)?;
    c.expect_errno(EINVAL)?;
    hcall(c.asm(), nr::MUNMAP, &[Arg::Imm(FIX + 0x123), Arg::Imm(PAGE_SIZE)])?;
    c.expect_errno(EINVAL)?;
    fix_still_faults(&mut c)?;
    // Devices: an absent BAR is ENXIO; a private BAR mapping is EINVAL.
    mmap(c.asm(), Arg::Imm(FIX), PAGE_SIZE, prot::READ, ro_shared_fixed, fd::BAR0 + 31, 0)?;
    c.expect_errno(ENXIO)?;
    if let Some((index, size)) = p.trapped_bar {
        mmap(c.asm(), Arg::Imm(FIX), size, prot::READ, map::PRIVATE | map::FIXED_NOREPLACE, fd::BAR0 + index, 0)?;
        c.expect_errno(EINVAL)?;
    }
    // A handle that names nothing.
    mmap(c.asm(), Arg::Imm(FIX), PAGE_SIZE, prot::READ, ro_shared_fixed, 5, 0)?;
    c.expect_errno(libc::EBADF)?;
    // The supervisor half is out of reach.
    mmap(
        c.asm(),
        Arg::Imm(0xffff_8000_0000_0000),
        PAGE_SIZE,
        prot::READ,
        map::PRIVATE | map::ANONYMOUS | map::FIXED,
        0,
        0,
    )?;
    c.expect_errno(guest_mm::errno::ENOMEM)?;
    fix_still_faults(&mut c)?;
    c.end()
}

/// Bound on spin loops (a few seconds natively).
const SPIN: u32 = 1 << 30;
/// Reads vCPU 1 makes before vCPU 0 unmaps (a warm TLB).
const WARM_READS: i32 = 100_000;

/// Emits: spin until the u64 at `[r11 + off]` is nonzero (bounded).
fn wait_flag(a: &mut CodeAssembler, off: u64) -> AsmResult {
    let mut lp = a.create_label();
    let mut out = a.create_label();
    a.mov(ecx, SPIN)?;
    a.set_label(&mut lp)?;
    a.cmp(qword_ptr(r11 + off as i32), 0)?;
    a.jne(out)?;
    a.pause()?;
    a.dec(ecx)?;
    a.jnz(lp)?;
    a.set_label(&mut out)?;
    a.nop()?;
    Ok(())
}

/// Check 8, vCPU 0's side: map a page, let vCPU 1 read it in a loop,
/// unmap it, tell vCPU 1, and collect its verdict.
pub fn shootdown(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::SHOOTDOWN)?;
    mmap(c.asm(), Arg::Imm(0), PAGE_SIZE, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    a.mov(qword_ptr(rbp), 0x55)?;
    a.mov(r11, BUILTIN_DATA_VA)?;
    a.mov(qword_ptr(r11 + shared::ADDR as i32), rbp)?;
    a.mov(qword_ptr(r11 + shared::GO as i32), 1)?;
    wait_flag(a, shared::READY)?;
    // Let it read for a while.
    let mut lp = a.create_label();
    let mut out = a.create_label();
    a.mov(ecx, SPIN)?;
    a.set_label(&mut lp)?;
    a.cmp(qword_ptr(r11 + shared::COUNT as i32), WARM_READS)?;
    a.jae(out)?;
    a.pause()?;
    a.dec(ecx)?;
    a.jnz(lp)?;
    a.set_label(&mut out)?;
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(PAGE_SIZE)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    let a = c.asm();
    a.mov(r11, BUILTIN_DATA_VA)?;
    a.mov(qword_ptr(r11 + shared::UNMAPPED as i32), 1)?;
    wait_flag(a, shared::DONE)?;
    a.mov(r14, qword_ptr(r11 + shared::COUNT as i32))?;
    a.cmp(r14, WARM_READS)?;
    a.setae(r14b)?;
    a.movzx(r14, r14b)?;
    c.expect_eq(r14, 1)?;
    c.asm().mov(r14, qword_ptr(r11 + shared::STALE as i32))?;
    c.expect_eq(r14, 0)?;
    c.asm().mov(r14, qword_ptr(r11 + shared::FAULTED as i32))?;
    c.expect_eq(r14, 1)?;
    c.end()
}

/// Check 8, vCPU 1's side (then it exits): read the page until the read
/// faults; a read that succeeds after vCPU 0 said "unmapped" is stale.
pub fn shootdown_reader(a: &mut CodeAssembler) -> AsmResult {
    let mut resume = a.create_label();
    let mut stale = a.create_label();
    let mut fin = a.create_label();
    let mut lp = a.create_label();
    a.mov(r11, BUILTIN_DATA_VA)?;
    wait_flag(a, shared::GO)?;
    a.mov(r14, qword_ptr(r11 + shared::ADDR as i32))?;
    a.lea(rdi, ptr(resume))?;
    hcall(a, nr::EXPECT_FAULT, &[Arg::Keep])?;
    a.mov(qword_ptr(r11 + shared::READY as i32), 1)?;
    a.set_label(&mut lp)?;
    // Read the flag first, then the page: if the flag said "unmapped",
    // munmap had returned, so the page read must fault.
    a.mov(r9, qword_ptr(r11 + shared::UNMAPPED as i32))?;
    a.mov(rax, qword_ptr(r14))?;
    a.inc(qword_ptr(r11 + shared::COUNT as i32))?;
    a.test(r9, r9)?;
    a.jnz(stale)?;
    a.jmp(lp)?;
    a.set_label(&mut stale)?;
    a.mov(qword_ptr(r11 + shared::STALE as i32), 1)?;
    hcall(a, nr::EXPECT_FAULT, &[Arg::Imm(0)])?;
    a.jmp(fin)?;
    a.set_label(&mut resume)?;
    // rsi = the faulting address.
    a.cmp(rsi, r14)?;
    a.sete(al)?;
    a.movzx(eax, al)?;
    a.mov(qword_ptr(r11 + shared::FAULTED as i32), rax)?;
    a.set_label(&mut fin)?;
    a.mov(qword_ptr(r11 + shared::DONE as i32), 1)?;
    Ok(())
}
