//! Scenario: a guest that spins forever is stopped by the watchdog with a
//! clear message and exit code 124.

use std::time::{Duration, Instant};

use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

#[test]
fn spinning_guest_is_stopped() {
    need_kvm!();
    let elf = write_guest("spin", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.pause()?;
        a.jmp(l)
    });
    let start = Instant::now();
    let r = run_vmm(&["run", "--timeout", "2", "--guest", elf.to_str().expect("utf-8 path")]);
    let took = start.elapsed();
    let _ = std::fs::remove_file(&elf);
    assert_eq!(r.code, 124, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("watchdog: the guest did not finish within 2 s and was stopped"), "{}", r.stdout);
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn spinning_vcpus_are_all_stopped() {
    need_kvm!();
    // Every vCPU spins in user mode; all must be kicked out of KVM_RUN.
    let elf = write_guest("spin4", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.jmp(l)
    });
    let r = run_vmm(&["run", "--json", "--vcpus", "4", "--timeout", "1", "--guest", elf.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&elf);
    assert_eq!(r.code, 124, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["outcome"]["kind"], "timeout");
}
