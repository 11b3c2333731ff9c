//! Scenario: with several vCPUs, a `munmap` on one vCPU leaves no usable
//! stale translation on another: vCPU 1 reads a page in a loop while
//! vCPU 0 unmaps it, and vCPU 1's first read after `munmap` returned
//! faults at that page (built-in guest check 8).
//!
//! On the software-assisted backend the memslot zap alone makes this pass;
//! that each layer of the shootdown is needed is shown by
//! `tests/vmm/vmm_tlb_layers.rs` on a simulated machine.

use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

#[test]
fn no_stale_translation_after_munmap_on_another_vcpu() {
    need_kvm!();
    for vcpus in ["2", "4"] {
        let r = run_vmm(&["run", "--json", "--timeout", "60", "--vcpus", vcpus]);
        assert_eq!(r.code, 0, "{vcpus} vCPUs:\n{}\n{}", r.stdout, r.stderr);
        let j = r.json();
        let check = j["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == 8))
            .unwrap_or_else(|| panic!("check 8 missing: {j}"))
            .clone();
        assert_eq!(check["passed"], true, "{check}");
        // vCPU 1 took part (it made hypercalls and faulted).
        assert!(j["exits"][1]["total"].as_u64().unwrap_or(0) >= 3, "{}", j["exits"]);
    }
}
