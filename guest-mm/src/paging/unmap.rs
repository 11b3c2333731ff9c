//! `unmap_range`: clears every leaf in a range, splitting huge leaves cut
//! by its ends, dropping map counts and freeing tables left empty.
//!
//! This module does not flush TLBs; it reports what must be flushed.

use vm_memory::GuestMemory;

use std::sync::atomic::Ordering;

use super::entry::{classify, counted_frame, entry_end, index, span, Entry, P, USED};
use super::flush::FlushSet;
use super::page_tables::{check_range, PageTables};
use super::split::SplitRecord;
use super::table::{Table, ENTRIES};
use super::walk::Writer;
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::MapCounts;

/// What an unmap did.
#[must_use = "the flush set must be flushed before the frames are reused"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unmapped {
    /// The ranges whose present leaves were cleared, and whether tables
    /// were freed.
    pub flush: FlushSet,
    /// Huge leaves split because the range cut them, in the order they
    /// were split (for [`PageTables::restore`]).
    pub splits: Vec<SplitRecord>,
    /// Leaf entries cleared.
    pub entries_cleared: u64,
    /// Table pages freed.
    pub tables_freed: u64,
}

/// State of one clearing walk.
struct Clearing<'c> {
    counts: &'c mut MapCounts,
    released: &'c mut Vec<Pfn>,
    out: Unmapped,
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    /// Clears the leaves of `[va, end)` below `table` (at `level`); after
    /// the splits every leaf met is wholly inside the range. Children left
    /// empty are unlinked (one store) and then freed.
    fn clear(&mut self, table: &Table<'a>, level: u32, va: u64, end: u64, c: &mut Clearing<'_>) {
        if level == 1 {
            clear_leaves(table, va, end, c);
            return;
        }
        let span = span(level);
        let mut cur = va;
        while cur < end {
            let idx = index(cur, level);
            let next = entry_end(cur, level, end);
            let whole = cur & (span - 1) == 0 && next - cur == span;
            let raw = table.get(idx);
            match classify(raw, level) {
                Entry::Empty => {}
                Entry::Leaf(_) if whole => {
                    table.set(idx, 0);
                    c.out.entries_cleared += 1;
                    if raw & P != 0 {
                        c.out.flush.add(cur, span);
                    }
                }
                Entry::Leaf(size) => {
                    log::error!("{size:?} leaf {raw:#x} at {cur:#x} only partly unmapped");
                }
                Entry::Table(frame) => match self.view(frame) {
                    Ok(child) => {
                        self.clear(&child, level - 1, cur, next, c);
                        // A wholly covered child had every entry cleared.
                        if whole || child.is_unused() {
                            table.set(idx, 0);
                            self.alloc.free(frame);
                            c.out.tables_freed += 1;
                            c.out.flush.set_tables_freed();
                        }
                    }
                    Err(e) if whole => {
                        log::warn!("clearing corrupted table pointer {raw:#x} at {cur:#x}: {e}");
                        table.set(idx, 0);
                        c.out.flush.set_tables_freed();
                    }
                    Err(e) => log::error!("cannot unmap below corrupted table pointer {raw:#x} at {cur:#x}: {e}"),
                },
            }
            cur = next;
        }
    }
}

/// Clears the 4 KiB leaves of `[va, end)` in the leaf table `table`: the
/// tight loop of a large unmap.
fn clear_leaves(table: &Table<'_>, va: u64, end: u64, c: &mut Clearing<'_>) {
    let first = index(va, 1);
    let n = (((end - va) / PAGE_SIZE) as usize).min(ENTRIES - first);
    let Some(entries) = table.entries().get(first..first + n) else {
        return;
    };
    // The present pages cleared, as one run per stretch without holes.
    let mut run: Option<(u64, u64)> = None;
    let mut cleared = 0;
    for (k, e) in entries.iter().enumerate() {
        let raw = e.load(Ordering::Relaxed);
        if raw & USED == 0 {
            continue;
        }
        e.store(0, Ordering::Relaxed);
        cleared += 1;
        if raw & P != 0 {
            let page = va + k as u64 * PAGE_SIZE;
            match &mut run {
                Some((start, len)) if *start + *len == page => *len += PAGE_SIZE,
                _ => {
                    if let Some((start, len)) = run.replace((page, PAGE_SIZE)) {
                        c.out.flush.add(start, len);
                    }
                }
            }
        }
        if let Some(frame) = counted_frame(raw) {
            if c.counts.dec(frame) {
                c.released.push(frame);
            }
        }
    }
    if let Some((start, len)) = run {
        c.out.flush.add(start, len);
    }
    c.out.entries_cleared += cleared;
}

