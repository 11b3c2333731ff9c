//! Property test of [`VmaTree`] and its gap index against a naive model:
//! random inserts, range removals, splits, merges, lookups and top-down
//! searches (kept clear of the guard gap below `VM_GROWSDOWN` VMAs). The
//! model is the set of covered units (and which grow down) and a brute-force
//! search over every aligned candidate; after every operation the tree's
//! coverage equals the model's, and every augmented value of the gap index
//! is recomputed from scratch and compared (`VmaTree::check`, which also
//! walks the lookup radix and compares its runs with the VMAs). Spaces
//! start at address 0, at the top of the lower half or at the start of
//! the upper half, with units up to 256 MiB (so ranges span many radix
//! root entries); `find` is checked against a search of the VMAs at every
//! VMA's edges and at byte-granular addresses.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::tree::{VmaTree, STACK_GUARD_GAP};
use super::{ProviderId, Vma};
use crate::addr::GuestVirtAddr;
use crate::flags::{PageProt, VmFlags};

/// Units the model spans.
const UNITS: u64 = 600;

#[derive(Clone, Debug)]
enum Op {
    /// Insert `[at, at + n)` if free (else remove what is there first, as a
    /// fixed mapping does); `rw` picks the flags, so some neighbours merge.
    Insert {
        at: u64,
        n: u64,
        rw: bool,
        /// A `VM_GROWSDOWN` VMA: the gap search keeps the guard gap below it.
        grows: bool,
    },
    Remove {
        at: u64,
        n: u64,
    },
    Split {
        at: u64,
    },
    Merge {
        at: u64,
    },
    /// `overlapping`, `intersects` and `covers` of `[at, at + n)` units,
    /// shifted by `skew` bytes (unit-aligned when 0).
    Query {
        at: u64,
        n: u64,
        skew: u64,
    },
    Find {
        at: u64,
        /// Byte offset inside the unit.
        off: u64,
    },
    Gap {
        n: u64,
        align_shift: u32,
        lo: u64,
        hi: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..UNITS, 1u64..40, any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(at, n, rw, grows)| Op::Insert { at, n, rw, grows }),
        2 => (0..UNITS, 1u64..80).prop_map(|(at, n)| Op::Remove { at, n }),
        1 => (0..UNITS).prop_map(|at| Op::Split { at }),
        1 => (0..UNITS).prop_map(|at| Op::Merge { at }),
        2 => (0..UNITS + 2, any::<u64>()).prop_map(|(at, off)| Op::Find { at, off }),
        2 => (0..UNITS, 0u64..60, prop_oneof![Just(0u64), 1u64..4096]).prop_map(|(at, n, skew)| Op::Query { at, n, skew }),
        3 => (1u64..60, prop_oneof![Just(12u32), Just(13), Just(16), Just(21), Just(30)], 0..UNITS, 0..UNITS + 50)
            .prop_map(|(n, align_shift, lo, hi)| Op::Gap { n, align_shift, lo, hi }),
    ]
}

struct World {
    tree: VmaTree,
    covered: BTreeSet<u64>,
    /// The covered units that belong to a `VM_GROWSDOWN` VMA.
    grows: BTreeSet<u64>,
    /// Bytes per unit (4 KiB times a power of two).
    unit: u64,
    /// Address of unit 0.
    base: u64,
}

impl World {
    fn vma(&self, at: u64, n: u64, rw: bool, grows: bool) -> Vma {
        let mut flags = if rw { VmFlags::READ | VmFlags::WRITE } else { VmFlags::READ };
        if grows {
            flags |= VmFlags::GROWSDOWN;
        }
        let start = self.base + at * self.unit;
        Vma {
            start: GuestVirtAddr::try_new(start).expect("canonical"),
            end: start + n * self.unit,
            // Contiguous with any VMA at the same flags, so merges happen.
            pgoff: start >> 12,
            flags,
            page_prot: PageProt::from_flags(flags),
            provider: ProviderId(7),
            provider_name: Arc::from("model"),
            ops: None,
            private: None,
            pins: Vec::new(),
            policy: None,
        }
    }

