//! Tests of the hugetlb pool and its mappings: examples of Linux's rules
//! (reservations, `ENOMEM`, alignment, `MADV_DONTNEED`, shared pages that
//! outlive their entries), then a property test of random maps, touches,
//! discards and unmaps against a model of the pool's counters and of
//! every huge page's bytes. Mappings are checked by walking the page
//! tables (one 2 MiB leaf per faulted page, inside the pool, no frame
//! mapped twice) and reading guest memory, never by asking the provider.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{HugetlbCounts, HugetlbPool, HUGE_PAGE_SIZE};
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::space::{AddressSpace, Advice, MmapRequest, SpaceConfig};
use crate::vma::FaultAccess;

type Mem = GuestMemoryMmap<()>;
const H: u64 = HUGE_PAGE_SIZE;
/// Pages in the test pool (16 MiB at 16 MiB).
const POOL: u64 = 8;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

pub(super) fn va(a: u64) -> GuestVirtAddr {
    GuestVirtAddr::try_new(a).unwrap()
}

/// 64 MiB of RAM: tables at 48 MiB, a 4 KiB page pool at 40 MiB, the
/// hugetlb pool over `[16 MiB, 32 MiB)`, the mmap window at 4 GiB (the
/// machine of the SysV object's tests too).
pub(super) fn setup() -> (AddressSpace<Mem>, HugetlbPool<Mem>) {
    let mem = Mem::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(1 << 32), va((1 << 32) + (256 << 20)));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    let s = AddressSpace::new(mem, cfg).unwrap();
    let pool = HugetlbPool::new(s.frames().clone(), s.memory().clone(), &[(GuestAddress(16 << 20), POOL * H)]).unwrap();
    (s, pool)
}

fn counts(total: u64, free: u64, reserved: u64) -> HugetlbCounts {
    HugetlbCounts { total, free, reserved, surplus: 0 }
}

fn map(s: &mut AddressSpace<Mem>, pool: &HugetlbPool<Mem>, pages: u64, shared: bool) -> Result<u64, MmError> {
    let req = if shared { MmapRequest::shared(pages * H, RW) } else { MmapRequest::private(pages * H, RW) };
    let m = s.mmap(&pool.provider(false), &req)?;
    m.flush.ignore();
    Ok(m.addr.raw())
}

fn touch(s: &mut AddressSpace<Mem>, at: u64, write: bool) -> Result<(), MmError> {
    let access = if write { FaultAccess::WRITE } else { FaultAccess::READ };
    s.fault(va(at), access).map(|f| f.flush.ignore())
}

/// The 8 bytes at `at`, through a walk; also checks the leaf is one
/// 2 MiB page of the pool.
fn read(s: &AddressSpace<Mem>, pool: &HugetlbPool<Mem>, at: u64) -> Option<u64> {
    let t = s.page_tables().translate(va(at))?;
    assert_eq!(t.size, PageSize::Size2M, "{at:#x} not a 2 MiB leaf");
    assert!(pool.contains(t.pfn), "{at:#x} maps {:#x}, outside the pool", t.phys.0);
    Some(s.memory().read_obj::<u64>(t.phys).unwrap())
}

fn write(s: &AddressSpace<Mem>, at: u64, v: u64) {
    let t = s.page_tables().translate(va(at)).unwrap();
    assert!(t.prot.writable);
    s.memory().write_obj(v, t.phys).unwrap();
}

fn sound(s: &AddressSpace<Mem>) {
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn a_private_mapping_reserves_faults_one_leaf_and_gives_pages_back() {
    let (mut s, pool) = setup();
    assert_eq!(pool.counts(), counts(POOL, POOL, 0));
    let at = map(&mut s, &pool, 3, false).unwrap();
    assert_eq!(at % H, 0, "placed on a huge page");
    assert_eq!(pool.counts(), counts(POOL, POOL, 3), "reserved, not yet used");
    assert!(s.page_tables().translate(va(at)).is_none(), "nothing mapped before a touch");
    let v = s.find_vma(va(at)).unwrap();
    assert!(v.flags().contains(VmFlags::HUGETLB | VmFlags::DONTEXPAND));
    // A write in the middle of the second page maps the whole of it.
    touch(&mut s, at + H + 5 * PAGE_SIZE, true).unwrap();
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 2));
    assert_eq!(read(&s, &pool, at + H), Some(0), "zeroed");
    assert_eq!(read(&s, &pool, at + 2 * H - 8), Some(0));
    assert!(s.page_tables().translate(va(at)).is_none() && s.page_tables().translate(va(at + 2 * H)).is_none());
    assert_eq!(s.page_tables().leaves(va(at), 3 * H).len(), 1, "one leaf");
    write(&s, at + H, 0xfeed);
    // A second fault anywhere in it is spurious.
    touch(&mut s, at + H + 7, true).unwrap();
    assert_eq!(read(&s, &pool, at + H), Some(0xfeed));
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 2));
    sound(&s);
    s.munmap(va(at), 3 * H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL, 0), "page and reservations back");
    sound(&s);
}

