//! Property test of [`FlushSet::may_be_cached`]: random map / insert /
//! unmap / protect sequences interleaved with walks of a simulated CPU.
//!
//! The simulated CPU walks an address as x86 hardware (and KVM's shadow
//! MMU) does: top-down, it sets the Accessed bit of every present entry it
//! uses (with a compare-and-exchange, as the hardware's locked update) and
//! caches the entry. It caches nothing else, so an entry with A = 0 is
//! never in its cache.
//!
//! After every unmap and protect, with the entries (all levels) that were
//! present with A = 1 before the operation taken by walking the tables,
//! not from the code under test:
//! - **exact:** the set says "may be cached" exactly when one of those
//!   entries changed (accessed and dirty bits aside) or is no longer
//!   reachable;
//! - **sound:** when it says "nothing cached", every entry in the
//!   simulated CPU's cache is still the entry the tables hold at that
//!   place; when it says "may be cached" the test flushes the simulated
//!   cache, as the VMM's shootdown would.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_memory::GuestAddress;

use super::entry::{classify, entry_end, index, same_leaf, span, Entry, A, P};
use super::flush::FlushSet;
use super::table::Table;
use super::test_util::*;
use crate::addr::{PageSize, Pfn, PAGE_SIZE};
use crate::flags::PageProt;

/// First address of the window: spans a 1 GiB boundary.
const BASE: u64 = (1 << 30) - (4 << 20);
/// Pages in the window (8 MiB).
const PAGES: u64 = 2048;
const HUGE: u64 = 512;

#[derive(Debug, Clone)]
enum Op {
    Map { page: u64, pages: u64, max: PageSize },
    Insert { page: u64, pages: u64 },
    Unmap { page: u64, pages: u64 },
    Protect { page: u64, pages: u64, write: bool, present: bool },
    Walk { page: u64 },
}

fn page() -> impl Strategy<Value = u64> {
    prop_oneof![0..PAGES, (0..4u64).prop_map(|i| i * HUGE), (0..4u64).prop_map(|i| i * HUGE + HUGE - 1)]
}

fn len() -> impl Strategy<Value = u64> {
    prop_oneof![1..8u64, Just(HUGE), HUGE - 2..HUGE + 3, 1..PAGES]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (page(), len(), prop_oneof![Just(PageSize::Size4K), Just(PageSize::Size2M)])
            .prop_map(|(page, pages, max)| Op::Map { page, pages, max }),
        1 => (page(), 1..600u64).prop_map(|(page, pages)| Op::Insert { page, pages }),
        2 => (page(), len()).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        2 => (page(), len(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(page, pages, write, present)| Op::Protect { page, pages, write, present }),
        4 => page().prop_map(|page| Op::Walk { page }),
    ]
}

fn va(page: u64) -> u64 {
    BASE + page * PAGE_SIZE
}

/// An entry's place: its level and the first address it covers.
type Place = (u32, u64);

/// The simulated CPU's walk of `va`: sets A in every present entry it
/// uses, top-down, and returns those entries (after the update).
fn walk(pt: &Tables, va: u64) -> Vec<(Place, u64)> {
    let mut frame = Pfn::containing(pt.root());
    let mut used = Vec::new();
    for level in (1..=4u32).rev() {
        let t = Table::new(pt.memory(), frame, true).unwrap();
        let i = index(va, level);
        let raw = t.get(i);
        if raw & P == 0 {
            break;
        }
        t.compare_exchange(i, raw, raw | A).unwrap();
        used.push(((level, va & !(span(level) - 1)), raw | A));
        match classify(raw, level) {
            Entry::Table(f) => frame = f,
            _ => break,
        }
    }
    used
}

/// The entry at `place` now, if the tables reach down to it.
fn entry_at(pt: &Tables, (level, va): Place) -> Option<u64> {
    let mut frame = Pfn::containing(pt.root());
    for l in (level..=4u32).rev() {
        let raw = Table::new(pt.memory(), frame, false).unwrap().get(index(va, l));
        if l == level {
            return Some(raw);
        }
        match classify(raw, l) {
            Entry::Table(f) => frame = f,
            _ => return None,
        }
    }
    None
}

