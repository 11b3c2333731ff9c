//! `insert_pages`: the hot path. Maps a pinned array of scattered 4 KiB
//! frames at consecutive virtual pages.
//!
//! One walk per leaf table finds or creates the PT; then a tight loop over
//! up to 512 entries stores `(pfn << 12) | bits`, with no allocation,
//! locking, per-frame bookkeeping, vm-memory call or `Result` plumbing
//! inside. The frames need no check beyond their range: the array's pin
//! ([`crate::frames::Pinned`]) checked each one (guest RAM, not reserved)
//! when it was made, and keeps them allocated while the VMA holds it. A
//! new leaf table the range covers whole is filled with plain (vectorizable)
//! stores before it is linked ([`Table::fill_unlinked`]); entries of a
//! linked table are checked free and written one atomic store each.

use std::sync::atomic::Ordering;

use vm_memory::GuestMemory;

use super::entry::{leaf_bits, COUNTED, USED};
use super::page_tables::{check_range, PageTables};
use super::stats::MapStats;
use super::table::{Table, ENTRIES};
use super::walk::{Filler, Stopped};
use crate::action::PageArray;
use crate::addr::{pages_to_bytes, GuestVirtAddr, PageSize, Pfn, PAGE_SHIFT};
use crate::error::MmError;
use crate::flags::PageProt;
use crate::frames::MAX_PFN;

/// Writes `pages[i]` at `va0 + i * 4 KiB`.
struct PageFiller<'p> {
    va0: u64,
    pages: &'p [Pfn],
    bits: u64,
    /// Every frame must be below this (the pinning frame state's end).
    limit: u64,
}

