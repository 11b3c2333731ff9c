//! `insert_pages`: the hot path. Maps an array of scattered 4 KiB frames
//! at consecutive virtual pages, counting each.
//!
//! One walk per leaf table finds or creates the PT; then a tight loop over
//! up to 512 entries checks the entry is free, stores
//! `(pfn << 12) | bits` and bumps the frame's map count, with no
//! allocation, locking, vm-memory call or `Result` plumbing inside. The
//! frames are checked here, by the count slot the loop loads anyway: a
//! frame beyond the slots, a hole, a VMM-reserved frame or a full count
//! stops the loop and the call is undone (see `frames::map_count`).

use std::sync::atomic::Ordering;

use vm_memory::GuestMemory;

use super::entry::{leaf_bits, COUNTED, USED};
use super::map::MAX_PHYS;
use super::page_tables::{check_range, PageTables};
use super::stats::MapStats;
use super::table::{Table, ENTRIES};
use super::walk::{Filler, Stopped};
use crate::addr::{pages_to_bytes, GuestVirtAddr, PageSize, Pfn, PAGE_SHIFT};
use crate::error::MmError;
use crate::flags::PageProt;
use crate::frames::map_count::{refused, MAX_COUNT};
use crate::frames::MapCounts;

/// Writes `pages[i]` at `va0 + i * 4 KiB` and counts it in `slots`.
struct PageFiller<'p> {
    va0: u64,
    pages: &'p [Pfn],
    bits: u64,
    slots: &'p mut [u32],
    /// `pages[..written]` are in the tables (and counted).
    written: usize,
}

impl Filler for PageFiller<'_> {
    fn leaf_here(&self, _level: u32, _va: u64, _end: u64) -> bool {
        false
    }

    #[inline]
    fn fill(&mut self, table: &Table<'_>, _level: u32, first: usize, va: u64, n: usize) -> Result<(), Stopped> {
        self.fill_entries::<true>(table, first, va, n)
    }

    fn fills_fresh_tables(&self) -> bool {
        true
    }

    #[inline]
    fn fill_fresh(&mut self, table: &Table<'_>, va: u64) -> Result<(), Stopped> {
        self.fill_entries::<false>(table, 0, va, ENTRIES)
    }
}

impl PageFiller<'_> {
    /// The insert loop; `CHECK_USED = false` for a fresh table whose
    /// entries are garbage and all get written.
    #[inline(always)]
    fn fill_entries<const CHECK_USED: bool>(
        &mut self,
        table: &Table<'_>,
        first: usize,
        va: u64,
        n: usize,
    ) -> Result<(), Stopped> {
        let start = ((va - self.va0) >> PAGE_SHIFT) as usize;
        let (Some(pages), Some(entries)) = (self.pages.get(start..start + n), table.entries().get(first..first + n))
        else {
            return Err(Stopped::used(0));
        };
        // Locals, so the loop keeps them in registers.
        let bits = self.bits;
        let slots: &mut [u32] = self.slots;
        // Scattered frames make the count increments cache misses; ask for
        // the counts a few pages ahead so the misses overlap.
        let ahead = self.pages.get(start + PREFETCH_AHEAD..).unwrap_or(&[]);
        for (k, (e, pfn)) in entries.iter().zip(pages).enumerate() {
            if let Some(next) = ahead.get(k) {
                prefetch(slots, next.0);
            }
            // The slot's bounds check doubles as the frame check.
            let Some(count) = slots.get_mut(pfn.0 as usize) else {
                self.written = start + k;
                return Err(Stopped { written: k, error: Some(MmError::FrameNotInGuest { pfn: pfn.0 }) });
            };
            // A reserved frame, a hole or a full count: the slot's load is
            // the whole check (see `frames::map_count`).
            let c = *count;
            if c >= MAX_COUNT {
                self.written = start + k;
                return Err(Stopped { written: k, error: Some(refused(*pfn, c)) });
            }
            if CHECK_USED && e.load(Ordering::Relaxed) & USED != 0 {
                self.written = start + k;
                return Err(Stopped::used(k));
            }
            e.store((pfn.0 << PAGE_SHIFT) | bits, Ordering::Relaxed);
            *count = c + 1;
        }
        self.written = start + n;
        Ok(())
    }
}

/// How many pages ahead the insert loop prefetches map counts.
const PREFETCH_AHEAD: usize = 16;

/// Hints the CPU to load `slots[i]`; out-of-range indices are ignored.
#[inline(always)]
fn prefetch(slots: &[u32], i: u64) {
    #[cfg(target_arch = "x86_64")]
    if let Some(slot) = slots.get(i as usize) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it reads nothing architecturally
        // and cannot fault. SSE, which the intrinsic requires, is part of the
        // x86_64 baseline. The pointer comes from a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const u32).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slots, i);
}

