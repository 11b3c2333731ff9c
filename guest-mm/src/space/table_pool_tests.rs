//! Page tables beyond the table region: once the region is used up,
//! table pages come from the pool, and an operation that runs out of them
//! midway fails with `ENOMEM` and leaves the space exactly as it was (its
//! rollback never needs a table page it cannot have).
//!
//! The space here has a two-page table region (the root and one table),
//! so nearly every table lives in the pool. Everything is checked by
//! walking the tables: the leaves, the data read through them, the table
//! census against the allocator and the pool's balance
//! ([`AddressSpace::check_invariants`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::test_util::{assert_sound, read_tag, va, write_tag};
use super::{AddressSpace, MmapRequest, SpaceConfig};
use crate::action::{PageArray, PageRun};
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::frames::PoolPages;
use crate::paging::Leaf;
use crate::provider::MmapProvider;
use crate::providers::ZeroProvider;

type Space = AddressSpace<GuestMemoryMmap<()>>;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;
/// The mmap window: 1 GiB at 4 GiB.
const WIN: (u64, u64) = (1 << 32, (1 << 32) + (1 << 30));
/// Pool pages (4 MiB at 40 MiB).
const POOL_PAGES: usize = 1024;

/// 64 MiB of RAM, a two-page table region at 48 MiB, a 4 MiB pool.
fn tiny_space() -> Space {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 2 * P));
    cfg.mmap_window = (va(WIN.0), va(WIN.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), POOL_PAGES as u64 * P));
    let mut s = AddressSpace::new(mem, cfg).unwrap();
    s.set_fault_around(1).unwrap();
    s
}

/// The start of 2 MiB slot `i` of the window: each slot has a leaf table
/// of its own.
fn slot(i: u64) -> u64 {
    WIN.0 + i * M2
}

fn rw() -> VmFlags {
    VmFlags::READ | VmFlags::WRITE
}

fn zero(s: &Space) -> ZeroProvider<GuestMemoryMmap<()>> {
    ZeroProvider::new(s.frames().clone(), s.memory().clone())
}

/// A fixed private anonymous mapping of `len` bytes at `at`.
fn map_anon(s: &mut Space, z: &ZeroProvider<GuestMemoryMmap<()>>, at: u64, len: u64) -> Result<(), MmError> {
    s.mmap(z, &MmapRequest::private(len, rw()).fixed(va(at))).map(|m| m.flush.ignore())
}

/// Everything an operation that fails must leave as it was: every leaf
/// of the user half, the VMAs, the tags read through the tables at
/// `pages`, and the table count.
#[derive(Debug, PartialEq, Eq)]
struct Picture {
    leaves: Vec<Leaf>,
    vmas: Vec<(u64, u64, VmFlags)>,
    tags: Vec<(u64, Option<u64>)>,
    tables: usize,
}

fn picture(s: &Space, pages: impl IntoIterator<Item = u64>) -> Picture {
    Picture {
        leaves: s.page_tables().leaves(va(0), super::USER_END),
        vmas: s.vmas().map(|v| (v.start().raw(), v.end(), v.flags())).collect(),
        tags: pages.into_iter().map(|a| (a, read_tag(s, va(a)))).collect(),
        tables: s.page_tables().tables_in_use(),
    }
}

