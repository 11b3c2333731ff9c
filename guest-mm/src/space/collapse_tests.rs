//! `MADV_COLLAPSE`, case by case: a PTE-mapped THP and scattered small
//! pages become one 2 MiB leaf with the same contents (absent pages
//! zero), a fork-shared slot is collapsed into the parent's own copy
//! while the child keeps the old pages, and the slots it refuses answer
//! as Linux does. Tables are checked by walking them; every test ends
//! with the pool back where it began.

#![allow(clippy::unwrap_used)]

use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, read_tag, va, write_tag, WINDOW};
use super::thp_tests::{thp_space, Space};
use super::{Advice, MmapRequest, ThpMode};
use crate::addr::{PageSize, PAGE_SIZE};
use crate::error::errno;
use crate::flags::VmFlags;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

type Zero = ZeroProvider<GuestMemoryMmap<()>>;

fn map(s: &mut Space, zero: &Zero, at: u64, len: u64, prot: VmFlags) {
    s.mmap(zero, &MmapRequest::private(len, prot).fixed(va(at)).anonymous()).unwrap().flush.ignore();
}

fn sizes(s: &Space, at: u64, len: u64) -> Vec<PageSize> {
    s.page_tables().leaves(va(at), len).iter().map(|l| l.size).collect()
}

fn collapse(s: &mut Space, at: u64, len: u64) -> Result<(), i32> {
    s.madvise(va(at), len, Advice::Collapse).map(|f| f.ignore()).map_err(|e| e.errno())
}

fn finish(s: Space, zero: Zero, pool_start: usize) {
    assert_sound(&s);
    let frames = s.frames().clone();
    s.exit().ignore();
    drop(zero);
    assert_eq!(frames.pool_free(), pool_start, "frames leaked");
    let c = frames.lock().pool_census();
    assert!(c.leaked.is_empty() && c.free_twice.is_empty() && c.free_but_used.is_empty(), "{c:?}");
}

/// A THP at `a` with tags in pages 0, 1 and 300, PTE-mapped by the
/// mprotect round trip cow's collapse tests use.
fn pte_mapped_thp(s: &mut Space, a: u64) {
    write_tag(s, va(a), 1);
    write_tag(s, va(a + P), 2);
    write_tag(s, va(a + 300 * P), 3);
    s.mprotect(va(a + P), P, VmFlags::READ).unwrap().ignore();
    s.mprotect(va(a + P), P, RW).unwrap().ignore();
    assert_eq!(sizes(s, a, M2).len(), 512, "PTE-mapped");
    let vma = s.find_vma(va(a)).unwrap();
    assert!(vma.start().raw() == a && vma.end() == a + M2, "the VMAs merged back");
}

#[test]
fn a_pte_mapped_thp_collapses_into_one_writable_leaf_with_the_same_contents() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2, RW);
    pte_mapped_thp(&mut s, a);
    let old = s.translate(va(a)).unwrap().pfn;
    let used = start - s.frames().pool_free();
    assert_eq!(collapse(&mut s, a, M2), Ok(()));
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size2M]);
    let t = s.translate(va(a)).unwrap();
    assert!(t.prot.writable && t.phys.0 % M2 == 0 && t.pfn != old, "a new aligned block");
    assert!(s.is_pmd_thp(s.find_vma(va(a)).unwrap(), va(a)));
    assert_eq!(read_tag(&s, va(a)), Some(1));
    assert_eq!(read_tag(&s, va(a + P)), Some(2));
    assert_eq!(read_tag(&s, va(a + 300 * P)), Some(3));
    assert_eq!(read_tag(&s, va(a + 2 * P)), Some(0));
    // The old block went back and the PTE table with it.
    assert!(used >= 512);
    assert_eq!(start - s.frames().pool_free(), 512, "only the new block is held: the old one went back");
    assert_eq!(s.faulted_pins(), (1, 512));
    // Collapsing again finds the leaf: nothing changes.
    assert_eq!(collapse(&mut s, a, M2), Ok(()));
    assert_eq!(s.translate(va(a)).unwrap().pfn, t.pfn);
    finish(s, zero, start);
}

#[test]
fn scattered_small_pages_collapse_whatever_the_mode_and_the_rest_reads_zero() {
    let (mut s, zero) = thp_space(ThpMode::Never);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, 3 * M2, RW);
    write_tag(&mut s, va(a + M2 + 7 * P), 7);
    write_tag(&mut s, va(a + M2 + 511 * P), 9);
    // A read maps the small zero page (mode never): it stays zero.
    s.fault(va(a + M2 + 8 * P), FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(sizes(&s, a + M2, M2), vec![PageSize::Size4K; 3]);
    // The range rounds inwards to whole slots: only the middle one.
    assert_eq!(collapse(&mut s, a + M2 - 5 * P, M2 + 10 * P), Ok(()));
    assert_eq!(sizes(&s, a + M2, M2), vec![PageSize::Size2M]);
    assert_eq!(read_tag(&s, va(a + M2 + 7 * P)), Some(7));
    assert_eq!(read_tag(&s, va(a + M2 + 511 * P)), Some(9));
    assert_eq!(read_tag(&s, va(a + M2 + 8 * P)), Some(0));
    assert!(s.translate(va(a + M2 + 8 * P)).unwrap().prot.writable, "no copy-on-write piece left");
    // A range smaller than a slot from its start collapses nothing and
    // succeeds; one inside a slot is EINVAL (Linux's unsigned count).
    assert_eq!(collapse(&mut s, a, 4 * P), Ok(()));
    assert_eq!(collapse(&mut s, a + P, P), Err(errno::EINVAL));
    assert!(sizes(&s, a, M2).is_empty());
    finish(s, zero, start);
}

