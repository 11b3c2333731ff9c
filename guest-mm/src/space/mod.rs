//! The address space: page tables, the VMA tree and the frame state of one
//! guest, and the operations on them (mmap, munmap, mprotect; the fault
//! path, mremap and madvise in `fault.rs`, `mremap.rs`, `madvise.rs`;
//! mlock and friends in `lock.rs`; mincore and resident-page counts in
//! `residency.rs`; populating in `populate.rs`; clearing a file's
//! shrunk or punched pages from its mappings in `mapping_range.rs`; flag-only VMA changes in
//! `vma_flags.rs`; sealing in `mseal.rs`, the program break in `brk.rs`; the VMA operations' `mapped`/`open`/`close` calls in
//! `vma_life.rs`; fork, sibling spaces and teardown in `fork.rs`, the
//! write fault on a page a fork shared in `fork_fault.rs`; transparent
//! huge pages in `thp.rs`).
//!
//! The pipeline of [`AddressSpace::mmap`], in order:
//! 1. setup: length, alignment, overflow, placement;
//! 2. a [`crate::VmaDesc`] goes to the provider's `mmap_prepare`;
//! 3. action prepare validates and sets flags;
//! 4. (fixed placement over existing VMAs) the old range is detached;
//! 5. the VMA is created and the action completes (page tables);
//! 6. the success hook runs; then the VMA merges with its neighbours.
//!
//! An error in 1–4 leaves nothing changed. An error in 5–6 unmaps the new
//! VMA, frees every table it added, puts any detached old mapping back
//! exactly as it was, and passes the error through the error hook.
//!
//! Entries that were present and were cleared on such a failure path (by
//! the rollback, or by a complete that undid itself after writing into
//! tables a vCPU could reach) are collected as a deferred flush, on the
//! compat entry point too; see [`AddressSpace::take_deferred_flush`].

#[cfg(test)]
mod advice_model_tests;
#[cfg(test)]
mod anon_model;
#[cfg(test)]
mod bounds_tests;
mod brk;
#[cfg(test)]
mod brk_tests;
mod collapse;
#[cfg(test)]
mod collapse_tests;
mod compat;
mod fault;
mod fork;
mod fork_fault;
#[cfg(test)]
mod fork_model_tests;
#[cfg(test)]
mod fork_tests;
#[cfg(test)]
mod huge_tests;
mod invariants;
mod limits;
mod lock;
#[cfg(test)]
mod lock_tests;
mod madvise;
#[cfg(test)]
mod madvise_tests;
mod mapping_range;
#[cfg(test)]
mod may_bits_tests;
mod mbind;
#[cfg(test)]
mod mbind_tests;
mod mmap;
mod mprotect;
#[cfg(test)]
mod mprotect_tests;
mod mremap;
mod mremap_flags;
#[cfg(test)]
mod mremap_tests;
mod mseal;
mod munmap;
mod object_unmap;
mod page_pins;
mod populate;
#[cfg(test)]
mod reattach_tests;
mod remote;
#[cfg(test)]
mod remote_model_tests;
mod request;
mod residency;
#[cfg(test)]
mod residency_tests;
mod rollback;
#[cfg(test)]
mod seal_model_tests;
mod stack_grow;
#[cfg(test)]
mod stack_grow_tests;
#[cfg(test)]
mod table_pool_tests;
#[cfg(test)]
mod test_util;
mod thp;
#[cfg(test)]
mod thp_model_tests;
#[cfg(test)]
mod thp_tests;
#[cfg(test)]
mod vma_budget_tests;
mod vma_flags;
mod vma_life;

use vm_memory::{GuestAddress, GuestMemoryBackend};

pub use brk::Brk;
pub use fault::{FaultKind, Faulted, FAULT_AROUND_PAGES, WRITE_FAULT_AROUND_PAGES};
pub use fork::Forked;
pub use invariants::{Audit, Violation};
pub use madvise::Advice;
pub use mapping_range::Cows;
pub use mbind::{Mbound, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT};
pub use mremap::Remapped;
pub use mremap_flags::{MremapFlags, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};
pub use mseal::DISCARD_ADVICE;
pub use remote::Forced;
pub use request::{Mapped, MmapRequest, Placement, SpaceStats};
pub use thp::{vma_may_hold_thp, ThpMode, ThpPolicy, ThpSizeMode, THP_MIN_ORDER, THP_PMD_ORDER};

use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::{Frames, PhysLayout, TableAllocator};
use crate::paging::{FlushSet, PageTables, Translation};
use crate::vma::{Vma, VmaBudget, VmaTree};

/// First address of the upper (supervisor) half.
pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// End of the lower (user) half.
pub const USER_END: u64 = 1 << 47;

