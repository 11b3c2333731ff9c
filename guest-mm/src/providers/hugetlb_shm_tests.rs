//! Tests of the hugetlb shared-memory object (a SysV `SHM_HUGETLB`
//! segment): reservations taken when it is made, pages shared by every
//! mapping of it, and everything back in the pool only when the object
//! and its last VMA are gone; then a property test of random attaches,
//! touches, writes and detaches against a model of the pool's counters
//! and of every page's bytes. Pages are checked by walking the page
//! tables and reading guest memory.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::hugetlb_tests::{setup, va};
use super::{HugetlbCounts, HugetlbPool, HugetlbShm, HUGE_PAGE_SIZE};
use crate::addr::PageSize;
use crate::error::errno;
use crate::flags::VmFlags;
use crate::space::{AddressSpace, MmapRequest};
use crate::vma::FaultAccess;

type Mem = GuestMemoryMmap<()>;
const H: u64 = HUGE_PAGE_SIZE;
const POOL: u64 = 8;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn counts(free: u64, reserved: u64) -> HugetlbCounts {
    HugetlbCounts { total: POOL, free, reserved, surplus: 0 }
}

fn attach(s: &mut AddressSpace<Mem>, obj: &HugetlbShm<Mem>) -> u64 {
    let m = s.mmap(obj, &MmapRequest::shared(obj.len(), RW)).unwrap();
    m.flush.ignore();
    m.addr.raw()
}

/// The physical address behind `at`, checking it is a 2 MiB leaf of the
/// pool.
fn phys(s: &AddressSpace<Mem>, pool: &HugetlbPool<Mem>, at: u64) -> Option<GuestAddress> {
    let t = s.page_tables().translate(va(at))?;
    assert_eq!(t.size, PageSize::Size2M);
    assert!(pool.contains(t.pfn));
    Some(t.phys)
}

fn touch(s: &mut AddressSpace<Mem>, at: u64) {
    s.fault(va(at), FaultAccess::WRITE).unwrap().flush.ignore();
}

#[test]
fn the_object_reserves_when_made_and_its_attaches_share_pages() {
    let (mut s, pool) = setup();
    let obj = pool.shm_object("SYSV00000002", 3 * H, false).unwrap();
    assert_eq!(pool.counts(), counts(POOL, 3), "reserved at creation, as shmget does");
    let a = attach(&mut s, &obj);
    let b = attach(&mut s, &obj);
    assert_eq!(pool.counts(), counts(POOL, 3), "an attach reserves nothing more");
    assert!(s.find_vma(va(a)).unwrap().flags().contains(VmFlags::HUGETLB | VmFlags::SHARED));
    touch(&mut s, a + H + 8);
    let pa = phys(&s, &pool, a + H).unwrap();
    s.memory().write_obj(0x5eedu64, pa).unwrap();
    touch(&mut s, b + H);
    assert_eq!(phys(&s, &pool, b + H), Some(pa), "the second attach maps the same page");
    assert_eq!(obj.resident_pages(), 1);
    assert_eq!(pool.counts(), counts(POOL - 1, 2), "the fault consumed one reservation");
    s.munmap(va(a), 3 * H).unwrap().ignore();
    s.munmap(va(b), 3 * H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL - 1, 2), "the object still holds its page");
    let c = attach(&mut s, &obj);
    touch(&mut s, c + H);
    let pc = phys(&s, &pool, c + H).unwrap();
    assert_eq!(s.memory().read_obj::<u64>(pc).unwrap(), 0x5eed, "the bytes outlive every attach");
    s.munmap(va(c), 3 * H).unwrap().ignore();
    drop(obj);
    assert_eq!(pool.counts(), counts(POOL, 0), "page and reservations back with the object");
}

#[test]
fn the_last_vma_keeps_the_pages_after_the_object_is_dropped() {
    let (mut s, pool) = setup();
    let obj = pool.shm_object("SYSV00000000", 2 * H, false).unwrap();
    let a = attach(&mut s, &obj);
    touch(&mut s, a);
    drop(obj);
    assert_eq!(pool.counts(), counts(POOL - 1, 1), "IPC_RMID while attached: nothing is freed");
    touch(&mut s, a + H);
    assert_eq!(pool.counts(), counts(POOL - 2, 0));
    s.munmap(va(a), 2 * H).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, 0));
}

#[test]
fn bad_objects_and_mappings_are_refused() {
    let (mut s, pool) = setup();
    assert_eq!(pool.shm_object("x", H + 4096, false).err().map(|e| e.errno()), Some(errno::EINVAL));
    assert_eq!(pool.shm_object("x", 0, false).err().map(|e| e.errno()), Some(errno::EINVAL));
    assert_eq!(pool.shm_object("x", (POOL + 1) * H, false).err().map(|e| e.errno()), Some(errno::ENOMEM));
    assert_eq!(pool.counts(), counts(POOL, 0));
    // SHM_NORESERVE: made without reservations even past the pool.
    let big = pool.shm_object("x", (POOL + 1) * H, true).unwrap();
    assert_eq!(pool.counts(), counts(POOL, 0));
    let obj = pool.shm_object("x", 2 * H, false).unwrap();
    let private = s.mmap(&obj, &MmapRequest::private(2 * H, RW));
    assert_eq!(private.err().map(|e| e.errno()), Some(errno::EOPNOTSUPP));
    let past = s.mmap(&obj, &MmapRequest::shared(3 * H, RW));
    assert_eq!(past.err().map(|e| e.errno()), Some(errno::EINVAL));
    let odd = s.mmap(&obj, &MmapRequest::shared(H, RW).fixed(va((1 << 32) + 4096)));
    assert_eq!(odd.err().map(|e| e.errno()), Some(errno::EINVAL));
    assert_eq!(s.vmas().count(), 0);
    drop((big, obj));
    assert_eq!(pool.counts(), counts(POOL, 0));
}

