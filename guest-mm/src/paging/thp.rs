//! The page-table side of transparent huge pages (THP): whether a 2 MiB
//! slot is free for a huge leaf (Linux's `pmd_none`), and fork's
//! write-protection of a 2 MiB leaf both spaces then share.
//!
//! A THP leaf is an ordinary 2 MiB leaf over 512 pool frames (raw, not
//! `COUNTED`: the faulted run that pins its frames is the address
//! space's). Splitting one (PTE-mapping it) is [`PageTables::split_huge`];
//! partial unmaps and protects split through `split.rs` as for any huge
//! leaf. This module knows nothing of the policy that decides where THPs
//! go (`space/thp.rs`).

use vm_memory::GuestMemory;

use super::entry::{classify, index, Entry, COW, FORKED, P};
use super::flush::FlushSet;
use super::page_tables::PageTables;
use super::table::Table;
use crate::addr::{GuestVirtAddr, PageSize};

impl<M: GuestMemory> PageTables<M> {
    /// Is the 2 MiB slot holding `va` empty: no leaf of any size and no
    /// leaf table below it (so one 2 MiB leaf may be written there)?
    pub fn huge_slot_is_empty(&self, va: GuestVirtAddr) -> bool {
        let m2 = PageSize::Size2M.bytes();
        let base = va.raw() & !(m2 - 1);
        let mut frame = self.root;
        for level in (2..=4u32).rev() {
            let Ok(t) = Table::new(&self.mem, frame, false) else { return false };
            let raw = t.get(index(base, level));
            match classify(raw, level) {
                Entry::Empty => return true,
                Entry::Table(f) if level > 2 => frame = f,
                _ => return false,
            }
        }
        false
    }

    /// Is `va` mapped by a present 2 MiB leaf that a fork shared (see
    /// [`PageTables::share_huge_for_fork`])?
    pub fn is_fork_shared_huge(&self, va: GuestVirtAddr) -> bool {
        self.leaf_slot(va.raw(), false).is_some_and(|(t, i)| {
            let raw = t.get(i);
            classify(raw, 2) == Entry::Leaf(PageSize::Size2M) && raw & P != 0 && raw & (COW | FORKED) == COW | FORKED
        }) && self.translate(va).is_some_and(|t| t.size == PageSize::Size2M)
    }

    /// Marks the 2 MiB leaves lying wholly inside `[va, va + len)` for
    /// which `wanted(first address)` holds shared by a fork: `RW` cleared,
    /// `COW` and `FORKED` set, each in one compare-and-exchange. A write
    /// fault then splits the leaf and copies the 4 KiB page written (the
    /// pieces inherit the marks). Returns the flush the downgraded
    /// writable entries need.
    pub fn share_huge_for_fork(&mut self, va: GuestVirtAddr, len: u64, wanted: impl Fn(u64) -> bool) -> FlushSet {
        let mut flush = FlushSet::default();
        let end = va.raw().saturating_add(len);
        for leaf in self.leaves(va, len) {
            let (s, size) = (leaf.va.raw(), leaf.size.bytes());
            if leaf.size != PageSize::Size2M || s < va.raw() || s + size > end || !wanted(s) {
                continue;
            }
            let Some((t, i)) = self.leaf_slot(s, true) else { continue };
            let is_2m = |raw| classify(raw, 2) == Entry::Leaf(PageSize::Size2M);
            super::fork_share::share_entry(&t, i, s, size, &mut flush, is_2m);
        }
        flush
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use vm_memory::GuestAddress;

    use super::super::test_util::*;
    use super::*;

    #[test]
    fn a_huge_slot_is_empty_only_without_leaf_or_table() {
        let mut pt = tables(64 << 20);
        assert!(pt.huge_slot_is_empty(gva(M2 + K4)));
        pt.map_range(gva(M2), GuestAddress(4 * M2), M2, rw(), PageSize::Size2M).unwrap();
        assert!(!pt.huge_slot_is_empty(gva(M2 + 5 * K4)), "a 2 MiB leaf");
        pt.insert_pages(gva(3 * M2 + 7 * K4), &arr(&[crate::addr::Pfn(9)]), rw()).unwrap();
        assert!(!pt.huge_slot_is_empty(gva(3 * M2)), "a leaf table");
        pt.unmap_range(gva(3 * M2 + 7 * K4), K4).unwrap().flush.ignore();
        assert!(pt.huge_slot_is_empty(gva(3 * M2)), "the empty table was freed");
        assert!(pt.huge_slot_is_empty(gva(5 * M2)));
    }

    #[test]
    fn a_shared_huge_leaf_is_read_only_and_its_split_pieces_stay_shared() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(M2), GuestAddress(4 * M2), 2 * M2, rw(), PageSize::Size2M).unwrap();
        // Only the leaves the predicate names, and only whole ones.
        let fl = pt.share_huge_for_fork(gva(M2), 2 * M2, |s| s == M2);
        assert_eq!(fl.ranges(), &[(gva(M2), M2)]);
        assert!(pt.is_fork_shared_huge(gva(M2 + K4)) && !pt.is_fork_shared_huge(gva(2 * M2)));
        assert!(pt.share_huge_for_fork(gva(M2 + K4), M2, |_| true).is_empty(), "not wholly inside");
        let t = pt.translate(gva(M2 + 3 * K4)).unwrap();
        assert!(!t.prot.writable && pt.is_copy_on_write(gva(M2)));
        // mprotect keeps it read-only.
        pt.protect_range(gva(M2), M2, rw()).unwrap().ignore();
        assert!(!pt.translate(gva(M2)).unwrap().prot.writable);
        // Split: 512 pieces over the same frames, each fork-shared.
        let rec = pt.split_huge(gva(M2 + 9 * K4)).unwrap().unwrap();
        assert_eq!((rec.va, rec.size), (gva(M2), PageSize::Size2M));
        let leaves = pt.leaves(gva(M2), M2);
        assert_eq!(leaves.len(), 512);
        for (i, l) in leaves.iter().enumerate() {
            assert_eq!(l.size, PageSize::Size4K);
            let t = pt.translate(l.va).unwrap();
            assert_eq!(t.phys, GuestAddress(4 * M2 + i as u64 * K4));
            assert!(pt.is_fork_shared(l.va) && !t.prot.writable, "piece {i}");
        }
        assert!(!pt.is_fork_shared_huge(gva(M2)));
        assert_eq!(pt.split_huge(gva(M2)).unwrap(), None, "nothing left to split");
        // The unshared leaf is still one writable leaf.
        let t = pt.translate(gva(2 * M2 + K4)).unwrap();
        assert!(t.prot.writable && t.size == PageSize::Size2M);
    }
}
