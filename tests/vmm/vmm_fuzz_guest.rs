//! Scenario: the in-guest fuzzer (`vmm fuzz-guest`) on 1 and 2 vCPUs, a
//! short run each (the long runs and their figures are in
//! docs/reliability.md): every hypercall result well formed, every probe
//! through the CPU agreeing with the VMM's tables, and the VMM's
//! end-of-run invariant check clean. A run is reproducible from its seed.
//! And `--check-invariants` catches a page-table entry planted behind the
//! VMM's back, which the guest itself never notices.

use vm_memory::{Bytes, GuestAddress};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// Calls per CI run: a few seconds each on the development backend.
const CALLS: &str = "20000";

fn fuzz(seed: &str, vcpus: &str, calls: &str) -> serde_json::Value {
    let r = run_vmm(&["fuzz-guest", "--seed", seed, "--calls", calls, "--vcpus", vcpus, "--timeout", "300", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&format!("seed {seed}")), "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["passed"], j["total"], "{j}");
    let inv = &j["invariants"];
    assert_eq!(inv["violations"].as_array().map(Vec::len), Some(0), "{inv}");
    j
}

/// The value a check reported (its `detail` is "value 0x..").
fn value(j: &serde_json::Value, id: u64) -> u64 {
    let c = j["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).expect("check reported");
    let d = c["detail"].as_str().expect("detail");
    let hex = d.trim_start_matches("value 0x").split(|ch: char| !ch.is_ascii_hexdigit()).next().expect("value");
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{d}: {e}"))
}

#[test]
fn one_vcpu() {
    need_kvm!();
    let j = fuzz("0xc1", "1", CALLS);
    assert!(value(&j, vmm::guest::kinds::fuzz::program::id::CALLS) >= 20_000);
    // The probes both succeeded and faulted.
    let (probes, faulted) = (value(&j, 0x103), value(&j, 0x104));
    assert!(faulted > 0 && faulted < probes, "{probes} probes, {faulted} faulted");
}

#[test]
fn two_vcpus() {
    need_kvm!();
    let j = fuzz("0xc2", "2", CALLS);
    // Summed over both vCPUs (each made at least its half).
    assert!(value(&j, vmm::guest::kinds::fuzz::program::id::CALLS) >= 20_000, "{j}");
    assert!(value(&j, 0x104) > 0, "{j}");
}

#[test]
fn same_seed_same_run() {
    need_kvm!();
    let a = fuzz("0x5eed", "1", "3000");
    let b = fuzz("0x5eed", "1", "3000");
    let c = fuzz("0x5eee", "1", "3000");
    assert_eq!(a["invariants"], b["invariants"]);
    assert_eq!((value(&a, 0x103), value(&a, 0x104)), (value(&b, 0x103), value(&b, 0x104)));
    assert_ne!((&a["invariants"], value(&a, 0x104)), (&c["invariants"], value(&c, 0x104)));
}

#[test]
fn bad_fuzz_arguments_are_refused() {
    need_kvm!();
    let r = run_vmm(&["fuzz-guest", "--vcpus", "17", "--calls", "10"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("at most 16 vCPUs"), "{}", r.stderr);
    let r = run_vmm(&["fuzz-guest", "--seed", "0xzz"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn builtin_guest_passes_the_invariant_check() {
    need_kvm!();
    for vcpus in ["1", "2"] {
        let r = run_vmm(&["run", "--vcpus", vcpus, "--check-invariants", "--json"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let inv = &r.json()["invariants"];
        assert_eq!(inv["violations"].as_array().map(Vec::len), Some(0), "{inv}");
        assert!(inv["tables"].as_u64().is_some_and(|t| t >= 5), "{inv}");
    }
}

/// Plants a 4 KiB leaf at `va` (whose level-1 table exists) straight
/// into guest memory, walking the tables from the root like the CPU.
fn plant_leaf(mem: &vmm::memory::GuestMem, va: u64, raw: u64) {
    let mut table = vmm::layout::TABLES_PA; // the root is the first table page
    for level in (2..=4).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        let e: u64 = mem.read_obj(GuestAddress(table + idx * 8)).expect("entry");
        assert_eq!(e & 0x81, 1, "level {level}: no table for {va:#x}");
        table = e & 0x000f_ffff_ffff_f000;
    }
    mem.write_obj(raw, GuestAddress(table + ((va >> 12) & 511) * 8)).expect("write entry");
}

#[test]
fn check_invariants_catches_a_planted_entry() {
    need_kvm!();
    use vmm::run::runner::{run_with, ConsoleSink, RunOptions};
    // Last page of the built-in guest's code table: no VMA there.
    let stray = vmm::layout::BUILTIN_CODE_VA + 0x1f_f000;
    let run = |check: bool| {
        let mut o =
            RunOptions::new(ConsoleSink::Writer(vmm::hosted::hypercall::ConsoleOut::new(Box::new(std::io::sink()))));
        o.stdin = false;
        o.check_invariants = check;
        o.before_start = Some(Box::new(move |mem| plant_leaf(mem, stray, vmm::layout::FREE_PA | 0x7)));
        // In this process, without seccomp: a filter is permanent for its
        // thread and this test process runs others; `before_start`
        // plants a page-table entry, a hook only a library caller has.
        run_with(&vmm::VmConfig::default(), o).expect("run")
    };
    // The guest never looks there: without the check the run passes.
    assert_eq!(run(false).exit_code, 0);
    let r = run(true);
    assert_eq!(r.exit_code, vmm::run::report::EXIT_CHECK_FAILED, "{}", r.to_text());
    let v = &r.invariants.as_ref().expect("invariants").violations;
    assert_eq!(v, &[format!("a 0x1000-byte leaf at {stray:#x} lies outside every VMA")], "{}", r.to_text());
    assert!(r.to_text().contains("[FAIL]   - VMM invariants after the run"), "{}", r.to_text());
}

/// The fuzzer's probe oracle fails when the tables hold what the VMM
/// would never write: 512 supervisor-only leaves planted in vCPU 0's
/// arena (its first 2 MiB, behind a level-1 table of our own). `translate`
/// finds them, the CPU refuses user reads of them: "a read fault on a
/// present page", reported by the guest. (The fuzzer's own munmaps and
/// fixed mmaps clear the planted leaves as the run goes on, so the
/// end-of-run audit may find nothing left.)
#[test]
fn probe_oracle_catches_supervisor_only_leaves() {
    need_kvm!();
    use vmm::guest::kinds::fuzz::program::ARENA_BASE;
    use vmm::run::runner::{run_with, ConsoleSink, RunOptions};
    let mem_size = vmm::config::DEFAULT_MEM;
    let table_pa = mem_size - 0x10_0000;
    let leaves_pa = vmm::layout::FREE_PA + 0x40_0000;
    let mut o =
        RunOptions::new(ConsoleSink::Writer(vmm::hosted::hypercall::ConsoleOut::new(Box::new(std::io::sink()))));
    o.stdin = false;
    o.check_invariants = true;
    o.before_start = Some(Box::new(move |mem| {
        // Root -> level 3 (exists: the program lives in the first GiB).
        let mut table = vmm::layout::TABLES_PA;
        for level in [4u64, 3] {
            let idx = (ARENA_BASE >> (12 + 9 * (level - 1))) & 511;
            let e: u64 = mem.read_obj(GuestAddress(table + idx * 8)).expect("entry");
            assert_eq!(e & 0x81, 1, "level {level}");
            table = e & 0x000f_ffff_ffff_f000;
        }
        for i in 0..512u64 {
            // Present, writable, not user.
            mem.write_obj((leaves_pa + i * 0x1000) | 0x3, GuestAddress(table_pa + i * 8)).expect("leaf");
        }
        let l2 = (ARENA_BASE >> 21) & 511;
        mem.write_obj(table_pa | 0x7, GuestAddress(table + l2 * 8)).expect("link");
    }));
    let mut cfg = vmm::VmConfig::default();
    vmm::guest::kinds::fuzz::configure(&mut cfg, 0xbad, 20_000);
    // In this process, without seccomp: a filter is permanent for its
    // thread and this test process runs others; `before_start` plants
    // supervisor-only leaves, a hook only a library caller has.
    let r = run_with(&cfg, o).expect("run");
    assert_eq!(r.exit_code, vmm::run::report::EXIT_CHECK_FAILED, "{}", r.to_text());
    let probes =
        r.checks.iter().find(|c| c.id == Some(vmm::guest::kinds::fuzz::program::id::PROBES)).expect("probe check");
    assert!(!probes.passed, "{}", r.to_text());
    // The other guest checks still pass: only the probes saw it.
    let results =
        r.checks.iter().find(|c| c.id == Some(vmm::guest::kinds::fuzz::program::id::RESULTS)).expect("results check");
    assert!(results.passed, "{}", r.to_text());
}
