//! Detach and reattach of the range a fixed mapping replaces, so that a
//! failed fixed mapping leaves the old mappings exactly as they were.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{GuestVirtAddr, Pfn};
use crate::error::MmError;
use crate::paging::{FlushSet, Leaf, SplitRecord};
use crate::vma::Vma;

/// An old range taken out of the address space but not yet given up.
pub(crate) struct Detached {
    leaves: Vec<Leaf>,
    splits: Vec<SplitRecord>,
    /// The VMAs the range touched, whole (before any split), to put back.
    originals: Vec<Vma>,
    /// The pieces removed from the tree.
    vmas: Vec<Vma>,
    flush: FlushSet,
    /// Frames whose count reached zero; handed to the pool only on commit.
    released: Vec<Pfn>,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Takes `[start, start + len)` out: records its leaves, clears them
    /// (splitting huge leaves at the edges, all-or-nothing) and removes its
    /// VMAs. On error nothing changed.
    pub(crate) fn detach(&mut self, start: GuestVirtAddr, len: u64) -> Result<Detached, MmError> {
        let leaves = self.pt.leaves(start, len);
        let originals: Vec<Vma> = self.vmas.overlapping(start.raw(), start.raw() + len).cloned().collect();
        let mut released = Vec::new();
        let un = {
            let mut fs = self.frames.lock();
            self.pt.unmap_range(start, len, &mut fs.counts, &mut released)?
        };
        let vmas = self.vmas.remove_range(start.raw(), start.raw() + len);
        Ok(Detached { leaves, originals, splits: un.splits, vmas, flush: un.flush, released })
    }

    /// Gives the old range up for good: its frames may be reused and its
    /// cleared entries must be flushed.
    /// `new` is the range of the mapping that replaced it.
    pub(crate) fn commit(&mut self, d: Detached, new: (u64, u64)) -> FlushSet {
        self.frames.lock().release(&d.released);
        self.commit_vmas(new, &d.originals, d.vmas);
        d.flush
    }

    /// Puts the old range back exactly as it was.
    pub(crate) fn reattach(&mut self, d: Detached) {
        {
            let mut fs = self.frames.lock();
            if let Err(e) = self.pt.restore(&d.leaves, &d.splits, &mut fs.counts) {
                log::error!("restoring a replaced range failed: {e}");
            }
        }
        // The VMAs the detach split keep their remnants outside the range;
        // replace those by the originals so boundaries are as before.
        drop(d.vmas);
        for v in d.originals {
            drop(self.vmas.remove_range(v.start().raw(), v.end()));
            self.vmas.insert(v);
        }
        // The same translations are back; a vCPU that cached them holds
        // nothing stale.
        d.flush.ignore();
    }
}
