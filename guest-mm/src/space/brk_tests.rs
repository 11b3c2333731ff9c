//! The program break: examples of Linux's rules, then a property test of
//! random `brk` calls mixed with mappings placed in the heap's way,
//! unmaps, seals and writes, against a model of pages. After every step
//! the returned break, the VMAs (and which of them count as `[heap]`),
//! the contents of every page read through the page tables, the pool's
//! balance and the space's invariants match the model.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, pooled_space, read_tag, va, write_tag, Plain, WINDOW};
use super::{AddressSpace, MmapRequest, USER_END};
use crate::addr::{GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::error::errno;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::providers::ZeroProvider;

const P: u64 = PAGE_SIZE;
const START: u64 = WINDOW.0 + 16 * P;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn with_heap() -> AddressSpace<GuestMemoryMmap<()>> {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let zero: Arc<dyn MmapProvider> = Arc::new(ZeroProvider::new(s.frames().clone(), s.memory().clone()));
    s.set_heap(va(START), zero).unwrap();
    s
}

fn brk(s: &mut AddressSpace<GuestMemoryMmap<()>>, to: u64) -> u64 {
    let b = s.brk(to);
    b.flush.ignore();
    b.brk.raw()
}

#[test]
fn the_break_moves_by_bytes_and_the_heap_by_pages() {
    let mut s = with_heap();
    // Below the start (brk(0) too): the current break.
    assert_eq!((brk(&mut s, 0), brk(&mut s, START - 1)), (START, START));
    assert!(s.vmas().next().is_none());
    // Ten bytes: one page.
    assert_eq!(brk(&mut s, START + 10), START + 10);
    let v: Vec<_> = s.vmas().map(|v| (v.start().raw(), v.end())).collect();
    assert_eq!(v, vec![(START, START + P)]);
    // Inside the same page: only the break moves.
    assert_eq!(brk(&mut s, START + P), START + P);
    assert_eq!(s.vmas().count(), 1);
    // Growing again merges into one VMA: it is the heap.
    assert_eq!(brk(&mut s, START + 3 * P + 1), START + 3 * P + 1);
    let v: Vec<_> = s.vmas().map(|v| (v.start().raw(), v.end(), s.is_heap(v))).collect();
    assert_eq!(v, vec![(START, START + 4 * P, true)]);
    assert_eq!(s.heap_range(), Some((va(START), va(START + 3 * P + 1))));
    // The memory is zero-fill on demand and keeps what was written.
    write_tag(&mut s, va(START + 2 * P), 42);
    assert_eq!(read_tag(&s, va(START + 3 * P)), None);
    // Shrinking unmaps; growing back gives zero pages.
    assert_eq!(brk(&mut s, START + 2 * P), START + 2 * P);
    assert_eq!(s.find_vma(va(START + 2 * P)).map(|v| v.start()), None);
    assert_eq!(brk(&mut s, START + 3 * P), START + 3 * P);
    s.fault(va(START + 2 * P), crate::vma::FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(read_tag(&s, va(START + 2 * P)), Some(0));
    // A mapping at the page after the new end blocks growth (the guard
    // page); one a page further does not.
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(START + 6 * P))).unwrap().flush.ignore();
    assert_eq!(brk(&mut s, START + 5 * P + 1), START + 3 * P);
    assert_eq!(brk(&mut s, START + 5 * P), START + 5 * P);
    let heap: Vec<_> = s.vmas().filter(|v| s.is_heap(v)).map(|v| (v.start().raw(), v.end())).collect();
    assert_eq!(heap, vec![(START, START + 5 * P)]);
    // A sealed heap does not shrink.
    s.mseal(va(START + 4 * P), P, 0).unwrap();
    assert_eq!(brk(&mut s, START + P), START + 5 * P);
    assert_eq!(s.vmas().next().map(|v| v.end()), Some(START + 4 * P), "nothing was unmapped");
    assert_sound(&s);
}

#[test]
fn shrinking_needs_something_mapped_and_no_heap_means_no_break() {
    let mut s = with_heap();
    assert_eq!(brk(&mut s, START + 4 * P), START + 4 * P);
    s.munmap(va(START), 4 * P).unwrap().ignore();
    // Nothing left in [new end, old end): refused, as Linux refuses.
    assert_eq!(brk(&mut s, START + P), START + 4 * P);
    // Non-canonical and kernel-half requests change nothing.
    assert_eq!(brk(&mut s, 1 << 63), START + 4 * P);
    assert_eq!(brk(&mut s, USER_END + P), START + 4 * P);
    // Without a heap the break is 0.
    let mut bare = pooled_space();
    assert_eq!(brk(&mut bare, START), 0);
    assert_eq!(bare.heap_range(), None);
}