#[test]
fn the_pool_refuses_what_it_cannot_promise() {
    let (mut s, pool) = setup();
    let e = map(&mut s, &pool, POOL + 1, false).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM, "{e:?}");
    assert_eq!(s.vmas().count(), 0);
    assert_eq!(pool.counts(), counts(POOL, POOL, 0));
    let a = map(&mut s, &pool, POOL - 2, false).unwrap();
    assert_eq!(map(&mut s, &pool, 3, true).unwrap_err().errno(), errno::ENOMEM);
    let b = map(&mut s, &pool, 2, true).unwrap();
    assert_eq!(pool.counts(), counts(POOL, POOL, POOL));
    // Without a reservation (MAP_NORESERVE) the map succeeds, the fault
    // finds nothing unpromised: the guest's SIGBUS.
    let c = s.mmap(&pool.provider(true), &MmapRequest::private(H, RW)).unwrap().addr.raw();
    assert_eq!(pool.counts(), counts(POOL, POOL, POOL));
    assert!(touch(&mut s, c, true).is_err());
    assert!(s.page_tables().translate(va(c)).is_none());
    // Every promised page can be faulted.
    for i in 0..POOL - 2 {
        touch(&mut s, a + i * H, false).unwrap();
    }
    for i in 0..2 {
        touch(&mut s, b + i * H, true).unwrap();
    }
    assert_eq!(pool.counts(), counts(POOL, 0, 0));
    // MADV_DONTNEED of one private page lets the unreserved mapping have it.
    s.madvise(va(a), H, Advice::DontNeed).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, 1, 0));
    touch(&mut s, c, true).unwrap();
    assert_eq!(pool.counts(), counts(POOL, 0, 0));
    sound(&s);
    drop(s);
    assert_eq!(pool.counts(), counts(POOL, POOL, 0), "everything back with the space");
}

#[test]
fn alignment_is_linux_s() {
    let (mut s, pool) = setup();
    let p = pool.provider(false);
    let inval = |e: MmError| assert_eq!(e.errno(), errno::EINVAL, "{e:?}");
    // A fixed address or a length off a huge page.
    inval(s.mmap(&p, &MmapRequest::private(H, RW).fixed(va((1 << 32) + PAGE_SIZE))).unwrap_err());
    inval(s.mmap(&p, &MmapRequest::private(H + PAGE_SIZE, RW)).unwrap_err());
    inval(s.mmap(&p, &MmapRequest::shared(H, RW).pgoff(1)).unwrap_err());
    assert_eq!(pool.counts(), counts(POOL, POOL, 0), "refusals reserve nothing");
    let at = map(&mut s, &pool, 4, false).unwrap();
    for i in 0..4 {
        touch(&mut s, at + i * H, true).unwrap();
    }
    // munmap of part of a huge page.
    inval(s.munmap(va(at + PAGE_SIZE), H).unwrap_err());

    // MADV_DONTNEED: a start inside a page, MADV_FREE at all.
    inval(s.madvise(va(at + PAGE_SIZE), H, Advice::DontNeed).unwrap_err());
    inval(s.madvise(va(at), H, Advice::Free).unwrap_err());
    assert_eq!(pool.counts(), counts(POOL, POOL - 4, 0));
    // The end is rounded down: 1 page and 4 KiB drops one page.
    s.madvise(va(at), H + PAGE_SIZE, Advice::DontNeed).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL - 3, 0));
    assert!(s.page_tables().translate(va(at)).is_none());
    assert_eq!(read(&s, &pool, at + H), Some(0));
    // Less than a page: nothing.
    s.madvise(va(at + H), H - PAGE_SIZE, Advice::DontNeed).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL - 3, 0));
    // A refault of a discarded page is a fresh zeroed page.
    write(&s, at + H, 9);
    touch(&mut s, at, true).unwrap();
    assert_eq!(read(&s, &pool, at), Some(0));
    // Whole pages unmap; the rest stays, with its pages.
    s.munmap(va(at), H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL - 3, 0));
    assert_eq!(read(&s, &pool, at + H), Some(9));
    sound(&s);
}

