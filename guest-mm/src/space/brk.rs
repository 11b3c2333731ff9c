//! The program break (`brk`): a heap of anonymous memory that starts
//! after the program image and grows and shrinks at its end, with Linux
//! 6.12's rules (`SYSCALL_DEFINE1(brk)` in `mm/mmap.c`).
//!
//! The break is byte granular; the heap's VMAs are page granular and end
//! at the break rounded up to a page. [`AddressSpace::brk`]:
//! - below the heap's start (`brk(0)` included) it changes nothing and
//!   returns the current break;
//! - within the same page as the current break it only moves the break;
//! - growing maps `[old end, new end)` through the heap's provider as a
//!   private read-write mapping (zero-fill on demand with the zero
//!   provider), whose page offset is its address in pages, so it merges
//!   with the heap VMA before it as Linux's `do_brk_flags` expands it.
//!   Growth fails, returning the old break, if a mapping starts less than
//!   a page after the new end (Linux keeps that guard page), or if the
//!   mapping fails;
//! - shrinking unmaps `[new end, old end)`; it fails, returning the old
//!   break, if nothing is mapped there or the unmap is refused (a sealed
//!   heap).
//!
//! What it does not do: `RLIMIT_DATA`, brk randomisation, the
//! `CONFIG_COMPAT_BRK` start below the image end, populating a
//! `mlockall(MCL_FUTURE)` heap.

use std::sync::Arc;

use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, MmapRequest, USER_END};
use crate::addr::{page_align_up, GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;
use crate::provider::MmapProvider;
use crate::vma::Vma;

/// The heap of an address space (a fork's child inherits it).
#[derive(Clone)]
pub(crate) struct Heap {
    /// `mm->start_brk`: page aligned.
    start: u64,
    /// `mm->brk`: byte granular, at least `start`.
    brk: u64,
    /// Who maps the heap's pages.
    provider: Arc<dyn MmapProvider>,
}

/// The result of [`AddressSpace::brk`].
#[derive(Debug)]
#[must_use = "a shrinking brk cleared entries that must be flushed"]
pub struct Brk {
    /// The break after the call: the one asked for on success, the old
    /// one otherwise (as Linux returns it).
    pub brk: GuestVirtAddr,
    /// Entries a shrink cleared; empty otherwise.
    pub flush: FlushSet,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Sets the heap's start (`mm->start_brk = mm->brk`, after the program
    /// image is loaded) and the provider that maps its pages (the zero
    /// provider for anonymous memory). `EINVAL` if `start` is not page
    /// aligned or not in the user half, or if the current heap still has
    /// pages (its break is past its start's page).
    pub fn set_heap(&mut self, start: GuestVirtAddr, provider: Arc<dyn MmapProvider>) -> Result<(), MmError> {
        if !start.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "heap start", value: start.raw(), align: PAGE_SIZE });
        }
        if start.raw() >= USER_END {
            return Err(MmError::Invalid("heap start outside the user half"));
        }
        if self.heap.as_ref().is_some_and(|h| page_align_up(h.brk) != Some(h.start)) {
            return Err(MmError::Invalid("the heap is not empty"));
        }
        self.heap = Some(Heap { start: start.raw(), brk: start.raw(), provider });
        Ok(())
    }

    /// `brk(requested)`: moves the break; see the module docs. Without a
    /// heap ([`AddressSpace::set_heap`]) the break is 0 and never moves.
    /// `requested` is the guest's raw argument: any value is accepted.
    pub fn brk(&mut self, requested: u64) -> Brk {
        let Some((start, cur, provider)) = self.heap.as_ref().map(|h| (h.start, h.brk, h.provider.clone())) else {
            return Brk { brk: GuestVirtAddr::ZERO, flush: FlushSet::default() };
        };
        let keep = |flush| Brk { brk: GuestVirtAddr::try_new(cur).unwrap_or_default(), flush };
        let Ok(new) = GuestVirtAddr::try_new(requested) else { return keep(FlushSet::default()) };
        if requested < start {
            return keep(FlushSet::default());
        }
        let (Some(new_end), Some(old_end)) = (page_align_up(requested), page_align_up(cur)) else {
            return keep(FlushSet::default());
        };
        let mut flush = FlushSet::default();
        if new_end < old_end {
            // Shrinking: something of the heap must be there to unmap.
            if !self.vmas.intersects(new_end, old_end) {
                return keep(flush);
            }
            let Ok(at) = GuestVirtAddr::try_new(new_end) else { return keep(flush) };
            match self.munmap(at, old_end - new_end) {
                Ok(f) => flush = f,
                Err(e) => {
                    log::debug!("brk shrink to {requested:#x}: {e}");
                    return keep(flush);
                }
            }
        } else if new_end > old_end {
            // Growing: a page must stay free after the new end.
            // And the guard gap below a stack that grows down (Linux's
            // `vm_start_gap`).
            let guard = new_end.saturating_add(PAGE_SIZE);
            let gap = self.vmas.next_from(old_end).is_some_and(|n| guard > crate::vma::VmaTree::start_gap(n));
            if new_end > USER_END || self.vmas.intersects(old_end, guard) || gap {
                return keep(flush);
            }
            let Ok(at) = GuestVirtAddr::try_new(old_end) else { return keep(flush) };
            let req = MmapRequest::private(new_end - old_end, VmFlags::READ | VmFlags::WRITE)
                .fixed_noreplace(at)
                .pgoff(old_end >> PAGE_SHIFT);
            match self.mmap(provider.as_ref(), &req) {
                Ok(m) => flush = m.flush,
                Err(e) => {
                    log::debug!("brk growth to {requested:#x}: {e}");
                    return keep(flush);
                }
            }
        }
        if let Some(h) = self.heap.as_mut() {
            h.brk = requested;
        }
        Brk { brk: new, flush }
    }

    /// The heap as `(start, break)` (`mm->start_brk`, `mm->brk`), if set.
    pub fn heap_range(&self) -> Option<(GuestVirtAddr, GuestVirtAddr)> {
        let h = self.heap.as_ref()?;
        Some((GuestVirtAddr::try_new(h.start).ok()?, GuestVirtAddr::try_new(h.brk).ok()?))
    }

    /// Is `vma` (part of) the heap, as `/proc/self/maps` labels it
    /// `[heap]`? It overlaps `[start, break)` (Linux's
    /// `vma_is_initial_heap`).
    pub fn is_heap(&self, vma: &Vma) -> bool {
        self.heap.as_ref().is_some_and(|h| vma.start().raw() < h.brk && vma.end() > h.start)
    }
}
