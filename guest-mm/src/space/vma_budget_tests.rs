//! The VMA budget all spaces made from one share (`crate::vma::VmaBudget`):
//! fork refused past it, an operation in any space refused past it and
//! changing nothing, room given back at once by munmap, merges and exit;
//! and a property test that, over random mmap, munmap, mprotect, fork and
//! exit across several spaces, the budget's count is at every step the
//! number of VMAs the live spaces hold (counted by walking each space's
//! VMAs), never above the limit.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::test_util::{va, Plain, WINDOW};
use super::{AddressSpace, MmapRequest, SpaceConfig};
use crate::addr::PAGE_SIZE;
use crate::error::errno;
use crate::flags::VmFlags;
use crate::vma::VmaBudget;

const P: u64 = PAGE_SIZE;
type Space = AddressSpace<GuestMemoryMmap<()>>;

/// An empty space over 64 MiB with a page pool, sharing `budget`.
fn budgeted(budget: &VmaBudget) -> Space {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    cfg.vma_budget = Some(budget.clone());
    AddressSpace::new(mem, cfg).unwrap()
}

/// `pages` pages of empty memory at page `page` of the window.
fn map(s: &mut Space, page: u64, pages: u64) -> Result<(), i32> {
    let req = MmapRequest::private(pages * P, VmFlags::READ).fixed(va(WINDOW.0 + page * P));
    s.mmap(&Plain, &req).map(|m| m.flush.ignore()).map_err(|e| e.errno())
}

fn unmap(s: &mut Space, page: u64, pages: u64) -> Result<(), i32> {
    s.munmap(va(WINDOW.0 + page * P), pages * P).map(|f| f.ignore()).map_err(|e| e.errno())
}

fn protect(s: &mut Space, page: u64, pages: u64, write: bool) -> Result<(), i32> {
    let prot = if write { VmFlags::READ | VmFlags::WRITE } else { VmFlags::READ };
    s.mprotect(va(WINDOW.0 + page * P), pages * P, prot).map(|f| f.ignore()).map_err(|e| e.errno())
}

fn fork(s: &mut Space) -> Result<Space, i32> {
    s.fork()
        .map(|f| {
            f.flush.ignore();
            f.child
        })
        .map_err(|e| e.errno())
}

/// The VMAs of `s`, counted by walking them.
fn count(s: &Space) -> usize {
    s.vmas().count()
}

#[test]
fn forks_count_in_the_budget_and_stop_at_it() {
    let b = VmaBudget::new(20);
    let mut parent = budgeted(&b);
    assert!(parent.vma_budget().is_some_and(|x| x.same(&b)));
    for i in 0..6 {
        map(&mut parent, 2 * i, 1).unwrap();
    }
    assert_eq!(b.used(), 6);
    let c1 = fork(&mut parent).unwrap();
    let mut c2 = fork(&mut parent).unwrap();
    assert_eq!((count(&c1), count(&c2), b.used()), (6, 6, 18));
    // A third child would make 24 of 20: refused, nothing made.
    assert_eq!(fork(&mut parent).err(), Some(errno::ENOMEM));
    assert_eq!((count(&parent), b.used()), (6, 18));
    // Two more VMAs fit, in any space; the third does not, and changes
    // nothing (max_map_count is far away).
    map(&mut c2, 20, 1).unwrap();
    map(&mut c2, 22, 1).unwrap();
    assert_eq!(map(&mut c2, 24, 1), Err(errno::ENOMEM));
    assert_eq!((count(&c2), b.used()), (8, 20));
    unmap(&mut parent, 0, 1).unwrap();
    assert_eq!(b.used(), 19, "munmap gives its VMA back at once");
    // A split mprotect needs two more: refused, the VMA kept whole.
    map(&mut c2, 30, 3).unwrap();
    assert_eq!(protect(&mut c2, 31, 1, true), Err(errno::ENOMEM));
    assert_eq!((count(&c2), b.used()), (9, 20));
    unmap(&mut c2, 30, 3).unwrap();
    assert_eq!(b.used(), 19);
    // An exited child gives back all of its VMAs; a fork fits again.
    c1.exit().ignore();
    assert_eq!(b.used(), 13);
    let c3 = fork(&mut parent).unwrap();
    assert_eq!((count(&c3), b.used()), (5, 18));
    c3.exit().ignore();
    c2.exit().ignore();
    assert_eq!(b.used(), count(&parent));
    drop(parent);
    assert_eq!(b.used(), 0, "a dropped space gives back what it held");
}

#[test]
fn a_merge_gives_back_what_it_joins() {
    let b = VmaBudget::new(100);
    let mut s = budgeted(&b);
    map(&mut s, 0, 3).unwrap();
    protect(&mut s, 1, 1, true).unwrap();
    assert_eq!((count(&s), b.used()), (3, 3));
    protect(&mut s, 1, 1, false).unwrap();
    assert_eq!((count(&s), b.used()), (1, 1), "the three merged back into one");
}