/// Every present entry with A = 1 over the window, by walking the tables.
fn accessed(pt: &Tables) -> BTreeMap<Place, u64> {
    fn visit(pt: &Tables, frame: Pfn, level: u32, va: u64, end: u64, out: &mut BTreeMap<Place, u64>) {
        let t = Table::new(pt.memory(), frame, false).unwrap();
        let mut cur = va;
        while cur < end {
            let next = entry_end(cur, level, end);
            let raw = t.get(index(cur, level));
            if raw & (P | A) == P | A {
                out.insert((level, cur & !(span(level) - 1)), raw);
            }
            if let Entry::Table(child) = classify(raw, level) {
                visit(pt, child, level - 1, cur, next, out);
            }
            cur = next;
        }
    }
    let mut out = BTreeMap::new();
    visit(pt, Pfn::containing(pt.root()), 4, va(0), va(PAGES), &mut out);
    out
}

/// Checks `f` against the accessed entries before the operation and the
/// simulated cache; flushes the cache when the set says so.
fn check(pt: &Tables, before: &BTreeMap<Place, u64>, cache: &mut BTreeMap<Place, u64>, f: &FlushSet, what: &str) {
    let dropped: Vec<&Place> = before
        .iter()
        .filter(|(&p, &raw)| entry_at(pt, p).is_none_or(|now| !same_leaf(now, raw)))
        .map(|e| e.0)
        .collect();
    assert_eq!(f.may_be_cached(), !dropped.is_empty(), "{what}: accessed entries dropped: {dropped:x?}");
    if f.may_be_cached() {
        assert!(!f.is_empty(), "{what}: a set that may be cached covers something");
        cache.clear();
    } else {
        for (&p, &raw) in cache.iter() {
            assert!(entry_at(pt, p).is_some_and(|now| same_leaf(now, raw)), "{what}: stale cached entry at {p:x?}");
        }
    }
}

