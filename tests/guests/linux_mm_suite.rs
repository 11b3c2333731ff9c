//! Scenario: Linux's own mm selftests as guest-mm's conformance suite
//! (issue 18). `vmm ltest` runs every program in
//! `../shared/testguests/linux-mm/bin` in its own `vmm run --mem 3072
//! --hugepages 160` (160 2 MiB pages, as `vm.nr_hugepages`)
//! and compares what each prints with what it printed on Linux
//! (`host-results-*.txt`), allowing only the differences listed with their
//! reasons in `tests/guests/linux/mm-expectations.toml`. Without the test
//! data the test says so and passes.

use std::path::{Path, PathBuf};

use vmm_suite::kvm::{run_vmm, temp_path};
use vmm_suite::need_kvm;

fn linux_mm() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testguests/linux-mm");
    if !dir.join("bin").is_dir() {
        eprintln!("SKIP: {} is absent", dir.display());
        return None;
    }
    Some(dir)
}

#[test]
fn linux_mm_selftests_print_what_they_print_on_linux() {
    need_kvm!();
    let Some(dir) = linux_mm() else { return };
    let s = |p: PathBuf| p.to_str().expect("utf-8 path").to_owned();
    let expect = s(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/linux/mm-expectations.toml"));
    let json = temp_path("mm-suite.json");
    let r = run_vmm(&[
        "ltest",
        &s(dir.join("bin")),
        "--host-results",
        &s(dir.join("host-results-musl.txt")),
        "--host-results",
        &s(dir.join("host-results-glibc.txt")),
        "--expect",
        &expect,
        "--json",
        &s(json.clone()),
        "--timeout",
        "300",
        "-j",
        "2",
        "--vmm-arg=--mem=3072",
        "--vmm-arg=--hugepages=160",
    ]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, 0, "programs differ from Linux beyond the expectations file:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" 0 not (0 timed out)"), "{}", r.stdout);
    // The report names every program with its totals.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let programs = report["programs"].as_array().expect("programs");
    assert!(programs.len() >= 20, "{report}");
    let _ = std::fs::remove_file(&json);
}

#[test]
fn on_fault_limit_passes_as_a_normal_user() {
    need_kvm!();
    let Some(dir) = linux_mm() else { return };
    // As on Linux, the test needs a user without CAP_IPC_LOCK.
    let p = dir.join("bin/on-fault-limit");
    let r = run_vmm(&["run", "--uid", "1000", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"), "{}", r.stdout);
    // As root it skips, as it does on Linux.
    let r = run_vmm(&["run", "--guest", p.to_str().expect("utf-8")]);
    assert!(r.stdout.contains("skip:1"), "{}", r.stdout);
}

/// Issue 19: LTP's mm programs (their library forks each test body into a
/// child, reports through a `MAP_SHARED` file in `/dev/shm`, and uses
/// `SIGALRM`/`SIGUSR1`), compared with what they printed on Linux, allowing
/// only the differences in `tests/guests/linux/ltp-expectations.toml`.
#[test]
fn ltp_mm_programs_print_what_they_print_on_linux() {
    need_kvm!();
    let Some(dir) = linux_mm() else { return };
    let ltp = dir.join("ltp");
    if !ltp.join("host-results-musl.txt").is_file() {
        eprintln!("SKIP: {} is absent", ltp.display());
        return;
    }
    let s = |p: PathBuf| p.to_str().expect("utf-8 path").to_owned();
    let expect = s(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/linux/ltp-expectations.toml"));
    let r = run_vmm(&[
        "ltest",
        &s(ltp.clone()),
        "--host-results",
        &s(ltp.join("host-results-musl.txt")),
        "--expect",
        &expect,
        "--timeout",
        "120",
        "-j",
        "2",
        "--vmm-arg=--mem=512",
    ]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, 0, "programs differ from Linux beyond the expectations file:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" 0 not (0 timed out)"), "{}", r.stdout);
}
