//! The VMM's handle on guest-mm: the guest's [`AddressSpace`], through
//! which every mapping is made, the VMM's own included.
//!
//! - Boot: the program image and stacks are mapped with a map-kernel-pages
//!   provider ([`ImageProvider`]) at fixed user addresses; the supervisor
//!   kernel region (GDT, IDT, TSS, stub, stacks) lives in frames the
//!   address space treats as reserved (no provider may ever map them), so
//!   it is mapped with guest-mm's page-table API directly, in the upper
//!   half, where guest requests never reach.
//! - Run time: `mmap`, `munmap`, `mprotect` hypercalls go through
//!   [`AddressSpace`]'s pipeline (see `hypercall::mm`).

use std::sync::Arc;

use guest_mm::{
    AddressSpace, CacheMode, Frames, GuestVirtAddr, MmError, MmapProvider, MmapRequest, PageArray, PageProt, PageSize,
    PageTables, Pfn, SpaceConfig, VmFlags, VmaDesc,
};
use vm_memory::GuestAddress;

use crate::layout::{KERNEL_REGION_SIZE, PAGE_SIZE, POOL_PA, POOL_RAM_PA, POOL_SIZE, TABLES_PA, TABLES_SIZE};
use crate::memory::GuestMem;

/// Which guest RAM the kernel page pool hands out (see `crate::layout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolRam {
    /// The fixed pool region at [`POOL_PA`] and all free RAM from
    /// [`POOL_RAM_PA`] to the end of RAM: every page the VMM does not
    /// reserve serves the fault path and eager mappings.
    #[default]
    AllFree,
    /// The fixed pool region only: for a kind whose guest owns the free
    /// RAM (a Solo5 unikernel's memory).
    FixedOnly,
    /// As [`PoolRam::AllFree`], but the top `pages` 2 MiB pages of RAM are
    /// set aside for a hugetlb pool ([`hugetlb_region`]); with no room
    /// for them, as [`PoolRam::AllFree`].
    AllFreeButHuge {
        /// 2 MiB pages set aside.
        pages: u64,
    },
}

/// The 2 MiB-aligned top of RAM that [`PoolRam::AllFreeButHuge`] sets
/// aside for huge pages, if RAM above [`POOL_RAM_PA`] holds it whole.
pub fn hugetlb_region(mem: &GuestMem, pool: PoolRam) -> Option<(GuestAddress, u64)> {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let PoolRam::AllFreeButHuge { pages } = pool else { return None };
    const HUGE: u64 = 2 << 20;
    let size = pages.checked_mul(HUGE).filter(|&s| s > 0)?;
    let last = mem.iter().last()?;
    let end = last.start_addr().0.saturating_add(last.len()) & !(HUGE - 1);
    let start = end.checked_sub(size)?;
    (start >= POOL_RAM_PA.max(last.start_addr().0)).then_some((GuestAddress(start), size))
}

/// The pool regions of `mem` under `pool`: the fixed region, then the
/// whole pages of each RAM region at or above [`POOL_RAM_PA`] (below the
/// huge pages set aside, if any).
pub fn pool_regions(mem: &GuestMem, pool: PoolRam) -> Vec<(GuestAddress, u64)> {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let mut out = vec![(GuestAddress(POOL_PA), POOL_SIZE)];
    let huge_start = hugetlb_region(mem, pool).map_or(u64::MAX, |(a, _)| a.0);
    if pool != PoolRam::FixedOnly {
        for r in mem.iter() {
            let start = r.start_addr().0.max(POOL_RAM_PA).next_multiple_of(PAGE_SIZE);
            let end = (r.start_addr().0.saturating_add(r.len()) & !(PAGE_SIZE - 1)).min(huge_start);
            if end > start {
                out.push((GuestAddress(start), end - start));
            }
        }
    }
    out
}

/// Access rights of a boot mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Access {
    /// Read-only data.
    pub const R: Access = Access { write: false, exec: false };
    /// Read/write data.
    pub const RW: Access = Access { write: true, exec: false };
    /// Code.
    pub const RX: Access = Access { write: false, exec: true };

    fn vm_flags(self) -> VmFlags {
        let mut f = VmFlags::READ;
        if self.write {
            f |= VmFlags::WRITE;
        }
        if self.exec {
            f |= VmFlags::EXEC;
        }
        f
    }
}

/// Maps the frames of the program image (map-kernel-pages of an array
/// the VMM allocated and filled).
pub struct ImageProvider {
    pages: PageArray,
}

impl ImageProvider {
    /// A provider for `pages`, one per 4 KiB of the mapping, pinned in
    /// `frames` (refused if one is not mappable guest RAM).
    pub fn new(frames: &Frames, pages: &[Pfn]) -> Result<Self, MmError> {
        Ok(ImageProvider { pages: PageArray::pin(frames, Arc::from(pages))? })
    }
}