/// `MADV_REMOVE` through one attach punches the object (hugetlbfs's
/// punch of the segment's file): every attach loses the page (walked),
/// its reservation-less page goes back to the pool, a refault reads
/// zeroes, a partial page is zeroed in place, and the punch is recorded
/// for the other spaces. Before, only the calling attach's entries went
/// and the data came back on the next touch.
#[test]
fn madv_remove_punches_the_segment_in_every_attach() {
    let (mut s, pool) = setup();
    let obj = pool.shm_object("SYSV00000003", 2 * H, false).unwrap();
    let (a, b) = (attach(&mut s, &obj), attach(&mut s, &obj));
    for p in 0..2 {
        touch(&mut s, a + p * H);
        s.memory().write_obj(0x77u64, phys(&s, &pool, a + p * H).unwrap()).unwrap();
        touch(&mut s, b + p * H);
    }
    s.memory().write_obj(0x78u64, phys(&s, &pool, a + H + 8192).unwrap()).unwrap();
    assert_eq!(pool.counts(), counts(POOL - 2, 0));
    s.madvise(va(a), H + 4096, crate::space::Advice::Remove).unwrap().ignore();
    assert!(phys(&s, &pool, a).is_none() && phys(&s, &pool, b).is_none(), "both attaches lost page 0");
    assert_eq!(pool.counts(), counts(POOL - 1, 0), "the punched page went back to the pool");
    let second = phys(&s, &pool, b + H).unwrap();
    assert_eq!(s.memory().read_obj::<u64>(second).unwrap(), 0, "the partial page's first 4 KiB were zeroed");
    assert_eq!(s.memory().read_obj::<u64>(GuestAddress(second.0 + 8192)).unwrap(), 0x78, "and the rest kept");
    touch(&mut s, b);
    assert_eq!(s.memory().read_obj::<u64>(phys(&s, &pool, b).unwrap()).unwrap(), 0, "a refault reads zeroes");
    let punches = s.take_punches();
    assert_eq!(punches.len(), 1);
    assert_eq!((punches[0].1.pages.clone(), punches[0].1.frames.clone()), (0..512, None));
    s.munmap(va(a), 2 * H).unwrap().ignore();
    s.munmap(va(b), 2 * H).unwrap().ignore();
    drop(obj);
    assert_eq!(pool.counts(), counts(POOL, 0));
}

/// `MADV_REMOVE` of pages never touched frees nothing and keeps their
/// reservations (Linux 6.18: `HugePages_Rsvd` unchanged); a later touch
/// still has its page.
#[test]
fn madv_remove_of_untouched_pages_keeps_their_reservations() {
    let (mut s, pool) = setup();
    let obj = pool.shm_object("SYSV00000004", 2 * H, false).unwrap();
    let a = attach(&mut s, &obj);
    s.madvise(va(a), 2 * H, crate::space::Advice::Remove).unwrap().ignore();
    assert_eq!(pool.counts(), counts(POOL, 2), "both reservations stay");
    touch(&mut s, a);
    assert_eq!(pool.counts(), counts(POOL - 1, 1), "the touch consumed one");
    s.munmap(va(a), 2 * H).unwrap().ignore();
    drop(obj);
    assert_eq!(pool.counts(), counts(POOL, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Attach,
    Write { which: usize, page: u64, v: u64 },
    Detach(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Attach),
        (0usize..4, 0u64..3, any::<u64>()).prop_map(|(which, page, v)| Op::Write { which, page, v }),
        (0usize..4).prop_map(Op::Detach),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random attaches, writes through any attach and detaches of one
    /// 3-page object: every attach sees the model's bytes, the pool's
    /// counters are the model's (a page is used from its first touch
    /// until the object and all attaches are gone).
    #[test]
    fn attaches_agree_with_a_model(ops in proptest::collection::vec(op(), 1..24)) {
        let (mut s, pool) = setup();
        let obj = pool.shm_object("SYSV00000001", 3 * H, false).unwrap();
        let mut attaches: Vec<u64> = Vec::new();
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        for o in ops {
            match o {
                Op::Attach if attaches.len() < 4 => attaches.push(attach(&mut s, &obj)),
                Op::Attach => {}
                Op::Write { which, page, v } => {
                    let Some(&at) = attaches.get(which) else { continue };
                    touch(&mut s, at + page * H);
                    s.memory().write_obj(v, phys(&s, &pool, at + page * H).unwrap()).unwrap();
                    model.insert(page, v);
                }
                Op::Detach(i) => {
                    if i < attaches.len() {
                        let at = attaches.remove(i);
                        s.munmap(va(at), 3 * H).unwrap().ignore();
                    }
                }
            }
            let used = model.len() as u64;
            prop_assert_eq!(pool.counts(), counts(POOL - used, 3 - used));
            for &at in &attaches {
                for page in 0..3 {
                    if let Some(p) = phys(&s, &pool, at + page * H) {
                        prop_assert_eq!(s.memory().read_obj::<u64>(p).unwrap(), model.get(&page).copied().unwrap_or(0));
                    }
                }
            }
            let (_, v) = s.check_invariants();
            prop_assert!(v.is_empty(), "{:?}", v);
        }
        for at in attaches {
            s.munmap(va(at), 3 * H).unwrap().ignore();
        }
        drop(obj);
        prop_assert_eq!(pool.counts(), counts(POOL, 0));
    }
}
