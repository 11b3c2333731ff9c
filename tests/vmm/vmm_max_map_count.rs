//! Scenario: a guest's mapping storm stops with `ENOMEM` at the VMA limit
//! set with `vmm run --max-map-count N`, and after a `munmap` the guest
//! can map again (exactly once). The guest counts its successful one-page
//! mappings; two runs with different limits must differ by exactly the
//! difference of the limits (the VMM's own VMAs, the image and stacks, are
//! the same in both).

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, Arg};
use vmm::hosted::stub::abi::{map, nr, prot};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

/// Maps one anonymous page after another until an error; reports, as
/// checks 1 to 5: how many succeeded, the errno, what a munmap of the last
/// one returned, what the next mmap returned, and what one more returned.
fn storm(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let one_page = |a: &mut CodeAssembler| {
        hcall(
            a,
            nr::MMAP,
            &[
                Arg::Imm(0),
                Arg::Imm(4096),
                Arg::Imm(prot::READ | prot::WRITE),
                Arg::Imm(map::PRIVATE | map::ANONYMOUS),
                Arg::Imm(0),
                Arg::Imm(0),
            ],
        )
    };
    let mut again = a.create_label();
    let mut done = a.create_label();
    a.xor(r12d, r12d)?;
    a.set_label(&mut again)?;
    one_page(a)?;
    a.cmp(rax, -4095)?;
    a.jae(done)?;
    a.mov(r14, rax)?;
    a.inc(r12)?;
    a.cmp(r12, 100_000)?;
    a.jb(again)?;
    a.set_label(&mut done)?;
    a.mov(rbx, rax)?;
    a.neg(rbx)?;
    hcall(a, nr::MUNMAP, &[Arg::Reg(r14), Arg::Imm(4096)])?;
    a.mov(rbp, rax)?;
    one_page(a)?;
    a.mov(r13, rax)?;
    one_page(a)?;
    a.mov(r15, rax)?;
    for (id, reg) in [(1, r12), (2, rbx), (3, rbp), (4, r13), (5, r15)] {
        hcall(a, nr::REPORT, &[Arg::Imm(id), Arg::Imm(1), Arg::Reg(reg), Arg::Imm(0), Arg::Imm(0)])?;
    }
    hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
    a.ud2()
}

/// Runs the storm with `limit`; returns the five values it reported.
fn run_with_limit(elf: &str, limit: u32) -> Vec<u64> {
    let limit = limit.to_string();
    let r = run_vmm(&["run", "--json", "--timeout", "60", "--max-map-count", &limit, "--guest", elf]);
    assert_eq!(r.code, 0, "limit {limit}:\n{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    (1..=5)
        .map(|id| {
            let c = j["checks"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["id"] == id))
                .unwrap_or_else(|| panic!("limit {limit}: check {id} missing: {j}"));
            let detail = c["detail"].as_str().unwrap_or_default();
            let hex = detail.strip_prefix("value 0x").unwrap_or_else(|| panic!("limit {limit}: {c}"));
            u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("limit {limit}: {c}: {e}"))
        })
        .collect()
}

#[test]
fn a_mapping_storm_stops_at_the_limit_and_recovers() {
    need_kvm!();
    let elf = write_guest("max-map-count", storm);
    let path = elf.to_str().expect("utf-8 path").to_owned();
    let (small, large) = (64u32, 96u32);
    let a = run_with_limit(&path, small);
    let b = run_with_limit(&path, large);
    let _ = std::fs::remove_file(&elf);
    let enomem = u64::from(guest_mm::errno::ENOMEM.unsigned_abs());
    for (limit, v) in [(small, &a), (large, &b)] {
        let [mapped, errno, unmapped, remapped, once_more] = v[..] else { panic!("{v:?}") };
        assert_eq!(errno, enomem, "limit {limit}: the storm's error");
        assert!(mapped > 0 && mapped < u64::from(limit), "limit {limit}: {mapped} mapped");
        assert_eq!(unmapped, 0, "limit {limit}: munmap");
        assert!(remapped > 0 && remapped < 1 << 47, "limit {limit}: mmap after munmap returned {remapped:#x}");
        assert_eq!(once_more.wrapping_neg(), enomem, "limit {limit}: one more mmap returned {once_more:#x}");
    }
    assert_eq!(b[0] - a[0], u64::from(large - small), "the limit counts every VMA");
}
