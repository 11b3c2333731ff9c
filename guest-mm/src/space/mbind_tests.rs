//! `mbind`'s rules one by one (the random mix is `binds_match_the_model`
//! in `seal_model_tests.rs`): argument checks before anything changes,
//! holes, VMAs cut only where the policy differs and merged back, the
//! policy carried by fork, and which pages `MPOL_MF_MOVE` moves, skips or
//! counts as not moved, read back through the page tables.

#![allow(clippy::unwrap_used)]

use super::test_util::{anon_rw, assert_sound, lazy_space, pooled_space_limited, read_tag, va, write_tag, WINDOW};
use super::{MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT};
use crate::addr::PAGE_SIZE;
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::mempolicy::{MemPolicy, NodeMask, PolicyMode};
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
type Space = super::AddressSpace<vm_memory::GuestMemoryMmap<()>>;
type Zero = ZeroProvider<vm_memory::GuestMemoryMmap<()>>;

fn node0() -> NodeMask {
    NodeMask::from_user(&[1], 2).unwrap()
}

fn bind() -> Option<MemPolicy> {
    MemPolicy::new(2, node0()).unwrap()
}

fn local() -> Option<MemPolicy> {
    MemPolicy::new(4, NodeMask::empty()).unwrap()
}

fn setup() -> (Space, Zero) {
    lazy_space()
}

fn anon(s: &mut Space, z: &Zero, at: u64, pages: u64) {
    anon_rw(s, z, at, pages);
}

fn bounds(s: &Space) -> Vec<(u64, u64, Option<PolicyMode>)> {
    s.vmas().map(|v| (v.start().raw(), v.end(), v.policy().map(|p| p.mode()))).collect()
}

#[test]
fn bad_arguments_and_holes_change_nothing() {
    let (mut s, z) = setup();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 4);
    let before = bounds(&s);
    let e = |r: Result<super::Mbound, MmError>| r.map(|d| d.flush.ignore()).unwrap_err().errno();
    assert_eq!(e(s.mbind(va(w), P, bind(), &node0(), 8)), errno::EINVAL, "unknown flag");
    assert_eq!(e(s.mbind(va(w + 1), P, bind(), &node0(), 0)), errno::EINVAL, "misaligned");
    assert_eq!(e(s.mbind(va(w), u64::MAX, bind(), &node0(), 0)), errno::EINVAL, "overflow");
    // A hole at the head, in the middle (after the mapped part) or the
    // whole range.
    assert_eq!(e(s.mbind(va(w - P), 2 * P, bind(), &node0(), 0)), errno::EFAULT);
    assert_eq!(e(s.mbind(va(w + 2 * P), 4 * P, bind(), &node0(), 0)), errno::EFAULT);
    assert_eq!(e(s.mbind(va(w + 8 * P), P, None, &NodeMask::empty(), 0)), errno::EFAULT);
    assert_eq!(bounds(&s), before);
    // The default policy over a partly mapped range is fine.
    s.mbind(va(w + 2 * P), 4 * P, None, &NodeMask::empty(), 0).unwrap().flush.ignore();
    // A zero length does nothing, even over a hole.
    s.mbind(va(w + 64 * P), 0, bind(), &node0(), 0).unwrap().flush.ignore();
    assert_eq!(bounds(&s), before);
    assert_eq!(s.policy_at(va(w + 8 * P)), Err(MmError::Hole { addr: w + 8 * P }));
}

#[test]
fn policies_cut_vmas_only_where_they_differ_and_merge_back() {
    let (mut s, z) = setup();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 8);
    s.mbind(va(w + 2 * P), 2 * P, bind(), &node0(), 0).unwrap().flush.ignore();
    let b = Some(PolicyMode::Bind);
    assert_eq!(bounds(&s), vec![(w, w + 2 * P, None), (w + 2 * P, w + 4 * P, b), (w + 4 * P, w + 8 * P, None)]);
    assert_eq!(s.policy_at(va(w + 3 * P)).unwrap().map(|p| p.linux_mode()), Some(2));
    assert_eq!(s.policy_at(va(w)).unwrap(), None);
    // The same policy again over a wider range: the bound piece is not
    // cut, the others join it.
    s.mbind(va(w + P), 4 * P, bind(), &node0(), 0).unwrap().flush.ignore();
    assert_eq!(bounds(&s), vec![(w, w + P, None), (w + P, w + 5 * P, b), (w + 5 * P, w + 8 * P, None)]);
    // Back to the default everywhere: one VMA again.
    s.mbind(va(w), 8 * P, None, &NodeMask::empty(), 0).unwrap().flush.ignore();
    assert_eq!(bounds(&s), vec![(w, w + 8 * P, None)]);
    assert_sound(&s);
}

