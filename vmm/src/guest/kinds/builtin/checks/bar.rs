//! Checks of BAR windows: trapped (every access exits to the device
//! model), passed through (a host mapping, no exits), and a
//! `simple_ioremap` of a register region with a sub-page start.

use devices::bar::registers::{
    check_value, echo_value, encode_access, BAR_ID, CHECK, DATA, DOORBELL, DOORBELL_COUNT, ID, LAST_ACCESS, SCRATCH,
};
use iced_x86::code_asm::*;

use super::super::params::{id, Data, Params};
use crate::guest::asm::{hcall, mmap, Arg, AsmResult, Check};
use crate::hosted::stub::abi::{fd, map, nr, prot, window_pattern};
use crate::layout::PAGE_SIZE;

/// Exit-count kinds of the `exit_count` hypercall.
const EXITS_MMIO: u64 = 1;

fn skip_if_failed(c: &mut Check<'_>) -> AsmResult<CodeLabel> {
    let a = c.asm();
    let skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    Ok(skip)
}

fn end_with_munmap(mut c: Check<'_>, len: u64, mut skip: CodeLabel) -> AsmResult {
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(len)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}

/// Check 2: the trapped BAR mapped with an I/O remap; accesses of 1, 2, 4
/// and 8 bytes reach the device at the right offsets, a computed register
/// answers, and the doorbell rings through the ioeventfd without exits.
pub fn trapped(a: &mut CodeAssembler, p: &Params, _d: &Data) -> AsmResult {
    let Some((index, size)) = p.trapped_bar else { return Ok(()) };
    let mut c = Check::begin(a, id::TRAPPED_BAR)?;
    mmap(c.asm(), Arg::Imm(0), size, prot::READ | prot::WRITE, map::SHARED, fd::BAR0 + index, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let skip = skip_if_failed(&mut c)?;
    let at = |off: u64| rbp + off as i32;

    c.asm().mov(r14, qword_ptr(at(ID)))?;
    c.expect_eq(r14, BAR_ID)?;
    let v: u64 = 0x0123_4567_89ab_cdef;
    let a = c.asm();
    a.mov(rax, v)?;
    a.mov(qword_ptr(at(DATA)), rax)?;
    a.mov(r14, qword_ptr(at(CHECK)))?;
    c.expect_eq(r14, check_value(v))?;
    c.asm().mov(r14, qword_ptr(at(LAST_ACCESS)))?;
    c.expect_eq(r14, encode_access(CHECK, 8, false))?;
    // 2-byte write into scratch, read back.
    let a = c.asm();
    a.mov(word_ptr(at(SCRATCH + 0x12)), 0xbeef)?;
    a.mov(r14, qword_ptr(at(LAST_ACCESS)))?;
    c.expect_eq(r14, encode_access(SCRATCH + 0x12, 2, true))?;
    c.asm().movzx(r14d, word_ptr(at(SCRATCH + 0x12)))?;
    c.expect_eq(r14, 0xbeef)?;
    // 4-byte write to the high half of DATA changes CHECK accordingly.
    let a = c.asm();
    a.mov(dword_ptr(at(DATA + 4)), 0xaabb_ccddu32 as i32)?;
    a.mov(r14, qword_ptr(at(LAST_ACCESS)))?;
    c.expect_eq(r14, encode_access(DATA + 4, 4, true))?;
    c.asm().mov(r14, qword_ptr(at(CHECK)))?;
    c.expect_eq(r14, check_value(0xaabb_ccdd_89ab_cdef))?;
    // 1-byte read.
    c.asm().movzx(r14d, byte_ptr(at(DATA + 5)))?;
    c.expect_eq(r14, 0xcc)?;
    c.asm().mov(r14, qword_ptr(at(LAST_ACCESS)))?;
    c.expect_eq(r14, encode_access(DATA + 5, 1, false))?;
    // Doorbell: three rings, no MMIO exits, the device counts three.
    let a = c.asm();
    a.mov(r9, qword_ptr(at(DOORBELL_COUNT)))?;
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(EXITS_MMIO)])?;
    a.mov(r11, rax)?;
    for _ in 0..3 {
        a.mov(dword_ptr(at(DOORBELL)), 1)?;
    }
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(EXITS_MMIO)])?;
    a.sub(rax, r11)?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    let a = c.asm();
    a.mov(r14, qword_ptr(at(DOORBELL_COUNT)))?;
    a.sub(r14, r9)?;
    c.expect_eq(r14, 3)?;
    // The second page answers with its own offset.
    if size > PAGE_SIZE {
        c.asm().mov(r14, qword_ptr(at(PAGE_SIZE + 8)))?;
        c.expect_eq(r14, echo_value(PAGE_SIZE + 8))?;
    }
    end_with_munmap(c, size, skip)
}

