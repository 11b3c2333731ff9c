//! Property test: random map / insert / unmap / protect / unmap+restore
//! sequences against a page-by-page reference model.
//!
//! The window spans a 1 GiB boundary and four 2 MiB regions, so huge
//! leaves, splits and table frees all happen. After every operation every
//! page is translated and compared with the model, the leaf count and the
//! flush sets are checked, and the whole tree is walked to
//! check that no empty table survives and that `tables_in_use` is exact.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vm_memory::GuestAddress;

use super::entry::{classify, Entry, USED};
use super::flush::FlushSet;
use super::table::{Table, ENTRIES};
use super::test_util::*;
use crate::addr::{PageSize, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{CacheMode, PageProt};

/// First address of the window.
const BASE: u64 = (1 << 30) - (4 << 20);
/// Pages in the window (8 MiB).
const PAGES: u64 = 2048;
/// Pages per 2 MiB.
const HUGE: u64 = 512;

/// What the model holds for a page: physical page address, protection,
/// counted.
type Slot = Option<(u64, PageProt, bool)>;

#[derive(Debug, Clone)]
enum Op {
    Map { page: u64, pa_page: u64, pages: u64, max: PageSize, prot: PageProt },
    Insert { page: u64, frames: Vec<u64> },
    Unmap { page: u64, pages: u64 },
    Protect { page: u64, pages: u64, prot: PageProt },
    UnmapRestore { page: u64, pages: u64 },
}

fn page() -> impl Strategy<Value = u64> {
    prop_oneof![0..PAGES, (0..4u64).prop_map(|i| i * HUGE), (0..4u64).prop_map(|i| i * HUGE + HUGE - 1)]
}

fn len() -> impl Strategy<Value = u64> {
    prop_oneof![1..8u64, Just(HUGE), HUGE - 2..HUGE + 3, 1..PAGES]
}

fn prot() -> impl Strategy<Value = PageProt> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 0..4u8, 0..8u8).prop_map(|(w, nx, u, c, absent)| PageProt {
        present: absent != 0,
        writable: w,
        user: u,
        no_execute: nx,
        cache: [CacheMode::WriteBack, CacheMode::WriteThrough, CacheMode::Uncached, CacheMode::WriteCombining]
            [c as usize],
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (page(), page(), len(), prop_oneof![Just(PageSize::Size4K), Just(PageSize::Size2M)], prot())
            .prop_map(|(page, pa_page, pages, max, prot)| Op::Map { page, pa_page, pages, max, prot }),
        (page(), prop::collection::vec(0..FRAMES, 1..700)).prop_map(|(page, frames)| Op::Insert { page, frames }),
        (page(), len()).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        (page(), len(), prot()).prop_map(|(page, pages, prot)| Op::Protect { page, pages, prot }),
        (page(), len()).prop_map(|(page, pages)| Op::UnmapRestore { page, pages }),
    ]
}

fn va(page: u64) -> u64 {
    BASE + page * PAGE_SIZE
}

/// Pages a flush set covers, as window page numbers.
fn flushed(f: &FlushSet) -> Vec<u64> {
    let mut v = Vec::new();
    for &(start, len) in f.ranges() {
        v.extend((0..len / PAGE_SIZE).map(|i| (start.raw() - BASE) / PAGE_SIZE + i));
    }
    v
}

/// Walks the whole tree: every non-root table has a used entry; returns
/// the number of tables.
fn count_tables(pt: &Tables, frame: Pfn, level: u32) -> usize {
    let t = Table::new(pt.memory(), frame, false).unwrap();
    if level < 4 {
        assert!((0..ENTRIES).any(|i| t.get(i) & USED != 0), "empty table {frame:?} at level {level}");
    }
    let mut n = 1;
    for i in 0..ENTRIES {
        if let Entry::Table(child) = classify(t.get(i), level) {
            n += count_tables(pt, child, level - 1);
        }
    }
    n
}

fn check(pt: &Tables, model: &[Slot]) {
    for (p, slot) in model.iter().enumerate() {
        let t = pt.translate(crate::addr::GuestVirtAddr::try_new(va(p as u64)).unwrap());
        match slot {
            Some((phys, prot, counted)) if prot.present => {
                let t = t.unwrap_or_else(|| panic!("page {p} not mapped"));
                assert_eq!((t.phys.0, t.prot, t.counted), (*phys, *prot, *counted), "page {p}");
            }
            _ => assert!(t.is_none(), "page {p} mapped"),
        }
    }
    let covered: u64 = pt.leaves(gva(BASE), PAGES * PAGE_SIZE).iter().map(|l| l.size.bytes() / PAGE_SIZE).sum();
    assert_eq!(covered, model.iter().filter(|s| s.is_some()).count() as u64);
    assert_eq!(count_tables(pt, Pfn::containing(pt.root()), 4), pt.tables_in_use());
}

