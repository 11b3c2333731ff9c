//! The ordered, non-overlapping set of VMAs of one address space, with
//! splitting at arbitrary page boundaries, gap search and merging.
//!
//! # Layout
//!
//! The VMAs themselves (over 100 bytes each) live in a slab (`slab.rs`)
//! and are named by `u32` handles; three indexes refer to them:
//!
//! - a `BTreeMap` from start to handle, for everything ordered: iteration,
//!   range walks, neighbours (O(log n + k));
//! - a radix over the page number (`radix.rs`), for [`VmaTree::find`]:
//!   at most five dependent loads whatever the number of VMAs, where a
//!   search tree walks O(log n) nodes with a comparison per key;
//! - the gaps between VMAs in [`FreeRanges`] (`gaps.rs`), so top-down
//!   placement is O(log n) rather than a walk over the VMAs.
//!
//! Keeping the payloads out of the index nodes keeps the ordered map's
//! nodes small (16 bytes an entry instead of ~140), and the radix answers
//! a lookup without touching any VMA but the one it returns. Measured
//! against the alternatives in docs/guest-mm.md ("VMA lookup").
//!
//! # Consistency
//!
//! Every method that changes VMAs updates each index it affects before it
//! returns: [`VmaTree::insert`] and [`VmaTree::remove_range`] change which
//! addresses are covered (all three indexes); a split or a merge changes
//! which handle covers a range (the map and the radix, not the gaps);
//! [`VmaTree::update_range`] and [`VmaTree::starting_at_mut`] hand out
//! VMAs whose bounds the caller must not change. `check` (tests) compares
//! every index with the slab from scratch.
//!
//! The tree only keeps ranges consistent; it does not touch page tables.
//!
//! # Budget
//!
//! A tree made [`VmaTree::with_budget`] counts its VMAs in that shared
//! [`VmaBudget`] as it gains and loses them (insert, split, remove,
//! merge, clone, drop); it never refuses one: its space checks the
//! budget before an operation changes anything.

use std::collections::BTreeMap;

use super::gaps::FreeRanges;
use super::radix::{AddrRadix, EMPTY};
use super::slab::Slab;
use super::VmaBudget;
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::flags::VmFlags;
use crate::vma::Vma;

/// The free distance kept below a `VM_GROWSDOWN` VMA: new mappings are
/// not placed in it, and the VMA does not grow closer than this to an
/// accessible VMA below (Linux's `stack_guard_gap`, 256 pages by default).
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// VMAs in a slab, indexed by start, by address (radix) and by gap.
#[derive(Default, Debug)]
pub struct VmaTree {
    /// The VMAs, by handle.
    slab: Slab,
    /// Start to handle, in address order.
    order: BTreeMap<u64, u32>,
    /// Page to handle, for lookups.
    radix: AddrRadix,
    /// The complement of the VMAs' union, for placement.
    free: FreeRanges,
    /// Where its VMAs are counted, if anywhere.
    budget: Option<VmaBudget>,
}

impl Clone for VmaTree {
    /// A copy whose VMAs are counted in the same budget.
    fn clone(&self) -> Self {
        if let Some(b) = &self.budget {
            b.charge(self.len());
        }
        VmaTree {
            slab: self.slab.clone(),
            order: self.order.clone(),
            radix: self.radix.clone(),
            free: self.free.clone(),
            budget: self.budget.clone(),
        }
    }
}

impl Drop for VmaTree {
    fn drop(&mut self) {
        self.credit(self.len());
    }
}