#[test]
fn the_heap_start_is_checked_and_only_moves_while_the_heap_is_empty() {
    let mut s = with_heap();
    let zero: Arc<dyn MmapProvider> = Arc::new(ZeroProvider::new(s.frames().clone(), s.memory().clone()));
    assert_eq!(s.set_heap(va(START + 1), zero.clone()).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.set_heap(va(super::KERNEL_HALF), zero.clone()).map_err(|e| e.errno()), Err(errno::EINVAL));
    assert_eq!(brk(&mut s, START + 1), START + 1);
    assert_eq!(s.set_heap(va(START + 8 * P), zero.clone()).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(brk(&mut s, START), START);
    s.set_heap(va(START + 8 * P), zero).unwrap();
    assert_eq!(s.heap_range(), Some((va(START + 8 * P), va(START + 8 * P))));
}

// --- the property test ------------------------------------------------------

/// Pages of the region after the heap's start the operations address.
const REGION: u64 = 48;

#[derive(Clone, Debug)]
enum Op {
    /// `brk` to page `page` of the region plus `byte` bytes, or a raw
    /// value below the start.
    Brk {
        page: u64,
        byte: u64,
        below: bool,
    },
    /// A shared mapping of another provider, fixed.
    Block {
        page: u64,
        pages: u64,
    },
    Unmap {
        page: u64,
        pages: u64,
    },
    Seal {
        page: u64,
        pages: u64,
    },
    Write {
        page: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..REGION, prop_oneof![Just(0u64), 1u64..P], prop::bool::weighted(0.1))
            .prop_map(|(page, byte, below)| Op::Brk { page, byte, below }),
        1 => (0..REGION, 1u64..4).prop_map(|(page, pages)| Op::Block { page, pages }),
        1 => (0..REGION, 1u64..6).prop_map(|(page, pages)| Op::Unmap { page, pages }),
        1 => (0..REGION, 1u64..4).prop_map(|(page, pages)| Op::Seal { page, pages }),
        3 => (0..REGION).prop_map(|page| Op::Write { page }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    heap: bool,
    sealed: bool,
    tag: u64,
}

struct World {
    s: AddressSpace<GuestMemoryMmap<()>>,
    plain: Plain,
    brk: u64,
    model: BTreeMap<u64, Page>,
    seen: BTreeSet<u64>,
    next_tag: u64,
    pool_total: usize,
}

fn at(page: u64) -> u64 {
    START + page * P
}

impl World {
    fn any(&self, s: u64, e: u64, f: impl Fn(&Page) -> bool) -> bool {
        self.model.range(s..e).any(|(_, p)| f(p))
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Brk { page, byte, below } => {
                let req = if below { START - 1 - byte } else { at(page) + byte };
                let got = brk(&mut self.s, req);
                let want = self.model_brk(req);
                assert_eq!(got, want, "{op:?}");
            }
            Op::Block { page, pages } => {
                let a = at(page);
                let r =
                    self.s.mmap(&self.plain, &MmapRequest::shared(pages * P, RW).fixed(va(a)).pgoff(a >> PAGE_SHIFT));
                if self.any(a, a + pages * P, |p| p.sealed) {
                    assert_eq!(r.map(|m| m.addr).unwrap_err().errno(), errno::EPERM);
                } else {
                    r.unwrap().flush.ignore();
                    for i in 0..pages {
                        self.model.insert(a + i * P, Page { heap: false, sealed: false, tag: 0 });
                        self.seen.insert(a + i * P);
                    }
                }
            }
            Op::Unmap { page, pages } => {
                let a = at(page);
                let r = self.s.munmap(va(a), pages * P).map(|f| f.ignore());
                if self.any(a, a + pages * P, |p| p.sealed) {
                    assert_eq!(r.unwrap_err().errno(), errno::EPERM);
                } else {
                    r.unwrap();
                    self.model.retain(|&k, _| k < a || k >= a + pages * P);
                }
            }
            Op::Seal { page, pages } => {
                let a = at(page);
                let r = self.s.mseal(va(a), pages * P, 0);
                if (0..pages).all(|i| self.model.contains_key(&(a + i * P))) {
                    r.unwrap();
                    self.model.range_mut(a..a + pages * P).for_each(|(_, p)| p.sealed = true);
                } else {
                    assert_eq!(r.unwrap_err().errno(), errno::ENOMEM);
                }
            }
            Op::Write { page } => {
                let a = at(page);
                if let Some(p) = self.model.get(&a).copied().filter(|p| p.heap) {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    write_tag(&mut self.s, va(a), tag);
                    self.model.insert(a, Page { tag, ..p });
                }
            }
        }
        self.check(op);
    }

    /// Linux's `brk` on the model; returns the new break.
    fn model_brk(&mut self, req: u64) -> u64 {
        if req < START {
            return self.brk;
        }
        let (new_end, old_end) = (req.next_multiple_of(P), self.brk.next_multiple_of(P));
        if new_end < old_end {
            if !self.any(new_end, old_end, |_| true) || self.any(new_end, old_end, |p| p.sealed) {
                return self.brk;
            }
            self.model.retain(|&k, _| k < new_end || k >= old_end);
        } else if new_end > old_end {
            if self.any(old_end, new_end + P, |_| true) {
                return self.brk;
            }
            for a in (old_end..new_end).step_by(P as usize) {
                self.model.insert(a, Page { heap: true, sealed: false, tag: 0 });
                self.seen.insert(a);
            }
        }
        self.brk = req;
        req
    }

    /// Runs of adjacent pages of one kind and seal: every mapping here
    /// has its address as page offset, so adjacent pages of a kind merge.
    fn runs(&self) -> Vec<(u64, u64, bool, bool)> {
        let mut out: Vec<(u64, u64, bool, bool)> = Vec::new();
        for (&a, p) in &self.model {
            match out.last_mut() {
                Some(last) if last.1 == a && last.2 == p.heap && last.3 == p.sealed => last.1 = a + P,
                _ => out.push((a, a + P, p.heap, p.sealed)),
            }
        }
        out
    }

    fn check(&self, op: &Op) {
        assert_eq!(self.s.heap_range(), Some((va(START), va(self.brk))), "after {op:?}");
        let heap_name = self.s.vmas().filter(|v| v.provider_name() == "zero").count();
        let got: Vec<(u64, u64, bool, bool)> =
            self.s.vmas().map(|v| (v.start().raw(), v.end(), v.provider_name() == "zero", v.is_sealed())).collect();
        assert_eq!(got, self.runs(), "VMAs after {op:?} ({heap_name} heap VMAs)");
        for v in self.s.vmas() {
            let want = v.start().raw() < self.brk && v.end() > START;
            assert_eq!(self.s.is_heap(v), want, "[heap] of {v:?} after {op:?}");
        }
        for &a in &self.seen {
            let tag = read_tag(&self.s, GuestVirtAddr::try_new(a).unwrap());
            match self.model.get(&a) {
                Some(p) if p.heap => assert_eq!(tag.unwrap_or(0), p.tag, "{a:#x} after {op:?}"),
                Some(_) => {}
                None => assert_eq!(tag, None, "{a:#x} after {op:?}"),
            }
        }
        let used = self.model.values().filter(|p| p.tag != 0).count();
        assert_eq!(self.s.stats().pool_free, self.pool_total - used, "pool after {op:?}");
        assert_sound(&self.s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn brk_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let s = with_heap();
        let pool_total = s.stats().pool_free;
        let mut w = World {
            s,
            plain: Plain,
            brk: START,
            model: BTreeMap::new(),
            seen: BTreeSet::new(),
            next_tag: 1,
            pool_total,
        };
        for op in &ops {
            w.apply(op);
        }
    }
}

/// The heap does not grow into the guard gap below a stack that grows
/// down (Linux's `brk` checks `vm_start_gap`), only up to it.
#[test]
fn the_heap_stops_at_the_guard_gap_below_a_growing_stack() {
    let mut s = with_heap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let stack = START + crate::vma::STACK_GUARD_GAP + 16 * P;
    let mut req = MmapRequest::private(P, RW).fixed(va(stack));
    req.pgoff_from_addr = true;
    req.extra = VmFlags::GROWSDOWN;
    s.mmap(&z, &req).unwrap().flush.ignore();
    assert_eq!(brk(&mut s, START + 32 * P), START, "32 pages would reach into the gap");
    assert_eq!(brk(&mut s, START + 15 * P), START + 15 * P, "a page short of the gap: grows");
    assert_eq!(brk(&mut s, START + 16 * P), START + 15 * P, "the page before the gap stays free");
}
