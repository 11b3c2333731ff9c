//! Property tests of fork against a reference model: several processes
//! over one pool, each with private anonymous memory in a 48-page region,
//! and random sequences of fork, write, read, munmap, mmap, mremap (a move
//! with equal lengths), `MADV_DONTNEED`, `MADV_DONTFORK`/`DOFORK`,
//! `MADV_WIPEONFORK`/`KEEPONFORK` and exit, each aimed at one of the live
//! processes.
//!
//! The model is, per process, the tag last written to each mapped page
//! (0: never written, or dropped) and the page's fork advice; a fork copies
//! it (without `DONTFORK` pages, with `WIPEONFORK` pages zeroed). Every
//! tag is unique, so a page one process reads with another's tag is a
//! leak between processes. After every step each live process's region
//! is read page by page through a walk of its own page tables (never
//! through the code that wrote them) and compared with its model, and
//! its invariants are checked; at the end every process exits and the
//! pool's free count must be what it was before the first mapping, with
//! no frame leaked or freed twice.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, pool_space, read_tag, va, write_tag, WINDOW};
use super::{Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::errno;
use crate::flags::VmFlags;
use crate::frames::Frames;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
/// Pages of the region the operations address.
const REGION: u64 = 48;
/// Most processes alive at once.
const MAX_PROCS: usize = 4;

type Space = super::AddressSpace<GuestMemoryMmap<()>>;

/// One step; `proc` picks a live process (modulo how many live).
#[derive(Clone, Debug)]
enum Op {
    Fork { proc: usize },
    Exit { proc: usize },
    Map { proc: usize, page: u64, pages: u64 },
    Unmap { proc: usize, page: u64, pages: u64 },
    Write { proc: usize, page: u64 },
    Read { proc: usize, page: u64 },
    Advise { proc: usize, page: u64, pages: u64, advice: Advice },
    Move { proc: usize, page: u64, pages: u64, to: u64 },
}

/// The model of one page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Page {
    tag: u64,
    dontfork: bool,
    wipe: bool,
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
    WINDOW.0 + page * P
}

impl World {
    fn new() -> World {
        let mut s = pool_space();
        s.set_fault_around(1).unwrap();
        let frames = s.frames().clone();
        let pool_start = frames.pool_free();
        let zero = ZeroProvider::new(frames.clone(), s.memory().clone());
        World { procs: vec![Proc { s, model: BTreeMap::new() }], zero, frames, pool_start, next_tag: 1 }
    }

