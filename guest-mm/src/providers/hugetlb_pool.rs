//! The hugetlb pool (Linux's `hstate` for 2 MiB pages, `vm.nr_hugepages`):
//! a fixed set of 2 MiB pages of guest RAM set aside at start, handed out
//! one at a time to `MAP_HUGETLB` mappings ([`super::HugetlbProvider`])
//! and counted the way `/proc/meminfo` reports them.
//!
//! A page is *in use* while something holds its [`HugePage`] handle (a
//! fault in progress, a shared mapping's object) or any of its frames is
//! pinned (a faulted run of the address space maps it). Nothing tells the
//! pool when a page comes back: it asks, so a page returns the moment the
//! last run that maps it is dropped (munmap, `MADV_DONTNEED`), whatever
//! path dropped it.
//!
//! Reservations (`HugePages_Rsvd`) are taken at mmap for the pages a
//! mapping may fault in and consumed by its faults, as
//! `hugetlb_reserve_pages` does: a mapping is refused (`ENOMEM`) when the
//! pages free and not reserved are too few, and a fault that holds a
//! reservation never finds the pool empty.
//!
//! What it does not do: surplus pages (`nr_overcommit_hugepages` is 0),
//! resizing (`nr_hugepages` is fixed at start), 1 GiB pages, NUMA.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::addr::{Pfn, PAGE_SHIFT};
use crate::error::MmError;
use crate::frames::Frames;

/// The huge-page size: 2 MiB.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

/// 4 KiB frames in one huge page.
pub const FRAMES_PER_HUGE_PAGE: u64 = HUGE_PAGE_SIZE >> PAGE_SHIFT;

/// A hugetlb mapping's shape (`hugetlb_get_unmapped_area` and
/// `hugetlbfs_file_mmap`): the offset, start and length on huge pages
/// (`Misaligned` otherwise).
pub(super) fn check_huge_desc(desc: &crate::desc::VmaDesc) -> Result<(), MmError> {
    if desc.pgoff % FRAMES_PER_HUGE_PAGE != 0 {
        return Err(MmError::Misaligned { what: "huge-page pgoff", value: desc.pgoff, align: FRAMES_PER_HUGE_PAGE });
    }
    if !desc.start().is_aligned(HUGE_PAGE_SIZE) || desc.size() % HUGE_PAGE_SIZE != 0 {
        return Err(MmError::Misaligned {
            what: "huge-page mapping",
            value: desc.start().raw() | desc.size(),
            align: HUGE_PAGE_SIZE,
        });
    }
    Ok(())
}

/// The pool's counters, as `/proc/meminfo` and
/// `/sys/kernel/mm/hugepages/hugepages-2048kB/` show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HugetlbCounts {
    /// `HugePages_Total`, `nr_hugepages`.
    pub total: u64,
    /// `HugePages_Free`, `free_hugepages`: not in use (reserved ones
    /// included, as Linux counts them).
    pub free: u64,
    /// `HugePages_Rsvd`, `resv_hugepages`: promised to mappings, not yet
    /// faulted in.
    pub reserved: u64,
    /// `HugePages_Surp`: always 0 (no overcommit).
    pub surplus: u64,
}

/// A huge page handed out; while it lives the page is in use. Dropping
/// it gives the page back unless its frames are pinned (mapped).
#[derive(Debug)]
pub struct HugePage {
    head: Pfn,
}

impl HugePage {
    /// Its first frame (2 MiB aligned).
    pub fn head(&self) -> Pfn {
        self.head
    }
}

#[derive(Debug, Default)]
struct State {
    /// Per page, the handle given out last (dead once dropped).
    held: Vec<Weak<HugePage>>,
    /// Reservations outstanding.
    reserved: u64,
}

#[derive(Debug)]
pub(super) struct PoolInner<M> {
    /// Head frames, ascending.
    heads: Vec<Pfn>,
    frames: Frames,
    pub(super) mem: M,
    state: Mutex<State>,
}

/// The pool; cheap to clone (clones are the same pool).
#[derive(Debug)]
pub struct HugetlbPool<M>(pub(super) Arc<PoolInner<M>>);

impl<M> Clone for HugetlbPool<M> {
    fn clone(&self) -> Self {
        HugetlbPool(self.0.clone())
    }
}

