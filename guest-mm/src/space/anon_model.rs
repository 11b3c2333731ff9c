//! A reference model of private anonymous memory for the property tests
//! of mseal and `MREMAP_DONTUNMAP` (`seal_model_tests.rs`) and of forced
//! access (`remote_model_tests.rs`): per page, the
//! tag last written (0 for a zero page or no page), the page offset, the
//! access and the seal. Every operation's outcome (errno or success) is
//! predicted from the model alone, then the real space is compared with
//! it: the VMAs (bounds, `WRITE`, `SEALED`) against the model's runs, the
//! contents of every page ever mapped read through a walk of the page
//! tables, the pool's balance, and [`AddressSpace::check_invariants`].

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, pooled_space, read_tag, va, write_tag, WINDOW};
use super::{AddressSpace, Advice, MmapRequest, MremapFlags};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
/// Pages of the window the operations address (the rest of the window is
/// where moves without a fixed target go).
pub(super) const REGION: u64 = 64;

/// One operation on the space, by page number in the region.
#[derive(Clone, Debug)]
pub(super) enum Op {
    /// Fixed private read-write anonymous mapping.
    Map {
        page: u64,
        pages: u64,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    /// Read-only (false) or read-write (true).
    Protect {
        page: u64,
        pages: u64,
        write: bool,
    },
    Seal {
        page: u64,
        pages: u64,
    },
    DontNeed {
        page: u64,
        pages: u64,
    },
    Write {
        page: u64,
    },
    Read {
        page: u64,
    },
    /// A forced write of a new tag (`/proc/self/mem`): allowed in every
    /// private anonymous page, read-only or not; the access is unchanged.
    ForceWrite {
        page: u64,
    },
    /// A forced read: the page's tag.
    ForceRead {
        page: u64,
    },
    /// `mbind` of a policy ([`POLICIES`] by index) with `MPOL_MF_MOVE`
    /// (`mv`) or without.
    Mbind {
        page: u64,
        pages: u64,
        policy: usize,
        mv: bool,
    },
    /// mremap with equal lengths: to `to` (fixed) or anywhere, with or
    /// without `MREMAP_DONTUNMAP`.
    Move {
        page: u64,
        pages: u64,
        to: Option<u64>,
        dont_unmap: bool,
    },
}

/// The policies `Op::Mbind` sets: the mode and whether the user's mask
/// names node 0 (`MPOL_DEFAULT` and `MPOL_LOCAL` take no mask, so every
/// page counts as misplaced and `MPOL_MF_MOVE` moves it).
pub(super) const POLICIES: [(u64, bool); 3] = [(0, false), (2, true), (4, false)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    tag: u64,
    pgoff: u64,
    write: bool,
    sealed: bool,
    /// Index into [`POLICIES`].
    policy: usize,
}

pub(super) struct World {
    s: AddressSpace<GuestMemoryMmap<()>>,
    zero: ZeroProvider<GuestMemoryMmap<()>>,
    model: BTreeMap<u64, Page>,
    /// Every page ever mapped: checked for contents or absence.
    seen: BTreeSet<u64>,
    zero_page: bool,
    next_tag: u64,
    pool_total: usize,
}

fn addr(page: u64) -> u64 {
    WINDOW.0 + page * P
}

impl World {
    pub(super) fn new() -> World {
        let mut s = pooled_space();
        s.set_fault_around(1).unwrap();
        let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
        let pool_total = s.stats().pool_free;
        World { s, zero, model: BTreeMap::new(), seen: BTreeSet::new(), zero_page: false, next_tag: 1, pool_total }
    }

    fn covered(&self, a: u64, n: u64) -> bool {
        (0..n).all(|i| self.model.contains_key(&(a + i * P)))
    }

    fn any(&self, a: u64, n: u64, f: impl Fn(&Page) -> bool) -> bool {
        self.model.range(a..a + n * P).any(|(_, p)| f(p))
    }

