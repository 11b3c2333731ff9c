//! The VMM's handle on guest-mm at boot: every mapping the VMM makes for
//! itself (the supervisor kernel region) and for the guest program
//! (its image and stacks) goes through here, so the page tables come from
//! guest-mm only.
//!
//! Today this drives guest-mm's [`PageTables`] directly; once guest-mm's
//! `AddressSpace` is available the user mappings move to its `mmap` (with
//! a map-kernel-pages provider) and this is the one place to change.

use guest_mm::{CacheMode, GuestVirtAddr, MapCounts, MmError, PageProt, PageSize, PageTables, Pfn, TableAllocator};
use vm_memory::GuestAddress;

use crate::layout::{PAGE_SIZE, TABLES_PA, TABLES_SIZE};
use crate::memory::GuestMem;

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

    fn prot(self, user: bool) -> PageProt {
        PageProt { present: true, writable: self.write, user, no_execute: !self.exec, cache: CacheMode::WriteBack }
    }
}

/// Builds the boot mappings.
pub struct BootMapper {
    pt: PageTables<GuestMem>,
    counts: MapCounts,
}

impl std::fmt::Debug for BootMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootMapper").field("root", &self.pt.root()).finish_non_exhaustive()
    }
}

impl BootMapper {
    /// Page tables over `mem`, with table pages from the layout's region.
    pub fn new(mem: GuestMem, ram_size: u64) -> Result<Self, MmError> {
        let alloc = TableAllocator::new(GuestAddress(TABLES_PA), TABLES_SIZE)?;
        Ok(BootMapper { pt: PageTables::new(mem, alloc)?, counts: MapCounts::new(ram_size / PAGE_SIZE) })
    }

    /// The root table (CR3).
    pub fn cr3(&self) -> GuestAddress {
        self.pt.root()
    }

    /// The page tables (to translate).
    pub fn page_tables(&self) -> &PageTables<GuestMem> {
        &self.pt
    }

    /// Maps the contiguous `[pa, pa + len)` supervisor-only at `va` (upper
    /// half).
    pub fn map_kernel(&mut self, va: u64, pa: u64, len: u64, access: Access) -> Result<(), MmError> {
        let va = GuestVirtAddr::try_new(va)?;
        self.pt.map_range(va, GuestAddress(pa), len, access.prot(false), PageSize::Size4K)?;
        Ok(())
    }

    /// Maps `pages` (one per 4 KiB) user-accessible from `va` (lower half):
    /// a map-kernel-pages of the program's frames.
    pub fn map_user_pages(&mut self, va: u64, pages: &[Pfn], access: Access) -> Result<(), MmError> {
        let va = GuestVirtAddr::try_new(va)?;
        self.pt.insert_pages(va, pages, access.prot(true), &mut self.counts)?;
        Ok(())
    }
}