impl<M: GuestMemory> PageTables<M> {
    /// Clears every leaf in `[va, va + len)` (both page aligned). Huge
    /// leaves the range only partly covers are split first; all splits are
    /// reserved up front, so `MmError::OutOfMemory` leaves everything
    /// unchanged. Counted leaves drop their frame's count in `counts`;
    /// frames whose count reaches zero are pushed to `released`. Tables
    /// left empty are unlinked and freed (never the root).
    pub fn unmap_range(
        &mut self,
        va: GuestVirtAddr,
        len: u64,
        counts: &mut MapCounts,
        released: &mut Vec<Pfn>,
    ) -> Result<Unmapped, MmError> {
        let end = check_range(va, len)?;
        if len == 0 {
            return Ok(Unmapped::default());
        }
        let mut w = self.writer(false, va.raw());
        let root = w.root()?;
        let splits = w.split_edges(va.raw(), end, |_, _| true)?;
        let mut c = Clearing { counts, released, out: Unmapped { splits, ..Unmapped::default() } };
        w.clear(&root, 4, va.raw(), end, &mut c);
        Ok(c.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::PageSize;
    use vm_memory::GuestAddress;

    fn unmap(pt: &mut Tables, va: u64, len: u64) -> Unmapped {
        let mut counts = MapCounts::new(FRAMES);
        let mut released = Vec::new();
        pt.unmap_range(gva(va), len, &mut counts, &mut released).unwrap()
    }

    #[test]
    fn partial_unmap_of_huge_leaves_splits_and_keeps_the_rest() {
        // (leaf size, unmap offset, unmap len, splits expected, tables after)
        let cases: &[(PageSize, u64, u64, usize)] = &[
            (PageSize::Size2M, 0, K4, 1),
            (PageSize::Size2M, M2 - K4, K4, 1),
            (PageSize::Size2M, 5 * K4, 7 * K4, 1),
            (PageSize::Size1G, 0, M2, 1),
            (PageSize::Size1G, 3 * M2, 5 * M2, 1),
            (PageSize::Size1G, 3 * M2 + K4, K4, 2),
            (PageSize::Size1G, M2 - K4, 2 * K4, 3),
            (PageSize::Size1G, K4, G1 - 2 * K4, 3),
        ];
        for &(size, off, len, nsplits) in cases {
            let mut pt = tables(4 * G1);
            let va = 0x80_0000_0000u64;
            let pa = 2 * G1;
            pt.map_range(gva(va), GuestAddress(pa), size.bytes(), rw(), size).unwrap();
            let tables = pt.tables_in_use();
            let u = unmap(&mut pt, va + off, len);
            assert_eq!(u.splits.len(), nsplits, "{size:?} {off:#x}+{len:#x}");
            assert_eq!(pt.tables_in_use(), tables + nsplits);
            assert_eq!(u.flush.ranges(), &[(gva(va + off), len)]);
            assert!(!u.flush.tables_freed());
            assert_eq!(u.tables_freed, 0);
            // Every 4 KiB page outside the hole still maps its old frame.
            for page in (0..size.bytes()).step_by(K4 as usize) {
                let t = pt.translate(gva(va + page));
                if page >= off && page < off + len {
                    assert!(t.is_none(), "{page:#x}");
                } else {
                    let t = t.unwrap();
                    assert_eq!(t.phys.0, pa + page, "{page:#x}");
                    assert_eq!(t.prot, rw());
                }
            }
            // Unmapping the rest frees every table but the root.
            let u = unmap(&mut pt, va, size.bytes());
            assert!(u.flush.tables_freed());
            assert_eq!(pt.tables_in_use(), 1, "{size:?} {off:#x}+{len:#x}");
            assert!(pt.leaves(gva(0), 1 << 47).is_empty());
        }
    }

    #[test]
    fn flush_covers_only_what_was_mapped() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0x1000), GuestAddress(0), 2 * K4, rw(), PageSize::Size4K).unwrap();
        pt.map_range(gva(0x5000), GuestAddress(0), K4, rw(), PageSize::Size4K).unwrap();
        pt.map_range(gva(0x40_0000), GuestAddress(0), M2, rw(), PageSize::Size2M).unwrap();
        let u = unmap(&mut pt, 0, 1 << 30);
        let got: Vec<(u64, u64)> = u.flush.ranges().iter().map(|&(a, l)| (a.raw(), l)).collect();
        assert_eq!(got, vec![(0x1000, 2 * K4), (0x5000, K4), (0x40_0000, M2)]);
        assert_eq!(u.flush.pages(), 3 + 512);
        assert_eq!(u.entries_cleared, 4);
        assert_eq!(u.tables_freed, 3); // PT, PD, PDPT
        assert!(u.splits.is_empty());
        // Nothing mapped: nothing to flush.
        assert!(unmap(&mut pt, 0, 1 << 30).flush.is_empty());
    }

    #[test]
    fn failure_injection_during_split_changes_nothing() {
        for n in 0..5 {
            let mut pt = tables(4 * G1);
            let mut counts = MapCounts::new(FRAMES);
            pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
            pt.map_range(gva(3 * G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
            pt.insert_pages(gva(2 * G1), &[Pfn(7)], rw(), &mut counts).unwrap();
            let before = snapshot(&pt, 0, 8 * G1);
            let tables = pt.tables_in_use();
            pt.allocator_mut().inject_failure_after(Some(n));
            // Cuts both 1 GiB leaves inside a 2 MiB piece: four splits.
            let mut released = Vec::new();
            let r = pt.unmap_range(gva(2 * G1 - K4), G1 + 2 * K4, &mut counts, &mut released);
            pt.allocator_mut().inject_failure_after(None);
            if n < 4 {
                assert!(matches!(r, Err(MmError::OutOfMemory(_))), "n={n}");
                assert_eq!(snapshot(&pt, 0, 8 * G1), before);
                assert_eq!(pt.tables_in_use(), tables);
                assert_eq!(counts.get(Pfn(7)), 1);
                assert!(released.is_empty());
            } else {
                assert_eq!(r.unwrap().splits.len(), 4);
                assert_eq!(released, vec![Pfn(7)]);
            }
        }
    }

    #[test]
    fn corrupted_pointer_does_not_panic() {
        let mut pt = tables(64 << 20);
        let mut counts = MapCounts::new(FRAMES);
        pt.insert_pages(gva(0x1000), &[Pfn(1), Pfn(2)], rw(), &mut counts).unwrap();
        pt.insert_pages(gva(0x20_0000), &[Pfn(3)], rw(), &mut counts).unwrap();
        // Point the PD entry of the first 2 MiB outside guest memory.
        poke(&pt, 0, 2, super::super::entry::table_entry(Pfn(1 << 30)));
        assert!(pt.translate(gva(0x1000)).is_none());
        assert_eq!(pt.translate(gva(0x20_0000)).unwrap().pfn, Pfn(3));
        // Partly covered: left alone; wholly covered: cleared.
        let mut released = Vec::new();
        let u = pt.unmap_range(gva(0x1000), K4, &mut counts, &mut released).unwrap();
        assert_eq!(u.entries_cleared, 0);
        let u = pt.unmap_range(gva(0), 4 << 20, &mut counts, &mut released).unwrap();
        assert!(u.flush.tables_freed());
        assert_eq!(released, vec![Pfn(3)]);
        assert!(pt.leaves(gva(0), 1 << 30).is_empty());
    }
}
