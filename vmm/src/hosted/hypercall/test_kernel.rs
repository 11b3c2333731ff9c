//! For unit tests: a [`HostedKernel`] over guest memory without KVM, its
//! console kept in a buffer the test reads, and its shootdowns recorded.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

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

/// What a CPU's access to `va` does to the page tables: its walk sets the
/// Accessed bit of every present entry it uses, top-down. Without it a
/// change needs no shootdown (nothing can be cached, see `tlb`).
pub fn touch(hv: &HostedKernel, va: u64) {
    let mut table = hv.mapper().cr3().0 & !0xfff;
    for level in (1..=4u64).rev() {
        let at = GuestAddress(table + 8 * ((va >> (12 + 9 * (level - 1))) & 511));
        let e: u64 = hv.mem.read_obj(at).unwrap();
        if e & 1 == 0 {
            return;
        }
        hv.mem.write_obj(e | 0x20, at).unwrap();
        if level == 1 || e & 0x80 != 0 {
            return;
        }
        table = e & 0x000f_ffff_ffff_f000;
    }
}
