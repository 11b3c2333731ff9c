//! Property tests of transparent huge pages against a reference model:
//! processes over one pool with private anonymous memory in a region of
//! three 2 MiB slots, under a THP policy that changes at run time, and
//! random sequences of write, read, munmap, mmap, mprotect, mremap (a
//! move), `MADV_DONTNEED`, `MADV_HUGEPAGE`/`NOHUGEPAGE`, `MADV_DONTFORK`/
//! `DOFORK`, `MADV_COLLAPSE`, fork and exit. Addresses are drawn near the slots' edges and
//! middles, where splits happen.
//!
//! The model is, per process, the tag last written to each mapped page
//! and whether it is writable; it knows nothing of huge pages: they must
//! not change what any process reads. After every step each process's
//! region is read page by page through a walk of its own tables and
//! compared with its model; every 2 MiB leaf there must be a THP (a
//! faulted run of an aligned block under it); the invariants are checked.
//! At the end every process exits and the pool must hold every frame it
//! held before the first mapping.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, read_tag, va, write_tag, WINDOW};
use super::thp_tests::{thp_space, Space};
use super::{Advice, MmapRequest, ThpMode};
use crate::addr::{PageSize, PAGE_SIZE};
use crate::error::errno;
use crate::flags::VmFlags;
use crate::frames::Frames;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
const SLOT: u64 = 512;
/// Pages of the region: three 2 MiB slots.
const REGION: u64 = 3 * SLOT;
/// The region starts on a 2 MiB boundary.
const BASE: u64 = WINDOW.0 + (2 << 20);
const MAX_PROCS: usize = 3;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

#[derive(Clone, Debug)]
enum Op {
    Mode(ThpMode),
    Fork { proc: usize },
    Exit { proc: usize },
    Map { proc: usize, page: u64, pages: u64 },
    Unmap { proc: usize, page: u64, pages: u64 },
    Protect { proc: usize, page: u64, pages: u64, write: bool },
    Write { proc: usize, page: u64 },
    Read { proc: usize, page: u64 },
    Advise { proc: usize, page: u64, pages: u64, advice: Advice },
    Move { proc: usize, page: u64, pages: u64, to: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    tag: u64,
    writable: bool,
    dontfork: bool,
}

struct Proc {
    s: Space,
    model: BTreeMap<u64, Page>,
}

struct World {
    procs: Vec<Proc>,
    zero: ZeroProvider<GuestMemoryMmap<()>>,
    frames: Frames,
    pool_start: usize,
    next_tag: u64,
}

fn addr(page: u64) -> u64 {
    BASE + page * P
}

impl World {
    fn new() -> World {
        let (s, zero) = thp_space(ThpMode::Always);
        let frames = s.frames().clone();
        let pool_start = frames.pool_free();
        World { procs: vec![Proc { s, model: BTreeMap::new() }], zero, frames, pool_start, next_tag: 1 }
    }

