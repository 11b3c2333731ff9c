//! `map_range`: maps a contiguous guest-physical range, using 2 MiB and
//! 1 GiB leaves wherever alignment and length allow.
//!
//! Nothing is pinned: contiguous ranges (remaps, I/O remaps, huge pages)
//! are raw frames, like `VM_PFNMAP` ranges in Linux.

use std::sync::atomic::Ordering;

use vm_memory::{GuestAddress, GuestMemory};

use super::entry::{leaf_bits, span, USED};
use super::page_tables::{check_range, PageTables};
use super::stats::MapStats;
use super::table::Table;
use super::walk::{Filler, Stopped};
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::PageProt;

/// Highest guest-physical address bit + 1 an entry can hold (MAXPHYADDR).
pub(super) const MAX_PHYS: u64 = 1 << 52;

/// Writes leaves of `va0 + x -> pa0 + x`.
struct RangeFiller {
    va0: u64,
    pa0: u64,
    max_level: u32,
    /// Leaf bits per level (index `level - 1`).
    bits: [u64; 3],
}

impl RangeFiller {
    #[inline]
    fn pa(&self, va: u64) -> u64 {
        self.pa0 + (va - self.va0)
    }
}

impl Filler for RangeFiller {
    fn leaf_here(&self, level: u32, va: u64, end: u64) -> bool {
        let span = span(level);
        level <= self.max_level && end - va == span && self.pa(va) & (span - 1) == 0
    }

