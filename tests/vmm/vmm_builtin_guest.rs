//! Scenario: `vmm run` boots the built-in test guest, every check passes,
//! the report says so in text and JSON, and the exit code is 0.

use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

#[test]
fn builtin_guest_passes_every_check() {
    need_kvm!();
    let r = run_vmm(&["run", "--timeout", "60"]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("guest: hello from CPL 3"), "{}", r.stdout);
    assert!(!r.stdout.contains("[FAIL]"), "{}", r.stdout);
    for id in 0..=7 {
        assert!(r.stdout.contains(&format!("[PASS] {id:3} ")), "check {id} missing:\n{}", r.stdout);
    }
    let summary = r.stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("== ") && summary.contains("checks passed: PASS (exit code 0)"), "{summary}");
}

#[test]
fn json_report_lists_checks_and_exits() {
    need_kvm!();
    let r = run_vmm(&["run", "--json", "--timeout", "60"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["passed"], j["total"]);
    assert_eq!(j["exit_code"], 0);
    assert_eq!(j["outcome"]["kind"], "exit_port");
    assert_eq!(j["outcome"]["status"], 1);
    let checks = j["checks"].as_array().expect("checks");
    assert!(checks.len() >= 9, "{checks:?}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    // The trapped BAR check made MMIO exits; the guest's console went to
    // stderr, keeping stdout pure JSON.
    assert!(j["exits"][0]["mmio"].as_u64().unwrap_or(0) > 0);
    assert!(r.stderr.contains("hello from CPL 3"));
}

#[test]
fn config_file_sets_memory_vcpus_and_bars() {
    need_kvm!();
    let cfg = vmm_suite::kvm::temp_path("builtin.toml");
    std::fs::write(
        &cfg,
        "memory_mib = 96\nvcpus = 2\ntimeout_secs = 60\n\
         [[bar]]\nbase = 0xd0000000\nsize = 0x8000\n\
         [[bar]]\nbase = 0xd0010000\nsize = 0x4000\npassthrough = true\n",
    )
    .expect("write config");
    let r = run_vmm(&["run", "--json", "--config", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["exits"].as_array().map(Vec::len), Some(2));
    // --vcpus on the command line wins over the file.
    let r = run_vmm(&["run", "--json", "--config", cfg.to_str().expect("utf-8 path"), "--vcpus", "1"]);
    assert_eq!(r.json()["exits"].as_array().map(Vec::len), Some(1));
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn bad_configuration_is_refused_clearly() {
    // No KVM needed: validation happens first.
    let r = run_vmm(&["run", "--mem", "1M"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid configuration: memory must be"), "{}", r.stderr);
    let cfg = vmm_suite::kvm::temp_path("bad.toml");
    std::fs::write(&cfg, "memory_mib = 128\n[[bar]]\nbase = 0x1000\nsize = 0x1000\n").expect("write config");
    let r = run_vmm(&["run", "--config", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("overlaps guest RAM"), "{}", r.stderr);
    std::fs::write(&cfg, "memory = 1\n").expect("write config");
    let r = run_vmm(&["run", "--config", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown field"), "{}", r.stderr);
    let _ = std::fs::remove_file(cfg);
}