#[test]
fn tables_spill_into_the_pool_are_never_pinnable_and_go_back() {
    let mut s = tiny_space();
    let z = zero(&s);
    let free0 = s.frames().pool_free();
    map_anon(&mut s, &z, slot(0), 32 * M2).unwrap();
    for i in 0..32 {
        write_tag(&mut s, va(slot(i) + 5 * P), 100 + i);
    }
    // Root and the level-3 table in the region; the level-2 table and 32
    // leaf tables from the pool.
    let alloc = s.page_tables().allocator();
    assert_eq!((alloc.in_use(), alloc.pool_in_use(), alloc.available()), (35, 33, 0));
    assert_eq!(s.frames().lock().pool_tables(), 33);
    assert_eq!(s.frames().pool_free(), free0 - 33 - 32);
    let (audit, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
    assert_eq!((audit.tables, audit.pool), (35, (free0 - 65, 65, POOL_PAGES)));
    for i in 0..32 {
        assert_eq!(read_tag(&s, va(slot(i) + 5 * P)), Some(100 + i));
    }
    // No table frame can be pinned (EPERM), and the pool hands none out.
    let (held, _) = s.page_tables().allocator().held();
    let pool_tables: Vec<Pfn> = held.into_iter().filter(|p| (10240..11264).contains(&p.0)).collect();
    assert_eq!(pool_tables.len(), 33);
    for &p in &pool_tables {
        let e = s.frames().pin(Arc::from([p].as_slice())).unwrap_err();
        assert_eq!((e.clone(), e.errno()), (MmError::FrameReserved { pfn: p.0 }, errno::EPERM));
    }
    let rest = s.frames().alloc(s.frames().pool_free() as u64).unwrap();
    assert!(rest.pfns().iter().all(|p| !pool_tables.contains(p)));
    assert!(s.frames().alloc(1).is_err());
    drop(rest);
    // A raw remap of a table frame is refused like one of the region.
    let r = s.mmap(&RemapTo(pool_tables[3]), &MmapRequest::shared(P, rw()).fixed(va(WIN.1 - P)));
    assert_eq!(r.map(|m| m.flush.ignore()), Err(MmError::FrameReserved { pfn: pool_tables[3].0 }));
    // Unmapping gives every pool table back.
    s.munmap(va(slot(0)), 32 * M2).unwrap().ignore();
    let alloc = s.page_tables().allocator();
    assert_eq!((alloc.in_use(), alloc.pool_in_use()), (1, 0));
    assert_eq!(s.frames().lock().pool_tables(), 0);
    assert_eq!(s.frames().pool_free(), free0);
    assert_sound(&s);
    // Dropping the space gives lent frames back too (the pool may outlive it).
    let frames = s.frames().clone();
    map_anon(&mut s, &z, slot(0), 8 * M2).unwrap();
    for i in 0..8 {
        write_tag(&mut s, va(slot(i)), i);
    }
    drop((s, z));
    assert_eq!((frames.pool_free(), frames.lock().pool_tables()), (POOL_PAGES, 0));
}

#[test]
fn the_region_comes_first() {
    // With room in the region, nothing is borrowed from the pool.
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 64 * P));
    cfg.mmap_window = (va(WIN.0), va(WIN.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), POOL_PAGES as u64 * P));
    let mut s = AddressSpace::new(mem, cfg).unwrap();
    let z = zero(&s);
    map_anon(&mut s, &z, slot(0), 62 * M2).unwrap();
    for i in 0..60 {
        write_tag(&mut s, va(slot(i)), i);
    }
    assert_eq!(s.page_tables().allocator().pool_in_use(), 0);
    // The 64th table is the region's last; the 65th is the pool's.
    write_tag(&mut s, va(slot(60)), 60);
    assert_eq!((s.page_tables().tables_in_use(), s.page_tables().allocator().pool_in_use()), (64, 0));
    write_tag(&mut s, va(slot(61)), 61);
    assert_eq!((s.page_tables().tables_in_use(), s.page_tables().allocator().pool_in_use()), (65, 1));
    assert_sound(&s);
}

/// Remaps one frame (raw, uncounted).
struct RemapTo(Pfn);

impl MmapProvider for RemapTo {
    fn name(&self) -> &str {
        "remap-to"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(self.0);
        Ok(())
    }
}

/// Maps nothing; its success hook takes every free pool page (as another
/// user of the pool would, between the detach and the rollback) and then
/// fails.
struct Greedy {
    frames: crate::frames::Frames,
    took: Arc<Mutex<Vec<PoolPages>>>,
}

impl MmapProvider for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let (frames, took) = (self.frames.clone(), self.took.clone());
        desc.set_success_hook(Box::new(move |_| {
            let n = frames.pool_free() as u64;
            took.lock().unwrap().push(frames.alloc(n)?);
            Err(MmError::OutOfMemory("the hook's own allocation"))
        }));
        Ok(())
    }
}

#[test]
fn a_failed_fixed_mapping_puts_back_pool_tables_whoever_took_the_pool() {
    let mut s = tiny_space();
    let z = zero(&s);
    map_anon(&mut s, &z, slot(0), 16 * M2).unwrap();
    let pages: Vec<u64> = (0..16).map(|i| slot(i) + (i % 7) * P).collect();
    for (i, &a) in pages.iter().enumerate() {
        write_tag(&mut s, va(a), 7 + i as u64);
    }
    assert!(s.page_tables().allocator().pool_in_use() >= 16);
    let before = picture(&s, pages.iter().copied());
    let took = Arc::new(Mutex::new(Vec::new()));
    let greedy = Greedy { frames: s.frames().clone(), took: took.clone() };
    // Replace slots 2..14: the detach empties and frees 12 leaf tables.
    let r = s.mmap(&greedy, &MmapRequest::private(12 * M2, rw()).fixed(va(slot(2))));
    assert_eq!(r.map(|m| m.flush.ignore()).map_err(|e| e.errno()), Err(errno::ENOMEM));
    assert_eq!(s.frames().pool_free(), 0, "the hook took the pool");
    assert_eq!(picture(&s, pages.iter().copied()), before);
    s.take_deferred_flush().ignore();
    drop(took);
    assert_sound(&s);
}