/// An operation's outcome under failure injection.
fn injected<T>(r: Result<T, MmError>) -> Option<Result<T, MmError>> {
    match r {
        Err(MmError::OutOfMemory(_)) => None,
        r => Some(r),
    }
}

fn run(ops: Vec<(Op, Option<u64>)>) {
    let mut pt = tables(64 << 20);
    let mut model: Vec<Slot> = vec![None; PAGES as usize];
    for (op, inject) in ops {
        // With `inject`, table allocation fails after that many successes;
        // an op that then fails must have changed nothing (the full check
        // below compares every page, count and table with the model).
        let tables_before = pt.tables_in_use();
        let leaves_before = pt.leaves(gva(BASE), PAGES * PAGE_SIZE);
        pt.allocator_mut().inject_failure_after(inject);
        let failed = match op {
            Op::Map { page, pa_page, pages, max, prot } => {
                let pages = pages.min(PAGES - page);
                let range = page as usize..(page + pages) as usize;
                let pa = GuestAddress(pa_page * PAGE_SIZE);
                match injected(pt.map_range(gva(va(page)), pa, pages * PAGE_SIZE, prot, max)) {
                    None => true,
                    Some(r) if model[range.clone()].iter().any(|s| s.is_some()) => {
                        assert_eq!(r, Err(MmError::Exists { addr: va(page) }));
                        false
                    }
                    Some(r) => {
                        let s = r.unwrap();
                        assert_eq!(s.leaves_by_size.iter().sum::<u64>(), s.entries_written);
                        for (i, s) in model[range].iter_mut().enumerate() {
                            *s = Some(((pa_page + i as u64) * PAGE_SIZE, prot, false));
                        }
                        false
                    }
                }
            }
            Op::Insert { page, mut frames } => {
                frames.truncate((PAGES - page) as usize);
                let pfns: Vec<Pfn> = frames.iter().map(|&f| Pfn(f)).collect();
                let range = page as usize..page as usize + pfns.len();
                match injected(pt.insert_pages(gva(va(page)), &arr(&pfns), rw())) {
                    None => true,
                    Some(r) if model[range.clone()].iter().any(|s| s.is_some()) => {
                        assert_eq!(r, Err(MmError::Exists { addr: va(page) }));
                        false
                    }
                    Some(r) => {
                        assert_eq!(r.unwrap().entries_written, pfns.len() as u64);
                        for (s, f) in model[range].iter_mut().zip(&frames) {
                            *s = Some((f * PAGE_SIZE, rw(), true));
                        }
                        false
                    }
                }
            }
            Op::Unmap { page, pages } => {
                let pages = pages.min(PAGES - page);
                let r = pt.unmap_range(gva(va(page)), pages * PAGE_SIZE);
                match injected(r) {
                    None => true,
                    Some(r) => {
                        let u = r.unwrap();
                        let mut want_flush = Vec::new();
                        for p in page..page + pages {
                            if let Some((_, prot, _)) = model[p as usize].take() {
                                if prot.present {
                                    want_flush.push(p);
                                }
                            }
                        }
                        assert_eq!(flushed(&u.flush), want_flush);
                        assert!(u.tables_freed == 0 || u.flush.tables_freed());
                        false
                    }
                }
            }
            Op::Protect { page, pages, prot } => {
                let pages = pages.min(PAGES - page);
                match injected(pt.protect_range(gva(va(page)), pages * PAGE_SIZE, prot)) {
                    None => true,
                    Some(r) => {
                        let f = r.unwrap();
                        let mut want_flush = Vec::new();
                        for p in page..page + pages {
                            if let Some((_, old, _)) = &mut model[p as usize] {
                                if old.present && *old != prot {
                                    want_flush.push(p);
                                }
                                *old = prot;
                            }
                        }
                        assert_eq!(flushed(&f), want_flush);
                        assert!(!f.tables_freed());
                        false
                    }
                }
            }
            Op::UnmapRestore { page, pages } => {
                let pages = pages.min(PAGES - page);
                let saved = pt.leaves(gva(va(page)), pages * PAGE_SIZE);
                let r = pt.unmap_range(gva(va(page)), pages * PAGE_SIZE);
                match injected(r) {
                    None => true,
                    Some(r) => {
                        // The rollback path ignores failure injection.
                        let u = r.unwrap();
                        pt.restore(&saved, &u.splits).unwrap();
                        assert_eq!(pt.leaves(gva(BASE), PAGES * PAGE_SIZE), leaves_before);
                        assert_eq!(pt.tables_in_use(), tables_before);
                        false
                    }
                }
            }
        };
        pt.allocator_mut().inject_failure_after(None);
        if failed {
            assert_eq!(pt.leaves(gva(BASE), PAGES * PAGE_SIZE), leaves_before);
            assert_eq!(pt.tables_in_use(), tables_before);
        }
        check(&pt, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tables_match_the_model(ops in prop::collection::vec((op(), prop::option::weighted(0.2, 0..4u64)), 1..24)) {
        run(ops);
    }
}
