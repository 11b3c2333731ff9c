//! Scenario: `vmm run --guest FILE` boots a user's freestanding ELF (here
//! the example guest, assembled from source by `vmm example-elf`): it talks
//! to the serial port directly, makes hypercalls, and its exit-port value
//! becomes the process status as with QEMU's `isa-debug-exit`.

use vmm_suite::kvm::{run_vmm, temp_path};
use vmm_suite::need_kvm;

#[test]
fn example_elf_runs_and_sets_the_exit_status() {
    need_kvm!();
    let elf = temp_path("example.elf");
    let w = run_vmm(&["example-elf", elf.to_str().expect("utf-8 path")]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let r = run_vmm(&["run", "--timeout", "20", "--guest", elf.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&elf);
    // (0x10 << 1) | 1
    assert_eq!(r.code, 0x21, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("example guest: hello from a user ELF"), "{}", r.stdout);
    assert!(r.stdout.contains("[PASS] 100 guest check 100"), "{}", r.stdout);
}

#[test]
fn malformed_elf_is_refused() {
    // No KVM needed: the file is read before the VM is created.
    let bad = temp_path("bad.elf");
    std::fs::write(&bad, b"\x7fELF\x01not really").expect("write");
    let r = run_vmm(&["run", "--guest", bad.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(r.code, 1);
    // No ABI note: the Linux kind is asked, and says why it cannot run it.
    assert!(r.stderr.contains("a 32-bit ELF: only x86-64 programs run"), "{}", r.stderr);
    // Forced to the VMM's own ABI, that kind says the same in its words.
    std::fs::write(&bad, b"\x7fELF\x01not really").expect("write");
    let r = run_vmm(&["run", "--abi", "vmm", "--guest", bad.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a freestanding x86-64 ELF executable"), "{}", r.stderr);
}
