//! The ordered, non-overlapping set of VMAs of one address space, with
//! splitting at arbitrary page boundaries, gap search and merging.
//!
//! VMAs live in a `BTreeMap` keyed by start: lookup, insert, remove, split
//! and merge are O(log n), range walks O(log n + k). The gaps between them
//! live beside it in [`FreeRanges`] (see `gaps.rs` for why a separate,
//! augmented index), so top-down placement is O(log n) too rather than a
//! walk over the VMAs. Only [`VmaTree::insert`] and
//! [`VmaTree::remove_range`] change which addresses are covered, and they
//! update both; everything else that edits VMAs keeps their bounds or
//! their union (a split or a merge), so the gaps stay as they are.
//!
//! The tree only keeps ranges consistent; it does not touch page tables.

use std::collections::BTreeMap;

use super::gaps::FreeRanges;
use crate::addr::GuestVirtAddr;
use crate::vma::Vma;

/// VMAs keyed by start address, with an index of the gaps between them.
#[derive(Clone, Default, Debug)]
pub struct VmaTree {
    map: BTreeMap<u64, Vma>,
    /// The complement of the VMAs' union, for placement.
    free: FreeRanges,
}

impl VmaTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of VMAs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no VMAs.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All VMAs in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.map.values()
    }

    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.map.range(..=addr).next_back().map(|(_, v)| v).filter(|v| v.contains(addr))
    }

    /// VMAs that intersect `[start, end)`, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> {
        let first =
            self.map.range(..start).next_back().filter(|(_, v)| v.end > start).map(|(k, _)| *k).unwrap_or(start);
        self.map.range(first..end).map(|(_, v)| v).filter(move |v| v.end > start && v.start.raw() < end)
    }

    /// Does anything intersect `[start, end)`?
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_some()
    }

    /// Is every byte of `[start, end)` covered by some VMA?
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for v in self.overlapping(start, end) {
            if v.start.raw() > at {
                return false;
            }
            at = v.end;
        }
        at >= end
    }

    /// Inserts a VMA; the caller guarantees it overlaps nothing.
    pub(crate) fn insert(&mut self, vma: Vma) {
        debug_assert!(!self.intersects(vma.start.raw(), vma.end));
        self.free.take(vma.start.raw(), vma.end);
        self.map.insert(vma.start.raw(), vma);
    }

    /// Makes `addr` a VMA boundary, splitting the VMA that spans it.
    pub(crate) fn split_at(&mut self, addr: u64) {
        let Some((&k, _)) = self.map.range(..addr).next_back() else {
            return;
        };
        let Some(v) = self.map.get_mut(&k) else {
            return;
        };
        if v.end > addr {
            if let Ok(at) = GuestVirtAddr::try_new(addr) {
                let hi = v.split_off(at);
                self.map.insert(addr, hi);
            }
        }
    }

    /// Removes everything in `[start, end)`, splitting VMAs that straddle
    /// its ends, and returns the removed pieces in order.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) -> Vec<Vma> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(k, _)| *k).collect();
        if !keys.is_empty() {
            self.free.give(start, end);
        }
        keys.into_iter().filter_map(|k| self.map.remove(&k)).collect()
    }

    /// Mutable access to the VMAs that start inside `[start, end)`. The
    /// caller must not change their bounds (the gap index would not know).
    pub(crate) fn range_mut(&mut self, start: u64, end: u64) -> impl Iterator<Item = &mut Vma> {
        self.map.range_mut(start..end).map(|(_, v)| v)
    }

    /// Merges the VMA starting at `addr` with its neighbours where
    /// [`Vma::can_merge_with`] allows. Returns the start of the result.
    pub(crate) fn merge_around(&mut self, addr: u64) -> u64 {
        let mut start = addr;
        // Fold into the previous VMA.
        if let Some((&pk, prev)) = self.map.range(..addr).next_back() {
            if let Some(cur) = self.map.get(&addr) {
                if prev.can_merge_with(cur) {
                    if let Some(cur) = self.map.remove(&addr) {
                        if let Some(p) = self.map.get_mut(&pk) {
                            p.end = cur.end;
                        }
                        start = pk;
                    }
                }
            }
        }
        // Fold the next VMA in.
        let end = self.map.get(&start).map(|v| v.end);
        if let Some(end) = end {
            let mergeable = match (self.map.get(&start), self.map.get(&end)) {
                (Some(c), Some(n)) => c.can_merge_with(n),
                _ => false,
            };
            if mergeable {
                if let Some(n) = self.map.remove(&end) {
                    if let Some(c) = self.map.get_mut(&start) {
                        c.end = n.end;
                    }
                }
            }
        }
        start
    }

    /// Highest `align`-aligned start of a free `len`-byte range inside
    /// `[lo, hi)` (top-down, like the kernel's default placement); `align`
    /// must be a power of two. O(log n), see `gaps.rs`.
    pub fn find_gap_top_down(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        self.free.find_top_down(len, align.max(1), lo, hi)
    }

    /// Checks the gap index against the VMAs: every augmented value, and
    /// the free ranges exactly the complement of the VMAs.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        self.free.check()?;
        let mut want = Vec::new();
        let mut at = 0;
        for v in self.map.values() {
            if v.start.raw() > at {
                want.push((at, v.start.raw()));
            }
            at = v.end;
        }
        if at < super::gaps::SPACE_END {
            want.push((at, super::gaps::SPACE_END));
        }
        let got = self.free.ranges();
        if got != want {
            return Err(format!("gaps {got:#x?}, VMAs leave {want:#x?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flags::{PageProt, VmFlags};
    use crate::vma::ProviderId;

    fn vma(start: u64, end: u64, pgoff: u64, flags: VmFlags) -> Vma {
        Vma {
            start: GuestVirtAddr::try_new(start).unwrap(),
            end,
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            provider: ProviderId(1),
            provider_name: Arc::from("t"),
            ops: None,
            private: None,
        }
    }

    #[test]
    fn find_and_overlap() {
        let mut t = VmaTree::new();
        t.insert(vma(0x1000, 0x3000, 0, VmFlags::READ));
        t.insert(vma(0x5000, 0x6000, 0, VmFlags::READ));
        assert!(t.find(0x0fff).is_none());
        assert_eq!(t.find(0x2fff).unwrap().start().raw(), 0x1000);
        assert!(t.find(0x3000).is_none());
        assert_eq!(t.overlapping(0x2000, 0x5001).count(), 2);
        assert_eq!(t.overlapping(0x3000, 0x5000).count(), 0);
        assert!(t.covers(0x1000, 0x3000));
        assert!(!t.covers(0x1000, 0x5000));
    }

    #[test]
    fn remove_range_splits_and_keeps_pgoff() {
        let mut t = VmaTree::new();
        t.insert(vma(0x10000, 0x20000, 100, VmFlags::READ));
        let removed = t.remove_range(0x12000, 0x14000);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].pgoff(), 102);
        let left: Vec<_> = t.iter().map(|v| (v.start().raw(), v.end(), v.pgoff())).collect();
        assert_eq!(left, vec![(0x10000, 0x12000, 100), (0x14000, 0x20000, 104)]);
    }

    #[test]
    fn merge_rules() {
        let mut t = VmaTree::new();
        t.insert(vma(0x1000, 0x2000, 0, VmFlags::READ));
        t.insert(vma(0x2000, 0x3000, 1, VmFlags::READ));
        t.insert(vma(0x3000, 0x4000, 2, VmFlags::READ));
        assert_eq!(t.merge_around(0x2000), 0x1000);
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().next().unwrap().end(), 0x4000);
        // pgoff not contiguous: no merge.
        t.insert(vma(0x4000, 0x5000, 9, VmFlags::READ));
        t.merge_around(0x4000);
        assert_eq!(t.len(), 2);
        // VM_SPECIAL forbids merging.
        t.insert(vma(0x6000, 0x7000, 0, VmFlags::READ | VmFlags::IO));
        t.insert(vma(0x7000, 0x8000, 1, VmFlags::READ | VmFlags::IO));
        t.merge_around(0x7000);
        assert_eq!(t.len(), 4);
        // Different flags: no merge.
        t.insert(vma(0x8000, 0x9000, 2, VmFlags::READ | VmFlags::WRITE));
        t.merge_around(0x8000);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn gap_search_top_down() {
        let mut t = VmaTree::new();
        assert_eq!(t.find_gap_top_down(0x1000, 0x1000, 0x1000, 0x10000), Some(0xf000));
        t.insert(vma(0xe000, 0x10000, 0, VmFlags::READ));
        assert_eq!(t.find_gap_top_down(0x1000, 0x1000, 0x1000, 0x10000), Some(0xd000));
        assert_eq!(t.find_gap_top_down(0x2000, 0x4000, 0x1000, 0x10000), Some(0xc000));
        t.insert(vma(0x1000, 0xe000, 0, VmFlags::READ));
        assert_eq!(t.find_gap_top_down(0x1000, 0x1000, 0x1000, 0x10000), None);
        assert_eq!(t.find_gap_top_down(0x1000, 0x1000, 0x10000, 0x1000), None);
        assert_eq!(t.find_gap_top_down(0, 0x1000, 0, 0x1000), None);
    }
}
