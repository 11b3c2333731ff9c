//! What can stop a run before its guest gets to run ([`RunError`]).

use thiserror::Error;

use crate::config::ConfigError;
use crate::guest::kind::KindError;
use crate::hosted::boot::BootError;
use crate::memory::MemoryError;
use crate::vstate::vcpu::VcpuError;
use crate::vstate::vm::VmError;

/// Everything that can stop a run before the guest gets to run.
#[derive(Debug, Error)]
pub enum RunError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Memory setup.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// guest-mm could not create the page tables.
    #[error("cannot create the guest page tables: {0}")]
    PageTables(#[source] guest_mm::MmError),
    /// Kernel installation.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// KVM VM setup.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// vCPU setup.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// seccomp.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// A device.
    #[error("device setup: {0}")]
    Device(String),
    /// The guest's kind could not open, load or equip it.
    #[error(transparent)]
    Kind(#[from] KindError),
    /// A kind broke the seam's contract (e.g. gave the wrong number of
    /// vCPU entries).
    #[error("{0}")]
    Contract(String),
    /// The event loop or a thread.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Wraps an I/O error with what failed.
pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Io { what, source }
}
