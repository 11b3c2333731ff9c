//! Fork's side of the page tables (`copy_page_range`): write-protecting
//! the 4 KiB leaves of a copy-on-write mapping so parent and child share
//! their frames, reading the leaves a child gets, and the write fault's
//! reuse of a frame no other space maps any more (`wp_page_reuse`).
//!
//! A shared leaf carries `COW` and `FORKED` and no `RW`; `protect_range`
//! keeps `RW` clear on it (it keeps `COW`), so mprotect cannot make a
//! shared frame writable in one space. This module does not know which
//! space holds which reference: the address space decides between a copy
//! and a reuse; here only the entries change. Huge leaves are never marked
//! (the address space copies private huge pages at fork instead).

use vm_memory::GuestMemory;

use super::entry::{classify, entry_end, index, split_child, Entry, A, COW, FORKED, P, RW, USED};
use super::flush::FlushSet;
use super::page_tables::PageTables;
use super::snapshot::Leaf;
use super::table::Table;
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::PageProt;

impl<M: GuestMemory> PageTables<M> {
    /// Marks every 4 KiB leaf of `[va, va + len)` (present or PROT_NONE)
    /// shared by a fork: `RW` cleared, `COW` and `FORKED` set, each in one
    /// compare-and-exchange (an Accessed bit a walker sets meanwhile is
    /// kept). Returns the flush the downgraded writable entries need.
    /// Huge leaves are left alone.
    pub fn share_for_fork(&mut self, va: GuestVirtAddr, len: u64) -> FlushSet {
        let mut flush = FlushSet::default();
        let (start, mut end) = (va.raw(), va.raw().saturating_add(len));
        // As `leaves`: a range in the lower half stops at its end.
        if start < 1 << 47 {
            end = end.min(1 << 47);
        }
        if let Ok(root) = Table::new(&self.mem, self.root, false) {
            share_in(&self.mem, &root, 4, start, end, &mut flush);
        }
        flush
    }

    /// Is the 4 KiB leaf at `va` present and shared by a fork (see
    /// [`PageTables::share_for_fork`])?
    pub fn is_fork_shared(&self, va: GuestVirtAddr) -> bool {
        self.leaf_table(va.raw(), false).is_some_and(|(t, i)| {
            let raw = t.get(i);
            raw & P != 0 && raw & COW != 0 && raw & FORKED != 0
        })
    }

    /// Linux's `wp_page_reuse`: the fork-shared leaf at `va` becomes this
    /// space's own again (`COW` and `FORKED` cleared, `RW` as `prot`
    /// allows), frame unchanged. An upgrade: no flush (a stale read-only
    /// translation only faults again, spuriously). `NotMapped` when there
    /// is no present 4 KiB leaf, `Invalid` when it is not fork-shared;
    /// nothing changed then.
    pub fn reuse_page(&mut self, va: GuestVirtAddr, prot: PageProt) -> Result<(), MmError> {
        let (t, i) = self.leaf_table(va.raw(), true).ok_or(MmError::NotMapped { addr: va.raw() })?;
        let mut raw = t.get(i);
        loop {
            if raw & P == 0 {
                return Err(MmError::NotMapped { addr: va.raw() });
            }
            if raw & (COW | FORKED) != COW | FORKED {
                return Err(MmError::Invalid("reuse of a leaf no fork shared"));
            }
            let mut new = raw & !(COW | FORKED | RW);
            if prot.writable {
                new |= RW;
            }
            match t.compare_exchange(i, raw, new) {
                Ok(_) => return Ok(()),
                Err(now) => raw = now,
            }
        }
    }

