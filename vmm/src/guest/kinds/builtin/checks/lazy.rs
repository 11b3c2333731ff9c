//! Checks of the fault path, through the CPU: lazy anonymous memory (a
//! read maps the shared zero page, the first write copies it, DONTNEED
//! drops the copy and the page refaults zero), fault-around on a lazy page
//! buffer (16 pages touched, one fault, counted with `exit_count`), and
//! mremap (grow with the data following, a fixed move, the old range gone,
//! a `VM_DONTEXPAND` mapping refusing to grow).

use guest_mm::errno::EFAULT;
use iced_x86::code_asm::*;

use super::super::params::{id, Data, Params};
use crate::guest::asm::{hcall, mmap, Arg, AsmResult, Check};
use crate::hosted::stub::abi::{fd, madv, map, mremap, nr, page_pattern, prot, PAGE_BUFFER_PAGES};
use crate::layout::PAGE_SIZE;

/// `#PF` error code of a user read of a not-present page.
const PF_USER_READ_NP: u64 = 0x4;
/// A 64 KiB-aligned address for the fault-around check (so the 16-page
/// window is the whole mapping).
const AROUND_VA: u64 = 0x7_2000_0000;
/// Where the mremap check moves its mapping.
const MOVE_VA: u64 = 0x7_3000_0000;
/// Size of the lazy anonymous mapping.
const ANON_LEN: u64 = 16 * PAGE_SIZE;

/// `r14 = translate(va in reg)`.
fn translate(a: &mut CodeAssembler, va: Arg) -> AsmResult {
    hcall(a, nr::TRANSLATE, &[va, Arg::Imm(0)])?;
    a.mov(r14, rax)
}

/// Check 10: zero page, copy-on-write, DONTNEED and refault.
pub fn lazy_zero(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::LAZY_ZERO)?;
    mmap(c.asm(), Arg::Imm(0), ANON_LEN, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    // Nothing is mapped until touched.
    translate(a, Arg::Reg(rbp))?;
    c.expect_eq(r14, (-i64::from(EFAULT)) as u64)?;
    // A read: zero, the shared zero page, around the page too.
    c.asm().mov(r14, qword_ptr(rbp + 0x10))?;
    c.expect_eq(r14, 0)?;
    let a = c.asm();
    translate(a, Arg::Reg(rbp))?;
    a.mov(r11, r14)?;
    a.lea(rdi, qword_ptr(rbp + 0x3000))?;
    translate(a, Arg::Keep)?;
    c.expect_eq_reg(r14, r11)?;
    // A write: a private copy, the neighbour still the zero page.
    let a = c.asm();
    a.mov(qword_ptr(rbp + 8), 0x5a)?;
    a.mov(r14, qword_ptr(rbp + 8))?;
    c.expect_eq(r14, 0x5a)?;
    let a = c.asm();
    translate(a, Arg::Reg(rbp))?;
    a.cmp(r14, r11)?;
    a.setne(r14b)?;
    a.movzx(r14, r14b)?;
    c.expect_eq(r14, 1)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x3008))?;
    c.expect_eq(r14, 0)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x10))?;
    c.expect_eq(r14, 0)?;
    // DONTNEED: the copy goes, the page refaults zero.
    let a = c.asm();
    hcall(a, nr::MADVISE, &[Arg::Reg(rbp), Arg::Imm(PAGE_SIZE), Arg::Imm(madv::DONTNEED)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().mov(r14, qword_ptr(rbp + 8))?;
    c.expect_eq(r14, 0)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(ANON_LEN)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}

/// Check 11: the lazy page buffer, 16 pages touched with one fault.
pub fn fault_around(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::FAULT_AROUND)?;
    let flags = map::SHARED | map::FIXED_NOREPLACE;
    mmap(c.asm(), Arg::Imm(AROUND_VA), PAGE_BUFFER_PAGES * PAGE_SIZE, prot::READ, flags, fd::PAGE_BUFFER_LAZY, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_eq(rbp, AROUND_VA)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
    a.mov(r11, rax)?;
    // Every page shows its own buffer page; no exits in between but the
    // one fault.
    for i in 0..PAGE_BUFFER_PAGES {
        c.asm().mov(r14, qword_ptr(rbp + (i * PAGE_SIZE) as i32))?;
        c.expect_eq(r14, page_pattern(i, 0))?;
    }
    let a = c.asm();
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
    a.sub(rax, r11)?;
    a.mov(r14, rax)?;
    // One fault exit, and this hypercall's own.
    c.expect_eq(r14, 2)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(PAGE_BUFFER_PAGES * PAGE_SIZE)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}

/// Check 12: mremap grow and move with the data following; DONTEXPAND.
pub fn remap(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::MREMAP)?;
    mmap(c.asm(), Arg::Imm(0), 2 * PAGE_SIZE, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    a.mov(qword_ptr(rbp), 0x1111)?;
    a.mov(qword_ptr(rbp + 0x1000), 0x2222)?;
    // Grow (in place or moved), the data follows, the tail reads zero.
    let grown = 8 * PAGE_SIZE;
    hcall(
        a,
        nr::MREMAP,
        &[Arg::Reg(rbp), Arg::Imm(2 * PAGE_SIZE), Arg::Imm(grown), Arg::Imm(mremap::MAYMOVE), Arg::Imm(0)],
    )?;
    a.mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip2 = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip2)?;
    a.mov(r14, qword_ptr(rbp))?;
    c.expect_eq(r14, 0x1111)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x1000))?;
    c.expect_eq(r14, 0x2222)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x7000))?;
    c.expect_eq(r14, 0)?;
    // A fixed move: the data follows, the old range faults.
    let a = c.asm();
    let both = mremap::MAYMOVE | mremap::FIXED;
    hcall(a, nr::MREMAP, &[Arg::Reg(rbp), Arg::Imm(grown), Arg::Imm(grown), Arg::Imm(both), Arg::Imm(MOVE_VA)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, MOVE_VA)?;
    let a = c.asm();
    a.mov(r11, MOVE_VA)?;
    a.mov(r14, qword_ptr(r11))?;
    c.expect_eq(r14, 0x1111)?;
    let a = c.asm();
    a.mov(r11, MOVE_VA)?;
    a.mov(r14, qword_ptr(r11 + 0x1000))?;
    c.expect_eq(r14, 0x2222)?;
    c.expect_fault(rbp, false, PF_USER_READ_NP)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Imm(MOVE_VA), Arg::Imm(grown)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    // A huge-page mapping (VM_DONTEXPAND) may not grow.
    let huge = 2 << 20;
    mmap(c.asm(), Arg::Imm(0), huge, prot::READ, map::SHARED, fd::HUGE, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    hcall(a, nr::MREMAP, &[Arg::Reg(rbp), Arg::Imm(huge), Arg::Imm(2 * huge), Arg::Imm(mremap::MAYMOVE), Arg::Imm(0)])?;
    c.expect_errno(EFAULT)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(huge)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip2)?;
    c.asm().nop()?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}