/// How to build an address space.
#[derive(Clone, Debug)]
pub struct SpaceConfig {
    /// Guest-physical region (in RAM) for page-table pages; never mappable.
    /// Tables come from here first; once it is used up, from the pool
    /// (pool frames holding tables are never pinnable or mappable either).
    pub table_region: (GuestAddress, u64),
    /// Guest-physical region (in RAM) for the kernel page pool.
    pub pool_region: Option<(GuestAddress, u64)>,
    /// Further pool regions (each whole pages of guest RAM, outside the
    /// table and reserved regions, none overlapping another): the pool
    /// hands out frames of all of them, as one. They may be as large as
    /// guest RAM: the pool costs host memory per region and per frame
    /// handed out, not per frame it could hand out.
    pub extra_pool_regions: Vec<(GuestAddress, u64)>,
    /// Further VMM-owned regions that may never be mapped.
    pub reserved: Vec<(GuestAddress, u64)>,
    /// `[lo, hi)` window for mappings placed by the mapper.
    pub mmap_window: (GuestVirtAddr, GuestVirtAddr),
    /// Most VMAs the address space may hold (Linux's `vm.max_map_count`):
    /// an operation that would need more fails with `ENOMEM` and changes
    /// nothing. Each VMA costs the VMM host memory (see docs/guest-mm.md,
    /// "Limits").
    pub max_map_count: usize,
    /// The VMAs this space and every space made from it (fork, sibling)
    /// may hold together; `None`: [`VmaBudget::for_ram`] of the guest's
    /// RAM. Past it an operation fails with `ENOMEM` and changes nothing.
    pub vma_budget: Option<VmaBudget>,
}

/// Linux's default `vm.max_map_count`.
pub const DEFAULT_MAX_MAP_COUNT: usize = 65530;

impl SpaceConfig {
    /// Tables in `table_region`, no pool, the default user window
    /// `[4 GiB, 128 TiB - 4 GiB)`.
    pub fn new(table_region: (GuestAddress, u64)) -> Self {
        SpaceConfig {
            table_region,
            pool_region: None,
            extra_pool_regions: Vec::new(),
            reserved: Vec::new(),
            mmap_window: (GuestVirtAddr::ZERO.checked_add(1 << 32).unwrap_or_default(), {
                GuestVirtAddr::try_new(USER_END - (1 << 32)).unwrap_or_default()
            }),
            max_map_count: DEFAULT_MAX_MAP_COUNT,
            vma_budget: None,
        }
    }
}

/// One guest's address space.
pub struct AddressSpace<M: GuestMemoryBackend> {
    pt: PageTables<M>,
    vmas: VmaTree,
    frames: Frames,
    layout: PhysLayout,
    window: (u64, u64),
    deferred: FlushSet,
    /// Objects `MADV_REMOVE` punched, for the caller to clear from the
    /// other spaces mapping them ([`AddressSpace::take_punches`]).
    punches: Vec<(crate::vma::ObjectKey, crate::vma::Punched)>,
    max_map_count: usize,
    fault_around: u64,
    /// Pins of the pages the fault path inserted, per faulted run.
    page_pins: page_pins::PagePins,
    /// Flags every new VMA gets (`mm->def_flags`: the lock bits of
    /// `mlockall(MCL_FUTURE)`).
    def_flags: crate::flags::VmFlags,
    /// The program break, once a heap is set (`brk.rs`).
    heap: Option<brk::Heap>,
    /// How far a `VM_GROWSDOWN` VMA may grow (`RLIMIT_STACK`,
    /// `stack_grow.rs`).
    stack_limit: u64,
    /// The transparent huge page policy (`thp.rs`), shared with the
    /// spaces made from this one.
    thp: thp::ThpPolicy,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// An empty address space over `mem`.
    pub fn new(mem: M, cfg: SpaceConfig) -> Result<Self, MmError> {
        let mut layout = PhysLayout::from_memory(&mem);
        let (tbase, tsize) = cfg.table_region;
        if tsize % PAGE_SIZE != 0 || !layout.is_ram(crate::Pfn::containing(tbase), tsize / PAGE_SIZE) {
            return Err(MmError::Invalid("page-table region must be whole pages of guest RAM"));
        }
        if let Some((pbase, psize)) = cfg.pool_region {
            let tend = tbase.0.saturating_add(tsize);
            if pbase.0 < tend && tbase.0 < pbase.0.saturating_add(psize) {
                return Err(MmError::Invalid("pool region overlaps the page-table region"));
            }
        }
        layout.reserve(tbase, tsize);
        for &(b, s) in &cfg.reserved {
            layout.reserve(b, s);
        }
        let (lo, hi) = (cfg.mmap_window.0.raw(), cfg.mmap_window.1.raw());
        if lo >= hi || lo % PAGE_SIZE != 0 || hi % PAGE_SIZE != 0 {
            return Err(MmError::Invalid("empty or misaligned mmap window"));
        }
        let pool: Vec<(GuestAddress, u64)> = cfg.pool_region.iter().chain(&cfg.extra_pool_regions).copied().collect();
        for &(b, s) in &cfg.extra_pool_regions {
            let (first, n) = (crate::Pfn::containing(b), s / PAGE_SIZE);
            if s % PAGE_SIZE != 0 || !layout.is_ram(first, n) || layout.reserved_in(first, n).is_some() {
                return Err(MmError::Invalid("a pool region must be whole pages of unreserved guest RAM"));
            }
        }
        let frames = Frames::with_pool_regions(layout.ram_end().0, &pool)?;
        frames.block(&layout);
        let pt = PageTables::new(mem, TableAllocator::new(tbase, tsize)?.with_pool(frames.clone()))?;
        let ram: u64 = layout.ram().iter().map(|(a, b)| (b.0 - a.0).saturating_mul(PAGE_SIZE)).sum();
        let budget = cfg.vma_budget.unwrap_or_else(|| VmaBudget::for_ram(ram, cfg.max_map_count));
        Ok(AddressSpace {
            pt,
            vmas: VmaTree::with_budget(budget),
            frames,
            layout,
            window: (lo, hi),
            deferred: FlushSet::default(),
            punches: Vec::new(),
            max_map_count: cfg.max_map_count,
            fault_around: FAULT_AROUND_PAGES,
            page_pins: page_pins::PagePins::default(),
            def_flags: crate::flags::VmFlags::empty(),
            heap: None,
            stack_limit: stack_grow::DEFAULT_STACK_LIMIT,
            thp: thp::ThpPolicy::default(),
        })
    }