impl<M> PoolInner<M> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which pages are in use now (held or pinned).
    fn in_use(&self, st: &State) -> Vec<bool> {
        let fs = self.frames.lock();
        self.heads
            .iter()
            .zip(&st.held)
            .map(|(&h, w)| w.strong_count() > 0 || (0..FRAMES_PER_HUGE_PAGE).any(|i| fs.pins().get(Pfn(h.0 + i)) > 0))
            .collect()
    }

    fn free_in(&self, st: &State) -> u64 {
        self.in_use(st).iter().filter(|&&u| !u).count() as u64
    }

    /// Reserves `n` pages: `ENOMEM` when fewer are free and unreserved.
    pub(super) fn reserve(&self, n: u64) -> Result<(), MmError> {
        let mut st = self.lock();
        let free = self.free_in(&st);
        if free.saturating_sub(st.reserved) < n {
            return Err(MmError::OutOfMemory("huge pages"));
        }
        st.reserved += n;
        Ok(())
    }

    /// Gives back `n` reservations that were never consumed.
    pub(super) fn unreserve(&self, n: u64) {
        let mut st = self.lock();
        st.reserved = st.reserved.saturating_sub(n);
    }

    /// Takes a free page, consuming a reservation if `reserved`; without
    /// one, only a page nobody reserved (`ENOMEM` otherwise, a fault's
    /// `SIGBUS`).
    pub(super) fn take(&self, reserved: bool) -> Result<Arc<HugePage>, MmError> {
        let mut st = self.lock();
        let used = self.in_use(&st);
        let free = used.iter().filter(|&&u| !u).count() as u64;
        if !reserved && free <= st.reserved {
            return Err(MmError::OutOfMemory("no free huge page"));
        }
        let slot = used.iter().position(|&u| !u).ok_or(MmError::OutOfMemory("no free huge page"))?;
        let head = *self.heads.get(slot).ok_or(MmError::OutOfMemory("no free huge page"))?;
        let page = Arc::new(HugePage { head });
        if let Some(w) = st.held.get_mut(slot) {
            *w = Arc::downgrade(&page);
        }
        if reserved {
            st.reserved = st.reserved.saturating_sub(1);
        }
        Ok(page)
    }
}

impl<M: GuestMemory> PoolInner<M> {
    /// Zeroes a page before it is handed to a mapping.
    pub(super) fn zero(&self, page: &HugePage) -> Result<(), MmError> {
        const CHUNK: usize = 64 << 10;
        let zeros = vec![0u8; CHUNK];
        let base = page.head.addr().0;
        for off in (0..HUGE_PAGE_SIZE).step_by(CHUNK) {
            self.mem
                .write_slice(&zeros, GuestAddress(base + off))
                .map_err(|_| MmError::GuestMemory { addr: base + off })?;
        }
        Ok(())
    }
}

impl<M: GuestMemory> PoolInner<M> {
    /// Copies the huge page starting at frame `from` into `to` (a
    /// copy-on-write fault's private copy).
    pub(super) fn copy(&self, from: Pfn, to: &HugePage) -> Result<(), MmError> {
        const CHUNK: usize = 64 << 10;
        let mut buf = vec![0u8; CHUNK];
        let (src, dst) = (from.addr().0, to.head.addr().0);
        for off in (0..HUGE_PAGE_SIZE).step_by(CHUNK) {
            self.mem
                .read_slice(&mut buf, GuestAddress(src + off))
                .map_err(|_| MmError::GuestMemory { addr: src + off })?;
            self.mem
                .write_slice(&buf, GuestAddress(dst + off))
                .map_err(|_| MmError::GuestMemory { addr: dst + off })?;
        }
        Ok(())
    }
}

impl<M> HugetlbPool<M> {
    /// A pool of the 2 MiB pages of `regions` (each 2 MiB aligned, whole
    /// pages, inside guest RAM as `frames` tracks it, and in no other
    /// allocator's hands: not the kernel page pool, not VMM-reserved).
    /// No regions: an empty pool (`vm.nr_hugepages` 0).
    pub fn new(frames: Frames, mem: M, regions: &[(GuestAddress, u64)]) -> Result<Self, MmError> {
        let mut heads = Vec::new();
        for &(base, size) in regions {
            if base.0 % HUGE_PAGE_SIZE != 0 || size % HUGE_PAGE_SIZE != 0 {
                return Err(MmError::Misaligned {
                    what: "hugetlb pool region",
                    value: base.0 | size,
                    align: HUGE_PAGE_SIZE,
                });
            }
            let end = base.0.checked_add(size).ok_or(MmError::Overflow { addr: base.0, len: size })?;
            if end >> PAGE_SHIFT > frames.nr_frames() {
                return Err(MmError::FrameNotInGuest { pfn: end >> PAGE_SHIFT });
            }
            heads.extend((base.0..end).step_by(HUGE_PAGE_SIZE as usize).map(|a| Pfn(a >> PAGE_SHIFT)));
        }
        heads.sort_unstable();
        if heads.windows(2).any(|w| w[0] == w[1]) {
            return Err(MmError::Invalid("hugetlb pool regions overlap"));
        }
        let state = Mutex::new(State { held: heads.iter().map(|_| Weak::new()).collect(), reserved: 0 });
        Ok(HugetlbPool(Arc::new(PoolInner { heads, frames, mem, state })))
    }

    /// The counters now.
    pub fn counts(&self) -> HugetlbCounts {
        let st = self.0.lock();
        let free = self.0.free_in(&st);
        HugetlbCounts { total: self.0.heads.len() as u64, free, reserved: st.reserved, surplus: 0 }
    }

    /// The pages' first frames, ascending.
    pub fn pages(&self) -> &[Pfn] {
        &self.0.heads
    }

    /// Is `pfn` inside one of the pool's pages?
    pub fn contains(&self, pfn: Pfn) -> bool {
        let head = Pfn(pfn.0 & !(FRAMES_PER_HUGE_PAGE - 1));
        self.0.heads.binary_search(&head).is_ok()
    }
}
