//! Property test: random sequences of mmap (lazy anonymous memory, VMAs
//! nothing can fault in, `VM_IO|VM_PFNMAP` ones), munmap, mprotect,
//! faults, mlock, munlock, mlockall, munlockall and every madvise advice
//! against a page-by-page reference model of Linux 6.12's rules.
//!
//! The model knows each page's kind, access bits and lock/advice flags,
//! and the pages that must be resident (populated by a successful mlock,
//! populate or fault, and not dropped since). After every step: each
//! page's VMA flags equal the model's, no two adjacent VMAs could merge,
//! `locked_bytes` is the model's, every page that must be resident is
//! (walked with `translate`), pages nothing can fault in never are,
//! `mincore` and `resident_pages` agree with the walk, and the address
//! space passes `check_invariants`. Each call's result (errno) is the
//! model's, including the partial application before a hole or a refused
//! VMA.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vm_memory::GuestMemoryMmap;

use super::test_util::{pool_space, va, Flags, Plain, WINDOW};
use super::{AddressSpace, Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::errno;
use crate::flags::{VmFlags, VM_ACCESS_FLAGS, VM_LOCKED_MASK};
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
/// Pages in the model's window.
const N: u64 = 48;
/// First address of the window.
const BASE: u64 = WINDOW.0 + (1 << 20);
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
/// The flags the model follows besides the access bits.
const TRACKED: VmFlags = VM_LOCKED_MASK
    .union(VmFlags::SEQ_READ)
    .union(VmFlags::RAND_READ)
    .union(VmFlags::DONTCOPY)
    .union(VmFlags::WIPEONFORK)
    .union(VmFlags::DONTDUMP)
    .union(VmFlags::HUGEPAGE)
    .union(VmFlags::NOHUGEPAGE);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Private lazy anonymous memory (the zero provider).
    Anon,
    /// Shared, no ops: nothing can fault it in.
    Plain,
    /// `VM_IO | VM_PFNMAP`, no entries.
    Io,
}

#[derive(Clone, Copy, Debug)]
struct Page {
    kind: Kind,
    prot: VmFlags,
    bits: VmFlags,
}

#[derive(Clone, Debug)]
enum Op {
    Map { at: u64, pages: u64, kind: Kind, prot: VmFlags },
    Unmap { at: u64, pages: u64 },
    Protect { at: u64, pages: u64, prot: VmFlags },
    Touch { at: u64, write: bool },
    Mlock { at: u64, pages: u64, on_fault: bool },
    Munlock { at: u64, pages: u64 },
    Mlockall { current: bool, future: bool, on_fault: bool },
    Munlockall,
    Madvise { at: u64, pages: u64, advice: Advice },
}

const ADVICE: [Advice; 20] = [
    Advice::Normal,
    Advice::Random,
    Advice::Sequential,
    Advice::WillNeed,
    Advice::DontNeed,
    Advice::Free,
    Advice::Remove,
    Advice::DontFork,
    Advice::DoFork,
    Advice::DontDump,
    Advice::DoDump,
    Advice::WipeOnFork,
    Advice::KeepOnFork,
    Advice::Cold,
    Advice::PageOut,
    Advice::PopulateRead,
    Advice::PopulateWrite,
    Advice::DontNeedLocked,
    Advice::HugePage,
    Advice::NoHugePage,
];

fn range() -> impl Strategy<Value = (u64, u64)> {
    (0..N).prop_flat_map(|at| (Just(at), 1..=(N - at).min(16)))
}

fn prot() -> impl Strategy<Value = VmFlags> {
    prop_oneof![3 => Just(RW), 1 => Just(VmFlags::READ), 1 => Just(VmFlags::empty())]
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![4 => Just(Kind::Anon), 1 => Just(Kind::Plain), 1 => Just(Kind::Io)];
    prop_oneof![
        4 => (range(), kind, prot()).prop_map(|((at, pages), kind, prot)| Op::Map { at, pages, kind, prot }),
        1 => range().prop_map(|(at, pages)| Op::Unmap { at, pages }),
        2 => (range(), prot()).prop_map(|((at, pages), prot)| Op::Protect { at, pages, prot }),
        2 => (0..N, any::<bool>()).prop_map(|(at, write)| Op::Touch { at, write }),
        3 => (range(), any::<bool>()).prop_map(|((at, pages), on_fault)| Op::Mlock { at, pages, on_fault }),
        2 => range().prop_map(|(at, pages)| Op::Munlock { at, pages }),
        1 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(current, future, on_fault)| Op::Mlockall { current, future, on_fault }),
        1 => Just(Op::Munlockall),
        6 => (range(), 0..ADVICE.len()).prop_map(|((at, pages), i)| Op::Madvise { at, pages, advice: ADVICE[i] }),
    ]
}

