//! Scenario: upstream kvm-unit-tests, unmodified, through `vmm kut`. Every
//! test QEMU 7.2 passes on this kind of host (`qemu-7.2-kvm-here.txt` in
//! the test data) passes with `vmm`, except `intel_iommu`, which skips
//! naming the QEMU device it needs; and `msr64` fails no check that QEMU
//! passes.
//!
//! The test data lives outside the repository
//! (`../shared/testguests/kvm-unit-tests`, or `$VMM_KUT_DIR`): without it
//! this test says so and passes.

use std::path::PathBuf;

use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// The tests QEMU passes here, and what `vmm` must report for each.
const MUST_PASS: &[&str] = &[
    "smptest",
    "smptest3",
    "vmexit_cpuid",
    "vmexit_mov_from_cr8",
    "vmexit_mov_to_cr8",
    "vmexit_inl_pmtimer",
    "vmexit_ipi",
    "vmexit_ipi_halt",
    "vmexit_ple_round_robin",
    "vmexit_tscdeadline",
    "vmexit_tscdeadline_immed",
    "vmexit_cr0_wp",
    "vmexit_cr4_pge",
    "idt_test",
    "realmode",
    "setjmp",
    "rmap_chain",
    "lam",
    "s3",
];
/// Tests QEMU passes that need something `vmm` does not have, and a word
/// the skip reason must contain.
const MAY_SKIP: &[(&str, &str)] = &[("intel_iommu", "q35")];
/// The checks QEMU 7.2 fails in `msr64` on this host (`-cpu
/// qemu64,vendor=GenuineIntel`, 1838 tests, 6 unexpected failures): KVM
/// lets the guest use these MSRs where the test expects #GP. `vmm` may
/// fail these and no others.
const MSR64_QEMU_FAILS: &[&str] = &[
    "FAIL: Expected #GP on RDMSR(SPEC_CTRL), got vector 0",
    "FAIL: Expected #GP on WRMSR(SPEC_CTRL, 0x0), got vector 0",
    "FAIL: Expected #GP on WRMSR(PRED_CMD, 0x0), got vector 0",
    "FAIL: Expected #GP on WRMSR(PRED_CMD, 0x1), got vector 0",
    "FAIL: Expected #GP on WRMSR(FLUSH_CMD, 0x0), got vector 0",
    "FAIL: Expected #GP on WRMSR(FLUSH_CMD, 0x1), got vector 0",
];

fn suite_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VMM_KUT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testguests/kvm-unit-tests"));
    dir.join("x86/unittests.cfg").is_file().then_some(dir)
}

#[test]
fn qemu_passes_pass_with_vmm() {
    need_kvm!();
    let Some(dir) = suite_dir() else {
        eprintln!("kut_suite: SKIPPED: no kvm-unit-tests at ../shared/testguests/kvm-unit-tests (or $VMM_KUT_DIR)");
        return;
    };
    let logs = std::env::temp_dir().join(format!("vmm-kut-logs-{}", std::process::id()));
    let mut args: Vec<String> =
        ["kut", dir.to_str().unwrap(), "-j", "2", "--max-timeout", "120", "--json", "--logs", logs.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    for name in MUST_PASS.iter().copied().chain(MAY_SKIP.iter().map(|(n, _)| *n)).chain(["msr64"]) {
        args.push(name.into());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_vmm(&argv);
    let v = r.json();
    let tests = v["tests"].as_array().expect("tests array");
    assert_eq!(tests.len(), MUST_PASS.len() + MAY_SKIP.len() + 1, "{}", r.stdout);
    let find = |name: &str| tests.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
    let mut wrong = Vec::new();
    for name in MUST_PASS {
        let t = find(name);
        if t["verdict"] != "PASS" {
            wrong.push(format!("{name}: {} ({})", t["verdict"], t["reason"]));
        }
    }
    for (name, word) in MAY_SKIP {
        let t = find(name);
        let ok = t["verdict"] == "PASS" || (t["verdict"] == "SKIP" && t["reason"].as_str().unwrap().contains(word));
        if !ok {
            wrong.push(format!("{name}: {} ({})", t["verdict"], t["reason"]));
        }
    }
    // msr64: it ran to its summary, and failed no check QEMU passes.
    let msr = find("msr64");
    assert!(msr["reason"].as_str().unwrap().contains("tests"), "msr64 did not finish: {msr}");
    let log = std::fs::read_to_string(logs.join("msr64.log")).expect("msr64 log");
    for l in log.lines().filter(|l| l.starts_with("FAIL:")) {
        if !MSR64_QEMU_FAILS.contains(&l.trim_end()) {
            wrong.push(format!("msr64: {l} (QEMU passes it)"));
        }
    }
    std::fs::remove_dir_all(&logs).ok();
    assert!(wrong.is_empty(), "not as QEMU: {wrong:#?}");
    // Exit status 1: msr64 fails (as under QEMU); nothing else does.
    let failed = tests.iter().filter(|t| t["verdict"] == "FAIL").count();
    assert_eq!(r.code, i32::from(failed > 0), "{failed} failed");
    assert!(failed <= 1);
    eprintln!("kut_suite: {} in {:.1} s", v["totals"], v["secs"].as_f64().unwrap_or(0.0));
}