#[test]
fn the_vma_limit_is_checked_before_any_cut() {
    let mut s = pooled_space_limited(2);
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 8);
    let r = s.mbind(va(w + 2 * P), 2 * P, bind(), &node0(), 0).map(|d| d.flush.ignore());
    assert_eq!(r.unwrap_err().errno(), errno::ENOMEM);
    assert_eq!(bounds(&s), vec![(w, w + 8 * P, None)]);
    // A cut at one end only fits.
    s.mbind(va(w), 2 * P, bind(), &node0(), 0).unwrap().flush.ignore();
    assert_eq!(s.vmas().count(), 2);
}

#[test]
fn move_moves_exclusive_pages_keeps_contents_and_access_and_returns_the_old_frames() {
    let (mut s, z) = setup();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 4);
    write_tag(&mut s, va(w), 11);
    write_tag(&mut s, va(w + P), 12);
    // Page 2 is the zero page (read only), page 3 never touched.
    s.fault(va(w + 2 * P), FaultAccess::READ).unwrap().flush.ignore();
    s.mprotect(va(w + P), P, VmFlags::READ).unwrap().ignore();
    let old: Vec<_> = [0, 1].iter().map(|i| s.translate(va(w + i * P)).unwrap().pfn).collect();
    let free = s.stats().pool_free;
    // A mask naming node 0: nothing is misplaced, nothing moves.
    let d = s.mbind(va(w), 4 * P, bind(), &node0(), MPOL_MF_MOVE | MPOL_MF_STRICT).unwrap();
    assert_eq!((d.moved, d.not_moved), (0, 0));
    d.flush.ignore();
    // MPOL_LOCAL takes no mask: both written pages move.
    let d = s.mbind(va(w), 4 * P, local(), &NodeMask::empty(), MPOL_MF_MOVE).unwrap();
    assert_eq!((d.moved, d.not_moved), (2, 0));
    assert_eq!(d.flush.ranges(), &[(va(w), 2 * P)], "the old translations go");
    for (i, tag) in [(0, 11), (1, 12)] {
        let t = s.translate(va(w + i * P)).unwrap();
        assert_ne!(t.pfn, old[i as usize], "page {i} moved");
        assert_eq!(read_tag(&s, va(w + i * P)), Some(tag));
        assert_eq!(t.prot.writable, i == 0, "page {i} keeps its access");
    }
    assert_eq!(s.stats().pool_free, free, "one page taken and one given back per move");
    assert_eq!(read_tag(&s, va(w + 2 * P)), Some(0), "the zero page stays");
    assert_sound(&s);
}

#[test]
fn strict_without_move_reports_the_first_misplaced_page_and_still_sets_the_policy() {
    let (mut s, z) = setup();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 4);
    write_tag(&mut s, va(w + P), 1);
    write_tag(&mut s, va(w + 2 * P), 2);
    let d = s.mbind(va(w), 4 * P, local(), &NodeMask::empty(), MPOL_MF_STRICT).unwrap();
    assert_eq!((d.moved, d.not_moved), (0, 1), "the walk stops at the first");
    d.flush.ignore();
    assert_eq!(s.policy_at(va(w)).unwrap().map(|p| p.mode()), Some(PolicyMode::Local));
    // The default policy drops STRICT: nothing to report.
    let d = s.mbind(va(w), 4 * P, None, &NodeMask::empty(), MPOL_MF_STRICT).unwrap();
    assert_eq!((d.moved, d.not_moved), (0, 0));
    d.flush.ignore();
}

#[test]
fn pages_a_fork_shares_stay_and_the_child_keeps_the_policy() {
    let (mut s, z) = setup();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 2);
    write_tag(&mut s, va(w), 5);
    s.mbind(va(w), 2 * P, bind(), &node0(), 0).unwrap().flush.ignore();
    let f = s.fork().unwrap();
    f.flush.ignore();
    let mut c = f.child;
    assert_eq!(c.policy_at(va(w)).unwrap().map(|p| p.mode()), Some(PolicyMode::Bind));
    let frame = s.translate(va(w)).unwrap().pfn;
    for flags in [MPOL_MF_MOVE, MPOL_MF_MOVE_ALL] {
        let d = s.mbind(va(w), 2 * P, local(), &NodeMask::empty(), flags).unwrap();
        assert_eq!((d.moved, d.not_moved), (0, 0));
        d.flush.ignore();
    }
    assert_eq!(s.translate(va(w)).unwrap().pfn, frame);
    assert_eq!(c.translate(va(w)).unwrap().pfn, frame);
    // Once the child wrote its own copy, the parent's page is still marked
    // copy-on-write: it stays too.
    write_tag(&mut c, va(w), 6);
    let d = s.mbind(va(w), 2 * P, local(), &NodeMask::empty(), MPOL_MF_MOVE).unwrap();
    assert_eq!(d.moved, 0);
    d.flush.ignore();
    assert_eq!((read_tag(&s, va(w)), read_tag(&c, va(w))), (Some(5), Some(6)));
    c.exit().ignore();
    assert_sound(&s);
}
