//! What a hypercall calls after changing the page tables: the KVM
//! shootdown, or a recording stand-in for tests without KVM.

use std::sync::{Arc, Mutex};

use super::list::Range;
use super::shootdown::{Shootdown, Stuck, WaitError};
use crate::control::RunControl;
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
}

/// The real shootdown: steps 1, 2 and 4 of the module docs (the kicks
/// are `RunControl`'s).
#[derive(Debug)]
pub struct KvmFlusher {
    /// The VM.
    pub vm: Arc<Vm>,
    /// Shootdown state.
    pub tlb: Arc<Shootdown>,
    /// Run control (kicks, stop).
    pub ctl: Arc<RunControl>,
}

impl Flusher for KvmFlusher {
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
        self.vm.zap_shadow_mappings().map_err(FlushError::Zap)?;
        let (gen, asked) = self.tlb.request(me, ranges);
        let ctl = &self.ctl;
        self.tlb.wait(gen, &asked, &|| ctl.is_stopping(), &|who| ctl.kick(who)).map_err(|e| match e {
            WaitError::Stopping => FlushError::Stopping,
            WaitError::Timeout(stuck) => FlushError::Timeout(stuck),
        })
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