    /// Runs the fault path pinned and still holds, and their pages (a
    /// range's runs go when it is unmapped, dropped or moved).
    pub fn faulted_pins(&self) -> (usize, u64) {
        (self.page_pins.len(), self.page_pins.pages())
    }

    /// The root table (the guest's CR3).
    pub fn cr3(&self) -> GuestAddress {
        self.pt.root()
    }

    /// The page tables (read-only: translate, walk).
    pub fn page_tables(&self) -> &PageTables<M> {
        &self.pt
    }

    /// The page tables, for tests that inject allocation failures.
    pub fn page_tables_mut(&mut self) -> &mut PageTables<M> {
        &mut self.pt
    }

    /// Guest memory.
    pub fn memory(&self) -> &M {
        self.pt.memory()
    }

    /// The shared frame state (pool and pins) providers allocate from and
    /// pin page arrays in.
    pub fn frames(&self) -> &Frames {
        &self.frames
    }

    /// RAM and reserved ranges.
    pub fn layout(&self) -> &PhysLayout {
        &self.layout
    }

    /// The VMAs in address order.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.iter()
    }

    /// The VMA containing `addr`.
    pub fn find_vma(&self, addr: GuestVirtAddr) -> Option<&Vma> {
        self.vmas.find(addr.raw())
    }

    /// Walks the page tables for `va`.
    pub fn translate(&self, va: GuestVirtAddr) -> Option<Translation> {
        self.pt.translate(va)
    }

    /// Counters.
    pub fn stats(&self) -> SpaceStats {
        let st = self.frames.lock();
        SpaceStats {
            tables_in_use: self.pt.allocator().in_use(),
            pool_free: st.pool_free(),
            vmas: self.vmas.len(),
            pins: st.pins().total(),
        }
    }

    /// Entries cleared on failure paths (a mapping that was undone after
    /// vCPUs could have used it). The caller flushes them like any other
    /// flush set; it is empty when nothing failed.
    pub fn take_deferred_flush(&mut self) -> FlushSet {
        let mut f = std::mem::take(&mut self.deferred);
        f.merge(self.pt.take_rollback_flush());
        f
    }

    /// The objects `MADV_REMOVE` punched since the last call, with what
    /// each freed: this space's mappings have lost the pages; every other
    /// space mapping the object must lose them too (Linux's
    /// `unmap_mapping_range` reaches every mm), with
    /// [`AddressSpace::unmap_object_range`] and [`crate::Punched::cows`].
    pub fn take_punches(&mut self) -> Vec<(crate::vma::ObjectKey, crate::vma::Punched)> {
        std::mem::take(&mut self.punches)
    }
}

/// Page-aligned length, `EINVAL` for zero or overflow.
pub(crate) fn checked_len(len: u64) -> Result<u64, MmError> {
    if len == 0 {
        return Err(MmError::Invalid("zero length"));
    }
    crate::addr::page_align_up(len).ok_or(MmError::Overflow { addr: 0, len })
}

/// Checks `addr` is page aligned and `[addr, addr + len)` does not wrap or
/// leave its half; returns the exclusive end.
pub(crate) fn checked_range(addr: GuestVirtAddr, len: u64) -> Result<u64, MmError> {
    if !addr.is_aligned(PAGE_SIZE) {
        return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
    }
    addr.checked_end(len)
}
