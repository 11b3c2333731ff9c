//! Checks of page-array and contiguous mappings: map-kernel-pages over the
//! VMM's scattered page buffer, and a huge-page remap with 2 MiB leaves.

use iced_x86::code_asm::*;

use super::super::params::{id, Data, Params};
use crate::guest::asm::{hcall, mmap, Arg, AsmResult, Check};
use crate::hosted::stub::abi::{fd, huge_pattern, map, nr, page_pattern, prot, PAGE_BUFFER_PAGES};
use crate::layout::PAGE_SIZE;

/// First buffer page the check maps (its `pgoff`).
const PGOFF: u64 = 3;
/// Pages the check maps.
const PAGES: u64 = 8;
const _: () = assert!(PGOFF + PAGES <= PAGE_BUFFER_PAGES);

/// The checksum (wrapping sum of its u64 words) of buffer page `page`.
pub fn page_sum(page: u64) -> u64 {
    (0..PAGE_SIZE / 8).fold(0u64, |s, w| s.wrapping_add(page_pattern(page, w)))
}

/// The expected checksums of the pages the check maps, as data.
pub fn page_sums_bytes() -> Vec<u8> {
    (PGOFF..PGOFF + PAGES).flat_map(|p| page_sum(p).to_le_bytes()).collect()
}

/// Check 1: `PAGES` pages of the buffer from `PGOFF`, mapped with
/// map-kernel-pages; every page's checksum must be its own.
pub fn kernel_pages(a: &mut CodeAssembler, _p: &Params, d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::KERNEL_PAGES)?;
    mmap(c.asm(), Arg::Imm(0), PAGES * PAGE_SIZE, prot::READ, map::SHARED, fd::PAGE_BUFFER, PGOFF * PAGE_SIZE)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    // for page in 0..PAGES: sum the words, compare with page_sums[page].
    let mut page_loop = a.create_label();
    let mut word_loop = a.create_label();
    a.mov(r14, rbp)?;
    a.xor(r9d, r9d)?;
    a.set_label(&mut page_loop)?;
    a.xor(edx, edx)?;
    a.xor(ecx, ecx)?;
    a.set_label(&mut word_loop)?;
    a.add(rdx, qword_ptr(r14 + rcx * 8))?;
    a.inc(ecx)?;
    a.cmp(ecx, (PAGE_SIZE / 8) as i32)?;
    a.jne(word_loop)?;
    a.lea(r11, ptr(d.page_sums))?;
    a.mov(rsi, qword_ptr(r11 + r9 * 8))?;
    c.expect_eq_reg(rdx, rsi)?;
    let a = c.asm();
    a.add(r14, PAGE_SIZE as i32)?;
    a.inc(r9)?;
    a.cmp(r9, PAGES as i32)?;
    a.jne(page_loop)?;
    // The mapping goes away cleanly.
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(PAGES * PAGE_SIZE)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}

/// Size of the huge mapping.
const HUGE_LEN: u64 = 4 << 20;
/// Distance between sampled words.
const SAMPLE: u64 = 0x1_0000;

/// Check 5: 4 MiB of the huge-page region: 2 MiB leaves, and every sampled
/// word is the pattern of the physical address it maps to.
pub fn huge(a: &mut CodeAssembler, _p: &Params, _d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::HUGE)?;
    mmap(c.asm(), Arg::Imm(0), HUGE_LEN, prot::READ | prot::WRITE, map::SHARED, fd::HUGE, 0)?;
    c.asm().mov(rbp, rax)?;
    c.expect_mapped(rbp)?;
    let a = c.asm();
    let mut skip = a.create_label();
    a.cmp(r13, 0)?;
    a.jne(skip)?;
    // Aligned to 2 MiB, 2 MiB leaves at both halves.
    a.mov(r14, rbp)?;
    a.and(r14, (2 << 20) - 1)?;
    c.expect_eq(r14, 0)?;
    for half in [0u64, 2 << 20] {
        let a = c.asm();
        a.lea(rdi, qword_ptr(rbp + half as i32))?;
        hcall(a, nr::TRANSLATE, &[Arg::Keep, Arg::Imm(1)])?;
        a.mov(r14, rax)?;
        c.expect_eq(r14, 2 << 20)?;
    }
    // r9 = physical base; words at va + k*SAMPLE hold huge_pattern(pa + k*SAMPLE).
    let a = c.asm();
    hcall(a, nr::TRANSLATE, &[Arg::Reg(rbp), Arg::Imm(0)])?;
    a.mov(r9, rax)?;
    let mut lp = a.create_label();
    a.xor(ecx, ecx)?;
    a.set_label(&mut lp)?;
    a.lea(rdx, qword_ptr(r9 + rcx))?;
    a.mov(rax, huge_pattern(0))?;
    a.xor(rdx, rax)?;
    a.mov(rsi, qword_ptr(rbp + rcx))?;
    c.expect_eq_reg(rsi, rdx)?;
    let a = c.asm();
    a.add(rcx, SAMPLE as i32)?;
    a.cmp(rcx, HUGE_LEN as i32)?;
    a.jne(lp)?;
    // Writes go through too.
    a.mov(qword_ptr(rbp + 0x10), r9)?;
    a.mov(r14, qword_ptr(rbp + 0x10))?;
    c.expect_eq_reg(r14, r9)?;
    let a = c.asm();
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbp), Arg::Imm(HUGE_LEN)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.asm().set_label(&mut skip)?;
    c.asm().nop()?;
    c.end()
}