    /// The model's VMAs: runs of adjacent pages with contiguous offsets
    /// and equal access and seal.
    fn runs(&self) -> Vec<(u64, u64, bool, bool, u64)> {
        let mut out: Vec<(u64, u64, bool, bool, u64)> = Vec::new();
        let mut prev: Option<(u64, Page)> = None;
        for (&a, &p) in &self.model {
            let joins = prev.is_some_and(|(pa, pp)| {
                pa + P == a
                    && pp.pgoff + 1 == p.pgoff
                    && pp.write == p.write
                    && pp.sealed == p.sealed
                    && pp.policy == p.policy
            });
            match out.last_mut() {
                Some(last) if joins => last.1 = a + P,
                _ => out.push((a, a + P, p.write, p.sealed, POLICIES[p.policy].0)),
            }
            prev = Some((a, p));
        }
        out
    }

    /// The highest free `n`-page range in the window (top-down placement).
    fn top_gap(&self, n: u64) -> Option<u64> {
        let mut s = WINDOW.1.checked_sub(n * P)?;
        while s >= WINDOW.0 {
            match self.model.range(s..s + n * P).next_back() {
                None => return Some(s),
                Some((&a, _)) => s = a.checked_sub(n * P)?,
            }
        }
        None
    }

    /// Runs `op` on the space and the model; panics where they differ.
    pub(super) fn apply(&mut self, op: &Op) {
        match *op {
            Op::Map { page, pages } => {
                let a = addr(page);
                let req =
                    MmapRequest::private(pages * P, VmFlags::READ | VmFlags::WRITE).fixed(va(a)).pgoff(a >> PAGE_SHIFT);
                let r = self.s.mmap(&self.zero, &req).map(|m| m.flush.ignore());
                if self.any(a, pages, |p| p.sealed) {
                    assert_eq!(errno_of(r), errno::EPERM, "{op:?}");
                } else {
                    r.unwrap();
                    for i in 0..pages {
                        let p = Page { tag: 0, pgoff: (a >> PAGE_SHIFT) + i, write: true, sealed: false, policy: 0 };
                        self.model.insert(a + i * P, p);
                        self.seen.insert(a + i * P);
                    }
                }
            }
            Op::Unmap { page, pages } => {
                let a = addr(page);
                let r = self.s.munmap(va(a), pages * P).map(|f| f.ignore());
                if self.any(a, pages, |p| p.sealed) {
                    assert_eq!(errno_of(r), errno::EPERM, "{op:?}");
                } else {
                    r.unwrap();
                    self.model.retain(|&k, _| k < a || k >= a + pages * P);
                }
            }
            Op::Protect { page, pages, write } => {
                let a = addr(page);
                let prot = if write { VmFlags::READ | VmFlags::WRITE } else { VmFlags::READ };
                let r = self.s.mprotect(va(a), pages * P, prot).map(|f| f.ignore());
                if !self.covered(a, pages) {
                    assert_eq!(errno_of(r), errno::ENOMEM, "{op:?}");
                } else if self.any(a, pages, |p| p.sealed) {
                    assert_eq!(errno_of(r), errno::EPERM, "{op:?}");
                } else {
                    r.unwrap();
                    self.model.range_mut(a..a + pages * P).for_each(|(_, p)| p.write = write);
                }
            }
            Op::Seal { page, pages } => {
                let a = addr(page);
                let r = self.s.mseal(va(a), pages * P, 0);
                if !self.covered(a, pages) {
                    assert_eq!(errno_of(r), errno::ENOMEM, "{op:?}");
                } else {
                    r.unwrap();
                    self.model.range_mut(a..a + pages * P).for_each(|(_, p)| p.sealed = true);
                }
            }
            Op::DontNeed { page, pages } => {
                let a = addr(page);
                let r = self.s.madvise(va(a), pages * P, Advice::DontNeed).map(|f| f.ignore());
                // Linux 6.12's order: the seal check first, for the whole
                // range, changing nothing; then the mapped parts are
                // advised and a hole is answered ENOMEM afterwards.
                if self.any(a, pages, |p| p.sealed && !p.write) {
                    assert_eq!(errno_of(r), errno::EPERM, "{op:?}");
                } else {
                    if self.covered(a, pages) {
                        r.unwrap();
                    } else {
                        assert_eq!(errno_of(r), errno::ENOMEM, "{op:?}");
                    }
                    self.model.range_mut(a..a + pages * P).for_each(|(_, p)| p.tag = 0);
                }
            }
            Op::Write { page } => {
                let a = addr(page);
                match self.model.get(&a).copied() {
                    Some(p) if p.write => {
                        let tag = self.next_tag;
                        self.next_tag += 1;
                        write_tag(&mut self.s, va(a), tag);
                        self.model.insert(a, Page { tag, ..p });
                    }
                    Some(_) => assert_eq!(errno_of(self.fault(a, FaultAccess::WRITE)), errno::EACCES),
                    None => assert_eq!(errno_of(self.fault(a, FaultAccess::WRITE)), errno::ENOMEM),
                }
            }
            Op::Read { page } => {
                let a = addr(page);
                let r = self.fault(a, FaultAccess::READ);
                if self.model.contains_key(&a) {
                    r.unwrap();
                    self.zero_page |= self.model[&a].tag == 0;
                } else {
                    assert_eq!(errno_of(r), errno::ENOMEM);
                }
            }
            Op::Mbind { page, pages, policy, mv } => self.apply_mbind(op, addr(page), pages, policy, mv),
            Op::Move { page, pages, to, dont_unmap } => {
                self.apply_move(op, addr(page), pages, to.map(addr), dont_unmap)
            }
            Op::ForceWrite { page } => {
                let a = addr(page);
                let tag = self.next_tag;
                let r = self.s.write_forced(va(a), &tag.to_le_bytes()).map(|f| {
                    f.flush.ignore();
                    f.bytes
                });
                match self.model.get(&a).copied() {
                    Some(p) => {
                        assert_eq!(r, Ok(8), "{op:?}");
                        self.next_tag += 1;
                        self.model.insert(a, Page { tag, ..p });
                    }
                    None => assert_eq!(errno_of(r), errno::ENOMEM, "{op:?}"),
                }
            }
            Op::ForceRead { page } => {
                let a = addr(page);
                let mut buf = [0u8; 8];
                let r = self.s.read_forced(va(a), &mut buf).map(|f| {
                    f.flush.ignore();
                    f.bytes
                });
                match self.model.get(&a).copied() {
                    Some(p) => {
                        assert_eq!(r, Ok(8), "{op:?}");
                        assert_eq!(u64::from_le_bytes(buf), p.tag, "{op:?}");
                        self.zero_page |= p.tag == 0;
                    }
                    None => assert_eq!(errno_of(r), errno::ENOMEM, "{op:?}"),
                }
            }
        }
        self.check(op);
    }