#[test]
fn a_move_that_runs_out_of_table_pages_changes_nothing_and_works_later() {
    let mut s = tiny_space();
    let z = zero(&s);
    map_anon(&mut s, &z, slot(0), 32 * M2).unwrap();
    let pages: Vec<u64> = (0..32).map(|i| slot(i) + 3 * P).collect();
    for (i, &a) in pages.iter().enumerate() {
        write_tag(&mut s, va(a), 1000 + i as u64);
    }
    let to = slot(64);
    let moved: Vec<u64> = pages.iter().map(|a| a - slot(0) + to).collect();
    let all = || pages.iter().chain(&moved).copied();
    // Leave 10 free pool pages: the copy needs 32 leaf tables (the
    // level-2 table is shared), so it stops midway.
    let hog = s.frames().alloc(s.frames().pool_free() as u64 - 10).unwrap();
    let before = picture(&s, all());
    let free = s.frames().pool_free();
    let r = s.mremap(va(slot(0)), 32 * M2, 32 * M2, true, Some(va(to)));
    assert_eq!(r.map(|m| m.flush.ignore()).map_err(|e| e.errno()), Err(errno::ENOMEM));
    assert_eq!(picture(&s, all()), before);
    assert_eq!(s.frames().pool_free(), free);
    s.take_deferred_flush().ignore();
    assert_sound(&s);
    // Every earlier failure point too, by injection.
    drop(hog);
    for n in 0..32 {
        s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
        let r = s.mremap(va(slot(0)), 32 * M2, 32 * M2, true, Some(va(to)));
        s.page_tables_mut().allocator_mut().inject_failure_after(None);
        assert_eq!(r.map(|m| m.flush.ignore()).map_err(|e| e.errno()), Err(errno::ENOMEM), "{n}");
        assert_eq!(picture(&s, all()), before, "{n}");
        s.take_deferred_flush().ignore();
        assert_sound(&s);
    }
    // With the pool back, the move is done and the data follows.
    s.mremap(va(slot(0)), 32 * M2, 32 * M2, true, Some(va(to))).unwrap().flush.ignore();
    for (i, &a) in moved.iter().enumerate() {
        assert_eq!(read_tag(&s, va(a)), Some(1000 + i as u64));
    }
    assert!(pages.iter().all(|&a| read_tag(&s, va(a)).is_none()));
    assert_sound(&s);
}

/// One operation of the property test, on 2 MiB slots `0..SLOTS`.
#[derive(Clone, Debug)]
enum Op {
    /// A fixed private anonymous mapping of `n` slots at slot `s`.
    Map { s: u64, n: u64 },
    /// A fixed shared mapping of `n` slots at slot `s` that maps one page
    /// of a page array at the start of each slot, eagerly.
    MapArray { s: u64, n: u64 },
    /// munmap of `n` slots at slot `s`.
    Unmap { s: u64, n: u64 },
    /// A write fault at page `page` of slot `s`, then a tag written.
    Write { s: u64, page: u64 },
    /// mremap of slot `s` to slot `t` (`MREMAP_FIXED`).
    Move { s: u64, t: u64 },
    /// Some other user holds all but `left` free pool pages (`None`:
    /// gives them back).
    Hog { left: Option<u64> },
    /// The next operation's `n`-th table allocation fails.
    Inject { n: u64 },
}

const SLOTS: u64 = 24;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SLOTS, 1..6u64).prop_map(|(s, n)| Op::Map { s, n: n.min(SLOTS - s) }),
        3 => (0..SLOTS, 1..8u64).prop_map(|(s, n)| Op::MapArray { s, n: n.min(SLOTS - s) }),
        2 => (0..SLOTS, 1..4u64).prop_map(|(s, n)| Op::Unmap { s, n: n.min(SLOTS - s) }),
        6 => (0..SLOTS, 0..512u64).prop_map(|(s, page)| Op::Write { s, page }),
        3 => (0..SLOTS, 0..SLOTS).prop_map(|(s, t)| Op::Move { s, t }),
        1 => prop::option::of(0..12u64).prop_map(|left| Op::Hog { left }),
        2 => (0..4u64).prop_map(|n| Op::Inject { n }),
    ]
}