    fn fill(&mut self, table: &Table<'_>, level: u32, first: usize, va: u64, n: usize) -> Result<(), Stopped> {
        let span = span(level);
        let bits = self.bits[level as usize - 1];
        let mut pa = self.pa(va);
        let entries = table.entries().get(first..first + n).ok_or(Stopped::used(0))?;
        for (k, e) in entries.iter().enumerate() {
            if e.load(Ordering::Relaxed) & USED != 0 {
                return Err(Stopped::used(k));
            }
            e.store(pa | bits, Ordering::Relaxed);
            pa += span;
        }
        Ok(())
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Maps `[va, va + len)` to the contiguous `[pa, pa + len)` with `prot`.
    /// Each piece gets the largest leaf not above `max_leaf` that the
    /// alignment of `va`, `pa` and the remaining length allow, so an
    /// aligned 1 GiB range writes exactly one entry.
    ///
    /// The range must be unmapped: a used entry found on the way is
    /// `MmError::Exists`. On any error nothing this call wrote or allocated
    /// remains. Entries it wrote into tables that were already linked were
    /// briefly present: they are added to
    /// [`PageTables::take_rollback_flush`], which a caller whose vCPUs may
    /// have run must flush.
    pub fn map_range(
        &mut self,
        va: GuestVirtAddr,
        pa: GuestAddress,
        len: u64,
        prot: PageProt,
        max_leaf: PageSize,
    ) -> Result<MapStats, MmError> {
        let end = check_range(va, len)?;
        if pa.0 & (PAGE_SIZE - 1) != 0 {
            return Err(MmError::Misaligned { what: "physical address", value: pa.0, align: PAGE_SIZE });
        }
        match pa.0.checked_add(len) {
            Some(pend) if pend <= MAX_PHYS => {}
            _ => return Err(MmError::Overflow { addr: pa.0, len }),
        }
        if len == 0 {
            return Ok(MapStats::default());
        }
        let mut filler = RangeFiller {
            va0: va.raw(),
            pa0: pa.0,
            max_level: max_leaf.level(),
            bits: [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G].map(|s| leaf_bits(prot, s)),
        };
        let mut w = self.writer(false, va.raw());
        let root = w.root()?;
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
    use crate::flags::CacheMode;

    #[test]
    fn every_size_and_cache_mode_translates() {
        let mut pt = tables(4 * G1);
        let caches = [CacheMode::WriteBack, CacheMode::WriteThrough, CacheMode::Uncached, CacheMode::WriteCombining];
        let mut va = 0x10_0000_0000u64;
        for size in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            for (i, cache) in caches.into_iter().enumerate() {
                let p = rw().with_cache(cache);
                let p = PageProt { no_execute: i % 2 == 0, writable: i % 3 != 0, ..p };
                let pa = size.bytes() * (i as u64 + 1);
                let s = pt.map_range(gva(va), GuestAddress(pa), size.bytes(), p, size).unwrap();
                assert_eq!(s.entries_written, 1);
                assert_eq!(s.leaves(size), 1);
                for off in [0, size.bytes() / 2 + 8, size.bytes() - 1] {
                    let t = pt.translate(gva(va + off)).unwrap();
                    assert_eq!(t.phys, GuestAddress(pa + off));
                    assert_eq!(t.pfn.0, (pa + off) >> 12);
                    assert_eq!(t.size, size);
                    assert_eq!(t.prot, p, "{size:?} {cache:?}");
                    assert!(!t.counted);
                }
                va += G1;
            }
        }
        assert!(pt.translate(gva(va)).is_none());
    }

    #[test]
    fn huge_leaves_exactly_where_alignment_allows() {
        // (va, pa, len, max_leaf, [4K, 2M, 1G] leaves)
        let cases: &[(u64, u64, u64, PageSize, [u64; 3])] = &[
            (0, 0, K4, PageSize::Size1G, [1, 0, 0]),
            (0, 0, M2, PageSize::Size1G, [0, 1, 0]),
            (0, 0, M2, PageSize::Size4K, [512, 0, 0]),
            (0, K4, M2, PageSize::Size1G, [512, 0, 0]),
            (K4, K4, M2 - K4, PageSize::Size1G, [511, 0, 0]),
            (M2 - K4, M2 - K4, M2 + 2 * K4, PageSize::Size1G, [2, 1, 0]),
            (0, 0, G1, PageSize::Size1G, [0, 0, 1]),
            (0, 0, G1, PageSize::Size2M, [0, 512, 0]),
            (0, M2, G1, PageSize::Size1G, [0, 512, 0]),
            (G1 - M2, G1 - M2, G1 + 2 * M2 + K4, PageSize::Size1G, [1, 2, 1]),
            (G1 + K4, K4, G1, PageSize::Size1G, [512, 511, 0]),
        ];
        for &(va, pa, len, max, want) in cases {
            let mut pt = tables(4 * G1);
            let base = 0x40_0000_0000;
            let s = pt.map_range(gva(base + va), GuestAddress(pa), len, rw(), max).unwrap();
            assert_eq!(s.leaves_by_size, want, "va {va:#x} pa {pa:#x} len {len:#x} {max:?}");
            assert_eq!(s.entries_written, want.iter().sum::<u64>());
            assert_eq!(s.tables_allocated as usize + 1, pt.tables_in_use());
            // Every page translates to its frame, with the leaf size chosen.
            let leaves = pt.leaves(gva(base), 4 * G1);
            assert_eq!(leaves.len() as u64, want.iter().sum::<u64>());
            for off in (0..len).step_by(K4 as usize) {
                let t = pt.translate(gva(base + va + off)).unwrap();
                assert_eq!(t.phys.0, pa + off);
            }
        }
    }

    #[test]
    fn aligned_gigabyte_remap_writes_one_entry_and_no_lower_tables() {
        let mut pt = tables(4 * G1);
        let s = pt.map_range(gva(0), GuestAddress(G1), G1, rw(), PageSize::Size1G).unwrap();
        assert_eq!((s.entries_written, s.tables_allocated), (1, 1)); // the PDPT only
        let s = pt.map_range(gva(G1), GuestAddress(2 * G1), G1, rw(), PageSize::Size1G).unwrap();
        assert_eq!((s.entries_written, s.tables_allocated), (1, 0));
        assert_eq!(pt.tables_in_use(), 2);
    }

    #[test]
    fn overlapping_map_is_refused_and_undone() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0x20_0000 + 5 * K4), GuestAddress(0), K4, rw(), PageSize::Size4K).unwrap();
        let before = snapshot(&pt, 0, 8 << 20);
        let tables = pt.tables_in_use();
        for (va, len) in [(0, 4 << 20), (0x20_0000, M2), (0x20_0000 + 5 * K4, K4), (0x1f_0000, 0x1_0000 + 6 * K4)] {
            let r = pt.map_range(gva(va), GuestAddress(0x40_0000), len, rw(), PageSize::Size2M);
            assert_eq!(r, Err(MmError::Exists { addr: va }), "{va:#x}+{len:#x}");
            assert_eq!(snapshot(&pt, 0, 8 << 20), before);
            assert_eq!(pt.tables_in_use(), tables);
        }
    }

    #[test]
    fn an_undone_map_flushes_exactly_the_live_entries_it_wrote() {
        let mut pt = tables(64 << 20);
        let base = 0x20_0000;
        // A leaf table exists (and is reachable) for [base, base + 2 MiB).
        pt.map_range(gva(base + 5 * K4), GuestAddress(0), K4, rw(), PageSize::Size4K).unwrap();
        let _ = pt.take_rollback_flush();
        // Two entries are written into it before the used one stops the map.
        let r = pt.map_range(gva(base + 3 * K4), GuestAddress(0x40_0000), 3 * K4, rw(), PageSize::Size4K);
        assert_eq!(r, Err(MmError::Exists { addr: base + 3 * K4 }));
        let f = pt.take_rollback_flush();
        assert_eq!(f.ranges(), &[(gva(base + 3 * K4), 2 * K4)]);
        assert!(!f.tables_freed() && f.may_be_cached());
        // A map whose first leaf table is new, filled whole and linked into
        // the existing directory before the next one stops it: its 512
        // entries were live, and the table is freed again.
        let tables = pt.tables_in_use();
        let r = pt.map_range(gva(0), GuestAddress(0x40_0000), M2 + 6 * K4, rw(), PageSize::Size4K);
        assert_eq!(r, Err(MmError::Exists { addr: 0 }));
        assert_eq!(pt.tables_in_use(), tables);
        let f = pt.take_rollback_flush();
        assert!(f.tables_freed());
        assert!(f.ranges().iter().any(|&(a, len)| a.raw() == 0 && len >= M2), "{f:?}");
        assert!(f.ranges().iter().all(|&(a, len)| a.raw() + len <= M2 + 6 * K4), "{f:?}");
        // A map into a subtree of new tables that is never linked: a new
        // directory gets a first leaf table, filled and linked into it,
        // then the second leaf table cannot be allocated. The directory was
        // never linked, so nothing it held was live: nothing to flush.
        let tables = pt.tables_in_use();
        pt.allocator_mut().inject_failure_after(Some(2));
        let r = pt.map_range(gva((5 << 30) + M2 - K4), GuestAddress(0), 2 * K4, rw(), PageSize::Size4K);
        pt.allocator_mut().inject_failure_after(None);
        assert!(matches!(r, Err(MmError::OutOfMemory(_))), "{r:?}");
        assert_eq!(pt.tables_in_use(), tables);
        assert!(pt.take_rollback_flush().is_empty());
    }

    #[test]
    fn a_corrupted_table_pointer_is_an_error_naming_its_frame() {
        use super::super::entry::table_entry;
        use crate::addr::Pfn;
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0x1000), GuestAddress(0x5000), K4, rw(), PageSize::Size4K).unwrap();
        let map = |pt: &mut Tables| pt.map_range(gva(0x2000), GuestAddress(0x6000), K4, rw(), PageSize::Size4K);
        // A PD entry pointing outside the table region...
        poke(&pt, 0, 2, table_entry(Pfn(0x4_0000)));
        assert_eq!(map(&mut pt), Err(MmError::GuestMemory { addr: 0x4000_0000 }));
        // ... or at the root.
        poke(&pt, 0, 2, table_entry(Pfn::containing(pt.root())));
        assert_eq!(map(&mut pt), Err(MmError::GuestMemory { addr: pt.root().0 }));
    }

    #[test]
    fn bad_arguments() {
        let mut pt = tables(64 << 20);
        let cases: &[(u64, u64, u64)] =
            &[(1, 0, K4), (0, 1, K4), (0, 0, 5), (0, !0xfff, 2 * K4), (0x7fff_ffff_f000, 0, 2 * K4)];
        for &(va, pa, len) in cases {
            assert!(pt.map_range(gva(va), GuestAddress(pa), len, rw(), PageSize::Size1G).is_err());
        }
        assert_eq!(pt.tables_in_use(), 1);
        assert_eq!(pt.map_range(gva(0), GuestAddress(0), 0, rw(), PageSize::Size1G), Ok(MapStats::default()));
    }

    #[test]
    fn physical_range_ends_at_maxphyaddr() {
        let mut pt = tables(64 << 20);
        // A frame past MAXPHYADDR cannot be encoded in an entry.
        for (pa, len) in [(MAX_PHYS - K4, 2 * K4), (MAX_PHYS, K4), (MAX_PHYS - K4, M2)] {
            let r = pt.map_range(gva(0), GuestAddress(pa), len, rw(), PageSize::Size4K);
            assert_eq!(r, Err(MmError::Overflow { addr: pa, len }), "{pa:#x}+{len:#x}");
        }
        assert_eq!(pt.tables_in_use(), 1);
        assert!(pt.leaves(gva(0), 4 << 20).is_empty());
        // The last frame below it can.
        pt.map_range(gva(0), GuestAddress(MAX_PHYS - K4), K4, rw(), PageSize::Size4K).unwrap();
        assert_eq!(pt.translate(gva(0x123)).unwrap().phys, GuestAddress(MAX_PHYS - K4 + 0x123));
    }

    #[test]
    fn upper_half_addresses() {
        let mut pt = tables(64 << 20);
        let va = 0xffff_ffff_8000_0000;
        pt.map_range(gva(va), GuestAddress(0x20_0000), 4 << 20, rw(), PageSize::Size2M).unwrap();
        assert_eq!(pt.translate(gva(va + 0x30_0123)).unwrap().phys, GuestAddress(0x50_0123));
        let leaves = pt.leaves(gva(va), 4 << 20);
        assert_eq!(leaves.iter().map(|l| l.va.raw()).collect::<Vec<_>>(), vec![va, va + M2]);
    }

    #[test]
    fn failure_injection_leaves_nothing_behind() {
        for max in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            for n in 0..6 {
                let mut pt = tables(4 * G1);
                pt.map_range(gva(G1), GuestAddress(0), K4, rw(), PageSize::Size4K).unwrap();
                let before = snapshot(&pt, 0, 4 * G1);
                let tables = pt.tables_in_use();
                pt.allocator_mut().inject_failure_after(Some(n));
                // Crosses a 1 GiB and a 512 GiB boundary: several new tables.
                let va = (512 << 30) - G1 - M2 - 3 * K4;
                let r = pt.map_range(gva(va), GuestAddress(G1 - M2 - 3 * K4), G1 + 2 * M2 + 6 * K4, rw(), max);
                pt.allocator_mut().inject_failure_after(None);
                match r {
                    Err(MmError::OutOfMemory(_)) => {
                        assert_eq!(snapshot(&pt, 0, 4 * G1), before);
                        assert_eq!(pt.tables_in_use(), tables, "{max:?} n={n}");
                        assert!(pt.leaves(gva(va), G1 + 4 * M2).is_empty());
                    }
                    Ok(s) => assert!(s.tables_allocated <= n, "{max:?} n={n}"),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