#[test]
fn shared_pages_outlive_their_entries_until_the_last_vma_goes() {
    let (mut s, pool) = setup();
    let at = map(&mut s, &pool, 2, true).unwrap();
    touch(&mut s, at, true).unwrap();
    write(&s, at, 0xabc);
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 1));
    s.madvise(va(at), 2 * H, Advice::DontNeed).unwrap().ignore();
    assert!(s.page_tables().translate(va(at)).is_none());
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 1), "the object keeps its page");
    touch(&mut s, at + 8, false).unwrap();
    assert_eq!(read(&s, &pool, at), Some(0xabc), "same bytes after a refault");
    // Unmapping one page of two leaves the object (and its page) alive.
    s.munmap(va(at), H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 1));
    s.munmap(va(at + H), H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL, 0));
    sound(&s);
}

#[test]
fn a_moved_private_mapping_keeps_its_pages_and_reservations() {
    let (mut s, pool) = setup();
    let at = map(&mut s, &pool, 2, false).unwrap();
    touch(&mut s, at, true).unwrap();
    write(&s, at, 77);
    let to = va(at + 16 * H);
    let r = s.mremap(va(at), 2 * H, 2 * H, true, Some(to)).unwrap();
    r.flush.ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL - 1, 1));
    assert_eq!(read(&s, &pool, to.raw()), Some(77));
    assert!(s.page_tables().translate(va(at)).is_none());
    touch(&mut s, to.raw() + H, true).unwrap();
    assert_eq!(pool.counts(), counts(POOL, POOL - 2, 0));
    sound(&s);
    s.munmap(to, 2 * H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL, 0));
}

#[test]
fn pool_regions_must_be_huge_pages_of_ram() {
    let (s, _) = setup();
    let f = s.frames().clone();
    let m = s.memory().clone();
    let e = HugetlbPool::new(f.clone(), m.clone(), &[(GuestAddress(PAGE_SIZE), H)]).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(HugetlbPool::new(f.clone(), m.clone(), &[(GuestAddress(64 << 20), H)]).is_err(), "past RAM");
    assert!(HugetlbPool::new(f.clone(), m.clone(), &[(GuestAddress(0), 2 * H), (GuestAddress(H), H)]).is_err());
    assert_eq!(HugetlbPool::new(f, m, &[]).unwrap().counts(), HugetlbCounts::default());
}

/// One step of the property test; mapping numbers and pages are taken
/// modulo what exists.
#[derive(Clone, Debug)]
enum Op {
    Map { pages: u64, shared: bool },
    Touch { m: usize, page: u64, write: bool, tag: u64 },
    DontNeed { m: usize, page: u64, pages: u64 },
    Unmap { m: usize, page: u64, pages: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u64..5, any::<bool>()).prop_map(|(pages, shared)| Op::Map { pages, shared }),
        5 => (0usize..8, 0u64..5, any::<bool>(), 1u64..1000).prop_map(|(m, page, write, tag)| Op::Touch { m, page, write, tag }),
        1 => (0usize..8, 0u64..5, 1u64..3).prop_map(|(m, page, pages)| Op::DontNeed { m, page, pages }),
        1 => (0usize..8, 0u64..5, 1u64..3).prop_map(|(m, page, pages)| Op::Unmap { m, page, pages }),
    ]
}

/// What the model knows of one mapping.
struct Model {
    at: u64,
    shared: bool,
    /// Per page: still mapped (not unmapped).
    live: Vec<bool>,
    /// Per page: its entry is present.
    present: Vec<bool>,
    /// Per page: the bytes' tag, if the mapping (or object) has a page.
    data: Vec<Option<u64>>,
    /// Per page: holds a reservation.
    resv: Vec<bool>,
}