type Mem = GuestMemoryMmap<()>;

struct World {
    s: AddressSpace<Mem>,
    zero: ZeroProvider<Mem>,
    model: BTreeMap<u64, Page>,
    def: VmFlags,
    must: BTreeSet<u64>,
}

fn addr(page: u64) -> u64 {
    BASE + page * P
}

impl World {
    fn new() -> World {
        let s = pool_space();
        let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
        World { s, zero, model: BTreeMap::new(), def: VmFlags::empty(), must: BTreeSet::new() }
    }

    /// Resident by the CPU's walk (a PROT_NONE page by its leaf).
    fn resident(&self, page: u64) -> bool {
        self.s.translate(va(addr(page))).is_some() || !self.s.page_tables().leaves(va(addr(page)), P).is_empty()
    }

    fn accessible(p: &Page) -> bool {
        !p.prot.is_empty()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Map { at, pages, kind, prot } => self.map(at, pages, kind, prot),
            Op::Unmap { at, pages } => {
                self.s.munmap(va(addr(at)), pages * P).unwrap().ignore();
                for p in at..at + pages {
                    self.model.remove(&p);
                    self.must.remove(&p);
                }
            }
            Op::Protect { at, pages, prot } => {
                let mapped = (at..at + pages).all(|p| self.model.contains_key(&p));
                let r = self.s.mprotect(va(addr(at)), pages * P, prot).map(|f| f.ignore());
                assert_eq!(r.is_ok(), mapped, "{r:?}");
                if mapped {
                    (at..at + pages).for_each(|p| self.model.get_mut(&p).unwrap().prot = prot);
                }
            }
            Op::Touch { at, write } => {
                let r = self.s.fault(va(addr(at)), FaultAccess { write, exec: false });
                let p = self.model.get(&at).copied();
                let ok =
                    p.is_some_and(|p| p.kind == Kind::Anon && p.prot.contains(if write { RW } else { VmFlags::READ }));
                assert_eq!(r.is_ok(), ok, "{r:?} {p:?}");
                if let Ok(f) = r {
                    f.flush.ignore();
                    self.must.insert(at);
                }
            }
            Op::Mlock { at, pages, on_fault } => self.mlock(at, pages, on_fault),
            Op::Munlock { at, pages } => {
                let r = self.s.munlock(va(addr(at)), pages * P).map_err(|e| e.errno());
                let want = self.set_lock(at, pages, VmFlags::empty());
                assert_eq!(r, want);
            }
            Op::Mlockall { current, future, on_fault } => self.mlockall(current, future, on_fault),
            Op::Munlockall => {
                self.s.munlockall();
                self.def = VmFlags::empty();
                self.model.values_mut().for_each(|p| p.bits -= VM_LOCKED_MASK);
            }
            Op::Madvise { at, pages, advice } => self.madvise(at, pages, advice),
        }
        self.s.take_deferred_flush().ignore();
    }

    fn map(&mut self, at: u64, pages: u64, kind: Kind, prot: VmFlags) {
        let req = |shared: bool| {
            let r = if shared { MmapRequest::shared(pages * P, prot) } else { MmapRequest::private(pages * P, prot) };
            r.fixed(va(addr(at)))
        };
        let m = match kind {
            Kind::Anon => self.s.mmap(&self.zero, &req(false)),
            Kind::Plain => self.s.mmap(&Plain, &req(true)),
            Kind::Io => self.s.mmap(&Flags(VmFlags::IO | VmFlags::PFNMAP, VmFlags::empty()), &req(true)),
        };
        m.unwrap().flush.ignore();
        let bits = if kind == Kind::Io { self.def - VM_LOCKED_MASK } else { self.def };
        for p in at..at + pages {
            self.model.insert(p, Page { kind, prot, bits });
            self.must.remove(&p);
        }
        // A locked mapping is populated (errors ignored).
        if bits.contains(VmFlags::LOCKED)
            && !bits.contains(VmFlags::LOCKONFAULT)
            && kind == Kind::Anon
            && !prot.is_empty()
        {
            self.must.extend(at..at + pages);
        }
    }

    /// `apply_vma_lock_flags` on the model: up to the first hole.
    fn set_lock(&mut self, at: u64, pages: u64, lock: VmFlags) -> Result<(), i32> {
        for p in at..at + pages {
            let Some(pg) = self.model.get_mut(&p) else { return Err(errno::ENOMEM) };
            if pg.kind != Kind::Io {
                pg.bits = (pg.bits - VM_LOCKED_MASK) | lock;
            }
        }
        Ok(())
    }

    /// `__mm_populate` on the model, in order; `Err` where it stops.
    fn populate(&mut self, at: u64, pages: u64, ignore_errors: bool) -> Result<(), i32> {
        for p in at..at + pages {
            let Some(pg) = self.model.get(&p).copied() else { continue };
            if pg.kind == Kind::Io || pg.bits.contains(VmFlags::LOCKONFAULT) {
                continue;
            }
            if pg.kind == Kind::Plain || !Self::accessible(&pg) {
                // Linux goes on at the next VMA: every page of this one fails.
                if !ignore_errors {
                    return Err(errno::ENOMEM);
                }
                continue;
            }
            self.must.insert(p);
        }
        Ok(())
    }

    fn mlock(&mut self, at: u64, pages: u64, on_fault: bool) {
        let r = self.s.mlock(va(addr(at)), pages * P, on_fault).map(|f| f.ignore()).map_err(|e| e.errno());
        let lock = if on_fault { VM_LOCKED_MASK } else { VmFlags::LOCKED };
        let want = self.set_lock(at, pages, lock).and_then(|()| self.populate(at, pages, false));
        assert_eq!(r, want, "mlock({at}, {pages}, {on_fault})");
        if r.is_ok() && !on_fault {
            for p in at..at + pages {
                let pg = self.model[&p];
                if pg.kind == Kind::Anon && pg.prot == RW {
                    assert!(self.s.translate(va(addr(p))).unwrap().prot.writable, "page {p} populated for writing");
                }
            }
        }
    }

    fn mlockall(&mut self, current: bool, future: bool, on_fault: bool) {
        let r = self.s.mlockall(current, future, on_fault).map(|f| f.ignore()).map_err(|e| e.errno());
        if !current && !future {
            assert_eq!(r, Err(errno::EINVAL));
            return;
        }
        assert_eq!(r, Ok(()));
        let lock = if on_fault { VM_LOCKED_MASK } else { VmFlags::LOCKED };
        self.def = if future { lock } else { VmFlags::empty() };
        if current {
            for pg in self.model.values_mut().filter(|p| p.kind != Kind::Io) {
                pg.bits = (pg.bits - VM_LOCKED_MASK) | lock;
            }
            let _ = self.populate(0, N, true);
        }
    }

    /// Linux's answer for advising one page of `pg`, if it refuses.
    fn refusal(advice: Advice, pg: &Page) -> Option<i32> {
        let io = pg.kind == Kind::Io;
        let locked = pg.bits.contains(VmFlags::LOCKED);
        let anon = pg.kind == Kind::Anon;
        let refused = match advice {
            Advice::DontNeed | Advice::Free => io || locked || (advice == Advice::Free && !anon),
            Advice::DontNeedLocked => io,
            Advice::Remove => {
                if locked || anon {
                    return Some(errno::EINVAL);
                }
                return Some(errno::EOPNOTSUPP);
            }
            Advice::Cold | Advice::PageOut => io || locked,
            Advice::DoFork | Advice::DoDump => io,
            Advice::WipeOnFork => !anon,
            _ => false,
        };
        refused.then_some(errno::EINVAL)
    }

    fn madvise(&mut self, at: u64, pages: u64, advice: Advice) {
        let r = self.s.madvise(va(addr(at)), pages * P, advice).map(|f| f.ignore()).map_err(|e| e.errno());
        if matches!(advice, Advice::PopulateRead | Advice::PopulateWrite) {
            let write = advice == Advice::PopulateWrite;
            let mut want = Ok(());
            for p in at..at + pages {
                let Some(pg) = self.model.get(&p).copied() else {
                    want = Err(errno::ENOMEM);
                    break;
                };
                let need = if write { VmFlags::WRITE } else { VmFlags::READ };
                if pg.kind == Kind::Io || !pg.prot.contains(need) {
                    want = Err(errno::EINVAL);
                    break;
                }
                if pg.kind == Kind::Plain {
                    want = Err(errno::EFAULT);
                    break;
                }
                self.must.insert(p);
                if write {
                    assert!(self.s.translate(va(addr(p))).unwrap().prot.writable, "page {p} written");
                }
            }
            assert_eq!(r, want, "{advice:?}({at}, {pages})");
            return;
        }
        let mut want = Ok(());
        let mut dropped = Vec::new();
        for p in at..at + pages {
            let Some(pg) = self.model.get_mut(&p) else {
                want = want.and(Err(errno::ENOMEM));
                continue;
            };
            if let Some(e) = Self::refusal(advice, pg) {
                want = Err(e);
                break;
            }
            match advice {
                Advice::DontNeed | Advice::DontNeedLocked | Advice::Free | Advice::Remove => dropped.push(p),
                Advice::Normal => pg.bits -= VmFlags::SEQ_READ | VmFlags::RAND_READ,
                Advice::Random => pg.bits = (pg.bits - VmFlags::SEQ_READ) | VmFlags::RAND_READ,
                Advice::Sequential => pg.bits = (pg.bits - VmFlags::RAND_READ) | VmFlags::SEQ_READ,
                Advice::DontFork => pg.bits |= VmFlags::DONTCOPY,
                Advice::DoFork => pg.bits -= VmFlags::DONTCOPY,
                Advice::WipeOnFork => pg.bits |= VmFlags::WIPEONFORK,
                Advice::KeepOnFork => pg.bits -= VmFlags::WIPEONFORK,
                Advice::DontDump => pg.bits |= VmFlags::DONTDUMP,
                Advice::DoDump => pg.bits -= VmFlags::DONTDUMP,
                Advice::HugePage => pg.bits = (pg.bits - VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE,
                Advice::NoHugePage => pg.bits = (pg.bits - VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE,
                _ => {}
            }
        }
        assert_eq!(r, want, "{advice:?}({at}, {pages})");
        for p in dropped {
            assert!(!self.resident(p), "page {p} dropped by {advice:?}");
            self.must.remove(&p);
        }
    }

    fn check(&self) {
        for page in 0..N {
            let v = self.s.find_vma(va(addr(page)));
            match (self.model.get(&page), v) {
                (None, None) => {}
                (Some(pg), Some(v)) => {
                    assert_eq!(v.flags() & TRACKED, pg.bits, "flags of page {page}: {v:?}");
                    assert_eq!(v.flags() & VM_ACCESS_FLAGS, pg.prot, "access of page {page}");
                }
                (m, v) => panic!("page {page}: model {m:?}, VMA {v:?}"),
            }
        }
        let vmas: Vec<_> = self.s.vmas().collect();
        for w in vmas.windows(2) {
            assert!(!w[0].can_merge_with(w[1]), "unmerged neighbours {:?} {:?}", w[0], w[1]);
        }
        let locked = self.model.values().filter(|p| p.bits.contains(VmFlags::LOCKED)).count() as u64;
        assert_eq!(self.s.locked_bytes(), locked * P);
        let resident: Vec<bool> = (0..N).map(|p| self.resident(p)).collect();
        for &p in &self.must {
            assert!(resident[p as usize], "page {p} must be resident");
        }
        for (p, pg) in &self.model {
            if pg.kind != Kind::Anon {
                assert!(!resident[*p as usize], "page {p} of {:?} cannot be resident", pg.kind);
            }
        }
        // mincore over each run of mapped pages; ENOMEM over a hole.
        let mut p = 0;
        while p < N {
            if !self.model.contains_key(&p) {
                assert_eq!(self.s.mincore(va(addr(p)), P).map_err(|e| e.errno()), Err(errno::ENOMEM));
                p += 1;
                continue;
            }
            let mut e = p;
            while e < N && self.model.contains_key(&e) {
                e += 1;
            }
            let m = self.s.mincore(va(addr(p)), (e - p) * P).unwrap();
            let want: Vec<u8> = (p..e).map(|q| u8::from(resident[q as usize])).collect();
            assert_eq!(m, want, "mincore of pages {p}..{e}");
            p = e;
        }
        let count = resident.iter().filter(|&&r| r).count() as u64;
        assert_eq!(self.s.resident_pages(va(BASE), N * P), count);
        let (_, v) = self.s.check_invariants();
        assert!(v.is_empty(), "{v:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lock_and_advice_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        w.s.munmap(va(BASE), N * P).unwrap().ignore();
        prop_assert_eq!(w.s.vmas().count(), 0);
    }
}