/// Maps page `i` of its array at the start of slot `i` of the VMA.
struct Sparse(PageArray);

/// The tag the `i`-th page of the [`Sparse`] array holds.
fn array_tag(i: u64) -> u64 {
    0xa000 + i
}

impl MmapProvider for Sparse {
    fn name(&self) -> &str {
        "sparse"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let first = (desc.start().raw() - slot(0)) / M2;
        let runs = (0..desc.size() / M2)
            .map(|i| PageRun { start: va(desc.start().raw() + i * M2), pages: self.0.slice(first + i, 1).unwrap() })
            .collect();
        desc.mmap_action_map_kernel_pages_discontig(runs);
        Ok(())
    }
}

/// A mapped page of the slots: its tag (0: never written, reads as
/// nothing or zero) and whether it is anonymous (writable by a fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    tag: u64,
    anon: bool,
}

/// The space, and per mapped page of the slots what it holds.
struct World {
    s: Space,
    z: ZeroProvider<GuestMemoryMmap<()>>,
    sparse: Sparse,
    model: BTreeMap<u64, Page>,
    hog: Option<PoolPages>,
    inject: Option<u64>,
    next_tag: u64,
}

impl World {
    fn new() -> Self {
        let mut s = tiny_space();
        let z = zero(&s);
        // Everything mapped to start with, so most writes and moves land.
        map_anon(&mut s, &z, slot(0), SLOTS * M2).unwrap();
        let model = (slot(0)..slot(SLOTS)).step_by(P as usize).map(|a| (a, Page { tag: 0, anon: true })).collect();
        let pages = s.frames().alloc(SLOTS).unwrap();
        for (i, p) in pages.pfns().iter().enumerate() {
            s.memory().write_obj(array_tag(i as u64), p.addr()).unwrap();
        }
        let sparse = Sparse(PageArray::pin(s.frames(), pages.pfns().clone()).unwrap());
        World { s, z, sparse, model, hog: None, inject: None, next_tag: 1 }
    }

    fn pages(&self) -> Vec<u64> {
        self.model.keys().copied().collect()
    }

    fn mapped(&self, a: u64, len: u64) -> bool {
        (a..a + len).step_by(P as usize).all(|p| self.model.contains_key(&p))
    }