#[test]
fn the_default_budget_follows_guest_ram() {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 256 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    let s: Space = AddressSpace::new(mem, cfg).unwrap();
    assert_eq!(s.vma_budget().map(VmaBudget::limit), Some(256 << 10), "one VMA per KiB of RAM");
    let sib = s.sibling().unwrap();
    assert!(sib.vma_budget().is_some_and(|x| s.vma_budget().is_some_and(|y| x.same(y))));
}

/// One step, aimed at live space `proc` (modulo how many are live).
#[derive(Clone, Debug)]
enum Op {
    Map { proc: usize, page: u64, pages: u64 },
    Unmap { proc: usize, page: u64, pages: u64 },
    Protect { proc: usize, page: u64, pages: u64, write: bool },
    Fork { proc: usize },
    Exit { proc: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let proc = 0usize..4;
    let page = 0u64..24;
    let pages = 1u64..6;
    prop_oneof![
        (proc.clone(), page.clone(), pages.clone()).prop_map(|(proc, page, pages)| Op::Map { proc, page, pages }),
        (proc.clone(), page.clone(), pages.clone()).prop_map(|(proc, page, pages)| Op::Unmap { proc, page, pages }),
        (proc.clone(), page, pages, any::<bool>()).prop_map(|(proc, page, pages, write)| Op::Protect {
            proc,
            page,
            pages,
            write
        }),
        proc.clone().prop_map(|proc| Op::Fork { proc }),
        proc.prop_map(|proc| Op::Exit { proc }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// After every step the budget counts exactly the VMAs the live
    /// spaces hold, never more than its limit; a refused step (ENOMEM)
    /// leaves the space it was aimed at as it was; once all exit, none.
    #[test]
    fn the_budget_counts_every_live_vma(limit in 4usize..40, ops in prop::collection::vec(op(), 1..60)) {
        let b = VmaBudget::new(limit);
        let mut live: Vec<Space> = vec![budgeted(&b)];
        for op in ops {
            match op {
                Op::Fork { proc } if live.len() < 4 => {
                    let i = proc % live.len();
                    let before = count(&live[i]);
                    match fork(&mut live[i]) {
                        Ok(c) => live.push(c),
                        Err(e) => {
                            prop_assert_eq!(e, errno::ENOMEM);
                            prop_assert!(b.used() + before > limit, "refused though it fit");
                        }
                    }
                }
                Op::Exit { proc } if live.len() > 1 => {
                    let i = proc % live.len();
                    live.remove(i).exit().ignore();
                }
                Op::Fork { .. } | Op::Exit { .. } => {}
                Op::Map { proc, page, pages } => {
                    let i = proc % live.len();
                    let before: Vec<_> = live[i].vmas().map(|v| (v.start(), v.end(), v.flags())).collect();
                    if map(&mut live[i], page, pages) == Err(errno::ENOMEM) {
                        let after: Vec<_> = live[i].vmas().map(|v| (v.start(), v.end(), v.flags())).collect();
                        prop_assert_eq!(before, after);
                    }
                }
                Op::Unmap { proc, page, pages } => {
                    let i = proc % live.len();
                    let _ = unmap(&mut live[i], page, pages);
                }
                Op::Protect { proc, page, pages, write } => {
                    let i = proc % live.len();
                    let before: Vec<_> = live[i].vmas().map(|v| (v.start(), v.end(), v.flags())).collect();
                    if protect(&mut live[i], page, pages, write) == Err(errno::ENOMEM) {
                        let after: Vec<_> = live[i].vmas().map(|v| (v.start(), v.end(), v.flags())).collect();
                        prop_assert_eq!(before, after);
                    }
                }
            }
            let held: usize = live.iter().map(count).sum();
            prop_assert_eq!(b.used(), held);
            prop_assert!(held <= limit, "{} VMAs over a budget of {}", held, limit);
        }
        for s in live {
            s.exit().ignore();
        }
        prop_assert_eq!(b.used(), 0);
    }
}

/// `mbind` of a policy into the middle of a VMA cuts it in three: past
/// the budget it is refused before anything is cut.
#[test]
fn an_mbind_that_would_cut_past_the_budget_changes_nothing() {
    let budget = VmaBudget::new(2);
    let mut s = budgeted(&budget);
    map(&mut s, 0, 4).unwrap();
    let bind = crate::mempolicy::MemPolicy::new(2, crate::mempolicy::NodeMask::from_user(&[1], 2).unwrap()).unwrap();
    let node0 = crate::mempolicy::NodeMask::from_user(&[1], 2).unwrap();
    let r = s.mbind(va(WINDOW.0 + P), P, bind, &node0, 0).map(|d| d.flush.ignore());
    assert_eq!(r.map_err(|e| e.errno()), Err(errno::ENOMEM));
    assert_eq!((count(&s), budget.used()), (1, 1));
    assert!(s.vmas().all(|v| v.policy().is_none()));
    // The whole VMA cuts nothing: allowed.
    s.mbind(va(WINDOW.0), 4 * P, bind, &node0, 0).unwrap().flush.ignore();
    assert_eq!((count(&s), budget.used()), (1, 1));
}