    fn fault(&mut self, a: u64, access: FaultAccess) -> Result<(), MmError> {
        self.s.fault(va(a), access).map(|f| f.flush.ignore())
    }

    fn apply_move(&mut self, op: &Op, a: u64, n: u64, to: Option<u64>, dont_unmap: bool) {
        let flags = MremapFlags { may_move: true, fixed: to.map(va), dont_unmap };
        let r = self.s.mremap_with(va(a), n * P, n * P, flags).map(|m| {
            m.flush.ignore();
            m.addr.raw()
        });
        let len = n * P;
        if to.is_some_and(|t| t < a + len && a < t + len) {
            assert_eq!(errno_of(r), errno::EINVAL, "{op:?}: overlap");
            return;
        }
        let Some(first) = self.model.get(&a).copied() else {
            assert_eq!(errno_of(r), errno::EFAULT, "{op:?}: no VMA");
            return;
        };
        if first.sealed {
            assert_eq!(errno_of(r), errno::EPERM, "{op:?}: sealed source");
            return;
        }
        let run = self.runs().into_iter().find(|&(s, e, _, _, _)| s <= a && a < e).unwrap();
        if a + len > run.1 {
            assert_eq!(errno_of(r), errno::EFAULT, "{op:?}: beyond the VMA");
            return;
        }
        if let Some(t) = to {
            if self.any(t, n, |p| p.sealed) {
                assert_eq!(errno_of(r), errno::EPERM, "{op:?}: sealed target");
                return;
            }
        }
        let target = match to {
            Some(t) => t,
            None if dont_unmap => self.top_gap(n).unwrap(),
            None => {
                assert_eq!(r, Ok(a), "{op:?}: in place");
                return;
            }
        };
        assert_eq!(r, Ok(target), "{op:?}");
        let moved: Vec<Page> = (0..n).map(|i| self.model[&(a + i * P)]).collect();
        self.model.retain(|&k, _| k < target || k >= target + len);
        for (i, p) in moved.into_iter().enumerate() {
            let i = i as u64;
            self.model.insert(target + i * P, p);
            self.seen.insert(target + i * P);
            if dont_unmap {
                // Mapped but empty: it refaults zero pages.
                self.model.insert(a + i * P, Page { tag: 0, ..p });
            } else {
                self.model.remove(&(a + i * P));
            }
        }
    }

