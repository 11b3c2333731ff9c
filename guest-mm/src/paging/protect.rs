//! `protect_range`: rewrites the permission and cache bits of the leaves
//! in a range, splitting huge leaves cut by its ends when (and only when)
//! their bits change.
//!
//! Frames, pins and tables are untouched; PROT_NONE keeps the frame
//! in a non-present entry (see `entry::PROT_NONE`).

use vm_memory::GuestMemory;

use super::entry::{classify, entry_end, index, protect_bits, same_leaf, span, Entry, P};
use super::flush::FlushSet;
use super::page_tables::{check_range, PageTables};
use super::table::Table;
use super::walk::Writer;
use crate::addr::{GuestVirtAddr, PageSize};
use crate::error::MmError;
use crate::flags::PageProt;

/// Stores the protected form of leaf `raw` (of `size`) in entry `idx`
/// with a compare-and-exchange, so accessed/dirty bits the CPU sets in the
/// meantime are kept rather than overwritten. Returns the value it
/// replaced (whose Accessed bit tells the flush whether the old
/// translation can be cached), or `None` when the entry changed in any
/// other way (left alone).
fn rewrite(table: &Table<'_>, idx: usize, mut raw: u64, prot: PageProt, size: PageSize) -> Option<u64> {
    loop {
        match table.compare_exchange(idx, raw, protect_bits(raw, prot, size)) {
            Ok(old) => return Some(old),
            Err(now) if same_leaf(now, raw) => raw = now,
            Err(_) => return None,
        }
    }
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    /// Rewrites the leaves of `[va, end)` below `table` (at `level`).
    fn reprotect(&mut self, table: &Table<'a>, level: u32, va: u64, end: u64, prot: PageProt, flush: &mut FlushSet) {
        let span = span(level);
        let mut cur = va;
        while cur < end {
            let idx = index(cur, level);
            let next = entry_end(cur, level, end);
            let raw = table.get(idx);
            match classify(raw, level) {
                Entry::Empty => {}
                Entry::Leaf(size) => {
                    let new = protect_bits(raw, prot, size);
                    if new == raw {
                        // Unchanged (and so not split when partly covered).
                    } else if cur & (span - 1) == 0 && next - cur == span {
                        if let Some(old) = rewrite(table, idx, raw, prot, size) {
                            // A non-present entry cannot be cached in a TLB.
                            if old & P != 0 {
                                flush.add_entry(cur, span, old);
                            }
                        } else {
                            log::warn!("leaf at {cur:#x} changed under protect; left alone");
                        }
                    } else {
                        log::error!("{size:?} leaf {raw:#x} at {cur:#x} only partly protected");
                    }
                }
                Entry::Table(frame) => match self.view(frame) {
                    Ok(child) => self.reprotect(&child, level - 1, cur, next, prot, flush),
                    Err(e) => log::error!("cannot protect below corrupted table pointer {raw:#x}: {e}"),
                },
            }
            cur = next;
        }
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Gives every leaf in `[va, va + len)` (both page aligned) the
    /// permission and cache bits of `prot`; unmapped pages stay unmapped.
    /// Huge leaves the range only partly covers are split when their bits
    /// change, with all table frames reserved first, so
    /// `MmError::OutOfMemory` leaves everything unchanged. Returns the
    /// ranges whose present entries changed.
    pub fn protect_range(&mut self, va: GuestVirtAddr, len: u64, prot: PageProt) -> Result<FlushSet, MmError> {
        let end = check_range(va, len)?;
        let mut flush = FlushSet::new();
        if len == 0 {
            return Ok(flush);
        }
        let mut w = self.writer(false, va.raw());
        let root = w.root()?;
        w.split_edges(va.raw(), end, |raw, size| protect_bits(raw, prot, size) != raw)?;
        w.reprotect(&root, 4, va.raw(), end, prot, &mut flush);
        Ok(flush)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::Pfn;
    use crate::flags::{CacheMode, VmFlags};
    use vm_memory::GuestAddress;

    fn ro() -> PageProt {
        PageProt::from_flags(VmFlags::READ)
    }

    fn ranges(f: &FlushSet) -> Vec<(u64, u64)> {
        f.ranges().iter().map(|&(a, l)| (a.raw(), l)).collect()
    }

    #[test]
    fn partial_protect_of_huge_leaves() {
        // (leaf, offset, len, tables added by splits)
        let cases: &[(PageSize, u64, u64, usize)] = &[
            (PageSize::Size2M, 0, M2, 0),
            (PageSize::Size2M, K4, K4, 1),
            (PageSize::Size1G, M2, M2, 1),
            (PageSize::Size1G, M2 + K4, K4, 2),
            (PageSize::Size1G, 0, G1, 0),
        ];
        for &(size, off, len, nsplits) in cases {
            let mut pt = tables(4 * G1);
            let va = 0x40_0000_0000;
            pt.map_range(gva(va), GuestAddress(G1), size.bytes(), rw(), size).unwrap();
            let tables = pt.tables_in_use();
            let wc = ro().with_cache(CacheMode::WriteCombining);
            let f = pt.protect_range(gva(va + off), len, wc).unwrap();
            assert_eq!(ranges(&f), vec![(va + off, len)], "{size:?} {off:#x}");
            assert!(!f.tables_freed());
            assert_eq!(pt.tables_in_use(), tables + nsplits);
            for page in (0..size.bytes()).step_by(M2 as usize / 2).chain([off, off + len - K4, off + len]) {
                if page >= size.bytes() {
                    continue;
                }
                let t = pt.translate(gva(va + page)).unwrap();
                assert_eq!(t.phys.0, G1 + page);
                let inside = page >= off && page < off + len;
                assert_eq!(t.prot, if inside { wc } else { rw() }, "{page:#x}");
            }
            // Same protection again: nothing changes, nothing to flush.
            assert!(pt.protect_range(gva(va + off), len, wc).unwrap().is_empty());
            assert_eq!(pt.tables_in_use(), tables + nsplits);
        }
    }

    #[test]
    fn rewrite_keeps_cpu_set_bits_and_leaves_another_leaf_alone() {
        use super::super::entry::{leaf_bits, A, D};
        use vm_memory::GuestMemoryMmap;

        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let table = Table::new(&mem, Pfn(1), true).unwrap();
        let seen = 0x5000 | leaf_bits(rw(), PageSize::Size4K);
        // The CPU set accessed/dirty since `seen` was read: retried, kept,
        // and the value replaced (A included, for the flush) returned.
        table.set(0, seen | A | D);
        assert_eq!(rewrite(&table, 0, seen, ro(), PageSize::Size4K), Some(seen | A | D));
        assert_eq!(table.get(0), protect_bits(seen, ro(), PageSize::Size4K) | A | D);
        // The entry now holds another frame: given up, not overwritten.
        let other = 0x6000 | leaf_bits(rw(), PageSize::Size4K);
        table.set(1, other);
        assert_eq!(rewrite(&table, 1, seen, ro(), PageSize::Size4K), None);
        assert_eq!(table.get(1), other);
    }

    #[test]
    fn unchanged_huge_leaf_is_not_split() {
        let mut pt = tables(4 * G1);
        pt.map_range(gva(0), GuestAddress(0), G1, ro(), PageSize::Size1G).unwrap();
        let f = pt.protect_range(gva(K4), K4, ro()).unwrap();
        assert!(f.is_empty());
        assert_eq!(pt.tables_in_use(), 2);
        assert_eq!(pt.translate(gva(K4)).unwrap().size, PageSize::Size1G);
    }

    #[test]
    fn flush_only_for_present_entries_that_changed() {
        let mut pt = tables(64 << 20);
        pt.insert_pages(gva(0x1000), &arr(&[Pfn(1), Pfn(2), Pfn(3)]), rw()).unwrap();
        pt.protect_range(gva(0x2000), K4, ro()).unwrap().ignore();
        // Only pages 1 and 3 change; the hole at 0x4000.. has nothing.
        let f = pt.protect_range(gva(0), 16 * K4, ro()).unwrap();
        assert_eq!(ranges(&f), vec![(0x1000, K4), (0x3000, K4)]);
        // PROT_NONE hides the pages but keeps their frames.
        let f = pt.protect_range(gva(0), 16 * K4, PageProt::NONE).unwrap();
        assert_eq!(ranges(&f), vec![(0x1000, 3 * K4)]);
        assert!(pt.translate(gva(0x2000)).is_none());
        assert_eq!(pt.leaves(gva(0), 16 * K4).len(), 3);
        // Back to present: not-present -> present needs no flush.
        let f = pt.protect_range(gva(0), 16 * K4, rw()).unwrap();
        assert!(f.is_empty());
        let t = pt.translate(gva(0x2000)).unwrap();
        assert_eq!((t.pfn, t.prot, t.counted), (Pfn(2), rw(), true));
        pt.protect_range(gva(0), 16 * K4, PageProt::NONE).unwrap().ignore();
        let u = pt.unmap_range(gva(0), 16 * K4).unwrap();
        assert_eq!(u.entries_cleared, 3);
        assert!(u.flush.ranges().is_empty());
        assert!(u.flush.tables_freed());
    }

    #[test]
    fn failure_injection_during_split_changes_nothing() {
        for n in 0..3 {
            let mut pt = tables(4 * G1);
            pt.map_range(gva(0), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
            let before = snapshot(&pt, 0, G1);
            pt.allocator_mut().inject_failure_after(Some(n));
            let r = pt.protect_range(gva(M2 + K4), K4, ro());
            pt.allocator_mut().inject_failure_after(None);
            if n < 2 {
                assert!(matches!(r, Err(MmError::OutOfMemory(_))));
                assert_eq!(snapshot(&pt, 0, G1), before);
                assert_eq!(pt.tables_in_use(), 2);
            } else {
                assert_eq!(ranges(&r.unwrap()), vec![(M2 + K4, K4)]);
                assert_eq!(pt.tables_in_use(), 4);
            }
        }
    }
}