    fn apply(&mut self, op: &Op) {
        let live = self.procs.len();
        match *op {
            Op::Mode(m) => self.procs[0].s.thp_policy().set_mode(m),
            Op::Fork { proc } => {
                if live >= MAX_PROCS {
                    return;
                }
                let parent = &mut self.procs[proc % live];
                let forked = parent.s.fork().unwrap();
                forked.flush.ignore();
                let model = parent.model.iter().filter(|(_, p)| !p.dontfork).map(|(&a, &p)| (a, p)).collect();
                self.procs.push(Proc { s: forked.child, model });
            }
            Op::Exit { proc } => {
                if live > 1 {
                    self.procs.remove(proc % live).s.exit().ignore();
                }
            }
            Op::Map { proc, page, pages } => {
                let p = &mut self.procs[proc % live];
                let req = MmapRequest::private(pages * P, RW).fixed(va(addr(page))).anonymous();
                p.s.mmap(&self.zero, &req).unwrap().flush.ignore();
                for i in 0..pages {
                    p.model.insert(addr(page + i), Page { tag: 0, writable: true, dontfork: false });
                }
            }
            Op::Unmap { proc, page, pages } => {
                let p = &mut self.procs[proc % live];
                p.s.munmap(va(addr(page)), pages * P).unwrap().ignore();
                for i in 0..pages {
                    p.model.remove(&addr(page + i));
                }
            }
            Op::Protect { proc, page, pages, write } => {
                let p = &mut self.procs[proc % live];
                // Only ranges without holes: mprotect's partial effect
                // before a hole is tested elsewhere.
                if !(0..pages).all(|i| p.model.contains_key(&addr(page + i))) {
                    return;
                }
                let prot = if write { RW } else { VmFlags::READ };
                p.s.mprotect(va(addr(page)), pages * P, prot).unwrap().ignore();
                for i in 0..pages {
                    if let Some(m) = p.model.get_mut(&addr(page + i)) {
                        m.writable = write;
                    }
                }
            }
            Op::Write { proc, page } => {
                let p = &mut self.procs[proc % live];
                let a = addr(page);
                match p.model.get(&a).copied() {
                    Some(m) if m.writable => {
                        let tag = self.next_tag;
                        self.next_tag += 1;
                        write_tag(&mut p.s, va(a), tag);
                        p.model.insert(a, Page { tag, ..m });
                    }
                    _ => assert!(p.s.fault(va(a), FaultAccess::WRITE).is_err(), "write fault at {a:#x}"),
                }
            }
            Op::Read { proc, page } => {
                let p = &mut self.procs[proc % live];
                let a = addr(page);
                let r = p.s.fault(va(a), FaultAccess::READ).map(|f| f.flush.ignore());
                assert_eq!(r.is_ok(), p.model.contains_key(&a), "read fault at {a:#x}");
            }
            Op::Advise { proc, page, pages, advice } => {
                let p = &mut self.procs[proc % live];
                let r = p.s.madvise(va(addr(page)), pages * P, advice).map(|f| f.ignore()).map_err(|e| e.errno());
                let mut covered = true;
                for i in 0..pages {
                    let Some(m) = p.model.get_mut(&addr(page + i)) else {
                        covered = false;
                        continue;
                    };
                    match advice {
                        Advice::DontNeed => m.tag = 0,
                        Advice::DontFork => m.dontfork = true,
                        Advice::DoFork => m.dontfork = false,
                        _ => {}
                    }
                }
                if advice == Advice::Collapse {
                    // Content never changes (checked after the step); a
                    // success leaves every slot of the range that one VMA
                    // holds one 2 MiB leaf.
                    assert!(matches!(r, Ok(()) | Err(errno::EINVAL) | Err(errno::ENOMEM)), "{op:?}: {r:?}");
                    if r.is_ok() {
                        let (s, e) = (addr(page), addr(page + pages));
                        let mut slot = s.div_ceil(2 << 20) * (2 << 20);
                        while slot + (2 << 20) <= e {
                            // Collapsed per VMA: only slots one VMA holds.
                            let one = p.s.find_vma(va(slot)).is_some_and(|v| v.end() >= slot + (2 << 20));
                            let t = p.s.translate(va(slot)).map(|t| t.size);
                            assert!(!one || t == Some(PageSize::Size2M), "{op:?}: slot {slot:#x}: {t:?}");
                            slot += 2 << 20;
                        }
                    }
                    return;
                }
                assert_eq!(r, if covered { Ok(()) } else { Err(errno::ENOMEM) }, "{op:?}");
            }
            Op::Move { proc, page, pages, to } => {
                let p = &mut self.procs[proc % live];
                let (from, dst) = (addr(page), addr(to));
                let len = pages * P;
                let one_vma = p.s.find_vma(va(from)).is_some_and(|v| v.end() >= from + len);
                if !one_vma || (from < dst + len && dst < from + len) {
                    return;
                }
                p.s.mremap(va(from), len, len, true, Some(va(dst))).unwrap().flush.ignore();
                let moved: Vec<Page> = (0..pages).filter_map(|i| p.model.remove(&addr(page + i))).collect();
                assert_eq!(moved.len() as u64, pages);
                for (i, m) in moved.into_iter().enumerate() {
                    p.model.insert(dst + i as u64 * P, m);
                }
            }
        }
    }

    fn check(&self) {
        for (n, p) in self.procs.iter().enumerate() {
            for page in 0..REGION {
                let a = addr(page);
                match p.model.get(&a) {
                    Some(m) => {
                        assert_eq!(read_tag(&p.s, va(a)).unwrap_or(0), m.tag, "process {n} page {page}");
                        if let Some(t) = p.s.translate(va(a)) {
                            assert!(!t.prot.writable || m.writable, "process {n} page {page} writable");
                        }
                    }
                    None => assert!(p.s.translate(va(a)).is_none(), "process {n} page {page}: mapped"),
                }
            }
            for leaf in p.s.page_tables().leaves(va(BASE), REGION * P) {
                if leaf.size == PageSize::Size2M {
                    let vma = p.s.find_vma(leaf.va).expect("a huge leaf outside every VMA");
                    assert!(vma.start() <= leaf.va && vma.end() >= leaf.va.raw() + (2 << 20), "a THP across VMAs");
                    let zero = p.s.translate(leaf.va).is_some_and(|t| p.s.thp_policy().is_huge_zero(t.pfn));
                    assert!(
                        p.s.is_pmd_thp(vma, leaf.va) || zero,
                        "a 2 MiB leaf that is no THP at {:#x}",
                        leaf.va.raw()
                    );
                }
            }
            assert_sound(&p.s);
        }
    }