    /// `mbind`: `EFAULT` when nothing of the range is mapped, or part is
    /// not and the policy is not the default; else the mapped pages take
    /// the policy, and with `mv` and a mask without node 0 every written
    /// page (the zero page stays) moves to a fresh frame, contents and
    /// access unchanged.
    fn apply_mbind(&mut self, op: &Op, a: u64, n: u64, policy: usize, mv: bool) {
        let (mode, names_node0) = POLICIES[policy];
        let mut mask = [0u64; 1];
        if names_node0 {
            mask[0] = 1;
        }
        let nodes = crate::mempolicy::NodeMask::from_user(&mask, 2).unwrap();
        let pol = crate::mempolicy::MemPolicy::new(mode, nodes).unwrap();
        let frames_before: BTreeMap<u64, crate::addr::Pfn> = self
            .model
            .range(a..a + n * P)
            .filter(|(_, p)| p.tag != 0)
            .map(|(&k, _)| (k, self.s.page_tables().translate(va(k)).unwrap().pfn))
            .collect();
        let flags = if mv { super::MPOL_MF_MOVE } else { 0 };
        let r = self.s.mbind(va(a), n * P, pol, &nodes, flags);
        let mapped = self.model.range(a..a + n * P).count() as u64;
        if mapped == 0 || (mapped < n && mode != 0) {
            assert_eq!(errno_of(r), errno::EFAULT, "{op:?}");
            return;
        }
        let done = r.unwrap();
        done.flush.ignore();
        self.model.range_mut(a..a + n * P).for_each(|(_, p)| p.policy = policy);
        let moving = mv && !names_node0;
        assert_eq!((done.moved, done.not_moved), (if moving { frames_before.len() as u64 } else { 0 }, 0), "{op:?}");
        for (k, before) in frames_before {
            let now = self.s.page_tables().translate(va(k)).unwrap().pfn;
            assert_eq!(now != before, moving, "{k:#x}'s frame after {op:?}");
        }
    }

    fn check(&self, op: &Op) {
        let got: Vec<(u64, u64, bool, bool, u64)> = self
            .s
            .vmas()
            .map(|v| {
                (
                    v.start().raw(),
                    v.end(),
                    v.flags().contains(VmFlags::WRITE),
                    v.flags().contains(VmFlags::SEALED),
                    v.policy().map_or(0, |p| p.linux_mode()),
                )
            })
            .collect();
        assert_eq!(got, self.runs(), "VMAs after {op:?}");
        for &a in &self.seen {
            let tag = read_tag(&self.s, va(a));
            match self.model.get(&a) {
                None => assert_eq!(tag, None, "{a:#x} unmapped after {op:?}"),
                Some(p) => {
                    assert_eq!(tag.unwrap_or(0), p.tag, "{a:#x} after {op:?}");
                    if !p.write {
                        let t = self.s.page_tables().translate(va(a));
                        assert!(t.is_none_or(|t| !t.prot.writable), "{a:#x} read-only after {op:?}");
                    }
                }
            }
        }
        let used = self.model.values().filter(|p| p.tag != 0).count() + usize::from(self.zero_page);
        assert_eq!(self.s.stats().pool_free, self.pool_total - used, "pool after {op:?}");
        assert_sound(&self.s);
    }
}

/// The errno of a failed result (panics on success).
fn errno_of<T: std::fmt::Debug>(r: Result<T, MmError>) -> i32 {
    r.expect_err("the operation should fail").errno()
}