    /// The leaves of `[va, va + len)` as a fork's child gets them: the
    /// same frames and bits, the Accessed bit cleared (no walker ever used
    /// the child's copy: Linux's `pte_mkold`). A huge leaf that crosses an
    /// end of the range is cut into the smaller leaves inside it (a VMA
    /// boundary a flag change made without splitting the leaf).
    pub fn leaves_for_child(&self, va: GuestVirtAddr, len: u64) -> Vec<Leaf> {
        let (start, end) = (va.raw(), va.raw().saturating_add(len));
        let mut out = Vec::new();
        for leaf in self.leaves(va, len) {
            clip(Leaf { raw: leaf.raw & !A, ..leaf }, start, end, &mut out);
        }
        out
    }
}

/// [`PageTables::share_for_fork`] below `table` (of `level`) for the
/// part of `[va, end)` it covers: one pass over each leaf table.
fn share_in<M: GuestMemory>(mem: &M, table: &Table<'_>, level: u32, va: u64, end: u64, flush: &mut FlushSet) {
    let mut cur = va;
    while cur < end {
        let idx = index(cur, level);
        let next = entry_end(cur, level, end);
        if let Entry::Table(frame) = classify(table.get(idx), level) {
            if level > 2 {
                if let Ok(child) = Table::new(mem, frame, false) {
                    share_in(mem, &child, level - 1, cur, next, flush);
                }
            } else if let Ok(leaves) = Table::new(mem, frame, true) {
                // Every page `[cur, next)` touches, as `leaves` reports
                // a leaf the range covers only in part.
                let (page, last) = (cur & !(PAGE_SIZE - 1), (next - 1) & !(PAGE_SIZE - 1));
                let first = index(page, 1);
                let n = ((last - page) / PAGE_SIZE) as usize + 1;
                for (j, i) in (first..first + n).enumerate() {
                    let va = page + ((j as u64) << crate::addr::PAGE_SHIFT);
                    share_entry(&leaves, i, va, PAGE_SIZE, flush, |_| true);
                }
            }
        }
        cur = next;
    }
}

/// Marks entry `i` of table `t` (a leaf mapping `size` bytes at `va`)
/// shared by a fork while it is used and `is_leaf` says it is still that
/// leaf: `RW` cleared, `COW` and `FORKED` set in one compare-and-exchange
/// (an Accessed bit a walker sets meanwhile is kept); records the flush
/// a writable entry's downgrade needs.
#[inline]
pub(super) fn share_entry(
    t: &Table<'_>,
    i: usize,
    va: u64,
    size: u64,
    flush: &mut FlushSet,
    is_leaf: impl Fn(u64) -> bool,
) {
    let mut raw = t.get(i);
    while raw & USED != 0 && is_leaf(raw) {
        let new = (raw & !RW) | COW | FORKED;
        if new == raw {
            break;
        }
        match t.compare_exchange(i, raw, new) {
            Ok(old) => {
                if old & RW != 0 {
                    flush.add_entry(va, size, old);
                }
                break;
            }
            Err(now) => raw = now,
        }
    }
}

