//! Tests of hugetlbfs files ([`HugetlbFile`]) and their mappings:
//! examples of Linux's rules (the sequence of the `hugetlb-madvise`
//! selftest, copy-on-write in huge pages, sizes and alignment), then a
//! property test of random maps, touches, discards, unmaps, fallocates,
//! hole punches and truncates against a model of the file, of each
//! mapping and of the pool's counters. Mappings are checked by walking
//! the page tables (one 2 MiB leaf per page, inside the pool, read-only
//! exactly where the file's page is mapped privately) and reading guest
//! memory, never by asking the provider.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{HugetlbCounts, HugetlbFile, HugetlbPool, HUGE_PAGE_SIZE};
use crate::addr::{GuestVirtAddr, PageSize, Pfn, PAGE_SIZE};
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::space::{AddressSpace, Advice, MmapRequest, SpaceConfig};
use crate::vma::FaultAccess;

type Mem = GuestMemoryMmap<()>;
const H: u64 = HUGE_PAGE_SIZE;
/// Pages in the test pool (24 MiB at 8 MiB).
const POOL: u64 = 12;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn va(a: u64) -> GuestVirtAddr {
    GuestVirtAddr::try_new(a).unwrap()
}

/// 64 MiB of RAM: the hugetlb pool over `[8 MiB, 32 MiB)`, a 4 KiB page
/// pool at 40 MiB, tables at 48 MiB, the mmap window at 4 GiB.
fn setup() -> (AddressSpace<Mem>, HugetlbPool<Mem>, HugetlbFile<Mem>) {
    let mem = Mem::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(1 << 32), va((1 << 32) + (512 << 20)));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    let s = AddressSpace::new(mem, cfg).unwrap();
    let pool = HugetlbPool::new(s.frames().clone(), s.memory().clone(), &[(GuestAddress(8 << 20), POOL * H)]).unwrap();
    let file = pool.file("memfd:t");
    (s, pool, file)
}

fn free(pool: &HugetlbPool<Mem>) -> u64 {
    pool.counts().free
}

fn map(s: &mut AddressSpace<Mem>, f: &HugetlbFile<Mem>, first: u64, pages: u64, shared: bool) -> Result<u64, MmError> {
    let req = if shared { MmapRequest::shared(pages * H, RW) } else { MmapRequest::private(pages * H, RW) };
    let m = s.mmap(&f.provider(false), &req.pgoff(first * (H / PAGE_SIZE)))?;
    m.flush.ignore();
    Ok(m.addr.raw())
}

fn touch(s: &mut AddressSpace<Mem>, at: u64, write: bool) -> Result<(), MmError> {
    let access = if write { FaultAccess::WRITE } else { FaultAccess::READ };
    s.fault(va(at), access).map(|f| f.flush.ignore())
}

/// Writes `v` at `at` the way the guest does: a write fault first, then
/// a store through the (walked) translation.
fn store(s: &mut AddressSpace<Mem>, at: u64, v: u64) -> Result<(), MmError> {
    touch(s, at, true)?;
    let t = s.page_tables().translate(va(at)).unwrap();
    assert!(t.prot.writable, "{at:#x} not writable after a write fault");
    s.memory().write_obj(v, t.phys).unwrap();
    Ok(())
}

/// The walk of `at`: its frame, writability and the 8 bytes there; also
/// checks the leaf is one 2 MiB page of the pool.
fn walk(s: &AddressSpace<Mem>, pool: &HugetlbPool<Mem>, at: u64) -> Option<(Pfn, bool, u64)> {
    let t = s.page_tables().translate(va(at))?;
    assert_eq!(t.size, PageSize::Size2M, "{at:#x} not a 2 MiB leaf");
    assert!(pool.contains(t.pfn), "{at:#x} maps {:#x}, outside the pool", t.phys.0);
    assert_eq!(t.pfn.0 % 512, 0, "a huge page's head");
    Some((t.pfn, t.prot.writable, s.memory().read_obj::<u64>(t.phys).unwrap()))
}

fn sound(s: &AddressSpace<Mem>) {
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}

fn punch(s: &mut AddressSpace<Mem>, f: &HugetlbFile<Mem>, off: u64, len: u64) {
    let r = f.punch_hole(off, len).unwrap();
    s.unmap_object_range(f.key(), r, crate::space::Cows::Even).unwrap().ignore();
}