    fn free(&self, s: u64, n: u64) -> bool {
        self.covered.range(s..s + n).next().is_none()
    }

    /// Brute force: the highest aligned start, in bytes, of `len` free
    /// bytes inside `[lo, hi)`, trying every aligned address from the top.
    fn brute_gap(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        if hi < lo || hi - lo < len {
            return None;
        }
        let mut s = (hi - len) & !(align - 1);
        while s >= lo {
            // Units are whole: `[s, s + len)` is free when no unit it
            // touches is covered; else the next candidate must end at or
            // below the highest covered unit it touches.
            let first = s / self.unit;
            let last = (s + len).div_ceil(self.unit);
            match self.covered.range(first..last).next_back() {
                // Free: unless the VMA above grows down and is nearer
                // than the guard gap; then the range must end below it.
                None => match self.covered.range(last..).next() {
                    Some(&c) if self.grows.contains(&c) && c * self.unit - (s + len) < STACK_GUARD_GAP => {
                        s = (c * self.unit).checked_sub(STACK_GUARD_GAP)?.checked_sub(len)? & !(align - 1);
                    }
                    _ => return Some(s),
                },
                Some(&c) => s = (c * self.unit).checked_sub(len)? & !(align - 1),
            }
        }
        None
    }

    /// The VMA holding `addr`, by a search of all of them.
    fn brute_find(&self, addr: u64) -> Option<(u64, u64)> {
        self.tree.iter().find(|v| v.contains(addr)).map(|v| (v.start().raw(), v.end()))
    }

    fn check_find(&self, addr: u64) {
        let got = self.tree.find(addr).map(|v| (v.start().raw(), v.end()));
        assert_eq!(got, self.brute_find(addr), "find {addr:#x}");
    }