/// Pushes `leaf` if it lies inside `[start, end)`, else the pieces of it
/// inside (one size smaller at a time, as a split would make them).
fn clip(leaf: Leaf, start: u64, end: u64, out: &mut Vec<Leaf>) {
    let (ls, size) = (leaf.va.raw(), leaf.size.bytes());
    if ls >= start && ls.saturating_add(size) <= end {
        out.push(leaf);
        return;
    }
    let child = match leaf.size {
        PageSize::Size1G => PageSize::Size2M,
        PageSize::Size2M => PageSize::Size4K,
        PageSize::Size4K => return,
    };
    for i in 0..512u64 {
        let cva = ls + i * child.bytes();
        if cva.saturating_add(child.bytes()) <= start || cva >= end {
            continue;
        }
        let Ok(at) = GuestVirtAddr::try_new(cva) else { continue };
        clip(Leaf { va: at, size: child, raw: split_child(leaf.raw, leaf.size, i) }, start, end, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::Pfn;
    use crate::flags::VmFlags;
    use vm_memory::GuestAddress;

    #[test]
    fn share_write_protects_every_small_leaf_and_reuse_undoes_it() {
        let mut pt = tables(64 << 20);
        let a = arr(&[Pfn(7), Pfn(8), Pfn(9)]);
        pt.insert_pages(gva(0x1000), &a, rw()).unwrap();
        // The middle one read-only already: marked, but needs no flush.
        pt.protect_range(gva(0x2000), K4, PageProt::from_flags(VmFlags::READ)).unwrap().ignore();
        let fl = pt.share_for_fork(gva(0), 1 << 20);
        assert_eq!(fl.ranges(), &[(gva(0x1000), K4), (gva(0x3000), K4)]);
        for p in [0x1000, 0x2000, 0x3000] {
            let t = pt.translate(gva(p)).unwrap();
            assert!(!t.prot.writable && pt.is_fork_shared(gva(p)) && pt.is_copy_on_write(gva(p)), "{p:#x}");
        }
        // Sharing again changes nothing and needs no flush.
        assert!(pt.share_for_fork(gva(0), 1 << 20).is_empty());
        // mprotect cannot make a shared leaf writable.
        pt.protect_range(gva(0x1000), 3 * K4, rw()).unwrap().ignore();
        assert!(!pt.translate(gva(0x1000)).unwrap().prot.writable);
        // Reuse: the same frame, writable, no longer shared.
        pt.reuse_page(gva(0x1000), rw()).unwrap();
        let t = pt.translate(gva(0x1000)).unwrap();
        assert_eq!((t.pfn, t.prot.writable, t.counted), (Pfn(7), true, true));
        assert!(!pt.is_fork_shared(gva(0x1000)) && !pt.is_copy_on_write(gva(0x1000)));
        assert_eq!(pt.reuse_page(gva(0x1000), rw()), Err(MmError::Invalid("reuse of a leaf no fork shared")));
        assert_eq!(pt.reuse_page(gva(0x9000), rw()), Err(MmError::NotMapped { addr: 0x9000 }));
    }

    #[test]
    fn a_range_that_ends_inside_a_page_shares_that_page_too() {
        let mut pt = tables(64 << 20);
        pt.insert_pages(gva(0x1000), &arr(&[Pfn(7), Pfn(8), Pfn(9)]), rw()).unwrap();
        let fl = pt.share_for_fork(gva(0x1800), 0x1000);
        assert_eq!(fl.ranges(), &[(gva(0x1000), 2 * K4)]);
        assert!(pt.is_fork_shared(gva(0x1000)) && pt.is_fork_shared(gva(0x2000)));
        assert!(!pt.is_fork_shared(gva(0x3000)));
    }

    #[test]
    fn huge_leaves_are_not_shared_and_are_cut_at_the_range_ends() {
        let mut pt = tables(4 * G1);
        pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
        assert!(pt.share_for_fork(gva(G1), G1).is_empty());
        assert!(pt.translate(gva(G1)).unwrap().prot.writable);
        // Whole: one leaf. Cut: 2 MiB pieces, 4 KiB ones at a ragged end.
        assert_eq!(pt.leaves_for_child(gva(G1), G1).len(), 1);
        let cut = pt.leaves_for_child(gva(G1 + M2), 2 * M2 + 3 * K4);
        let sizes: Vec<PageSize> = cut.iter().map(|l| l.size).collect();
        assert_eq!(&sizes[..2], &[PageSize::Size2M, PageSize::Size2M]);
        assert_eq!(sizes.len(), 5);
        assert!(sizes[2..].iter().all(|&s| s == PageSize::Size4K));
        // The pieces map what the huge leaf mapped, page by page.
        let mut child = tables(4 * G1);
        child.copy_leaves(&cut).unwrap();
        for off in [M2, M2 + K4, 3 * M2 + 2 * K4] {
            assert_eq!(child.translate(gva(G1 + off)).unwrap().phys, GuestAddress(off));
        }
        assert!(child.translate(gva(G1 + 3 * M2 + 3 * K4)).is_none());
        assert!(child.translate(gva(G1)).is_none());
    }
}