#[test]
fn collapsing_after_fork_gives_the_parent_its_own_huge_page_and_the_child_keeps_its_pages() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2, RW);
    pte_mapped_thp(&mut s, a);
    let forked = s.fork().unwrap();
    forked.flush.ignore();
    let mut child = forked.child;
    let shared = child.translate(va(a)).unwrap().pfn;
    assert!(!s.translate(va(a)).unwrap().prot.writable, "the parent's entries are write-protected");
    assert_eq!(collapse(&mut s, a, M2), Ok(()));
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size2M]);
    assert!(s.translate(va(a)).unwrap().prot.writable);
    assert_eq!(read_tag(&s, va(a + 300 * P)), Some(3));
    // The parent writes; the child still reads the old pages.
    write_tag(&mut s, va(a), 50);
    assert_eq!(read_tag(&child, va(a)), Some(1));
    assert_eq!(child.translate(va(a)).unwrap().pfn, shared);
    assert_eq!(sizes(&child, a, M2).len(), 512);
    // The child, now the only user, reuses its page in place.
    write_tag(&mut child, va(a + P), 60);
    assert_eq!(read_tag(&s, va(a + P)), Some(2));
    assert_sound(&child);
    child.exit().ignore();
    finish(s, zero, start);
}

#[test]
fn refused_slots_answer_as_linux_and_keep_their_pages() {
    let (mut s, zero) = thp_space(ThpMode::Never);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, 2 * M2, RW);
    // Nothing mapped in the slot: EINVAL.
    assert_eq!(collapse(&mut s, a, M2), Err(errno::EINVAL));
    // Only zero-page mappings: EINVAL, the mapping stays.
    s.fault(va(a + 3 * P), FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(collapse(&mut s, a, M2), Err(errno::EINVAL));
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K]);
    // One slot collapses, the next one (empty) fails: EINVAL, the first stays collapsed.
    write_tag(&mut s, va(a + 4 * P), 4);
    assert_eq!(collapse(&mut s, a, 2 * M2), Err(errno::EINVAL));
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size2M]);
    // VM_NOHUGEPAGE: EINVAL before anything.
    write_tag(&mut s, va(a + M2), 5);
    s.madvise(va(a + M2), M2, Advice::NoHugePage).unwrap().ignore();
    assert_eq!(collapse(&mut s, a + M2, M2), Err(errno::EINVAL));
    assert_eq!(sizes(&s, a + M2, M2), vec![PageSize::Size4K]);
    // A read-only VMA: EINVAL.
    let b = a + 4 * M2;
    map(&mut s, &zero, b, M2, RW);
    write_tag(&mut s, va(b), 6);
    s.mprotect(va(b), M2, VmFlags::READ).unwrap().ignore();
    assert_eq!(collapse(&mut s, b, M2), Err(errno::EINVAL));
    assert_eq!(read_tag(&s, va(b)), Some(6));
    // A hole after the mapped part: the part is collapsed, then ENOMEM.
    s.madvise(va(a + M2), M2, Advice::HugePage).unwrap().ignore();
    assert_eq!(collapse(&mut s, a + M2, 2 * M2), Err(errno::ENOMEM));
    assert_eq!(sizes(&s, a + M2, M2), vec![PageSize::Size2M]);
    assert_eq!(read_tag(&s, va(a + M2)), Some(5));
    finish(s, zero, start);
}

#[test]
fn without_a_free_block_the_collapse_fails_with_enomem_and_nothing_changes() {
    let (mut s, zero) = thp_space(ThpMode::Never);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2, RW);
    write_tag(&mut s, va(a + 9 * P), 9);
    // Take every aligned block the pool has left.
    let mut held = Vec::new();
    while let Ok(b) = s.frames().alloc_block(512) {
        held.push(b);
    }
    assert_eq!(collapse(&mut s, a, M2), Err(errno::ENOMEM));
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K]);
    assert_eq!(read_tag(&s, va(a + 9 * P)), Some(9));
    drop(held);
    assert_eq!(collapse(&mut s, a, M2), Ok(()));
    assert_eq!(read_tag(&s, va(a + 9 * P)), Some(9));
    finish(s, zero, start);
}

#[test]
fn a_collapse_that_cannot_map_its_leaf_puts_the_old_pages_back() {
    let (mut s, zero) = thp_space(ThpMode::Never);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2, RW);
    write_tag(&mut s, va(a + 9 * P), 9);
    write_tag(&mut s, va(a + 10 * P), 10);
    let before: Vec<_> = s.page_tables().leaves(va(a), M2).iter().map(|l| (l.va, l.frame())).collect();
    let tables = s.page_tables().tables_in_use();
    // The slot is alone in its table: clearing it frees the tables above,
    // and the map that needs them again is refused.
    s.page_tables_mut().allocator_mut().inject_failure_after(Some(0));
    let r = collapse(&mut s, a, M2);
    s.page_tables_mut().allocator_mut().inject_failure_after(None);
    assert_eq!(r, Err(errno::ENOMEM));
    let after: Vec<_> = s.page_tables().leaves(va(a), M2).iter().map(|l| (l.va, l.frame())).collect();
    assert_eq!(after, before, "the same pages, walked");
    assert_eq!(s.page_tables().tables_in_use(), tables);
    assert_eq!(read_tag(&s, va(a + 9 * P)), Some(9));
    assert_eq!(read_tag(&s, va(a + 10 * P)), Some(10));
    write_tag(&mut s, va(a + 10 * P), 11);
    assert_eq!(collapse(&mut s, a, M2), Ok(()));
    assert_eq!(read_tag(&s, va(a + 10 * P)), Some(11));
    finish(s, zero, start);
}
