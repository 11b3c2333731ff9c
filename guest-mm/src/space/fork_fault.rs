//! The write fault on a page a fork shared (`do_wp_page` on a page whose
//! leaf carries the fork-shared mark): reuse it in place when this space
//! holds the only reference (`wp_page_reuse`), else copy it into a fresh
//! pool page (`wp_page_copy`).
//!
//! The only reference means: the faulted run of this space that covers the
//! page pins this very frame, and the frame has exactly that one pin and
//! no owner. Another space's run, a VMA's page array, a provider's page
//! (the zero page, a shared-memory object's page) each hold a pin or own
//! the frame, so such a page is copied, never written in place. The copy
//! is pinned before its entry exists and replaces the old entry in one
//! store; the old frame's pin in this space goes with the cut run, so the
//! other space can then reuse it.

use std::sync::Arc;

use vm_memory::GuestMemoryBackend;

use super::fork::copy_frames;
use super::{AddressSpace, FaultKind, Faulted};
use crate::action::PageArray;
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::paging::FlushSet;
use crate::vma::Vma;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// A write fault at `va` (page aligned, in `vma`, which allows the
    /// write) on a fork-shared leaf mapping `old`; see the module docs.
    /// `ENOMEM` when the pool has no page for the copy; nothing changed
    /// on error.
    pub(super) fn fault_fork_shared(&mut self, vma: &Vma, va: GuestVirtAddr, old: Pfn) -> Result<Faulted, MmError> {
        let page = va.raw();
        let mine = self.page_pins.frame_at(page) == Some(old);
        if mine && self.frames.lock().only_one_pin(old) {
            self.pt.reuse_page(va, vma.page_prot())?;
            return Ok(Faulted { kind: FaultKind::Reused, around: 0, flush: FlushSet::default() });
        }
        let flush = self.copy_to_fresh_page(va, old, vma.page_prot())?;
        Ok(Faulted { kind: FaultKind::CopiedOnWrite, around: 0, flush })
    }

    /// Replaces the 4 KiB leaf at `va`, which maps `old`, with a fresh
    /// pool page holding a copy of `old`'s contents, mapped with `prot`
    /// and pinned as this space's run of one page (a copy-on-write copy,
    /// a page migration). Returns the old entry's flush; `ENOMEM` when
    /// the pool has no page; nothing changed on error.
    pub(super) fn copy_to_fresh_page(
        &mut self,
        va: GuestVirtAddr,
        old: Pfn,
        prot: crate::flags::PageProt,
    ) -> Result<FlushSet, MmError> {
        let fresh = self.frames.alloc(1)?;
        let new = fresh.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
        copy_frames(self.pt.memory(), old.addr(), new.addr(), PAGE_SIZE)?;
        // Pinned before the old frame's run is cut: the pin keeps the new
        // frame, and returns it to the pool if the replace below fails.
        let arr = PageArray::pin(&self.frames, Arc::from([new].as_slice()))?;
        drop(fresh);
        let (_, flush) = self.pt.replace_page(va, &arr, prot)?;
        self.page_pins.insert(va.raw(), arr);
        Ok(flush)
    }
}