    /// Runs `op`; a failure must be out of memory and change nothing
    /// (a fixed move's target is unmapped first, as in Linux).
    fn apply(&mut self, op: &Op) {
        let short = self.hog.is_some() || self.inject.is_some();
        let before = picture(&self.s, self.pages());
        if let Some(n) = self.inject.take() {
            self.s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
        }
        let r = match *op {
            Op::Map { s, n } => map_anon(&mut self.s, &self.z, slot(s), n * M2).map(|()| {
                self.model.retain(|&a, _| a < slot(s) || a >= slot(s + n));
                self.model.extend((slot(s)..slot(s + n)).step_by(P as usize).map(|a| (a, Page { tag: 0, anon: true })));
            }),
            Op::MapArray { s, n } => {
                let req = MmapRequest::shared(n * M2, rw()).fixed(va(slot(s)));
                self.s.mmap(&self.sparse, &req).map(|m| {
                    m.flush.ignore();
                    self.model.retain(|&a, _| a < slot(s) || a >= slot(s + n));
                    for i in s..s + n {
                        let tags = (0..M2 / P).map(|j| (slot(i) + j * P, if j == 0 { array_tag(i) } else { 0 }));
                        self.model.extend(tags.map(|(a, tag)| (a, Page { tag, anon: false })));
                    }
                })
            }
            Op::Unmap { s, n } => {
                let r = self.s.munmap(va(slot(s)), n * M2).map(|f| f.ignore());
                self.model.retain(|&a, _| a < slot(s) || a >= slot(s + n));
                r
            }
            Op::Write { s, page } => {
                let a = slot(s) + page * P;
                if self.model.get(&a).is_some_and(|p| !p.anon) {
                    // A page-array mapping has no fault handler.
                    Ok(())
                } else if !self.model.contains_key(&a) {
                    let r = self.s.fault(va(a), crate::vma::FaultAccess::WRITE).map(|f| f.flush.ignore());
                    assert_eq!(r.map_err(|e| e.errno()), Err(errno::ENOMEM), "{op:?}: no VMA");
                    Ok(())
                } else {
                    let r = self.s.fault(va(a), crate::vma::FaultAccess::WRITE).map(|f| f.flush.ignore());
                    r.map(|()| {
                        let tag = self.next_tag;
                        self.next_tag += 1;
                        write_tag(&mut self.s, va(a), tag);
                        self.model.insert(a, Page { tag, anon: true });
                    })
                }
            }
            Op::Move { s, t } if s == t => Ok(()),
            Op::Move { s, t } => {
                let src_mapped = self.mapped(slot(s), M2);
                let r = self.s.mremap(va(slot(s)), M2, M2, true, Some(va(slot(t))));
                let r = r.map(|m| m.flush.ignore());
                if !src_mapped {
                    assert!(r.is_err(), "{op:?}: moved a hole");
                    self.s.page_tables_mut().allocator_mut().inject_failure_after(None);
                    assert_eq!(picture(&self.s, self.pages()), before, "{op:?}");
                    return;
                }
                // The target goes first, whatever happens next.
                self.model.retain(|&a, _| a < slot(t) || a >= slot(t + 1));
                r.map(|()| {
                    let moved: Vec<(u64, Page)> =
                        self.model.range(slot(s)..slot(s + 1)).map(|(&a, &g)| (a - slot(s) + slot(t), g)).collect();
                    self.model.retain(|&a, _| a < slot(s) || a >= slot(s + 1));
                    self.model.extend(moved);
                })
            }
            Op::Hog { left } => {
                self.hog = None;
                if let Some(left) = left {
                    let n = (self.s.frames().pool_free() as u64).saturating_sub(left);
                    self.hog = Some(self.s.frames().alloc(n).unwrap());
                }
                Ok(())
            }
            Op::Inject { n } => {
                self.inject = Some(n);
                Ok(())
            }
        };
        self.s.page_tables_mut().allocator_mut().inject_failure_after(None);
        self.s.take_deferred_flush().ignore();
        match r {
            Ok(()) => {}
            Err(e) => {
                assert!(short, "{op:?} failed with the pool and tables to spare: {e}");
                assert!(matches!(e.errno(), errno::ENOMEM | errno::EAGAIN), "{op:?}: {e}");
                if let Op::Move { t, .. } = *op {
                    // The fixed target was unmapped before the move failed
                    // (as in Linux); every other leaf is as it was.
                    let outside = |l: &&Leaf| l.va.raw() < slot(t) || l.va.raw() >= slot(t + 1);
                    let want: Vec<Leaf> = before.leaves.iter().filter(outside).copied().collect();
                    assert_eq!(self.s.page_tables().leaves(va(0), super::USER_END), want, "{op:?}: {e}");
                } else {
                    assert_eq!(picture(&self.s, self.pages()), before, "{op:?}: {e}");
                }
            }
        }
        self.check(op);
    }

    fn check(&self, op: &Op) {
        for (&a, &Page { tag, .. }) in &self.model {
            let got = read_tag(&self.s, va(a));
            if tag == 0 {
                assert!(matches!(got, None | Some(0)), "{op:?}: page {a:#x} reads {got:?}, want nothing");
            } else {
                assert_eq!(got, Some(tag), "{op:?}: page {a:#x}");
            }
        }
        let leaves = self.s.page_tables().leaves(va(0), super::USER_END);
        for l in &leaves {
            assert!(self.model.contains_key(&l.va.raw()), "{op:?}: leaf at {:#x} outside the model", l.va.raw());
        }
        let (_, v) = self.s.check_invariants();
        assert!(v.is_empty(), "{op:?}: {v:?}");
        let st = self.s.frames().lock();
        let alloc = self.s.page_tables().allocator();
        assert_eq!(st.pool_tables(), alloc.pool_in_use() as u64, "{op:?}");
        assert_eq!(alloc.held_back(), 0, "{op:?}: a hold outlived its operation");
    }

    /// Unmaps everything: every table but the root goes, and the pool gets
    /// back every page (the zero page stays with the provider).
    fn finish(mut self) {
        self.hog = None;
        drop(self.sparse);
        self.s.munmap(va(WIN.0), WIN.1 - WIN.0).unwrap().ignore();
        let alloc = self.s.page_tables().allocator();
        assert_eq!((alloc.in_use(), alloc.pool_in_use()), (1, 0));
        let free = self.s.frames().pool_free();
        assert!(free >= POOL_PAGES - 1, "{free}");
        assert_sound(&self.s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random mappings, writes, unmaps and moves over a two-page table
    /// region, with the pool squeezed and table allocations failing at
    /// random: every failure is out of memory and changes nothing, every
    /// success matches the model, the invariants hold after every step,
    /// and everything comes back at the end.
    #[test]
    fn tables_from_the_pool_under_exhaustion(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        w.finish();
    }
}