impl MmapProvider for ImageProvider {
    fn name(&self) -> &str {
        "image"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_map_kernel_pages_full(self.pages.clone());
        Ok(())
    }
}

/// Maps a contiguous run of guest RAM from one frame on (a full remap:
/// no page array, no per-frame pins, leaves as large as alignment
/// allows).
struct LinearProvider {
    first: Pfn,
}

impl MmapProvider for LinearProvider {
    fn name(&self) -> &str {
        "linear"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(self.first);
        Ok(())
    }
}

/// The guest's address space.
pub struct Mapper {
    space: AddressSpace<GuestMem>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper").field("cr3", &self.space.cr3()).finish_non_exhaustive()
    }
}

impl Mapper {
    /// An empty address space over `mem` with the layout's table region,
    /// page pool, and the kernel region reserved.
    pub fn new(mem: GuestMem) -> Result<Self, MmError> {
        Self::with_max_map_count(mem, guest_mm::DEFAULT_MAX_MAP_COUNT)
    }

    /// As [`Mapper::new`], allowing at most `max_map_count` VMAs.
    pub fn with_max_map_count(mem: GuestMem, max_map_count: usize) -> Result<Self, MmError> {
        Self::with_options(mem, max_map_count, PoolRam::default())
    }

    /// As [`Mapper::new`], allowing at most `max_map_count` VMAs, the pool
    /// taking the RAM `pool` says.
    pub fn with_options(mem: GuestMem, max_map_count: usize, pool: PoolRam) -> Result<Self, MmError> {
        let mut cfg = SpaceConfig::new((GuestAddress(TABLES_PA), TABLES_SIZE));
        cfg.max_map_count = max_map_count;
        let mut regions = pool_regions(&mem, pool).into_iter();
        cfg.pool_region = regions.next();
        cfg.extra_pool_regions = regions.collect();
        cfg.reserved = vec![(GuestAddress(0), KERNEL_REGION_SIZE)];
        Ok(Mapper { space: AddressSpace::new(mem, cfg)? })
    }

    /// The root table (CR3).
    pub fn cr3(&self) -> GuestAddress {
        self.space.cr3()
    }

    /// The page tables (to translate).
    pub fn page_tables(&self) -> &PageTables<GuestMem> {
        self.space.page_tables()
    }

    /// The address space.
    pub fn space(&self) -> &AddressSpace<GuestMem> {
        &self.space
    }

    /// The address space, mutably (hypercalls).
    pub fn space_mut(&mut self) -> &mut AddressSpace<GuestMem> {
        &mut self.space
    }

    /// Makes `next` the address space; returns the one it replaces (a
    /// process switch: see `hypercall::spaces`).
    pub fn replace_space(&mut self, next: AddressSpace<GuestMem>) -> AddressSpace<GuestMem> {
        std::mem::replace(&mut self.space, next)
    }

    /// Maps the contiguous `[pa, pa + len)` supervisor-only at `va` (upper
    /// half), write-back.
    pub fn map_kernel(&mut self, va: GuestVirtAddr, pa: GuestAddress, len: u64, access: Access) -> Result<(), MmError> {
        let prot = PageProt {
            present: true,
            writable: access.write,
            user: false,
            no_execute: !access.exec,
            cache: CacheMode::WriteBack,
        };
        self.space.page_tables_mut().map_range(va, pa, len, prot, PageSize::Size4K)?;
        Ok(())
    }

    /// Maps the guest RAM `[pa, pa + len)` at the user address `va`: a
    /// shared remap that may not replace anything. Its cost does not grow
    /// with `len` beyond the page tables, which take 2 MiB and 1 GiB
    /// leaves wherever `va` and `pa` are aligned alike.
    pub fn map_user_linear(
        &mut self,
        va: GuestVirtAddr,
        pa: GuestAddress,
        len: u64,
        access: Access,
    ) -> Result<(), MmError> {
        let req = MmapRequest::shared(len, access.vm_flags()).fixed_noreplace(va);
        let provider = LinearProvider { first: Pfn(pa.0 >> guest_mm::PAGE_SHIFT) };
        let mapped = self.space.mmap(&provider, &req)?;
        // Nothing was replaced, and no vCPU runs yet.
        mapped.flush.ignore();
        Ok(())
    }

    /// Maps `pages` (one per 4 KiB) at the user address `va`: a private
    /// map-kernel-pages mapping that may not replace anything.
    pub fn map_user_pages(&mut self, va: GuestVirtAddr, pages: &[Pfn], access: Access) -> Result<(), MmError> {
        let len = pages.len() as u64 * guest_mm::PAGE_SIZE;
        let req = MmapRequest::private(len, access.vm_flags()).fixed_noreplace(va);
        let provider = ImageProvider::new(self.space.frames(), pages)?;
        let mapped = self.space.mmap(&provider, &req)?;
        // Nothing was replaced, and no vCPU runs yet.
        mapped.flush.ignore();
        Ok(())
    }
}