impl<M: GuestMemory> PageTables<M> {
    /// Maps `pages[i]` at `va + i * 4 KiB` with `prot`. Every entry gets the
    /// software `COUNTED` bit and its frame's count in `counts` goes up by
    /// one. Every frame must be mappable in `counts`: an untracked frame or
    /// a hole gives `MmError::FrameNotInGuest`, a reserved one
    /// `MmError::FrameReserved` (checked in the loop, by the count slot).
    ///
    /// The range must be unmapped, with no huge leaf over it: otherwise
    /// `MmError::Exists`. On any error nothing this call wrote or allocated
    /// remains and `counts` is as before (see [`PageTables::map_range`] on
    /// flushing after an error).
    pub fn insert_pages(
        &mut self,
        va: GuestVirtAddr,
        pages: &[Pfn],
        prot: PageProt,
        counts: &mut MapCounts,
    ) -> Result<MapStats, MmError> {
        let len =
            pages_to_bytes(pages.len() as u64).ok_or(MmError::Overflow { addr: va.raw(), len: pages.len() as u64 })?;
        let end = check_range(va, len)?;
        if pages.is_empty() {
            return Ok(MapStats::default());
        }
        // Tracked frames then fit in an entry's address field.
        if counts.len() > MAX_PHYS >> PAGE_SHIFT {
            return Err(MmError::Invalid("map counts track frames beyond MAXPHYADDR"));
        }
        let mut w = self.writer(false, va.raw());
        w.reserve_log(pages.len() / ENTRIES + 2);
        let root = w.root()?;
        let mut filler = PageFiller {
            va0: va.raw(),
            pages,
            bits: leaf_bits(prot, PageSize::Size4K) | COUNTED,
            slots: counts.slots_mut(),
            written: 0,
        };
        let result = w.populate(&root, 4, va.raw(), end, &mut filler);
        let written = filler.written;
        match result {
            Ok(()) => {
                counts.add_total(pages.len() as u64);
                Ok(w.commit())
            }
            Err(e) => {
                w.rollback();
                let slots = counts.slots_mut();
                for p in &pages[..written] {
                    if let Some(c) = slots.get_mut(p.0 as usize) {
                        *c = c.saturating_sub(1);
                    }
                }
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
        let mut counts = MapCounts::new(FRAMES);
        for (va, n) in [(0x7f_c000, 1500usize), ((512 << 30) - 600 * 4096, 1200), ((1 << 30) - 4096, 2)] {
            let pages = scattered(n, FRAMES);
            let s = pt.insert_pages(gva(va), &pages, rw(), &mut counts).unwrap();
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
        assert_eq!(counts.total(), 1500 + 1200 + 2);
    }

    #[test]
    fn counts_go_up_and_down_and_released_frames_are_reported() {
        let mut pt = tables(64 << 20);
        let mut counts = MapCounts::new(FRAMES);
        let a = [Pfn(10), Pfn(11), Pfn(10)];
        pt.insert_pages(gva(0x1000), &a, rw(), &mut counts).unwrap();
        pt.insert_pages(gva(0x9000), &[Pfn(11)], rw(), &mut counts).unwrap();
        assert_eq!((counts.get(Pfn(10)), counts.get(Pfn(11)), counts.total()), (2, 2, 4));
        let mut released = Vec::new();
        let u = pt.unmap_range(gva(0x1000), 3 * 4096, &mut counts, &mut released).unwrap();
        assert_eq!(u.entries_cleared, 3);
        assert_eq!(released, vec![Pfn(10)]);
        assert_eq!((counts.get(Pfn(10)), counts.get(Pfn(11)), counts.total()), (0, 1, 1));
        u.flush.ignore();
        let u = pt.unmap_range(gva(0), 1 << 20, &mut counts, &mut released).unwrap();
        assert_eq!(released, vec![Pfn(10), Pfn(11)]);
        assert_eq!(counts.total(), 0);
        assert!(u.flush.tables_freed());
        assert_eq!(pt.tables_in_use(), 1);
    }

    #[test]
    fn insert_over_mapped_pages_or_huge_leaves_is_refused() {
        let mut pt = tables(64 << 20);
        let mut counts = MapCounts::new(FRAMES);
        pt.insert_pages(gva(0x5000), &[Pfn(1)], rw(), &mut counts).unwrap();
        pt.map_range(gva(0x40_0000), GuestAddress(0), 2 << 20, rw(), PageSize::Size2M).unwrap();
        let before = snapshot(&pt, 0, 1 << 30);
        let tables = pt.tables_in_use();
        let pages = scattered(600, FRAMES);
        for va in [0x1000u64, 0x5000, 0x3f_f000, 0x40_0000, 0x2f_0000] {
            let r = pt.insert_pages(gva(va), &pages, rw(), &mut counts);
            assert_eq!(r, Err(MmError::Exists { addr: va }), "{va:#x}");
            assert_eq!(snapshot(&pt, 0, 1 << 30), before);
            assert_eq!(pt.tables_in_use(), tables);
            assert_eq!(counts.total(), 1);
            assert!(pages.iter().all(|&p| counts.get(p) == (p == Pfn(1)) as u32));
        }
    }

    #[test]
    fn untracked_frames_and_bad_ranges_are_refused() {
        let mut pt = tables(64 << 20);
        let mut counts = MapCounts::new(16);
        let cases: &[(u64, &[Pfn], MmError)] = &[
            (0, &[Pfn(3), Pfn(16)], MmError::FrameNotInGuest { pfn: 16 }),
            (0, &[Pfn(u64::MAX)], MmError::FrameNotInGuest { pfn: u64::MAX }),
            (0x10, &[Pfn(1)], MmError::Misaligned { what: "address", value: 0x10, align: 4096 }),
            (0x7fff_ffff_f000, &[Pfn(1), Pfn(2)], MmError::NonCanonical { addr: 0x8000_0000_0fff }),
        ];
        for (va, pages, err) in cases {
            assert_eq!(pt.insert_pages(gva(*va), pages, rw(), &mut counts).as_ref(), Err(err));
        }
        assert_eq!(counts.total(), 0);
        assert_eq!(pt.tables_in_use(), 1);
        assert_eq!(pt.insert_pages(gva(0), &[], rw(), &mut counts), Ok(MapStats::default()));
    }

    #[test]
    fn failure_injection_restores_tables_and_counts() {
        let pages = scattered(3000, FRAMES);
        for n in 0..10 {
            let mut pt = tables(64 << 20);
            let mut counts = MapCounts::new(FRAMES);
            pt.insert_pages(gva(0x3f_e000), &[Pfn(5)], rw(), &mut counts).unwrap();
            let before = snapshot(&pt, 0, 2 << 30);
            let tables = pt.tables_in_use();
            pt.allocator_mut().inject_failure_after(Some(n));
            // Starts right after the existing page, crosses 1 GiB.
            let va = (1 << 30) - 1000 * 4096;
            let r = pt.insert_pages(gva(va), &pages, rw(), &mut counts);
            pt.allocator_mut().inject_failure_after(None);
            match r {
                Err(MmError::OutOfMemory(_)) => {
                    assert_eq!(snapshot(&pt, 0, 2 << 30), before, "n={n}");
                    assert_eq!(pt.tables_in_use(), tables, "n={n}");
                    assert_eq!(counts.total(), 1);
                    assert!(pages.iter().all(|&p| counts.get(p) == (p == Pfn(5)) as u32));
                }
                Ok(s) => {
                    assert!(s.tables_allocated <= n);
                    assert_eq!(counts.total(), 3001);
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
        let mut counts = MapCounts::new(FRAMES);
        let pages: Vec<Pfn> = (0..1536u64).map(|i| Pfn((i * 7919 + 13) % FRAMES)).collect();
        // 2 MiB aligned: three whole leaf tables (not zeroed, overwritten).
        pt.insert_pages(gva(G1), &pages, rw(), &mut counts).unwrap();
        // Mid-table: two partial leaf tables (zeroed first).
        pt.insert_pages(gva(2 * G1 + 100 * K4), &pages[..600], rw(), &mut counts).unwrap();
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(pt.translate(gva(G1 + i as u64 * K4)).unwrap().pfn, *p, "page {i}");
        }
        // Nothing but the mapped pages: the garbage was zeroed or overwritten.
        assert_eq!(pt.leaves(gva(0), 1 << 47).len(), 1536 + 600);
        assert!(pt.translate(gva(2 * G1 + 99 * K4)).is_none());
        assert!(pt.translate(gva(2 * G1 + 700 * K4)).is_none());
        assert!(pt.translate(gva(2 * G1 + 1023 * K4)).is_none());
    }

    #[test]
    fn a_stop_inside_a_fresh_table_undoes_it_and_the_frame_is_reusable() {
        let mut pt = tables(64 << 20);
        dirty_table_region(&pt);
        let mut counts = MapCounts::new(FRAMES);
        let mut pages: Vec<Pfn> = (0..1024u64).map(|i| Pfn(i + 1)).collect();
        pages[700] = Pfn(FRAMES + 3); // untracked: stops the second table at entry 188
        let tables_before = pt.tables_in_use();
        let r = pt.insert_pages(gva(G1), &pages, rw(), &mut counts);
        assert_eq!(r, Err(MmError::FrameNotInGuest { pfn: FRAMES + 3 }));
        assert_eq!(pt.tables_in_use(), tables_before);
        assert_eq!(counts.total(), 0);
        assert!(pt.leaves(gva(0), 1 << 47).is_empty());
        // The freed (now partly garbage) tables are handed out again.
        pages[700] = Pfn(5000);
        pt.insert_pages(gva(G1), &pages, rw(), &mut counts).unwrap();
        assert_eq!(pt.leaves(gva(0), 1 << 47).len(), 1024);
        assert_eq!(pt.translate(gva(G1 + 700 * K4)).unwrap().pfn, Pfn(5000));
        assert_eq!(counts.total(), 1024);
    }
}
