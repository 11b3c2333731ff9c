//! What a caller asks of [`crate::AddressSpace::mmap`] and what it gets.

use crate::addr::GuestVirtAddr;
use crate::flags::VmFlags;
use crate::paging::{FlushSet, MapStats};

/// Where the mapping may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// Anywhere; `addr`, if given, is a hint used when that range is free.
    #[default]
    Anywhere,
    /// Exactly at `addr`, replacing what was there (`MAP_FIXED`).
    Fixed,
    /// Exactly at `addr`, failing with `EEXIST` if anything is there
    /// (`MAP_FIXED_NOREPLACE`).
    FixedNoReplace,
}

/// An mmap request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MmapRequest {
    /// Hint or fixed address.
    pub addr: Option<GuestVirtAddr>,
    /// Length in bytes; rounded up to whole pages.
    pub len: u64,
    /// Access: any of `READ`, `WRITE`, `EXEC` (empty is `PROT_NONE`).
    pub prot: VmFlags,
    /// Shared rather than private.
    pub shared: bool,
    /// Placement rule.
    pub placement: Placement,
    /// Offset into the provider's object, in pages.
    pub pgoff: u64,
    /// The offset is the mapping's own address in pages, known only once
    /// it is placed (Linux's private anonymous memory: `vm_pgoff = addr
    /// >> PAGE_SHIFT`, which lets neighbouring anonymous mappings merge).
    /// `pgoff` is then ignored.
    pub pgoff_from_addr: bool,
    /// Flags beyond the access bits the VMA gets: [`VmFlags::DROPPABLE`]
    /// (private mappings only), [`VmFlags::LOCKED`] (`MAP_LOCKED`:
    /// dropped again, as Linux drops it, where the mapping cannot be
    /// locked) and [`VmFlags::GROWSDOWN`] (`MAP_GROWSDOWN`).
    pub extra: VmFlags,
}

impl MmapRequest {
    /// A shared request of `len` bytes with `prot`, placed anywhere.
    pub fn shared(len: u64, prot: VmFlags) -> Self {
        MmapRequest { len, prot, shared: true, ..Default::default() }
    }

    /// A private request of `len` bytes with `prot`, placed anywhere.
    pub fn private(len: u64, prot: VmFlags) -> Self {
        MmapRequest { len, prot, ..Default::default() }
    }

    /// The same request at exactly `addr`.
    pub fn fixed(self, addr: GuestVirtAddr) -> Self {
        MmapRequest { addr: Some(addr), placement: Placement::Fixed, ..self }
    }

    /// The same request at exactly `addr`, never replacing.
    pub fn fixed_noreplace(self, addr: GuestVirtAddr) -> Self {
        MmapRequest { addr: Some(addr), placement: Placement::FixedNoReplace, ..self }
    }

    /// The same request with a page offset.
    pub fn pgoff(self, pgoff: u64) -> Self {
        MmapRequest { pgoff, ..self }
    }

    /// The same request with droppable pages ([`VmFlags::DROPPABLE`]).
    pub fn droppable(self) -> Self {
        MmapRequest { extra: self.extra | VmFlags::DROPPABLE, ..self }
    }

    /// The same request, locked (`MAP_LOCKED`: [`VmFlags::LOCKED`]; the
    /// caller populates it and checks `RLIMIT_MEMLOCK`).
    pub fn locked(self) -> Self {
        MmapRequest { extra: self.extra | VmFlags::LOCKED, ..self }
    }

    /// The same request with the offset taken from the address it gets
    /// (anonymous memory; see [`MmapRequest::pgoff_from_addr`]).
    pub fn anonymous(self) -> Self {
        MmapRequest { pgoff_from_addr: true, ..self }
    }
}

/// A completed mapping.
#[derive(Debug)]
#[must_use = "a fixed mapping may have replaced entries that must be flushed"]
pub struct Mapped {
    /// Where it was placed.
    pub addr: GuestVirtAddr,
    /// Entries a fixed mapping replaced; empty otherwise.
    pub flush: FlushSet,
    /// What complete wrote.
    pub stats: MapStats,
}

/// Counters that tests and reports read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceStats {
    /// Page-table pages in use, the root included.
    pub tables_in_use: usize,
    /// Free pages in the kernel page pool.
    pub pool_free: usize,
    /// Number of VMAs.
    pub vmas: usize,
    /// Pins held in the frame state: one per frame of each live pinned
    /// array (not per mapping).
    pub pins: u64,
}