/// The `hugetlb-madvise` selftest's file part with 3 pages: free counts
/// after each step exactly as Linux prints them.
#[test]
fn the_hugetlb_madvise_sequence_counts_as_linux() {
    const N: u64 = 3;
    let (mut s, pool, f) = setup();
    let all = POOL;
    // Private mapping of the file.
    f.allocate(0, N * H, false).unwrap();
    assert_eq!(free(&pool), all - N);
    let a = map(&mut s, &f, 0, N, false).unwrap();
    for i in 0..N {
        touch(&mut s, a + i * H, false).unwrap();
    }
    assert_eq!(free(&pool), all - N, "reads map the file's pages");
    s.madvise(va(a), N * H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(free(&pool), all - N);
    for i in 0..N {
        store(&mut s, a + i * H, i).unwrap();
    }
    assert_eq!(free(&pool), all - 2 * N, "writes copy");
    s.madvise(va(a), N * H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(free(&pool), all - N, "DONTNEED frees the copies");
    for i in 0..N {
        store(&mut s, a + i * H, i).unwrap();
    }
    assert_eq!(free(&pool), all - 2 * N);
    punch(&mut s, &f, 0, N * H);
    assert_eq!(free(&pool), all, "a punch frees the file's pages and the private copies");
    s.munmap(va(a), N * H).unwrap().ignore();
    // Shared mapping: DONTNEED keeps the pages, REMOVE punches.
    f.allocate(0, N * H, false).unwrap();
    let b = map(&mut s, &f, 0, N, true).unwrap();
    for i in 0..N {
        store(&mut s, b + i * H, 100 + i).unwrap();
    }
    assert_eq!(free(&pool), all - N);
    s.madvise(va(b), N * H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(free(&pool), all - N);
    let mut buf = [0u8; 8];
    f.read_at(H, &mut buf).unwrap();
    assert_eq!(u64::from_ne_bytes(buf), 101, "the file holds what the mapping wrote");
    s.madvise(va(b), N * H, Advice::Remove).unwrap().ignore();
    assert_eq!(free(&pool), all);
    assert_eq!(f.resident_pages(), 0);
    // Shared and private together: REMOVE of the shared one frees both.
    f.allocate(0, N * H, false).unwrap();
    for i in 0..N {
        store(&mut s, b + i * H, 200 + i).unwrap();
    }
    let c = map(&mut s, &f, 0, N, false).unwrap();
    for i in 0..N {
        touch(&mut s, c + i * H, false).unwrap();
        assert_eq!(walk(&s, &pool, c + i * H), walk(&s, &pool, b + i * H).map(|(p, _, v)| (p, false, v)));
    }
    assert_eq!(free(&pool), all - N);
    for i in 0..N {
        store(&mut s, c + i * H, 300 + i).unwrap();
    }
    assert_eq!(free(&pool), all - 2 * N);
    assert_eq!(walk(&s, &pool, b).unwrap().2, 200, "the file's page is not written by a private write");
    s.madvise(va(b), N * H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(free(&pool), all - 2 * N);
    s.madvise(va(c), N * H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(free(&pool), all - N);
    for i in 0..N {
        store(&mut s, c + i * H, 300 + i).unwrap();
    }
    assert_eq!(free(&pool), all - 2 * N);
    s.madvise(va(b), N * H, Advice::Remove).unwrap().ignore();
    assert_eq!(free(&pool), all);
    assert!(s.page_tables().leaves(va(1 << 32), 512 << 20).is_empty(), "every mapping lost the range");
    sound(&s);
    s.munmap(va(b), N * H).unwrap().ignore();
    s.munmap(va(c), N * H).unwrap().ignore();
    drop(s);
    drop(f);
    assert_eq!(pool.counts(), HugetlbCounts { total: POOL, free: POOL, reserved: 0, surplus: 0 });
}

#[test]
fn a_private_copy_is_a_new_writable_leaf_and_the_file_page_stays() {
    let (mut s, pool, f) = setup();
    let sh = map(&mut s, &f, 0, 2, true).unwrap();
    store(&mut s, sh + H, 0x5151).unwrap();
    let p = map(&mut s, &f, 0, 2, false).unwrap();
    touch(&mut s, p + H + 3 * PAGE_SIZE, false).unwrap();
    let (file_pfn, w, v) = walk(&s, &pool, p + H).unwrap();
    assert_eq!((Some(file_pfn), w, v), (f.frame(1), false, 0x5151), "the file's page, read-only");
    assert!(s.page_tables().is_copy_on_write(va(p + H)));
    // mprotect cannot make it writable.
    s.mprotect(va(p), 2 * H, VmFlags::READ).unwrap().ignore();
    s.mprotect(va(p), 2 * H, RW).unwrap().ignore();
    assert!(!walk(&s, &pool, p + H).unwrap().1);
    // The write copies: a new frame, the old bytes, writable.
    let fl = s.fault(va(p + H + 8), FaultAccess::WRITE).unwrap();
    assert!(!fl.flush.ranges().is_empty(), "the old leaf must be flushed");
    fl.flush.ignore();
    let (copy, w, v) = walk(&s, &pool, p + H).unwrap();
    assert!(w && copy != file_pfn && v == 0x5151);
    assert!(!s.page_tables().is_copy_on_write(va(p + H)));
    s.memory().write_obj(7u64, copy.addr()).unwrap();
    assert_eq!(walk(&s, &pool, sh + H).unwrap().2, 0x5151, "the shared mapping still sees the file");
    assert_eq!(s.page_tables().leaves(va(p), 2 * H).len(), 1);
    // A write to a hole gets a private zeroed page; the file stays a hole.
    store(&mut s, p, 9).unwrap();
    assert_eq!(f.frame(0), None);
    assert_eq!(walk(&s, &pool, sh), None);
    sound(&s);
}

#[test]
fn sizes_offsets_and_reservations_follow_hugetlbfs() {
    let (mut s, pool, f) = setup();
    let inval = |e: MmError| assert_eq!(e.errno(), errno::EINVAL, "{e:?}");
    inval(f.set_len(H + PAGE_SIZE).unwrap_err());
    inval(s.mmap(&f.provider(false), &MmapRequest::shared(H, RW).pgoff(1)).unwrap_err());
    inval(s.mmap(&f.provider(false), &MmapRequest::shared(H + PAGE_SIZE, RW)).unwrap_err());
    // A writable mapping grows the file to its end; the shared one
    // reserves what the file does not hold.
    let a = map(&mut s, &f, 2, 3, true).unwrap();
    assert_eq!(f.len(), 5 * H);
    assert_eq!(pool.counts().reserved, 3);
    // A second shared mapping of the same range reserves nothing more.
    let b = map(&mut s, &f, 2, 3, true).unwrap();
    assert_eq!(pool.counts().reserved, 3);
    // A read-only one does not grow the file (it reserves its page).
    let ro = s.mmap(&f.provider(false), &MmapRequest::shared(H, VmFlags::READ).pgoff(7 * 512)).unwrap();
    ro.flush.ignore();
    assert_eq!((f.len(), pool.counts().reserved), (5 * H, 4));
    // Past the size: SIGBUS.
    assert!(touch(&mut s, ro.addr.raw(), false).is_err());
    // Too many: ENOMEM, nothing reserved.
    assert_eq!(map(&mut s, &f, 10, POOL, true).unwrap_err().errno(), errno::ENOMEM);
    assert_eq!(pool.counts().reserved, 4);
    // The fault consumes the reservation; both mappings see one page.
    store(&mut s, a + H, 42).unwrap();
    assert_eq!(walk(&s, &pool, b + H).map(|x| x.2), None);
    touch(&mut s, b + H, false).unwrap();
    assert_eq!(walk(&s, &pool, b + H).map(|x| x.2), Some(42));
    assert_eq!(pool.counts(), HugetlbCounts { total: POOL, free: POOL - 1, reserved: 3, surplus: 0 });
    // fallocate consumes reservations and allocates what nothing reserved.
    f.allocate(0, 5 * H - 1, true).unwrap();
    assert_eq!(pool.counts(), HugetlbCounts { total: POOL, free: POOL - 5, reserved: 1, surplus: 0 });
    // A partial punch zeroes, a whole one frees and unmaps everywhere.
    punch(&mut s, &f, 3 * H + 8, 16);
    let mut buf = [0u8; 24];
    f.read_at(3 * H, &mut buf).unwrap();
    assert_eq!(&buf[..8], &42u64.to_ne_bytes());
    assert_eq!(&buf[8..], &[0u8; 16]);
    punch(&mut s, &f, 3 * H, H);
    assert_eq!(walk(&s, &pool, a + H), None);
    assert_eq!(walk(&s, &pool, b + H), None);
    assert_eq!(free(&pool), POOL - 4);
    store(&mut s, a + H, 1).unwrap();
    assert_eq!(walk(&s, &pool, b + H).map(|x| x.2), None, "a refault is a new page");
    touch(&mut s, b + H, true).unwrap();
    assert_eq!(walk(&s, &pool, b + H).map(|x| x.2), Some(1));
    // A shrink frees and unmaps the pages (and reservations) past it.
    let r = f.set_len(3 * H).unwrap();
    s.unmap_object_range(f.key(), r, crate::space::Cows::Even).unwrap().ignore();
    assert_eq!((f.resident_pages(), free(&pool), pool.counts().reserved), (3, POOL - 3, 0));
    assert!(touch(&mut s, a + H, false).is_err(), "past the end now");
    // Reads stop at the size.
    let mut big = vec![1u8; (4 * H) as usize];
    assert_eq!(f.read_at(2 * H, &mut big).unwrap(), H as usize);
    assert!(big[..H as usize].iter().all(|&b| b == 0));
    sound(&s);
}

#[test]
fn fallocate_without_pages_stops_and_keeps_what_it_got() {
    let (s, pool, f) = setup();
    let other = pool.file("other");
    other.allocate(0, (POOL - 2) * H, false).unwrap();
    let e = f.allocate(0, 4 * H, false).unwrap_err();
    assert!(matches!(e, MmError::OutOfMemory(_)), "{e:?}");
    assert_eq!((f.resident_pages(), f.len()), (2, 0));
    drop(other);
    assert_eq!(free(&pool), POOL - 2);
    drop(f);
    assert_eq!(free(&pool), POOL);
    sound(&s);
}

/// One step of the property test; mappings and pages are taken modulo
/// what exists.
#[derive(Clone, Debug)]
enum Op {
    Map { first: u64, pages: u64, shared: bool },
    Touch { m: usize, page: u64, write: bool, tag: u64 },
    DontNeed { m: usize, page: u64, pages: u64 },
    Unmap { m: usize, page: u64, pages: u64 },
    Remove { m: usize, page: u64, pages: u64 },
    Fallocate { first: u64, pages: u64 },
    Punch { first: u64, pages: u64 },
    Truncate { pages: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..4, 1u64..4, any::<bool>()).prop_map(|(first, pages, shared)| Op::Map { first, pages, shared }),
        6 => (0usize..6, 0u64..4, any::<bool>(), 1u64..1000)
            .prop_map(|(m, page, write, tag)| Op::Touch { m, page, write, tag }),
        1 => (0usize..6, 0u64..4, 1u64..3).prop_map(|(m, page, pages)| Op::DontNeed { m, page, pages }),
        1 => (0usize..6, 0u64..4, 1u64..3).prop_map(|(m, page, pages)| Op::Unmap { m, page, pages }),
        1 => (0usize..6, 0u64..4, 1u64..3).prop_map(|(m, page, pages)| Op::Remove { m, page, pages }),
        1 => (0u64..6, 1u64..4).prop_map(|(first, pages)| Op::Fallocate { first, pages }),
        1 => (0u64..6, 1u64..4).prop_map(|(first, pages)| Op::Punch { first, pages }),
        1 => (0u64..7).prop_map(|pages| Op::Truncate { pages }),
    ]
}

/// What one page of a mapping maps.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ent {
    None,
    /// The file's page.
    File,
    /// A private page with this tag.
    Private(u64),
}

/// What the model knows of one mapping.
struct MapModel {
    at: u64,
    first: u64,
    shared: bool,
    live: Vec<bool>,
    ent: Vec<Ent>,
    /// A private mapping's reservations.
    resv: Vec<bool>,
}

#[derive(Default)]
struct FileModel {
    size: u64,
    pages: BTreeMap<u64, u64>,
    reserved: BTreeSet<u64>,
}

fn used(f: &FileModel, ms: &[MapModel]) -> (u64, u64) {
    let private: usize = ms.iter().map(|m| m.ent.iter().filter(|e| matches!(e, Ent::Private(_))).count()).sum();
    let presv: usize = ms.iter().map(|m| m.resv.iter().filter(|&&r| r).count()).sum();
    ((f.pages.len() + private) as u64, (f.reserved.len() + presv) as u64)
}

/// Clears every mapping's entries of file pages `[first, end)`.
fn zap(ms: &mut [MapModel], first: u64, end: u64) {
    for m in ms {
        for (j, e) in m.ent.iter_mut().enumerate() {
            let idx = m.first + j as u64;
            if m.live[j] && idx >= first && idx < end {
                *e = Ent::None;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn files_mappings_and_counters_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut s, pool, f) = setup();
        let mut fm = FileModel::default();
        let mut ms: Vec<MapModel> = Vec::new();
        for op in ops {
            let (inuse, resv) = used(&fm, &ms);
            let spare = POOL - inuse - resv;
            match op {
                Op::Map { first, pages, shared } => {
                    let need = if shared {
                        (first..first + pages).filter(|i| !fm.pages.contains_key(i) && !fm.reserved.contains(i)).count() as u64
                    } else {
                        pages
                    };
                    match map(&mut s, &f, first, pages, shared) {
                        Ok(at) => {
                            prop_assert!(need <= spare);
                            if shared {
                                fm.reserved.extend((first..first + pages).filter(|i| !fm.pages.contains_key(i)));
                            }
                            fm.size = fm.size.max((first + pages) * H);
                            let n = pages as usize;
                            ms.push(MapModel { at, first, shared, live: vec![true; n], ent: vec![Ent::None; n], resv: vec![!shared; n] });
                        }
                        Err(e) => {
                            prop_assert!(need > spare, "{e:?}");
                            prop_assert_eq!(e.errno(), errno::ENOMEM);
                        }
                    }
                }
                Op::Touch { m, page, write, tag } => {
                    if ms.is_empty() { continue; }
                    let k = m % ms.len();
                    let i = (page % ms[k].live.len() as u64) as usize;
                    if !ms[k].live[i] { continue; }
                    let at = ms[k].at + i as u64 * H;
                    let idx = ms[k].first + i as u64;
                    let r = if write { store(&mut s, at, tag) } else { touch(&mut s, at, false) };
                    if idx * H >= fm.size {
                        prop_assert!(r.is_err());
                        continue;
                    }
                    let md = &mut ms[k];
                    if md.shared {
                        if !fm.pages.contains_key(&idx) {
                            if !fm.reserved.remove(&idx) && spare == 0 {
                                prop_assert!(r.is_err());
                                continue;
                            }
                            fm.pages.insert(idx, 0);
                        }
                        prop_assert!(r.is_ok(), "{r:?}");
                        md.ent[i] = Ent::File;
                        if write { fm.pages.insert(idx, tag); }
                        continue;
                    }
                    // Private: a read of the file's page maps it; anything
                    // else needs a page of the mapping's own.
                    let has_own = matches!(md.ent[i], Ent::Private(_));
                    if !write && (has_own || md.ent[i] == Ent::File) {
                        prop_assert!(r.is_ok());
                        continue;
                    }
                    if !write && fm.pages.contains_key(&idx) {
                        prop_assert!(r.is_ok());
                        md.ent[i] = Ent::File;
                        continue;
                    }
                    if !has_own {
                        if !md.resv[i] && spare == 0 {
                            prop_assert!(r.is_err());
                            continue;
                        }
                        md.resv[i] = false;
                    }
                    prop_assert!(r.is_ok(), "{r:?}");
                    md.ent[i] = Ent::Private(if write { tag } else { 0 });
                }
                Op::DontNeed { m, page, pages } | Op::Unmap { m, page, pages } | Op::Remove { m, page, pages } => {
                    if ms.is_empty() { continue; }
                    let k = m % ms.len();
                    let i = (page % ms[k].live.len() as u64) as usize;
                    let n = (pages as usize).min(ms[k].live.len() - i);
                    if !ms[k].live[i..i + n].iter().all(|&l| l) { continue; }
                    let at = va(ms[k].at + i as u64 * H);
                    match op {
                        Op::Unmap { .. } => s.munmap(at, n as u64 * H).unwrap().ignore(),
                        Op::DontNeed { .. } => s.madvise(at, n as u64 * H, Advice::DontNeed).unwrap().ignore(),
                        _ => {
                            let r = s.madvise(at, n as u64 * H, Advice::Remove);
                            if !ms[k].shared {
                                prop_assert_eq!(r.unwrap_err().errno(), errno::EACCES);
                                continue;
                            }
                            r.unwrap().ignore();
                            let first = ms[k].first + i as u64;
                            // A punch frees pages; the reservations of
                            // pages never faulted stay (Linux 6.18 prints
                            // the same `HugePages_Rsvd`).
                            for idx in first..first + n as u64 {
                                fm.pages.remove(&idx);
                            }
                            zap(&mut ms, first, first + n as u64);
                            continue;
                        }
                    }
                    let md = &mut ms[k];
                    for j in i..i + n {
                        md.ent[j] = Ent::None;
                        if matches!(op, Op::Unmap { .. }) {
                            md.live[j] = false;
                            md.resv[j] = false;
                        }
                    }
                    if md.live.iter().all(|&l| !l) {
                        ms.remove(k);
                    }
                }
                Op::Fallocate { first, pages } => {
                    let r = f.allocate(first * H, pages * H, false);
                    let mut left = spare;
                    let mut ok = true;
                    for idx in first..first + pages {
                        if fm.pages.contains_key(&idx) { continue; }
                        if !fm.reserved.remove(&idx) {
                            if left == 0 { ok = false; break; }
                            left -= 1;
                        }
                        fm.pages.insert(idx, 0);
                    }
                    prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
                    if ok { fm.size = fm.size.max((first + pages) * H); }
                }
                Op::Punch { first, pages } => {
                    punch(&mut s, &f, first * H, pages * H);
                    for idx in first..first + pages {
                        fm.pages.remove(&idx);
                    }
                    zap(&mut ms, first, first + pages);
                }
                Op::Truncate { pages } => {
                    let r = f.set_len(pages * H).unwrap();
                    s.unmap_object_range(f.key(), r, crate::space::Cows::Even).unwrap().ignore();
                    if pages * H <= fm.size {
                        fm.pages.retain(|&i, _| i < pages);
                        fm.reserved.retain(|&i| i < pages);
                        zap(&mut ms, pages, u64::MAX);
                    }
                    fm.size = pages * H;
                }
            }
            // The counters.
            let (inuse, resv) = used(&fm, &ms);
            prop_assert_eq!(pool.counts(), HugetlbCounts { total: POOL, free: POOL - inuse, reserved: resv, surplus: 0 });
            prop_assert_eq!(f.resident_pages(), fm.pages.len() as u64);
            // The tables, by walking: each entry as the model says.
            let mut privates = BTreeSet::new();
            let mut leaves = 0;
            for md in &ms {
                for (j, e) in md.ent.iter().enumerate() {
                    if !md.live[j] { continue; }
                    let at = md.at + j as u64 * H;
                    let idx = md.first + j as u64;
                    let got = walk(&s, &pool, at);
                    match *e {
                        Ent::None => prop_assert_eq!(got, None),
                        Ent::File => {
                            let (pfn, w, v) = got.unwrap();
                            prop_assert_eq!(Some(pfn), f.frame(idx));
                            prop_assert_eq!(w, md.shared, "private file pages are read-only");
                            prop_assert_eq!(Some(v), fm.pages.get(&idx).copied());
                            leaves += 1;
                        }
                        Ent::Private(tag) => {
                            let (pfn, w, v) = got.unwrap();
                            prop_assert!(w);
                            prop_assert_eq!(v, tag);
                            prop_assert!(privates.insert(pfn), "a private page mapped twice");
                            prop_assert!((0..8).all(|i| f.frame(i) != Some(pfn)));
                            leaves += 1;
                        }
                    }
                }
            }
            prop_assert_eq!(s.page_tables().leaves(va(1 << 32), 512 << 20).len(), leaves);
            // The file's bytes, through read().
            for (&idx, &tag) in &fm.pages {
                let mut b = [0u8; 8];
                let n = f.read_at(idx * H, &mut b).unwrap();
                if idx * H < fm.size {
                    prop_assert_eq!((n, u64::from_ne_bytes(b)), (8, tag));
                }
            }
            let (_, v) = s.check_invariants();
            prop_assert!(v.is_empty(), "{:?}", v);
        }
    }
}

/// `unmap_object_range` rounds a page range inwards to each VMA's page
/// size: a range ending inside a huge page leaves that page mapped, one
/// starting inside a huge page leaves it too (a huge leaf is cleared
/// whole or not at all).
#[test]
fn an_object_range_is_rounded_inwards_to_huge_pages() {
    let (mut s, pool, f) = setup();
    f.set_len(3 * H).unwrap();
    let a = map(&mut s, &f, 0, 3, true).unwrap();
    for i in 0..3 {
        store(&mut s, a + i * H, 5).unwrap();
    }
    let per = H / PAGE_SIZE;
    s.unmap_object_range(f.key(), 0..per + 1, crate::space::Cows::Even).unwrap().ignore();
    assert_eq!(walk(&s, &pool, a), None, "page 0 is wholly inside: cleared");
    assert!(walk(&s, &pool, a + H).is_some(), "page 1 is only touched: kept");
    s.unmap_object_range(f.key(), per + 1..3 * per, crate::space::Cows::Even).unwrap().ignore();
    assert!(walk(&s, &pool, a + H).is_some(), "a range starting inside page 1 keeps it");
    assert_eq!(walk(&s, &pool, a + 2 * H), None);
    sound(&s);
}
