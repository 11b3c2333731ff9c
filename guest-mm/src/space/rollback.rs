//! Detach and reattach of the range a fixed mapping replaces, so that a
//! failed fixed mapping leaves the old mappings exactly as they were.
//!
//! The tables the detach empties and frees may have to be built again by
//! the reattach. From the detach until the commit or the reattach, the
//! table allocator holds the pool frames of freed tables for itself
//! ([`crate::TableAllocator::hold_freed`]; region frames are its own
//! anyway), and everything the new mapping took is freed again before a
//! reattach: the restore finds every frame it needs without asking the
//! pool, so it cannot run out of table pages whoever else allocates.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::action::PageArray;
use crate::addr::GuestVirtAddr;
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
    /// The faulted runs of the range, whose pins keep its frames until the
    /// range is given up or put back.
    runs: Vec<(u64, PageArray)>,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Takes `[start, start + len)` out: records its leaves, clears them
    /// (splitting huge leaves at the edges, all-or-nothing) and removes its
    /// VMAs. On error nothing changed.
    pub(crate) fn detach(&mut self, start: GuestVirtAddr, len: u64) -> Result<Detached, MmError> {
        let leaves = self.pt.leaves(start, len);
        let originals: Vec<Vma> = self.vmas.overlapping(start.raw(), start.raw() + len).cloned().collect();
        self.pt.allocator_mut().hold_freed();
        let un = match self.pt.unmap_range(start, len) {
            Ok(un) => un,
            Err(e) => {
                self.pt.allocator_mut().release_held();
                return Err(e);
            }
        };
        let vmas = self.vmas.remove_range(start.raw(), start.raw() + len);
        let runs = self.page_pins.take(start.raw(), start.raw() + len);
        Ok(Detached { leaves, originals, splits: un.splits, vmas, flush: un.flush, runs })
    }

    /// Gives the old range up for good: its VMAs and faulted runs drop
    /// their pins (frames no one else pins may be reused) and its cleared
    /// entries must be flushed. `new` is the range of the mapping that
    /// replaced it.
    pub(crate) fn commit(&mut self, d: Detached, new: (u64, u64)) -> FlushSet {
        self.pt.allocator_mut().release_held();
        drop(d.runs);
        self.commit_vmas(new, &d.originals, d.vmas);
        d.flush
    }

    /// Puts the old range back exactly as it was.
    pub(crate) fn reattach(&mut self, d: Detached) {
        // The detached VMAs (and the originals) and runs still pin every
        // page-array and faulted frame of the old leaves.
        if let Err(e) = self.pt.restore(&d.leaves, &d.splits) {
            log::error!("restoring a replaced range failed: {e}");
        }
        self.pt.allocator_mut().release_held();
        self.page_pins.put_back(d.runs, 0);
        // The VMAs the detach split keep their remnants outside the range;
        // replace those by the originals so boundaries are as before.
        drop(d.vmas);
        for v in d.originals {
            drop(self.vmas.remove_range(v.start().raw(), v.end()));
            self.vmas.insert(v);
        }
        // The same translations are back, but not necessarily the same
        // Accessed bits: the restore writes the leaves as read before the
        // detach cleared them, and a vCPU may have walked (and cached) one
        // in between, which the clear saw. A later change would trust the
        // restored bits and skip its shootdown, so what the detach cleared
        // is flushed now, as are tables it freed (the restore may rebuild
        // them in other frames). A split table the detach linked and the
        // restore re-joined and freed is in the rollback flush (`restore`).
        self.deferred.merge(d.flush);
    }
}
