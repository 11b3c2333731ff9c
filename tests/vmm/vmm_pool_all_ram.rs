//! Scenario: the kernel page pool takes all free guest RAM. A guest with
//! 512 MiB maps 64 MiB of lazy anonymous memory (eight times the fixed
//! 8 MiB pool region), writes every page and reads every page back. With
//! less RAM than it touches, the run ends as the write fault that found
//! the pool empty, past what the fixed region alone would have held. The
//! guest-RAM provider maps its window of free RAM but not the RAM the pool
//! took (`EPERM`).

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, mmap, Arg};
use vmm::hosted::stub::abi::{fd, map, nr, prot};
use vmm::layout::{FREE_PA, POOL_RAM_PA, POOL_SIZE};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

const BASE: u64 = 0x7_8000_0000;
const LEN: u64 = 64 << 20;
const PAGES: u64 = LEN / 0x1000;
const MAGIC: i32 = 0x5a5a_1234;

/// A guest that maps `LEN` lazily, writes a pattern into every page, then
/// checks every page; exit status 0 when all is well.
fn guest(name: &str) -> std::path::PathBuf {
    write_guest(name, |a| {
        let mut bad_map = a.create_label();
        let mut bad_value = a.create_label();
        let mut not_zero = a.create_label();
        let mut bad_window = a.create_label();
        let mut pool_mapped = a.create_label();
        let mut write = a.create_label();
        let mut check = a.create_label();
        a.mov(rbp, BASE)?;
        let flags = map::PRIVATE | map::ANONYMOUS | map::FIXED_NOREPLACE;
        mmap(a, Arg::Reg(rbp), LEN, prot::READ | prot::WRITE, flags, 0, 0)?;
        a.cmp(rax, rbp)?;
        a.jne(bad_map)?;
        // Page i: word 0 = i ^ MAGIC, last word = !i, the middle untouched.
        a.xor(r14d, r14d)?;
        a.set_label(&mut write)?;
        a.mov(r11, r14)?;
        a.shl(r11, 12)?;
        a.add(r11, rbp)?;
        a.mov(rax, r14)?;
        a.xor(rax, MAGIC)?;
        a.mov(qword_ptr(r11), rax)?;
        a.mov(rax, r14)?;
        a.not(rax)?;
        a.mov(qword_ptr(r11 + 0xff8), rax)?;
        a.inc(r14)?;
        a.cmp(r14, PAGES as i32)?;
        a.jne(write)?;
        a.xor(r14d, r14d)?;
        a.set_label(&mut check)?;
        a.mov(r11, r14)?;
        a.shl(r11, 12)?;
        a.add(r11, rbp)?;
        a.mov(rax, r14)?;
        a.xor(rax, MAGIC)?;
        a.cmp(qword_ptr(r11), rax)?;
        a.jne(bad_value)?;
        a.mov(rax, r14)?;
        a.not(rax)?;
        a.cmp(qword_ptr(r11 + 0xff8), rax)?;
        a.jne(bad_value)?;
        a.cmp(qword_ptr(r11 + 0x800), 0)?;
        a.jne(not_zero)?;
        a.inc(r14)?;
        a.cmp(r14, PAGES as i32)?;
        a.jne(check)?;
        // The guest-RAM window maps; the pool's RAM does not (EPERM).
        let shared = map::SHARED;
        mmap(a, Arg::Imm(0), 0x1000, prot::READ, shared, fd::GUEST_RAM, FREE_PA)?;
        a.mov(rcx, -4096i64)?;
        a.cmp(rax, rcx)?;
        a.jae(bad_window)?;
        mmap(a, Arg::Imm(0), 0x1000, prot::READ, shared, fd::GUEST_RAM, POOL_RAM_PA)?;
        a.cmp(rax, -1)?;
        a.jne(pool_mapped)?;
        hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
        // 3 mmap failed, 5 a page lost its pattern, 6 a fresh page was not
        // zero, 7 the guest-RAM window did not map, 8 pool RAM did map.
        for (label, status) in
            [(&mut bad_map, 3), (&mut bad_value, 5), (&mut not_zero, 6), (&mut bad_window, 7), (&mut pool_mapped, 8)]
        {
            a.set_label(label)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(status)])?;
        }
        a.ud2()
    })
}

#[test]
fn a_guest_touches_far_more_lazy_memory_than_the_fixed_pool_holds() {
    need_kvm!();
    const { assert!(LEN >= 8 * POOL_SIZE, "the scenario must outgrow the fixed pool region") };
    let elf = guest("pool-all-ram");
    let r = run_vmm(&["run", "--json", "--mem", "512M", "--timeout", "120", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    let j = r.json();
    assert_eq!(j["outcome"]["kind"], "exited", "{j}\n{}", r.stderr);
    assert_eq!(j["outcome"]["status"], 0, "{j}\n{}", r.stderr);
}

#[test]
fn running_out_of_guest_ram_ends_the_run_as_the_fault_that_found_it_empty() {
    need_kvm!();
    // 80 MiB of RAM: the pool is its 8 MiB region and the 16 MiB of RAM
    // above the guest-RAM window, less the pages the VMM took at start.
    let elf = guest("pool-exhausted");
    let r = run_vmm(&["run", "--json", "--mem", "80M", "--timeout", "120", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    let j = r.json();
    assert_eq!(j["outcome"]["kind"], "fault", "{j}\n{}", r.stderr);
    let addr = j["outcome"]["report"]["cr2"].as_u64().expect("cr2");
    // Past what 8 MiB could have held, within what 24 MiB can.
    assert!((BASE + (16 << 20)..BASE + (24 << 20)).contains(&addr), "fault at {addr:#x}: {j}");
    // A user-mode write to an absent page.
    assert_eq!(j["outcome"]["report"]["error_code"], 6, "{j}");
}