fn run(ops: Vec<Op>) {
    let mut pt = tables(64 << 20);
    let mut cache: BTreeMap<Place, u64> = BTreeMap::new();
    for op in ops {
        let before = accessed(&pt);
        match op {
            Op::Map { page, pages, max } => {
                let pages = pages.min(PAGES - page);
                let pa = GuestAddress(page * PAGE_SIZE);
                let _ = pt.map_range(gva(va(page)), pa, pages * PAGE_SIZE, rw(), max);
            }
            Op::Insert { page, pages } => {
                let pfns: Vec<Pfn> = (0..pages.min(PAGES - page)).map(|i| Pfn(i + 1)).collect();
                let _ = pt.insert_pages(gva(va(page)), &arr(&pfns), rw());
            }
            Op::Unmap { page, pages } => {
                let pages = pages.min(PAGES - page);
                let u = pt.unmap_range(gva(va(page)), pages * PAGE_SIZE).unwrap();
                check(&pt, &before, &mut cache, &u.flush, &format!("{op:?}"));
            }
            Op::Protect { page, pages, write, present } => {
                let pages = pages.min(PAGES - page);
                let prot = PageProt { writable: write, present, ..rw() };
                let f = pt.protect_range(gva(va(page)), pages * PAGE_SIZE, prot).unwrap();
                check(&pt, &before, &mut cache, &f, &format!("{op:?}"));
            }
            Op::Walk { page } => cache.extend(walk(&pt, va(page))),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn flush_sets_say_cached_exactly_when_an_accessed_entry_changed(ops in prop::collection::vec(op(), 1..32)) {
        run(ops);
    }
}

#[test]
fn untouched_unmaps_and_protects_report_nothing_cached() {
    let mut pt = tables(64 << 20);
    // A 2 MiB leaf, a whole leaf table and a partial one, never walked.
    pt.map_range(gva(BASE), GuestAddress(0), 2 << 20, rw(), PageSize::Size2M).unwrap();
    let pfns: Vec<Pfn> = (1..=700).map(Pfn).collect();
    pt.insert_pages(gva(BASE + (2 << 20)), &arr(&pfns), rw()).unwrap();
    let ro = PageProt { writable: false, ..rw() };
    let f = pt.protect_range(gva(BASE + 4096), 3 * 4096, ro).unwrap();
    assert!(!f.is_empty() && !f.may_be_cached(), "{f:?}");
    let u = pt.unmap_range(gva(BASE), 8 << 20).unwrap();
    assert!(u.flush.tables_freed() && !u.flush.may_be_cached(), "{:?}", u.flush);
    // The same after one walk: now it may be cached.
    pt.insert_pages(gva(BASE), &arr(&pfns), rw()).unwrap();
    walk(&pt, BASE + 699 * 4096);
    let u = pt.unmap_range(gva(BASE), 8 << 20).unwrap();
    assert!(u.flush.may_be_cached());
}

#[test]
fn a_walk_that_reached_only_a_table_makes_its_free_cached() {
    // The walk stops at an absent leaf: the leaf table's parent entry has
    // A (a paging-structure cache may hold it), the leaves do not.
    let mut pt = tables(64 << 20);
    pt.insert_pages(gva(BASE), &arr(&[Pfn(1)]), rw()).unwrap();
    let used = walk(&pt, BASE + 4096);
    assert_eq!(used.len(), 3, "PML4E, PDPTE, PDE");
    let u = pt.unmap_range(gva(BASE), 4096).unwrap();
    assert!(u.flush.tables_freed() && u.flush.may_be_cached());
}

#[test]
fn pieces_of_a_split_accessed_leaf_stay_cached() {
    // The huge leaf was used; after a split, its pieces carry A, so an
    // unmap of the whole leaf table (read, not cleared) reports it even
    // though the new table pointer was never walked. A second leaf keeps
    // the page directory (whose parent entry was walked) in use.
    let mut pt = tables(64 << 20);
    pt.map_range(gva(BASE), GuestAddress(0), 4 << 20, rw(), PageSize::Size2M).unwrap();
    walk(&pt, BASE);
    let ro = PageProt { writable: false, ..rw() };
    let f = pt.protect_range(gva(BASE), 4096, ro).unwrap();
    assert!(f.may_be_cached());
    let pointer = entry_at(&pt, (2, BASE)).unwrap();
    assert!(matches!(classify(pointer, 2), Entry::Table(_)) && pointer & A == 0, "{pointer:#x}");
    let u = pt.unmap_range(gva(BASE), 2 << 20).unwrap();
    assert_eq!(u.tables_freed, 1, "only the split's leaf table");
    assert!(u.flush.may_be_cached());
}

#[test]
fn a_replaced_entry_is_cached_only_if_it_was_walked() {
    let mut pt = tables(64 << 20);
    let ro = PageProt { writable: false, ..rw() };
    pt.insert_pages(gva(BASE), &arr(&[Pfn(7), Pfn(8)]), ro).unwrap();
    for (page, walked) in [(0u64, false), (1, true)] {
        if walked {
            walk(&pt, va(page));
        }
        pt.set_copy_on_write(gva(va(page))).unwrap();
        let (old, f) = pt.replace_page(gva(va(page)), &arr(&[Pfn(20 + page)]), rw()).unwrap();
        assert_eq!(old, Pfn(7 + page));
        assert_eq!(f.may_be_cached(), walked, "page {page}");
        assert_eq!(f.pages(), 1);
    }
}

/// A walker on another CPU that sets the Accessed bit between the
/// clearing code's read of an entry and its change (the test hook
/// `table::race_point` runs there): the change must still report it, which
/// only a swap (not a load, then a store) does.
#[test]
fn an_accessed_bit_set_between_read_and_clear_is_not_lost() {
    fn walker(e: &std::sync::atomic::AtomicU64) {
        let _ = e.fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |v| {
            (v & P != 0).then_some(v | A)
        });
    }
    let ro = PageProt { writable: false, ..rw() };
    // (what is mapped, what is unmapped): a 4 KiB leaf in a table that
    // stays (cleared by the leaf loop), a 2 MiB leaf, a whole leaf table
    // (unlinked by its parent entry).
    type Setup = fn(&mut Tables);
    let cases: [(&str, Setup, u64, u64); 3] = [
        ("4 KiB leaf", |pt| pt.insert_pages(gva(BASE), &arr(&[Pfn(1), Pfn(2)]), rw()).map(drop).unwrap(), BASE, 4096),
        (
            "2 MiB leaf",
            |pt| pt.map_range(gva(BASE), GuestAddress(0), 4 << 20, rw(), PageSize::Size2M).map(drop).unwrap(),
            BASE,
            2 << 20,
        ),
        (
            "leaf table",
            |pt| {
                pt.insert_pages(gva(BASE), &arr(&[Pfn(1)]), rw()).map(drop).unwrap();
                pt.map_range(gva(BASE + (2 << 20)), GuestAddress(0), 2 << 20, rw(), PageSize::Size2M)
                    .map(drop)
                    .unwrap();
            },
            BASE,
            2 << 20,
        ),
    ];
    for (what, setup, at, len) in cases {
        let mut pt = tables(64 << 20);
        setup(&mut pt);
        super::table::RACE.with(|r| r.set(Some(walker)));
        let u = pt.unmap_range(gva(at), len);
        super::table::RACE.with(|r| r.set(None));
        let u = u.unwrap();
        assert!(u.flush.may_be_cached(), "{what}: the A bit set in the race was lost");
        // Without the race: nothing cached.
        let mut pt = tables(64 << 20);
        setup(&mut pt);
        assert!(!pt.unmap_range(gva(at), len).unwrap().flush.may_be_cached(), "{what}");
    }
    // Protect reads the old value from its compare-and-exchange.
    let mut pt = tables(64 << 20);
    pt.insert_pages(gva(BASE), &arr(&[Pfn(1)]), rw()).unwrap();
    super::table::RACE.with(|r| r.set(Some(walker)));
    let f = pt.protect_range(gva(BASE), 4096, ro);
    super::table::RACE.with(|r| r.set(None));
    assert!(f.unwrap().may_be_cached(), "protect: the A bit set in the race was lost");
}

/// A walker that sets the huge leaf's Accessed bit between the split's
/// read of it and its relink: the relink is retried with the new value,
/// so the pieces inherit the bit and the split goes through.
#[test]
fn a_split_retries_when_a_walker_sets_the_accessed_bit_meanwhile() {
    thread_local! {
        static ONCE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    fn walker(e: &std::sync::atomic::AtomicU64) {
        if ONCE.get() {
            ONCE.set(false);
            e.fetch_or(A, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let mut pt = tables(64 << 20);
    pt.map_range(gva(BASE), GuestAddress(0), 2 << 20, rw(), PageSize::Size2M).unwrap();
    ONCE.set(true);
    super::table::RACE.with(|r| r.set(Some(walker)));
    let u = pt.unmap_range(gva(BASE + 4096), 4096);
    super::table::RACE.with(|r| r.set(None));
    assert!(!ONCE.get(), "the walker ran");
    let u = u.unwrap();
    assert_eq!(u.splits.len(), 1);
    assert!(u.flush.may_be_cached());
    assert!(pt.translate(gva(BASE + 4096)).is_none(), "the page was unmapped");
    let pieces = pt.leaves(gva(BASE), 2 << 20);
    assert_eq!(pieces.len(), 511);
    assert!(pieces.iter().all(|l| l.size == PageSize::Size4K && l.raw & A != 0), "the pieces inherit A");
}
