//! x86-64 4-level page tables that live in guest memory.
//!
//! The tables are read by the guest's hardware page walker while vCPUs
//! run, so every entry is written as one aligned 8-byte store and a new
//! table is completely filled before it is linked into its parent.
//! Huge leaves (2 MiB, 1 GiB) are used wherever the virtual range, the
//! physical range and their alignment allow, split only when a partial
//! unmap or protect needs it, and tables are freed when they become empty.
//!
//! This module does not know about VMAs, providers or policy: it maps what
//! it is told to. Validation of frames and ranges happens in prepare. It
//! does not flush TLBs either: unmap and protect return a [`FlushSet`].
//!
//! [`PageTables`] offers:
//!
//! - [`PageTables::map_range`]: a contiguous guest-physical range, with the
//!   largest leaves alignment allows (up to a `max_leaf`), uncounted;
//! - [`PageTables::insert_pages`]: the batched hot path for pinned arrays
//!   of 4 KiB frames ([`crate::PageArray`]);
//! - [`PageTables::unmap_range`] and [`PageTables::protect_range`], which
//!   split cut huge leaves with every table frame reserved first;
//! - [`PageTables::translate`], [`PageTables::leaves`],
//!   [`PageTables::resident_pages`] and [`PageTables::census`], which read
//!   guest memory like the CPU does, trusting no bookkeeping;
//! - [`PageTables::restore`], the rollback of an unmap.
//!
//! Map and insert undo everything on error; unmap and protect fail only
//! before changing anything. Files: `entry.rs` (bits), `table.rs` (the
//! only `unsafe`: a table as 512 atomics), `walk.rs` (descend, create,
//! undo), `split.rs`, one file per operation (`fork_share.rs`: fork's
//! write-protect and a child's leaves; `thp.rs`: transparent huge pages'
//! 2 MiB slots and their fork sharing), `flush.rs`, `stats.rs`.

#[cfg(test)]
mod accessed_tests;
mod census;
mod cow;
mod entry;
mod flush;
mod fork_share;
mod insert;
mod map;
#[cfg(test)]
mod model_tests;
mod page_tables;
mod protect;
mod resident;
mod snapshot;
mod split;
mod stats;
pub(crate) mod table;
mod thp;
mod translate;
mod unmap;
mod walk;

pub use census::{BadLink, TableCensus, TableInfo};
pub use cow::UsedLeaf;
pub(crate) use entry::split_child as split_leaf_child;
pub use entry::PAT_MSR_VALUE;
pub use flush::FlushSet;
pub use page_tables::PageTables;
pub use snapshot::Leaf;
pub use split::SplitRecord;
pub use stats::MapStats;
pub use translate::Translation;
pub use unmap::Unmapped;

#[cfg(test)]
mod test_util {
    #![allow(clippy::unwrap_used)]
    //! Shared fixtures for the unit tests of this module.

    use vm_memory::{GuestAddress, GuestMemoryMmap};

    use super::entry::{classify, index, Entry};
    use super::table::Table;
    use super::{Leaf, PageTables};
    use crate::addr::GuestVirtAddr;
    use crate::flags::{PageProt, VmFlags};
    use crate::frames::TableAllocator;

    /// 4 KiB, 2 MiB and 1 GiB, for readable test ranges.
    pub const K4: u64 = 4 << 10;
    /// 2 MiB.
    pub const M2: u64 = 2 << 20;
    /// 1 GiB.
    pub const G1: u64 = 1 << 30;

    /// The page tables the tests use.
    pub(super) type Tables = PageTables<GuestMemoryMmap<()>>;

    /// Frames the tests' frame state tracks (64 MiB).
    pub(super) const FRAMES: u64 = 16384;

    /// `pfns` pinned as one array in a frame state of `FRAMES` frames.
    pub(super) fn arr(pfns: &[crate::addr::Pfn]) -> crate::action::PageArray {
        let frames = crate::frames::Frames::new(FRAMES, None).unwrap();
        crate::action::PageArray::pin(&frames, pfns.into()).unwrap()
    }

    /// `pfns` as an array in a frame state of `frames` frames, without
    /// checking or pinning them (to reach the insert loop's own check).
    pub(super) fn unchecked(pfns: &[crate::addr::Pfn], frames: u64) -> crate::action::PageArray {
        let frames = crate::frames::Frames::new(frames, None).unwrap();
        crate::action::PageArray::from_pinned(frames.pin_unchecked_for_test(pfns.into()))
    }

    /// Tables over `mem_size` bytes of guest memory, the top 16 MiB of
    /// which hold the tables.
    pub(super) fn tables(mem_size: u64) -> Tables {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem_size as usize)]).unwrap();
        let alloc = TableAllocator::new(GuestAddress(mem_size - (16 << 20)), 16 << 20).unwrap();
        PageTables::new(mem, alloc).unwrap()
    }

    pub(super) fn gva(va: u64) -> GuestVirtAddr {
        GuestVirtAddr::try_new(va).unwrap()
    }

    pub(super) fn rw() -> PageProt {
        PageProt::from_flags(VmFlags::READ | VmFlags::WRITE)
    }

    /// Every leaf of `[va, va + len)`.
    pub(super) fn snapshot(pt: &Tables, va: u64, len: u64) -> Vec<Leaf> {
        pt.leaves(gva(va), len)
    }

    /// Overwrites the entry at `level` for `va` (the tables down to it must
    /// exist), as a guest scribbling on its tables would.
    pub(super) fn poke(pt: &Tables, va: u64, level: u32, value: u64) {
        let mut frame = crate::addr::Pfn::containing(pt.root());
        for l in (level + 1..=4).rev() {
            let t = Table::new(pt.memory(), frame, false).unwrap();
            match classify(t.get(index(va, l)), l) {
                Entry::Table(f) => frame = f,
                e => panic!("no table at level {l}: {e:?}"),
            }
        }
        Table::new(pt.memory(), frame, true).unwrap().set(index(va, level), value);
    }

    #[test]
    fn new_tables_have_an_empty_root() {
        let pt = tables(64 << 20);
        assert_eq!(pt.tables_in_use(), 1);
        assert_eq!(pt.root(), GuestAddress(48 << 20));
        assert!(pt.leaves(gva(0), 1 << 47).is_empty());
        // A table region outside guest memory is refused.
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let alloc = TableAllocator::new(GuestAddress(1 << 20), 4096).unwrap();
        assert!(PageTables::new(mem, alloc).is_err());
    }
}