impl Model {
    /// Pool pages this mapping holds.
    fn held(&self) -> u64 {
        self.data.iter().filter(|d| d.is_some()).count() as u64
    }
    fn reserved(&self) -> u64 {
        self.resv.iter().filter(|&&r| r).count() as u64
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn counters_bytes_and_leaves_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut s, pool) = setup();
        let mut ms: Vec<Model> = Vec::new();
        for op in ops {
            let held: u64 = ms.iter().map(Model::held).sum();
            let resv: u64 = ms.iter().map(Model::reserved).sum();
            let spare = POOL - held - resv;
            match op {
                Op::Map { pages, shared } => match map(&mut s, &pool, pages, shared) {
                    Ok(at) => {
                        prop_assert!(pages <= spare);
                        let n = pages as usize;
                        ms.push(Model { at, shared, live: vec![true; n], present: vec![false; n], data: vec![None; n], resv: vec![true; n] });
                    }
                    Err(e) => {
                        prop_assert!(pages > spare, "{e:?}");
                        prop_assert_eq!(e.errno(), errno::ENOMEM);
                    }
                },
                Op::Touch { m, page, write: w, tag } => {
                    if ms.is_empty() { continue; }
                    let k = m % ms.len();
                    let md = &mut ms[k];
                    let i = (page % md.live.len() as u64) as usize;
                    // An unmapped page's address may belong to a later mapping.
                    if !md.live[i] { continue; }
                    let at = md.at + i as u64 * H;
                    let r = touch(&mut s, at + 64 * (tag % 64), w);
                    if !md.present[i] {
                        if md.data[i].is_none() {
                            if !md.resv[i] && spare == 0 {
                                prop_assert!(r.is_err());
                                continue;
                            }
                            md.resv[i] = false;
                            md.data[i] = Some(0);
                        }
                        md.present[i] = true;
                    }
                    prop_assert!(r.is_ok(), "{r:?}");
                    if w {
                        write(&s, at, tag);
                        md.data[i] = Some(tag);
                    }
                }
                Op::DontNeed { m, page, pages } | Op::Unmap { m, page, pages } => {
                    if ms.is_empty() { continue; }
                    let unmap = matches!(op, Op::Unmap { .. });
                    let k = m % ms.len();
                    let md = &mut ms[k];
                    let i = (page % md.live.len() as u64) as usize;
                    let n = (pages as usize).min(md.live.len() - i);
                    // Only ranges still mapped: a hole may hold a later mapping.
                    if !md.live[i..i + n].iter().all(|&l| l) { continue; }
                    let at = va(md.at + i as u64 * H);
                    if unmap {
                        s.munmap(at, n as u64 * H).unwrap().ignore();
                    } else {
                        s.madvise(at, n as u64 * H, Advice::DontNeed).unwrap().ignore();
                    }
                    for j in i..i + n {
                        md.present[j] = false;
                        if !md.shared {
                            md.data[j] = None;
                            if unmap { md.resv[j] = false; }
                        }
                        if unmap { md.live[j] = false; }
                    }
                    if md.live.iter().all(|&l| !l) {
                        ms.remove(k);
                    }
                }
            }
            // The counters.
            let held: u64 = ms.iter().map(Model::held).sum();
            let resv: u64 = ms.iter().map(Model::reserved).sum();
            prop_assert_eq!(pool.counts(), counts(POOL, POOL - held, resv));
            // The tables: every present page one 2 MiB leaf of the pool with
            // its bytes, no frame twice, nothing else mapped.
            let mut frames = BTreeSet::new();
            for md in &ms {
                for (j, &p) in md.present.iter().enumerate() {
                    if !md.live[j] { continue; }
                    let at = md.at + j as u64 * H;
                    let got = read(&s, &pool, at);
                    if p {
                        prop_assert_eq!(got, md.data[j]);
                        prop_assert!(frames.insert(s.page_tables().translate(va(at)).unwrap().pfn));
                    } else {
                        prop_assert_eq!(got, None);
                    }
                }
            }
            let all = s.page_tables().leaves(va(1 << 32), 256 << 20).len();
            prop_assert_eq!(all, frames.len());
            let (_, v) = s.check_invariants();
            prop_assert!(v.is_empty(), "{:?}", v);
        }
    }
}

#[test]
fn fork_copies_private_huge_pages_and_shares_shared_ones() {
    let (mut s, pool) = setup();
    let private = map(&mut s, &pool, 2, false).unwrap();
    let shared = map(&mut s, &pool, 1, true).unwrap();
    touch(&mut s, private, true).unwrap();
    touch(&mut s, shared, true).unwrap();
    write(&s, private + 8, 0x1111);
    write(&s, shared + 8, 0x2222);
    let forked = s.fork().unwrap();
    assert!(forked.flush.is_empty(), "huge pages are copied, not write-protected");
    let c = forked.child;
    // The child's private page is its own copy; the shared one is the same.
    let (pp, cp) = (s.page_tables().translate(va(private)).unwrap(), c.page_tables().translate(va(private)).unwrap());
    assert_ne!(pp.pfn, cp.pfn);
    assert_eq!(read(&c, &pool, private + 8), Some(0x1111));
    assert!(c.page_tables().translate(va(private + H)).is_none(), "an untouched page stays absent");
    write(&s, private + 8, 0x3333);
    assert_eq!(read(&c, &pool, private + 8), Some(0x1111));
    assert_eq!(c.page_tables().translate(va(shared)).unwrap().pfn, s.page_tables().translate(va(shared)).unwrap().pfn);
    write(&c, shared + 8, 0x4444);
    assert_eq!(read(&s, &pool, shared + 8), Some(0x4444));
    sound(&s);
    sound(&c);
    let before = pool.counts();
    c.exit().ignore();
    assert_eq!(pool.counts().reserved, before.reserved, "the child's exit keeps the parent's reservation");
    assert_eq!(read(&s, &pool, private + 8), Some(0x3333));
    s.exit().ignore();
    assert_eq!(pool.counts(), counts(POOL, POOL, 0), "every huge page and reservation back");
}
