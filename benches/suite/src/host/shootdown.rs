//! The VMM's own TLB shootdown, for item 3's munmap "with shootdown"
//! figure: the [`KvmFlusher`] a hypercall calls after a munmap, on a real
//! KVM VM with its zap slot and one vCPU slot (the caller's, as in a
//! one-vCPU guest). What it costs the caller is what is timed: KVM
//! dropping its shadow translations (creating and deleting the zap
//! slot, two `KVM_SET_USER_MEMORY_REGION`s) and the request bookkeeping.
//! The caller's own `invlpg` NMI runs at its next guest entry, after the
//! lock is released, in a hypercall too, so it is in neither figure; with
//! more vCPUs the caller also waits for their acknowledgements (kicks,
//! NMIs), which this does not include.

use std::sync::Arc;

use guest_mm::FlushSet;

use crate::error::BenchError;
use vmm::hosted::tlb::{Flusher, KvmFlusher, Range, Shootdown};
use vmm::run::control::RunControl;
use vmm::vstate::vm::Vm;

/// A VM with the shootdown machinery and no running vCPU.
pub struct HostShootdown {
    flusher: KvmFlusher,
}

impl HostShootdown {
    /// Creates the VM and its zap slot.
    pub fn new() -> Result<HostShootdown, BenchError> {
        let fail = |e: vmm::vstate::vm::VmError| BenchError::Check(format!("VM for the shootdown figure: {e}"));
        let mut vm = Vm::new().map_err(fail)?;
        vm.add_zap_slot().map_err(fail)?;
        let flusher =
            KvmFlusher { vm: Arc::new(vm), tlb: Arc::new(Shootdown::new(1)), ctl: Arc::new(RunControl::new()) };
        Ok(HostShootdown { flusher })
    }

    /// Shoots down what `flush` covers, as the munmap hypercall does.
    pub fn flush(&self, flush: FlushSet) -> Result<(), BenchError> {
        let ranges: Vec<Range> = flush.ranges().iter().map(|&(va, len)| (va.raw(), len)).collect();
        flush.ignore();
        self.flusher.flush(0, &ranges).map_err(|e| BenchError::Check(format!("shootdown: {e}")))
    }
}
