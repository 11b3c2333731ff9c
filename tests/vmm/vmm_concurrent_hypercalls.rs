//! Scenario: every vCPU maps, touches and unmaps pages in a loop at the
//! same time. Hypercalls serialize on the address space, every munmap
//! shoots down the others while they are themselves in hypercalls, and the
//! run still completes with every vCPU exiting normally.

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, mmap, Arg};
use vmm::hosted::stub::abi::{map, nr, prot};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

const ROUNDS: u32 = 100;

#[test]
fn all_vcpus_map_and_unmap_concurrently() {
    need_kvm!();
    let elf = write_guest("concurrent", |a| {
        let mut lp = a.create_label();
        let mut bad = a.create_label();
        let mut bad_zero = a.create_label();
        let mut bad_value = a.create_label();
        let mut bad_unmap = a.create_label();
        a.mov(r12, rdi)?; // vCPU index
        a.mov(r13d, ROUNDS)?;
        a.set_label(&mut lp)?;
        mmap(a, Arg::Imm(0), 0x2000, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
        a.mov(rbx, rax)?;
        a.cmp(rbx, -4096)?;
        a.jae(bad)?;
        // A fresh zero page, then our own value.
        a.cmp(qword_ptr(rbx + 0x1000), 0)?;
        a.jne(bad_zero)?;
        a.mov(qword_ptr(rbx + 0x1000), r12)?;
        a.cmp(qword_ptr(rbx + 0x1000), r12)?;
        a.jne(bad_value)?;
        hcall(a, nr::MUNMAP, &[Arg::Reg(rbx), Arg::Imm(0x2000)])?;
        a.test(rax, rax)?;
        a.jnz(bad_unmap)?;
        a.dec(r13d)?;
        a.jnz(lp)?;
        hcall(a, nr::EXIT, &[Arg::Imm(0)])?;
        a.ud2()?;
        // Exit status says what went wrong: 3 mmap failed, 4 a fresh page
        // was not zero, 5 a value did not read back, 6 munmap failed.
        for (label, status) in [(&mut bad, 3), (&mut bad_zero, 4), (&mut bad_value, 5), (&mut bad_unmap, 6)] {
            a.set_label(label)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(status)])?;
        }
        a.ud2()
    });
    let r = run_vmm(&["run", "--json", "--vcpus", "4", "--timeout", "120", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["outcome"]["kind"], "exited", "{j}");
    assert_eq!(j["outcome"]["status"], 0, "{j}");
    for (i, e) in j["exits"].as_array().expect("exits").iter().enumerate() {
        // mmap + munmap per round, plus NMI acknowledgements.
        assert!(e["total"].as_u64().unwrap_or(0) >= 2 * u64::from(ROUNDS), "vCPU {i}: {e}");
    }
}
