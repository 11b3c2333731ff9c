//! For unit tests: a [`HostedKernel`] over guest memory without KVM, its
//! console kept in a buffer the test reads, and its shootdowns recorded.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::{ConsoleOut, HostedKernel, ReportLog};
use crate::hosted::mapper::Mapper;
use crate::hosted::providers::Providers;
use crate::hosted::tlb::RecordingFlusher;
use crate::memory::GuestMem;
use crate::run::vm_exit::ExitCounters;

/// Console output, kept for the test to read.
#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A kernel over `mem` and the address space `m` (already set up by the
/// test), with one vCPU's counters.
pub fn kernel(mem: GuestMem, m: Mapper, providers: Providers) -> (HostedKernel, Buf, Arc<RecordingFlusher>) {
    let out = Buf::default();
    let flusher = Arc::new(RecordingFlusher::default());
    let hv = HostedKernel::new(
        mem,
        m,
        providers,
        flusher.clone(),
        ConsoleOut::new(Box::new(out.clone())),
        ReportLog::default(),
        vec![Arc::new(ExitCounters::default())],
    );
    (hv, out, flusher)
}