    fn finish(self) {
        let World { procs, zero, frames, pool_start, .. } = self;
        for p in procs {
            p.s.exit().ignore();
        }
        drop(zero);
        assert_eq!(frames.pool_free(), pool_start, "frames leaked");
        let c = frames.lock().pool_census();
        assert!(c.leaked.is_empty() && c.free_twice.is_empty() && c.free_but_used.is_empty(), "{c:?}");
    }
}

/// A page near an edge or the middle of a slot, or anywhere.
fn page() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0..3u64, prop::sample::select(vec![0u64, 1, 255, 256, 510, 511])).prop_map(|(s, o)| s * SLOT + o),
        1 => 0..REGION,
    ]
}

fn span() -> impl Strategy<Value = (u64, u64)> {
    let len = prop_oneof![2 => 1..=8u64, 1 => Just(256u64), 1 => Just(SLOT), 1 => 1..=REGION];
    (page(), len).prop_map(|(p, n)| (p, n.min(REGION - p).max(1)))
}

fn op() -> impl Strategy<Value = Op> {
    let proc = 0..MAX_PROCS;
    let advice = prop_oneof![
        3 => Just(Advice::DontNeed),
        1 => Just(Advice::HugePage),
        1 => Just(Advice::NoHugePage),
        1 => Just(Advice::DontFork),
        1 => Just(Advice::DoFork),
        2 => Just(Advice::Collapse),
    ];
    let mode = prop_oneof![Just(ThpMode::Always), Just(ThpMode::Madvise), Just(ThpMode::Never)];
    prop_oneof![
        1 => mode.prop_map(Op::Mode),
        2 => proc.clone().prop_map(|proc| Op::Fork { proc }),
        1 => proc.clone().prop_map(|proc| Op::Exit { proc }),
        2 => (proc.clone(), span()).prop_map(|(proc, (page, pages))| Op::Map { proc, page, pages }),
        1 => (proc.clone(), span()).prop_map(|(proc, (page, pages))| Op::Unmap { proc, page, pages }),
        2 => (proc.clone(), span(), any::<bool>()).prop_map(|(proc, (page, pages), write)| Op::Protect { proc, page, pages, write }),
        8 => (proc.clone(), page()).prop_map(|(proc, page)| Op::Write { proc, page }),
        1 => (proc.clone(), page()).prop_map(|(proc, page)| Op::Read { proc, page }),
        3 => (proc.clone(), span(), advice).prop_map(|(proc, (page, pages), advice)| Op::Advise { proc, page, pages, advice }),
        1 => (proc, span(), page()).prop_map(|(proc, (page, pages), to)| Op::Move { proc, page, pages, to: to.min(REGION - pages) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn huge_pages_never_change_what_a_process_reads_and_every_frame_returns(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        let mut w = World::new();
        // The whole region mapped, so the first writes get huge pages.
        w.apply(&Op::Map { proc: 0, page: 0, pages: REGION });
        for op in &ops {
            w.apply(op);
            w.check();
        }
        w.finish();
    }
}

#[test]
fn a_fixed_sequence_with_two_generations_of_shared_huge_pages() {
    let mut w = World::new();
    let seq = [
        Op::Map { proc: 0, page: 0, pages: REGION },
        Op::Write { proc: 0, page: 3 },
        Op::Write { proc: 0, page: SLOT + 7 },
        Op::Fork { proc: 0 },
        Op::Write { proc: 1, page: 4 },
        Op::Fork { proc: 1 },
        Op::Advise { proc: 2, page: 0, pages: 2, advice: Advice::DontNeed },
        Op::Protect { proc: 0, page: SLOT + 256, pages: 1, write: false },
        Op::Write { proc: 0, page: SLOT + 7 },
        Op::Move { proc: 1, page: 256, pages: 256, to: 2 * SLOT + 3 },
        Op::Write { proc: 1, page: 2 * SLOT + 10 },
        Op::Exit { proc: 1 },
        Op::Write { proc: 0, page: 4 },
        Op::Unmap { proc: 0, page: 1, pages: 510 },
        Op::Advise { proc: 0, page: SLOT, pages: 2 * SLOT, advice: Advice::Collapse },
        Op::Write { proc: 0, page: 2 * SLOT + 9 },
    ];
    for op in &seq {
        w.apply(op);
        w.check();
    }
    w.finish();
}
