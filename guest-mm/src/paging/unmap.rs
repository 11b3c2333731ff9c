//! `unmap_range`: clears every leaf in a range, splitting huge leaves cut
//! by its ends and freeing tables left empty.
//!
//! No per-frame state is touched: a page-array frame stays pinned by its
//! array, which the VMA holds (see `frames::pin`), so unmapping is a pass
//! over the entries. A leaf table the range covers whole is only read (for
//! the flush set), unlinked with one store and freed: its entries are
//! never cleared one by one, as no walker can reach them once it is
//! unlinked and flushed, and a table is zeroed or overwritten whole before
//! it is linked again.
//!
//! This module does not flush TLBs; it reports what must be flushed.

use vm_memory::GuestMemory;

use std::sync::atomic::Ordering;

use super::entry::{classify, entry_end, index, span, Entry, A, P, USED};
use super::flush::FlushSet;
use super::page_tables::{check_range, PageTables};
use super::split::SplitRecord;
use super::table::{Table, ENTRIES};
use super::walk::Writer;
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;

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
struct Clearing {
    out: Unmapped,
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    /// Clears the leaves of `[va, end)` below `table` (at `level`); after
    /// the splits every leaf met is wholly inside the range. Children left
    /// empty are unlinked (one store) and then freed.
    fn clear(&mut self, table: &Table<'a>, level: u32, va: u64, end: u64, c: &mut Clearing) {
        if level == 1 {
            clear_leaves::<true>(table, va, end, c);
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
                    // Swapped, not stored: the old value's Accessed bit
                    // says whether it can be cached (see `flush.rs`).
                    let old = table.swap(idx, 0);
                    c.out.entries_cleared += 1;
                    if old & P != 0 {
                        c.out.flush.add_entry(cur, span, old);
                    }
                }
                Entry::Leaf(size) => {
                    log::error!("{size:?} leaf {raw:#x} at {cur:#x} only partly unmapped");
                }
                Entry::Table(frame) => match self.view(frame) {
                    Ok(child) => {
                        if whole && level == 2 {
                            // Unlinked and freed below: read, not cleared.
                            clear_leaves::<false>(&child, cur, next, c);
                        } else {
                            self.clear(&child, level - 1, cur, next, c);
                        }
                        // A wholly covered child had every entry cleared
                        // (or read, a leaf table): the parent entry is
                        // swapped after its children were reported.
                        if whole || child.is_unused() {
                            let old = table.swap(idx, 0);
                            self.alloc.free(frame);
                            c.out.tables_freed += 1;
                            c.out.flush.table_unlinked(old);
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

/// Clears the 4 KiB leaves of `[va, end)` in the leaf table `table` and
/// records the present ones for the flush: the tight loop of a large
/// unmap. With `STORE = false` the entries are only read (a whole table
/// that the caller unlinks, with a swap of its parent entry, and frees).
/// Either way the flush set learns whether any present entry had its
/// Accessed bit set; a cleared entry is swapped, so the bit is the one it
/// held when it stopped being reachable (see `flush.rs`).
///
/// The loop has no branch on an entry's contents but the store: it counts
/// the used entries and gathers the present ones in a bitmap, whose runs
/// become the flush ranges afterwards (a whole present table is one run).
fn clear_leaves<const STORE: bool>(table: &Table<'_>, va: u64, end: u64, c: &mut Clearing) {
    let first = index(va, 1);
    let n = (((end - va) / PAGE_SIZE) as usize).min(ENTRIES - first);
    let Some(entries) = table.entries().get(first..first + n) else {
        return;
    };
    if !STORE {
        // The common case of a table a page array filled: every entry
        // present, an AND over the entries (four chains, no branch) tells.
        // The OR of the entries too: with all of them present, its A bit
        // is whether any was accessed.
        let mut all = [!0u64; 4];
        let mut any = [0u64; 4];
        let quads = entries.chunks_exact(4);
        for e in quads.remainder() {
            let raw = e.load(Ordering::Relaxed);
            all[0] &= raw;
            any[0] |= raw;
        }
        for q in quads {
            for ((a, o), e) in all.iter_mut().zip(any.iter_mut()).zip(q) {
                let raw = e.load(Ordering::Relaxed);
                *a &= raw;
                *o |= raw;
            }
        }
        if all[0] & all[1] & all[2] & all[3] & P != 0 {
            c.out.entries_cleared += n as u64;
            c.out.flush.add_range(va, n as u64 * PAGE_SIZE);
            c.out.flush.note_cached((any[0] | any[1] | any[2] | any[3]) & A != 0);
            return;
        }
    }
    const { assert!(P << 5 == A) };
    let mut present = [0u64; ENTRIES / 64];
    let mut cleared = 0;
    // Bit 5 (A) of the OR of `raw & (raw << 5)`: a present entry with A.
    let mut accessed = 0u64;
    // One word of the bitmap at a time, kept in a register.
    for (word, chunk) in present.iter_mut().zip(entries.chunks(64)) {
        let mut bits = 0u64;
        for (b, e) in chunk.iter().enumerate() {
            let mut raw = e.load(Ordering::Relaxed);
            let used = raw & USED != 0;
            if STORE && used {
                super::table::race_point(e);
                // The value the clear replaced, A bit and all.
                raw = e.swap(0, Ordering::Relaxed);
            }
            cleared += used as u64;
            bits |= (raw & P) << b;
            accessed |= raw & (raw << 5);
        }
        *word = bits;
    }
    c.out.entries_cleared += cleared;
    c.out.flush.note_cached(accessed & A != 0);
    // Runs of set bits, in page order (`FlushSet::add` joins adjacent ones).
    for (w, &word) in present.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let start = bits.trailing_zeros() as u64;
            let len = (!(bits >> start)).trailing_zeros() as u64;
            let page = w as u64 * 64 + start;
            c.out.flush.add_range(va + page * PAGE_SIZE, len * PAGE_SIZE);
            bits &= if start + len >= 64 { 0 } else { !0u64 << (start + len) };
        }
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Clears every leaf in `[va, va + len)` (both page aligned). Huge
    /// leaves the range only partly covers are split first; all splits are
    /// reserved up front, so `MmError::OutOfMemory` leaves everything
    /// unchanged. Tables left empty are unlinked and freed (never the
    /// root). Frames are not touched: whoever pinned them unpins them.
    pub fn unmap_range(&mut self, va: GuestVirtAddr, len: u64) -> Result<Unmapped, MmError> {
        let end = check_range(va, len)?;
        if len == 0 {
            return Ok(Unmapped::default());
        }
        let mut w = self.writer(false, va.raw());
        let root = w.root()?;
        let splits = w.split_edges(va.raw(), end, |_, _| true)?;
        let mut c = Clearing { out: Unmapped { splits, ..Unmapped::default() } };
        w.clear(&root, 4, va.raw(), end, &mut c);
        Ok(c.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::{PageSize, Pfn};
    use vm_memory::GuestAddress;

    fn unmap(pt: &mut Tables, va: u64, len: u64) -> Unmapped {
        pt.unmap_range(gva(va), len).unwrap()
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
    fn a_whole_leaf_table_reports_every_entry_and_any_accessed_bit() {
        use super::super::entry::A;
        let base = 0x40_0000u64;
        let pages: Vec<Pfn> = (0..512).map(|i| Pfn(0x1000 + i)).collect();
        // Accessed bits on no entry, one entry, or entries in different
        // lanes of the 4-way scan: each set of them must be reported.
        for accessed in
            [&[][..], &[1][..], &[2][..], &[3][..], &[0, 1][..], &[1, 2][..], &[3, 510][..], &[0, 1, 2, 3][..]]
        {
            let mut pt = tables(64 << 20);
            pt.insert_pages(gva(base), &arr(&pages), rw()).unwrap();
            for &i in accessed {
                let va = base + i * K4;
                let raw = pt.leaves(gva(va), K4)[0].raw;
                poke(&pt, va, 1, raw | A);
            }
            let u = unmap(&mut pt, base, M2);
            assert_eq!(u.entries_cleared, 512, "{accessed:?}");
            assert_eq!(u.flush.ranges(), &[(gva(base), M2)], "{accessed:?}");
            assert_eq!(u.flush.may_be_cached(), !accessed.is_empty(), "{accessed:?}");
        }
    }

    #[test]
    fn a_prot_none_leaf_is_cleared_but_not_flushed() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0x1000), GuestAddress(0), 2 * K4, rw(), PageSize::Size4K).unwrap();
        let none = crate::flags::PageProt::from_flags(crate::flags::VmFlags::empty());
        pt.protect_range(gva(0x2000), K4, none).unwrap().ignore();
        let u = unmap(&mut pt, 0x2000, K4);
        assert_eq!(u.entries_cleared, 1);
        assert!(u.flush.ranges().is_empty(), "{:?}", u.flush);
        assert!(pt.leaves(gva(0x2000), K4).is_empty());
        // A PROT_NONE huge leaf likewise.
        pt.map_range(gva(0x40_0000), GuestAddress(0), 2 * M2, rw(), PageSize::Size2M).unwrap();
        pt.protect_range(gva(0x60_0000), M2, none).unwrap().ignore();
        let u = unmap(&mut pt, 0x60_0000, M2);
        assert_eq!(u.entries_cleared, 1);
        assert!(u.flush.ranges().is_empty(), "{:?}", u.flush);
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
    fn whole_leaf_tables_are_freed_and_partial_ones_cleared_with_exact_flushes() {
        // Pages 0..1536 from 1 GiB: three whole leaf tables; a hole at 700
        // and a PROT_NONE-free run. Unmap [100, 1300): the first and last
        // tables are cut (entries cleared), the middle one is whole.
        let mut pt = tables(64 << 20);
        let pages: Vec<Pfn> = (0..1536u64).map(|i| Pfn(i + 1)).collect();
        pt.insert_pages(gva(G1), &arr(&pages[..700]), rw()).unwrap();
        pt.insert_pages(gva(G1 + 701 * K4), &arr(&pages[701..]), rw()).unwrap();
        let tables = pt.tables_in_use();
        let u = unmap(&mut pt, G1 + 100 * K4, 1200 * K4);
        assert_eq!(u.entries_cleared, 1199);
        let got: Vec<(u64, u64)> = u.flush.ranges().iter().map(|&(a, l)| (a.raw(), l)).collect();
        assert_eq!(got, vec![(G1 + 100 * K4, 600 * K4), (G1 + 701 * K4, 599 * K4)]);
        assert_eq!((u.tables_freed, pt.tables_in_use()), (1, tables - 1));
        // What is left, by walking: pages 0..100 and 1300..1536 only.
        let left: Vec<u64> = pt.leaves(gva(0), 1 << 47).iter().map(|l| (l.va.raw() - G1) / K4).collect();
        assert_eq!(left, (0..100).chain(1300..1536).collect::<Vec<_>>());
        for p in left {
            assert_eq!(pt.translate(gva(G1 + p * K4)).unwrap().pfn, Pfn(p + 1));
        }
        // A new insert over the freed middle reuses a garbage table whole.
        pt.insert_pages(gva(G1 + 512 * K4), &arr(&pages[..512]), rw()).unwrap();
        assert_eq!(pt.translate(gva(G1 + 600 * K4)).unwrap().pfn, Pfn(89));
    }

    #[test]
    fn failure_injection_during_split_changes_nothing() {
        for n in 0..5 {
            let mut pt = tables(4 * G1);
            pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
            pt.map_range(gva(3 * G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
            pt.insert_pages(gva(2 * G1), &arr(&[Pfn(7)]), rw()).unwrap();
            let before = snapshot(&pt, 0, 8 * G1);
            let tables = pt.tables_in_use();
            pt.allocator_mut().inject_failure_after(Some(n));
            // Cuts both 1 GiB leaves inside a 2 MiB piece: four splits.
            let r = pt.unmap_range(gva(2 * G1 - K4), G1 + 2 * K4);
            pt.allocator_mut().inject_failure_after(None);
            if n < 4 {
                assert!(matches!(r, Err(MmError::OutOfMemory(_))), "n={n}");
                assert_eq!(snapshot(&pt, 0, 8 * G1), before);
                assert_eq!(pt.tables_in_use(), tables);
            } else {
                assert_eq!(r.unwrap().splits.len(), 4);
                assert!(pt.translate(gva(2 * G1)).is_none());
            }
        }
    }

    #[test]
    fn corrupted_pointer_does_not_panic() {
        let mut pt = tables(64 << 20);
        pt.insert_pages(gva(0x1000), &arr(&[Pfn(1), Pfn(2)]), rw()).unwrap();
        pt.insert_pages(gva(0x20_0000), &arr(&[Pfn(3)]), rw()).unwrap();
        // Point the PD entry of the first 2 MiB outside guest memory.
        poke(&pt, 0, 2, super::super::entry::table_entry(Pfn(1 << 30)));
        assert!(pt.translate(gva(0x1000)).is_none());
        assert_eq!(pt.translate(gva(0x20_0000)).unwrap().pfn, Pfn(3));
        // Partly covered: left alone; wholly covered: cleared.
        let u = pt.unmap_range(gva(0x1000), K4).unwrap();
        assert_eq!(u.entries_cleared, 0);
        let u = pt.unmap_range(gva(0), 4 << 20).unwrap();
        assert!(u.flush.tables_freed());
        assert_eq!(u.entries_cleared, 1);
        assert!(pt.leaves(gva(0), 1 << 30).is_empty());
    }
}
