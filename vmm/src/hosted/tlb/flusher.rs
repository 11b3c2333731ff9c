//! What a hypercall calls after changing the page tables ([`shoot_down`]:
//! steps 1, 2 and 4 of the module docs) and what a vCPU does before each
//! entry ([`before_entry`]: step 3), each over a small backend trait so
//! that the very same code runs on KVM and on the simulated machine of
//! `tests/vmm/vmm_tlb_layers.rs`; and a recording flusher for tests.

use std::sync::{Arc, Mutex};

use super::list::Range;
use super::shootdown::{Shootdown, Stuck, WaitError};
use crate::run::control::RunControl;
use crate::vstate::vm::Vm;

/// Why a shootdown failed (the run cannot go on safely).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// KVM refused to drop its translations.
    #[error("cannot drop KVM's shadow translations: {0}")]
    Zap(#[source] crate::vstate::vm::VmError),
    /// A vCPU did not acknowledge.
    #[error("{0}")]
    Timeout(Stuck),
    /// The run is stopping.
    #[error("the run is stopping")]
    Stopping,
}

/// Makes every vCPU drop translations (called with the address-space lock
/// held, right after the page tables changed).
pub trait Flusher: Send + Sync {
    /// Flushes `ranges` on every vCPU; `me` (the caller) flushes before it
    /// next enters the guest.
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError>;

    /// The run is stopping: a call that waits should stop waiting (a
    /// flusher with no run behind it never stops).
    fn is_stopping(&self) -> bool {
        false
    }

    /// Kicks the vCPUs `who` out of the guest (a vCPU about to enter
    /// leaves at once). Default: nothing (no vCPUs).
    fn kick(&self, _who: &[u8]) {}

    /// Whether vCPU `v` is in the guest, or about to enter it. Default:
    /// never.
    fn in_guest(&self, _v: u8) -> bool {
        false
    }
}

/// The VM side of a shootdown: KVM ([`KvmFlusher`]) or a simulation.
pub trait ShootdownVm {
    /// Step 1: drops every translation the hypervisor derived from the
    /// guest's tables, on every vCPU (KVM: the memslot zap).
    fn zap(&self) -> Result<(), FlushError>;
    /// Makes the vCPUs in `who` leave the guest (and so re-enter it
    /// through [`before_entry`]).
    fn kick(&self, who: &[u8]);
    /// The run is stopping: stop waiting.
    fn is_stopping(&self) -> bool;
}

/// Steps 1, 2 and 4: the zap, the request to every vCPU, and the wait for
/// their acknowledgements with kicks (and re-kicks).
pub fn shoot_down(vm: &dyn ShootdownVm, tlb: &Shootdown, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
    vm.zap()?;
    let (gen, asked) = tlb.request(me, ranges);
    tlb.wait(gen, &asked, &|| vm.is_stopping(), &|who| vm.kick(who)).map_err(|e| match e {
        WaitError::Stopping => FlushError::Stopping,
        WaitError::Timeout(stuck) => FlushError::Timeout(stuck),
    })
}

/// The vCPU side of step 3.
pub trait ShootdownVcpu {
    /// Writes `bytes` (a [`super::FlushList`]) at the start of this vCPU's
    /// scratch page, where its NMI handler reads it.
    fn write_list(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// Injects an NMI, delivered before the next guest instruction.
    fn inject_nmi(&mut self) -> Result<(), String>;
}

/// Step 3, before every entry into the guest: marks `me` in the guest,
/// then (in this order, so a shootdown cannot miss it) writes a due list
/// and injects the NMI that makes the guest `invlpg` it and acknowledge.
pub fn before_entry(tlb: &Shootdown, me: u8, vcpu: &mut dyn ShootdownVcpu) -> Result<(), String> {
    tlb.entering(me);
    if let Some(list) = tlb.nmi_due(me) {
        log::debug!("vCPU {me}: TLB shootdown NMI: {list:x?}");
        vcpu.write_list(&list.to_bytes())?;
        vcpu.inject_nmi()?;
    }
    Ok(())
}

/// The real shootdown, on KVM (the kicks are `RunControl`'s).
#[derive(Debug)]
pub struct KvmFlusher {
    /// The VM.
    pub vm: Arc<Vm>,
    /// Shootdown state.
    pub tlb: Arc<Shootdown>,
    /// Run control (kicks, stop).
    pub ctl: Arc<RunControl>,
}

impl ShootdownVm for KvmFlusher {
    fn zap(&self) -> Result<(), FlushError> {
        self.vm.zap_shadow_mappings().map_err(FlushError::Zap)
    }

    fn kick(&self, who: &[u8]) {
        self.ctl.kick(who);
    }

    fn is_stopping(&self) -> bool {
        self.ctl.is_stopping()
    }
}

impl Flusher for KvmFlusher {
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
        shoot_down(self, &self.tlb, me, ranges)
    }

    fn is_stopping(&self) -> bool {
        self.ctl.is_stopping()
    }

    fn kick(&self, who: &[u8]) {
        self.ctl.kick(who);
    }

    fn in_guest(&self, v: u8) -> bool {
        !self.tlb.in_guest(&[v]).is_empty()
    }
}

/// A flusher for tests without KVM: records what it was asked.
#[derive(Debug, Default)]
pub struct RecordingFlusher(pub Mutex<Vec<(u8, Vec<Range>)>>);

impl Flusher for RecordingFlusher {
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((me, ranges.to_vec()));
        Ok(())
    }
}