/// Iterations of the no-exit access loop.
const LOOP: u32 = 4096;

/// Check 3: the passed-through BAR: the host's pattern is visible, guest
/// writes land (the VMM checks the host side after the run), and
/// thousands of accesses cause no MMIO exit.
pub fn passthrough(a: &mut CodeAssembler, p: &Params, _d: &Data) -> AsmResult {
    let Some((index, size)) = p.passthrough_bar else { return Ok(()) };
    let mut c = Check::begin(a, id::PASSTHROUGH_BAR)?;
    mmap(c.asm(), Arg::Imm(0), size, prot::READ | prot::WRITE, map::SHARED, fd::BAR0 + index, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let skip = skip_if_failed(&mut c)?;
    let a = c.asm();
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(EXITS_MMIO)])?;
    a.mov(r11, rax)?;
    // Per page: word 0 holds the host's pattern; write the complement of
    // the pattern at +0x800 and read it back.
    let mut lp = c.asm().create_label();
    let a = c.asm();
    a.xor(ecx, ecx)?;
    a.set_label(&mut lp)?;
    a.mov(rdx, window_pattern(0))?;
    a.xor(rdx, rcx)?;
    a.mov(rsi, qword_ptr(rbp + rcx))?;
    c.expect_eq_reg(rsi, rdx)?;
    let a = c.asm();
    a.lea(rdx, qword_ptr(rcx + 0x800))?;
    a.mov(rax, window_pattern(0))?;
    a.xor(rdx, rax)?;
    a.not(rdx)?;
    a.mov(qword_ptr(rbp + rcx + 0x800), rdx)?;
    a.mov(rsi, qword_ptr(rbp + rcx + 0x800))?;
    c.expect_eq_reg(rsi, rdx)?;
    let a = c.asm();
    a.add(rcx, PAGE_SIZE as i32)?;
    a.cmp(rcx, size as i32)?;
    a.jne(lp)?;
    // Many more accesses.
    let mut lp2 = a.create_label();
    a.mov(ecx, LOOP)?;
    a.set_label(&mut lp2)?;
    a.mov(qword_ptr(rbp + 0x10), rcx)?;
    a.add(rax, qword_ptr(rbp + 0x10))?;
    a.dec(ecx)?;
    a.jnz(lp2)?;
    hcall(a, nr::EXIT_COUNT, &[Arg::Imm(EXITS_MMIO)])?;
    a.sub(rax, r11)?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    end_with_munmap(c, size, skip)
}

/// Check 4: the trapped BAR's register region (starting 0x100 into the
/// window, not page aligned) through `simple_ioremap`: `pgoff` 0 maps the
/// window's first page (the start is rounded down), `pgoff` 1 its second;
/// a `pgoff` or length past the region is `EINVAL`.
pub fn simple_ioremap(a: &mut CodeAssembler, p: &Params, _d: &Data) -> AsmResult {
    let Some((index, _)) = p.trapped_bar else { return Ok(()) };
    let region = fd::BAR_REGION0 + index;
    let mut c = Check::begin(a, id::SIMPLE_IOREMAP)?;
    // pgoff 1: the second page of the window.
    mmap(c.asm(), Arg::Imm(0), PAGE_SIZE, prot::READ, map::SHARED, region, PAGE_SIZE)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let skip = skip_if_failed(&mut c)?;
    c.asm().mov(r14, qword_ptr(rbp + 0x18))?;
    c.expect_eq(r14, echo_value(PAGE_SIZE + 0x18))?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(PAGE_SIZE)])?;
    // pgoff 0: the first page, registers included.
    mmap(a, Arg::Imm(0), PAGE_SIZE, prot::READ, map::SHARED, region, 0)?;
    a.mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    c.asm().mov(r14, qword_ptr(rbp + ID as i32))?;
    c.expect_eq(r14, BAR_ID)?;
    // The region is 4 pages (0x100 + 0x3f00 bytes): pgoff 4 is past it,
    // and 4 pages from pgoff 1 do not fit.
    mmap(c.asm(), Arg::Imm(0), PAGE_SIZE, prot::READ, map::SHARED, region, 5 * PAGE_SIZE)?;
    c.expect_errno(guest_mm::errno::EINVAL)?;
    mmap(c.asm(), Arg::Imm(0), 4 * PAGE_SIZE, prot::READ, map::SHARED, region, PAGE_SIZE)?;
    c.expect_errno(guest_mm::errno::EINVAL)?;
    end_with_munmap(c, PAGE_SIZE, skip)
}