impl VmaTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty tree whose VMAs count in `budget`.
    pub fn with_budget(budget: VmaBudget) -> Self {
        VmaTree {
            slab: Slab::default(),
            order: BTreeMap::new(),
            radix: AddrRadix::default(),
            free: FreeRanges::default(),
            budget: Some(budget),
        }
    }

    /// The budget its VMAs count in.
    pub fn budget(&self) -> Option<&VmaBudget> {
        self.budget.as_ref()
    }

    fn charge(&self, n: usize) {
        if let Some(b) = &self.budget {
            b.charge(n);
        }
    }

    fn credit(&self, n: usize) {
        if let Some(b) = &self.budget {
            b.credit(n);
        }
    }

    /// Number of VMAs.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there are no VMAs.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The VMA with handle `h` (present for every handle in an index).
    fn at(&self, h: u32) -> Option<&Vma> {
        self.slab.get(h)
    }

    /// All VMAs in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.order.values().filter_map(|&h| self.at(h))
    }

    /// The VMA containing `addr`: one radix walk, then the VMA is checked
    /// (a non-canonical `addr` aliases a canonical page).
    #[inline]
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.radix.get(addr).and_then(|h| self.at(h)).filter(|v| v.contains(addr))
    }

    /// Handle of the last VMA starting before `addr`, with its start.
    fn before(&self, addr: u64) -> Option<(u64, u32)> {
        self.order.range(..addr).next_back().map(|(&k, &h)| (k, h))
    }

    /// VMAs that intersect `[start, end)`, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> {
        let first =
            self.before(start).filter(|&(_, h)| self.at(h).is_some_and(|v| v.end > start)).map_or(start, |(k, _)| k);
        self.order
            .range(first..end.max(first))
            .filter_map(|(_, &h)| self.at(h))
            .filter(move |v| v.end > start && v.start.raw() < end)
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
        let (start, end) = (vma.start.raw(), vma.end);
        self.free.take(start, end);
        let h = self.slab.put(vma);
        self.radix.set(start, end, h);
        self.order.insert(start, h);
        self.charge(1);
    }

    /// Makes `addr` a VMA boundary, splitting the VMA that spans it.
    pub(crate) fn split_at(&mut self, addr: u64) {
        let Some((_, h)) = self.before(addr) else {
            return;
        };
        let Some(v) = self.slab.get_mut(h) else {
            return;
        };
        if v.end > addr {
            if let Ok(at) = GuestVirtAddr::try_new(addr) {
                let hi = v.split_off(at);
                let end = hi.end;
                let h2 = self.slab.put(hi);
                self.order.insert(addr, h2);
                self.radix.set(addr, end, h2);
                self.charge(1);
            }
        }
    }

    /// Removes everything in `[start, end)`, splitting VMAs that straddle
    /// its ends, and returns the removed pieces in order. An empty range
    /// removes and splits nothing.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) -> Vec<Vma> {
        if start >= end {
            return Vec::new();
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.order.range(start..end).map(|(k, _)| *k).collect();
        if !keys.is_empty() {
            self.free.give(start, end);
            self.radix.set(start, end, EMPTY);
        }
        let removed: Vec<Vma> =
            keys.into_iter().filter_map(|k| self.order.remove(&k)).filter_map(|h| self.slab.take(h)).collect();
        self.credit(removed.len());
        removed
    }

    /// Calls `f` on each VMA that starts inside `[start, end)`, in order.
    /// `f` must not change their bounds (the indexes would not know).
    pub(crate) fn update_range(&mut self, start: u64, end: u64, mut f: impl FnMut(&mut Vma)) {
        for (_, &h) in self.order.range(start..end.max(start)) {
            if let Some(v) = self.slab.get_mut(h) {
                f(v);
            }
        }
    }

    /// Mutable access to the VMA that starts at `start`, if one does. The
    /// caller must not change its bounds.
    pub(crate) fn starting_at_mut(&mut self, start: u64) -> Option<&mut Vma> {
        let h = *self.order.get(&start)?;
        self.slab.get_mut(h)
    }

    /// Folds the VMA with handle `next` (starting at `at`) into `prev`,
    /// which ends at `at`.
    fn fold(&mut self, prev: u32, at: u64, next: u32) {
        if self.order.remove(&at).is_some() {
            self.credit(1);
        }
        if let Some(n) = self.slab.take(next) {
            self.radix.set(at, n.end, prev);
            if let Some(p) = self.slab.get_mut(prev) {
                p.end = n.end;
            }
        }
    }

    /// Merges the VMA starting at `addr` with its neighbours where
    /// [`Vma::can_merge_with`] allows. Returns the start of the result.
    pub(crate) fn merge_around(&mut self, addr: u64) -> u64 {
        let Some(&cur) = self.order.get(&addr) else {
            return addr;
        };
        let mut start = addr;
        let mut keep = cur;
        // Fold into the previous VMA.
        if let Some((pk, prev)) = self.before(addr) {
            let ok = match (self.at(prev), self.at(cur)) {
                (Some(p), Some(c)) => p.can_merge_with(c),
                _ => false,
            };
            if ok {
                self.fold(prev, addr, cur);
                start = pk;
                keep = prev;
            }
        }
        // Fold the next VMA in.
        let Some(end) = self.at(keep).map(|v| v.end) else {
            return start;
        };
        if let Some(&next) = self.order.get(&end) {
            let ok = match (self.at(keep), self.at(next)) {
                (Some(c), Some(n)) => c.can_merge_with(n),
                _ => false,
            };
            if ok {
                self.fold(keep, end, next);
            }
        }
        start
    }

    /// Highest `align`-aligned start of a free `len`-byte range inside
    /// `[lo, hi)` (top-down, like the kernel's default placement); `align`
    /// must be a power of two. A range never ends within
    /// [`STACK_GUARD_GAP`] of a `VM_GROWSDOWN` VMA above it (Linux's
    /// `vm_start_gap`): the search is redone below that gap, once per
    /// such VMA met. O(log n) per search, see `gaps.rs`.
    pub fn find_gap_top_down(&self, len: u64, align: u64, lo: u64, mut hi: u64) -> Option<u64> {
        loop {
            let at = self.free.find_top_down(len, align.max(1), lo, hi)?;
            let end = at.checked_add(len)?;
            let next = self.order.range(end..).next().and_then(|(_, &h)| self.at(h));
            match next {
                Some(n) if n.flags.contains(VmFlags::GROWSDOWN) && n.start.raw() - end < STACK_GUARD_GAP => {
                    hi = n.start.raw().checked_sub(STACK_GUARD_GAP)?;
                    if hi <= lo {
                        return None;
                    }
                }
                _ => return Some(at),
            }
        }
    }

    /// Where `v`'s reach begins for placement: its start, or for a
    /// `VM_GROWSDOWN` VMA the guard gap below it (Linux's `vm_start_gap`).
    pub fn start_gap(v: &Vma) -> u64 {
        if v.flags.contains(VmFlags::GROWSDOWN) {
            v.start.raw().saturating_sub(STACK_GUARD_GAP)
        } else {
            v.start.raw()
        }
    }

    /// The last VMA ending at or below `addr` (`find_vma_prev` for an
    /// address in a hole).
    pub fn prev_of(&self, addr: u64) -> Option<&Vma> {
        self.before(addr).and_then(|(_, h)| self.at(h)).filter(|v| v.end <= addr)
    }

    /// The first VMA starting at or above `addr`.
    pub fn next_from(&self, addr: u64) -> Option<&Vma> {
        self.order.range(addr..).next().and_then(|(_, &h)| self.at(h))
    }

    /// Checks every index against the slab from scratch: the gap index's
    /// augmented values and ranges (exactly the complement of the VMAs),
    /// the radix's runs (exactly the VMAs, by handle, with no uniform or
    /// stray table) and the slab's live count.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        self.free.check()?;
        let mut want = Vec::new();
        let mut runs = Vec::new();
        let mut at = 0;
        for (&k, &h) in &self.order {
            let v = self.at(h).ok_or_else(|| format!("handle {h} at {k:#x} not live"))?;
            if v.start.raw() != k {
                return Err(format!("VMA {v:?} keyed at {k:#x}"));
            }
            if v.start.raw() > at {
                want.push((at, v.start.raw()));
            }
            at = v.end;
            runs.push((v.start.raw(), v.end, h));
        }
        if at < super::gaps::SPACE_END {
            want.push((at, super::gaps::SPACE_END));
        }
        let got = self.free.ranges();
        if got != want {
            return Err(format!("gaps {got:#x?}, VMAs leave {want:#x?}"));
        }
        let got = self.radix.runs()?;
        if got != runs {
            return Err(format!("radix holds {got:#x?}, VMAs are {runs:#x?}"));
        }
        if self.slab.live() != self.order.len() {
            return Err(format!("{} live slab slots for {} VMAs", self.slab.live(), self.order.len()));
        }
        Ok(())
    }

    /// Radix tables in use (tests: the memory bound).
    #[cfg(test)]
    pub(crate) fn radix_tables(&self) -> usize {
        self.radix.tables_in_use()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::flags::VmFlags;

    fn vma(start: u64, end: u64, pgoff: u64, flags: VmFlags) -> Vma {
        Vma::bare(start, end, pgoff, flags)
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
    fn empty_and_reversed_ranges_change_nothing() {
        let mut t = VmaTree::new();
        t.insert(vma(0x1000, 0x4000, 0, VmFlags::READ));
        assert!(t.remove_range(0x2000, 0x2000).is_empty());
        assert!(t.remove_range(0x3000, 0x2000).is_empty());
        assert_eq!(t.len(), 1, "an empty removal must not split");
        assert_eq!(t.overlapping(0x5000, 0x4000).count(), 0);
        assert!(!t.intersects(0x5000, 0x5000));
        let mut calls = 0;
        t.update_range(0x3000, 0x1000, |_| calls += 1);
        assert_eq!(calls, 0);
        t.check().unwrap();
    }

    #[test]
    fn in_place_edits_reach_exactly_the_vmas_asked_for() {
        let mut t = VmaTree::new();
        for (s, e) in [(0x1000, 0x3000), (0x3000, 0x4000), (0x6000, 0x8000)] {
            t.insert(vma(s, e, s >> 12, VmFlags::READ));
        }
        // Starts inside [0x2000, 0x6001): the second and third, not the
        // first (it only overlaps).
        let mut seen = Vec::new();
        t.update_range(0x2000, 0x6001, |v| {
            seen.push(v.start().raw());
            v.flags = VmFlags::READ | VmFlags::WRITE;
        });
        assert_eq!(seen, vec![0x3000, 0x6000]);
        assert_eq!(t.find(0x1000).unwrap().flags(), VmFlags::READ);
        assert_eq!(t.find(0x7fff).unwrap().flags(), VmFlags::READ | VmFlags::WRITE);
        assert!(t.starting_at_mut(0x2000).is_none());
        t.starting_at_mut(0x1000).unwrap().pgoff = 77;
        assert_eq!(t.find(0x2fff).unwrap().pgoff(), 77);
        t.check().unwrap();
    }

    #[test]
    fn find_follows_splits_and_merges() {
        let mut t = VmaTree::new();
        t.insert(vma(0x10000, 0x20000, 0x10, VmFlags::READ));
        t.split_at(0x14000);
        t.split_at(0x14000);
        t.split_at(0x9000);
        assert_eq!(t.len(), 2);
        assert_eq!(t.find(0x13fff).unwrap().end(), 0x14000);
        assert_eq!(t.find(0x14000).unwrap().start().raw(), 0x14000);
        assert_eq!(t.find(0x14000).unwrap().pgoff(), 0x14);
        assert_eq!(t.merge_around(0x14000), 0x10000);
        assert_eq!(t.len(), 1);
        for a in [0x10000, 0x14000, 0x1ffff] {
            assert_eq!(t.find(a).unwrap().start().raw(), 0x10000, "{a:#x}");
        }
        assert!(t.find(0x20000).is_none());
        // Nothing to merge at an address that starts no VMA.
        assert_eq!(t.merge_around(0x15000), 0x15000);
        // Non-canonical addresses alias canonical pages in the radix; find
        // must not answer with the aliased VMA.
        t.insert(vma(0xffff_8000_0000_0000, 0xffff_8000_0000_2000, 0, VmFlags::READ));
        assert!(t.find(0x8000_0000_0000).is_none());
        assert!(t.find(0xffff_8000_0000_1fff).is_some());
        t.check().unwrap();
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