    fn apply(&mut self, op: &Op) {
        let live = self.procs.len();
        match *op {
            Op::Fork { proc } => {
                if live >= MAX_PROCS {
                    return;
                }
                let parent = &mut self.procs[proc % live];
                let forked = parent.s.fork().unwrap();
                forked.flush.ignore();
                let model = parent
                    .model
                    .iter()
                    .filter(|(_, p)| !p.dontfork)
                    .map(|(&a, &p)| (a, if p.wipe { Page { tag: 0, ..p } } else { p }))
                    .collect();
                self.procs.push(Proc { s: forked.child, model });
            }
            Op::Exit { proc } => {
                if live > 1 {
                    self.procs.remove(proc % live).s.exit().ignore();
                }
            }
            Op::Map { proc, page, pages } => {
                let p = &mut self.procs[proc % live];
                let req =
                    MmapRequest::private(pages * P, VmFlags::READ | VmFlags::WRITE).fixed(va(addr(page))).anonymous();
                p.s.mmap(&self.zero, &req).unwrap().flush.ignore();
                for i in 0..pages {
                    p.model.insert(addr(page + i), Page::default());
                }
            }
            Op::Unmap { proc, page, pages } => {
                let p = &mut self.procs[proc % live];
                p.s.munmap(va(addr(page)), pages * P).unwrap().ignore();
                for i in 0..pages {
                    p.model.remove(&addr(page + i));
                }
            }
            Op::Write { proc, page } => {
                let p = &mut self.procs[proc % live];
                let a = addr(page);
                if p.model.contains_key(&a) {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    write_tag(&mut p.s, va(a), tag);
                    p.model.insert(a, Page { tag, ..p.model[&a] });
                } else {
                    assert!(p.s.fault(va(a), FaultAccess::WRITE).is_err(), "write fault outside every VMA");
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
                        Advice::WipeOnFork => m.wipe = true,
                        Advice::KeepOnFork => m.wipe = false,
                        _ => {}
                    }
                }
                assert_eq!(r, if covered { Ok(()) } else { Err(errno::ENOMEM) }, "{op:?}");
            }
            Op::Move { proc, page, pages, to } => {
                let p = &mut self.procs[proc % live];
                let (from, dst) = (addr(page), addr(to));
                let len = pages * P;
                // One VMA must hold the old range (else EFAULT), and the
                // ranges must not overlap (else EINVAL): only the move itself
                // is under test here.
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

    /// Every live process reads, through its own page tables, exactly what
    /// its model says; its tables and the pool are sound.
    fn check(&self) {
        for (n, p) in self.procs.iter().enumerate() {
            for page in 0..REGION {
                let a = addr(page);
                match p.model.get(&a) {
                    Some(m) => {
                        assert_eq!(read_tag(&p.s, va(a)).unwrap_or(0), m.tag, "process {n} page {page}");
                        assert!(p.s.find_vma(va(a)).is_some(), "process {n} page {page}: no VMA");
                    }
                    None => {
                        assert!(p.s.translate(va(a)).is_none(), "process {n} page {page}: mapped");
                        assert!(p.s.find_vma(va(a)).is_none(), "process {n} page {page}: a VMA");
                    }
                }
            }
            assert_sound(&p.s);
        }
    }

    /// Every process exits; the pool must be back where it started.
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

fn span() -> impl Strategy<Value = (u64, u64)> {
    (0..REGION).prop_flat_map(|page| (Just(page), 1..=(REGION - page).min(8)))
}

fn op() -> impl Strategy<Value = Op> {
    let proc = 0..MAX_PROCS;
    let advice = prop_oneof![
        3 => Just(Advice::DontNeed),
        1 => Just(Advice::DontFork),
        1 => Just(Advice::DoFork),
        1 => Just(Advice::WipeOnFork),
        1 => Just(Advice::KeepOnFork),
    ];
    prop_oneof![
        2 => proc.clone().prop_map(|proc| Op::Fork { proc }),
        1 => proc.clone().prop_map(|proc| Op::Exit { proc }),
        2 => (proc.clone(), span()).prop_map(|(proc, (page, pages))| Op::Map { proc, page, pages }),
        1 => (proc.clone(), span()).prop_map(|(proc, (page, pages))| Op::Unmap { proc, page, pages }),
        6 => (proc.clone(), 0..REGION).prop_map(|(proc, page)| Op::Write { proc, page }),
        1 => (proc.clone(), 0..REGION).prop_map(|(proc, page)| Op::Read { proc, page }),
        3 => (proc.clone(), span(), advice).prop_map(|(proc, (page, pages), advice)| Op::Advise { proc, page, pages, advice }),
        1 => (proc, span(), 0..REGION - 8).prop_map(|(proc, (page, pages), to)| Op::Move { proc, page, pages, to }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn each_process_reads_its_own_history_and_no_frame_leaks(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        let mut w = World::new();
        // Something to share from the start.
        w.apply(&Op::Map { proc: 0, page: 0, pages: 16 });
        for op in &ops {
            w.apply(op);
            w.check();
        }
        w.finish();
    }
}

#[test]
fn a_fixed_sequence_across_three_generations() {
    let mut w = World::new();
    let seq = [
        Op::Map { proc: 0, page: 0, pages: 8 },
        Op::Write { proc: 0, page: 1 },
        Op::Write { proc: 0, page: 2 },
        Op::Advise { proc: 0, page: 2, pages: 1, advice: Advice::WipeOnFork },
        Op::Advise { proc: 0, page: 3, pages: 1, advice: Advice::DontFork },
        Op::Write { proc: 0, page: 3 },
        Op::Fork { proc: 0 },
        Op::Write { proc: 1, page: 1 },
        Op::Fork { proc: 1 },
        Op::Move { proc: 2, page: 0, pages: 2, to: 20 },
        Op::Write { proc: 2, page: 21 },
        Op::Exit { proc: 1 },
        Op::Write { proc: 0, page: 1 },
        Op::Advise { proc: 1, page: 0, pages: 8, advice: Advice::DontNeed },
    ];
    for op in &seq {
        w.apply(op);
        w.check();
    }
    w.finish();
}