    fn apply(&mut self, op: &Op) {
        let (u, b) = (self.unit, self.base);
        match *op {
            Op::Insert { at, n, rw, grows } => {
                let n = n.min(UNITS - at).max(1);
                if !self.free(at, n) {
                    drop(self.tree.remove_range(b + at * u, b + (at + n) * u));
                }
                self.tree.insert(self.vma(at, n, rw, grows));
                self.tree.merge_around(b + at * u);
                self.covered.extend(at..at + n);
                for k in at..at + n {
                    if grows {
                        self.grows.insert(k);
                    } else {
                        self.grows.remove(&k);
                    }
                }
            }
            Op::Remove { at, n } => {
                let removed = self.tree.remove_range(b + at * u, b + (at + n) * u);
                let want: Vec<u64> = self.covered.range(at..at + n).copied().collect();
                let got: u64 = removed.iter().map(|v| v.size() / u).sum();
                assert_eq!(got, want.len() as u64, "removed units");
                for k in want {
                    self.grows.remove(&k);
                    self.covered.remove(&k);
                }
            }
            Op::Split { at } => self.tree.split_at(b + at * u),
            Op::Merge { at } => {
                if let Some(v) = self.tree.find(b + at * u) {
                    let s = v.start().raw();
                    self.tree.merge_around(s);
                }
            }
            Op::Find { at, off } => {
                let addr = b + at * u + off % u;
                let got = self.tree.find(addr).is_some();
                assert_eq!(got, self.covered.contains(&at), "find {at}");
                self.check_find(addr);
            }
            Op::Query { at, n, skew } => {
                let (qs, qe) = (b + at * u + skew, b + (at + n) * u + skew);
                let got: Vec<(u64, u64)> = self.tree.overlapping(qs, qe).map(|v| (v.start().raw(), v.end())).collect();
                let want: Vec<(u64, u64)> = self
                    .tree
                    .iter()
                    .filter(|v| v.end() > qs && v.start().raw() < qe)
                    .map(|v| (v.start().raw(), v.end()))
                    .collect();
                assert_eq!(got, want, "overlapping [{qs:#x}, {qe:#x})");
                assert_eq!(self.tree.intersects(qs, qe), !want.is_empty(), "intersects [{qs:#x}, {qe:#x})");
                // Covered: every unit the byte range touches (an empty
                // range is covered).
                let first = (qs - b) / u;
                let last = (qe - b).div_ceil(u);
                let all = qs == qe || (first..last).all(|k| self.covered.contains(&k));
                assert_eq!(self.tree.covers(qs, qe), all, "covers [{qs:#x}, {qe:#x})");
            }
            // The model's brute-force search counts from address 0.
            Op::Gap { .. } if b != 0 => {}
            Op::Gap { n, align_shift, lo, hi } => {
                let (len, align, lo, hi) = (n * u, 1u64 << align_shift, lo * u, hi * u);
                let got = self.tree.find_gap_top_down(len, align, lo, hi);
                let want = self.brute_gap(len, align, lo, hi);
                assert_eq!(got, want, "gap of {len:#x} aligned {align:#x} in [{lo:#x}, {hi:#x})");
            }
        }
        // Coverage equals the model; every augmented value is right.
        let mut got = BTreeSet::new();
        for v in self.tree.iter() {
            assert_eq!((v.start().raw() - b) % u, 0);
            got.extend((v.start().raw() - b) / u..(v.end() - b) / u);
        }
        assert_eq!(got, self.covered, "coverage after {op:?}");
        assert_eq!(self.tree.is_empty(), self.covered.is_empty());
        // Lookups at every VMA's edges and just outside them.
        let edges: Vec<(u64, u64)> = self.tree.iter().map(|v| (v.start().raw(), v.end())).collect();
        for (s, e) in edges {
            for a in [s, e - 1, s.wrapping_sub(1), e, s + (e - s) / 2] {
                self.check_find(a);
            }
        }
        if let Err(e) = self.tree.check() {
            panic!("after {op:?}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tree_and_gaps_match_the_model(
        scale in prop_oneof![Just(1u64), Just(16), Just(512), Just(1 << 16)],
        place in 0..3u8,
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let unit = 4096 * scale;
        // Address 0; the top of the lower half; the start of the upper half.
        let base = [0, (1u64 << 47) - UNITS * unit, 0xffff_8000_0000_0000][place as usize];
        let mut w = World { tree: VmaTree::new(), covered: BTreeSet::new(), grows: BTreeSet::new(), unit, base };
        for op in &ops {
            w.apply(op);
        }
    }
}

#[test]
fn many_vmas_keep_a_balanced_index() {
    // 20,000 one-unit VMAs with one-unit holes, then every other removed:
    // the index stays consistent and the search still finds the top.
    let mut w = World { tree: VmaTree::new(), covered: BTreeSet::new(), grows: BTreeSet::new(), unit: 4096, base: 0 };
    for i in 0..20_000u64 {
        w.tree.insert(w.vma(2 * i, 1, true, false));
    }
    w.tree.check().expect("after inserts");
    // Packed VMAs cost the lookup radix a leaf table per 64 pages, one
    // above per 4,096, and one per level higher up.
    let most = 40_000usize.div_ceil(64) + 40_000usize.div_ceil(4096) + 2;
    assert!(w.tree.radix_tables() <= most, "{} radix tables", w.tree.radix_tables());
    assert_eq!(w.tree.find_gap_top_down(0x1000, 0x1000, 0, 40_000 * 4096), Some(39_999 * 4096));
    assert_eq!(w.tree.find_gap_top_down(0x2000, 0x1000, 0, 40_000 * 4096), None);
    for i in (0..20_000u64).step_by(2) {
        drop(w.tree.remove_range(2 * i * 4096, (2 * i + 1) * 4096));
    }
    w.tree.check().expect("after removals");
    assert_eq!(w.tree.find_gap_top_down(0x3000, 0x1000, 0, 40_000 * 4096), Some(39_995 * 4096));
    // Removing everything frees every radix table.
    drop(w.tree.remove_range(0, 40_000 * 4096));
    w.tree.check().expect("after removing all");
    assert_eq!((w.tree.len(), w.tree.radix_tables()), (0, 0));
}