impl Filler for PageFiller<'_> {
    fn leaf_here(&self, _level: u32, _va: u64, _end: u64) -> bool {
        false
    }

    #[inline]
    fn fill(&mut self, table: &Table<'_>, _level: u32, first: usize, va: u64, n: usize) -> Result<(), Stopped> {
        let start = ((va - self.va0) >> PAGE_SHIFT) as usize;
        let (Some(pages), Some(entries)) = (self.pages.get(start..start + n), table.entries().get(first..first + n))
        else {
            return Err(Stopped::used(0));
        };
        let (bits, limit) = (self.bits, self.limit);
        for (k, (e, pfn)) in entries.iter().zip(pages).enumerate() {
            if pfn.0 >= limit {
                return Err(Stopped { written: k, error: Some(MmError::FrameNotInGuest { pfn: pfn.0 }) });
            }
            if e.load(Ordering::Relaxed) & USED != 0 {
                return Err(Stopped::used(k));
            }
            e.store((pfn.0 << PAGE_SHIFT) | bits, Ordering::Relaxed);
        }
        Ok(())
    }

    fn fills_fresh_tables(&self) -> bool {
        true
    }

    #[inline]
    fn fill_fresh(&mut self, table: &Table<'_>, va: u64) -> Result<(), Stopped> {
        let start = ((va - self.va0) >> PAGE_SHIFT) as usize;
        let Some(pages) = self.pages.get(start..start + ENTRIES).and_then(|p| <&[Pfn; ENTRIES]>::try_from(p).ok())
        else {
            return Err(Stopped::used(0));
        };
        // The table is not linked yet: a bad frame found after the stores
        // is never seen, and the writer frees the table unlinked.
        // Every frame is at most the OR of all; only when that is not below
        // the limit are they compared one by one.
        let any = table.fill_unlinked(pages, self.bits);
        if any >= self.limit {
            if let Some(bad) = pages.iter().find(|p| p.0 >= self.limit) {
                return Err(Stopped { written: ENTRIES, error: Some(MmError::FrameNotInGuest { pfn: bad.0 }) });
            }
        }
        Ok(())
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Maps `pages[i]` at `va + i * 4 KiB` with `prot`. Every entry gets the
    /// software `COUNTED` bit (a page-array page, pinned by `pages`). The
    /// caller keeps the array's pin for as long as the entries exist (the
    /// address space: the VMA holds it).
    ///
    /// The range must be unmapped, with no huge leaf over it: otherwise
    /// `MmError::Exists`. A frame at or beyond the pinning frame state's
    /// end (which pinning never lets through) gives `FrameNotInGuest`. On
    /// any error nothing this call wrote or allocated remains (see
    /// [`PageTables::map_range`] on flushing after an error).
    pub fn insert_pages(&mut self, va: GuestVirtAddr, pages: &PageArray, prot: PageProt) -> Result<MapStats, MmError> {
        let frames = pages.as_slice();
        let len = pages_to_bytes(frames.len() as u64)
            .ok_or(MmError::Overflow { addr: va.raw(), len: frames.len() as u64 })?;
        let end = check_range(va, len)?;
        if frames.is_empty() {
            return Ok(MapStats::default());
        }
        let mut w = self.writer(false, va.raw());
        w.reserve_log(frames.len() / ENTRIES + 2);
        let root = w.root()?;
        let mut filler = PageFiller {
            va0: va.raw(),
            pages: frames,
            bits: leaf_bits(prot, PageSize::Size4K) | COUNTED,
            limit: pages.pinned().frames().nr_frames().min(MAX_PFN),
        };
        match w.populate(&root, 4, va.raw(), end, &mut filler) {
            Ok(()) => Ok(w.commit()),
            Err(e) => {
                w.rollback();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use vm_memory::GuestAddress;

    /// Distinct frames in a scrambled order (a multiplicative permutation).
    fn scattered(n: usize, frames: u64) -> Vec<Pfn> {
        (0..n as u64).map(|i| Pfn((i * 7919 + 13) % frames)).collect()
    }

    #[test]
    fn every_page_maps_its_own_frame() {
        // Starts mid-table and crosses several leaf-table boundaries, a PD
        // boundary (1 GiB) and a PDPT boundary (512 GiB).
        let mut pt = tables(64 << 20);
        for (va, n) in [(0x7f_c000, 1500usize), ((512 << 30) - 600 * 4096, 1200), ((1 << 30) - 4096, 2)] {
            let pages = scattered(n, FRAMES);
            let s = pt.insert_pages(gva(va), &arr(&pages), rw()).unwrap();
            assert_eq!(s.entries_written, n as u64);
            assert_eq!(s.leaves_by_size, [n as u64, 0, 0]);
            for (i, p) in pages.iter().enumerate() {
                let t = pt.translate(gva(va + i as u64 * 4096 + 0x123)).unwrap();
                assert_eq!(t.pfn, *p, "page {i} at {va:#x}");
                assert_eq!(t.phys, GuestAddress((p.0 << 12) + 0x123));
                assert_eq!(t.size, PageSize::Size4K);
                assert!(t.counted);
                assert_eq!(t.prot, rw());
            }
            assert!(pt.translate(gva(va + n as u64 * 4096)).is_none());
            assert!(va < 4096 || pt.translate(gva(va - 4096)).is_none());
        }
    }

    #[test]
    fn insert_over_mapped_pages_or_huge_leaves_is_refused() {
        let mut pt = tables(64 << 20);
        pt.insert_pages(gva(0x5000), &arr(&[Pfn(1)]), rw()).unwrap();
        pt.map_range(gva(0x40_0000), GuestAddress(0), 2 << 20, rw(), PageSize::Size2M).unwrap();
        let before = snapshot(&pt, 0, 1 << 30);
        let tables = pt.tables_in_use();
        let pages = arr(&scattered(600, FRAMES));
        for va in [0x1000u64, 0x5000, 0x3f_f000, 0x40_0000, 0x2f_0000] {
            let r = pt.insert_pages(gva(va), &pages, rw());
            assert_eq!(r, Err(MmError::Exists { addr: va }), "{va:#x}");
            assert_eq!(snapshot(&pt, 0, 1 << 30), before);
            assert_eq!(pt.tables_in_use(), tables);
        }
    }

    #[test]
    fn frames_beyond_the_frame_state_and_bad_ranges_are_refused() {
        let mut pt = tables(64 << 20);
        let cases: &[(u64, &[Pfn], MmError)] = &[
            (0, &[Pfn(3), Pfn(16)], MmError::FrameNotInGuest { pfn: 16 }),
            (0, &[Pfn(u64::MAX)], MmError::FrameNotInGuest { pfn: u64::MAX }),
            (0x10, &[Pfn(1)], MmError::Misaligned { what: "address", value: 0x10, align: 4096 }),
            (0x7fff_ffff_f000, &[Pfn(1), Pfn(2)], MmError::NonCanonical { addr: 0x8000_0000_0fff }),
        ];
        for (va, pages, err) in cases {
            assert_eq!(pt.insert_pages(gva(*va), &unchecked(pages, 16), rw()).as_ref(), Err(err));
        }
        assert_eq!(pt.tables_in_use(), 1);
        assert!(pt.leaves(gva(0), 1 << 47).is_empty());
        assert_eq!(pt.insert_pages(gva(0), &arr(&[]), rw()), Ok(MapStats::default()));
    }

    #[test]
    fn failure_injection_restores_tables() {
        let pages = arr(&scattered(3000, FRAMES));
        for n in 0..10 {
            let mut pt = tables(64 << 20);
            pt.insert_pages(gva(0x3f_e000), &arr(&[Pfn(5)]), rw()).unwrap();
            let before = snapshot(&pt, 0, 2 << 30);
            let tables = pt.tables_in_use();
            pt.allocator_mut().inject_failure_after(Some(n));
            // Starts right after the existing page, crosses 1 GiB.
            let va = (1 << 30) - 1000 * 4096;
            let r = pt.insert_pages(gva(va), &pages, rw());
            pt.allocator_mut().inject_failure_after(None);
            match r {
                Err(MmError::OutOfMemory(_)) => {
                    assert_eq!(snapshot(&pt, 0, 2 << 30), before, "n={n}");
                    assert_eq!(pt.tables_in_use(), tables, "n={n}");
                }
                Ok(s) => {
                    assert!(s.tables_allocated <= n);
                    assert_eq!(snapshot(&pt, 0, 2 << 30).len(), 3001);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fresh_table_tests {
    use vm_memory::{Bytes, GuestAddress};

    use super::super::test_util::*;
    use super::*;

    /// Fills every table frame but the root with all-ones, as tables freed
    /// after a failed fill (or never used) may hold.
    fn dirty_table_region(pt: &Tables) {
        let root = pt.root().0;
        let garbage = vec![0xffu8; 4096];
        for f in 1..(16 << 20) / 4096 {
            pt.memory().write_slice(&garbage, GuestAddress(root + f * 4096)).unwrap();
        }
    }

    #[test]
    fn whole_leaf_tables_are_written_without_zeroing_and_partial_ones_are_zeroed() {
        let mut pt = tables(64 << 20);
        dirty_table_region(&pt);
        let pages: Vec<Pfn> = (0..1536u64).map(|i| Pfn((i * 7919 + 13) % FRAMES)).collect();
        // 2 MiB aligned: three whole leaf tables (not zeroed, overwritten).
        pt.insert_pages(gva(G1), &arr(&pages), rw()).unwrap();
        // Mid-table: two partial leaf tables (zeroed first).
        pt.insert_pages(gva(2 * G1 + 100 * K4), &arr(&pages[..600]), rw()).unwrap();
        for (i, p) in pages.iter().enumerate() {
            let t = pt.translate(gva(G1 + i as u64 * K4)).unwrap();
            assert_eq!((t.pfn, t.prot, t.counted), (*p, rw(), true), "page {i}");
        }
        // Nothing but the mapped pages: the garbage was zeroed or overwritten.
        assert_eq!(pt.leaves(gva(0), 1 << 47).len(), 1536 + 600);
        assert!(pt.translate(gva(2 * G1 + 99 * K4)).is_none());
        assert!(pt.translate(gva(2 * G1 + 700 * K4)).is_none());
        assert!(pt.translate(gva(2 * G1 + 1023 * K4)).is_none());
    }

    #[test]
    fn a_bad_frame_in_a_fresh_table_undoes_it_and_the_tables_are_reusable() {
        for bad_at in [700usize, 512, 1023, 0] {
            let mut pt = tables(64 << 20);
            dirty_table_region(&pt);
            let mut pages: Vec<Pfn> = (0..1024u64).map(|i| Pfn(i + 1)).collect();
            pages[bad_at] = Pfn(FRAMES + 3); // beyond the frame state
            let tables_before = pt.tables_in_use();
            let r = pt.insert_pages(gva(G1), &unchecked(&pages, FRAMES), rw());
            assert_eq!(r, Err(MmError::FrameNotInGuest { pfn: FRAMES + 3 }), "bad at {bad_at}");
            assert_eq!(pt.tables_in_use(), tables_before);
            assert!(pt.leaves(gva(0), 1 << 47).is_empty());
            // The freed (now partly garbage) tables are handed out again.
            pages[bad_at] = Pfn(5000);
            pt.insert_pages(gva(G1), &arr(&pages), rw()).unwrap();
            assert_eq!(pt.leaves(gva(0), 1 << 47).len(), 1024);
            assert_eq!(pt.translate(gva(G1 + bad_at as u64 * K4)).unwrap().pfn, Pfn(5000));
        }
    }
}
