//! Transparent huge pages, case by case: where the write fault places a
//! 2 MiB leaf (or a smaller aligned block) and where it does not, how
//! partial unmap, mprotect, `MADV_DONTNEED` and mremap PTE-map it and
//! free its frames page by page, and how fork shares it. Every check of
//! the tables reads them through a walk ([`crate::PageTables::leaves`],
//! `translate`), and every test ends with the pool back where it began.

#![allow(clippy::unwrap_used)]

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::test_util::{assert_sound, read_tag, va, write_tag, WINDOW};
use super::{AddressSpace, Advice, MmapRequest, SpaceConfig, ThpMode, ThpSizeMode, THP_PMD_ORDER};
use crate::addr::{PageSize, PAGE_SIZE};
use crate::flags::VmFlags;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

pub(super) type Space = AddressSpace<GuestMemoryMmap<()>>;

/// 64 MiB of RAM, a 16 MiB pool at 24 MiB (8 huge pages' worth), the
/// tables at 48 MiB, THP `mode`, no fault-around.
pub(super) fn thp_space(mode: ThpMode) -> (Space, ZeroProvider<GuestMemoryMmap<()>>) {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    cfg.pool_region = Some((GuestAddress(24 << 20), 16 << 20));
    let mut s = AddressSpace::new(mem, cfg).unwrap();
    s.set_fault_around(1).unwrap();
    s.thp_policy().set_mode(mode);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    (s, zero)
}

/// Maps `len` bytes of private anonymous memory at `at`.
fn map(s: &mut Space, zero: &ZeroProvider<GuestMemoryMmap<()>>, at: u64, len: u64) {
    s.mmap(zero, &MmapRequest::private(len, RW).fixed(va(at)).anonymous()).unwrap().flush.ignore();
}

/// The sizes of the leaves of `[at, at + len)`, walked.
fn sizes(s: &Space, at: u64, len: u64) -> Vec<PageSize> {
    s.page_tables().leaves(va(at), len).iter().map(|l| l.size).collect()
}

/// Tears `s` down and checks every pool frame came back.
fn finish(s: Space, zero: ZeroProvider<GuestMemoryMmap<()>>, pool_start: usize) {
    assert_sound(&s);
    let frames = s.frames().clone();
    s.exit().ignore();
    drop(zero);
    assert_eq!(frames.pool_free(), pool_start, "frames leaked");
    let c = frames.lock().pool_census();
    assert!(c.leaked.is_empty() && c.free_twice.is_empty() && c.free_but_used.is_empty(), "{c:?}");
}

#[test]
fn a_write_fault_in_an_aligned_slot_maps_one_zeroed_huge_leaf() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let base = WINDOW.0 + M2;
    map(&mut s, &zero, base, 2 * M2);
    write_tag(&mut s, va(base + 5 * P), 77);
    assert_eq!(sizes(&s, base, 2 * M2), vec![PageSize::Size2M], "one 2 MiB leaf, nothing else");
    let t = s.translate(va(base)).unwrap();
    assert_eq!(t.phys.0 % M2, 0, "an aligned block");
    assert!(t.prot.writable);
    assert!(s.is_pmd_thp(s.find_vma(va(base)).unwrap(), va(base + 7 * P)));
    for i in [0, 4, 6, 511] {
        assert_eq!(read_tag(&s, va(base + i * P)), Some(0), "page {i} zeroed");
    }
    assert_eq!(read_tag(&s, va(base + 5 * P)), Some(77));
    assert_eq!(s.frames().pool_free(), start - 512);
    assert_eq!(s.faulted_pins(), (1, 512));
    // A second write in the slot is spurious.
    let f = s.fault(va(base + 100 * P), FaultAccess::WRITE).unwrap();
    assert_eq!(f.kind, super::FaultKind::Spurious);
    finish(s, zero, start);
}

#[test]
fn the_policy_decides_which_vmas_get_huge_pages() {
    let (mut s, zero) = thp_space(ThpMode::Madvise);
    let start = s.frames().pool_free();
    let (a, b) = (WINDOW.0 + M2, WINDOW.0 + 3 * M2);
    map(&mut s, &zero, a, M2);
    map(&mut s, &zero, b, M2);
    s.madvise(va(b), M2, Advice::HugePage).unwrap().ignore();
    assert!(s.find_vma(va(b)).unwrap().flags().contains(VmFlags::HUGEPAGE));
    write_tag(&mut s, va(a), 1);
    write_tag(&mut s, va(b), 2);
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K], "madvise mode, no advice: a 4 KiB page");
    assert_eq!(sizes(&s, b, M2), vec![PageSize::Size2M], "madvise mode, MADV_HUGEPAGE: a THP");
    // NOHUGEPAGE wins over always.
    s.munmap(va(a), 4 * M2).unwrap().ignore();
    s.thp_policy().set_mode(ThpMode::Always);
    map(&mut s, &zero, a, M2);
    s.madvise(va(a), M2, Advice::NoHugePage).unwrap().ignore();
    let f = s.find_vma(va(a)).unwrap().flags();
    assert!(f.contains(VmFlags::NOHUGEPAGE) && !f.contains(VmFlags::HUGEPAGE));
    write_tag(&mut s, va(a), 3);
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K]);
    // Never: nothing, even advised.
    s.thp_policy().set_mode(ThpMode::Never);
    map(&mut s, &zero, b, M2);
    s.madvise(va(b), M2, Advice::HugePage).unwrap().ignore();
    write_tag(&mut s, va(b), 4);
    assert_eq!(sizes(&s, b, M2), vec![PageSize::Size4K]);
    // The size's own mode overrides the top level.
    s.munmap(va(b), M2).unwrap().ignore();
    map(&mut s, &zero, b, M2);
    s.thp_policy().set_size_mode(THP_PMD_ORDER, ThpSizeMode::Always).unwrap();
    write_tag(&mut s, va(b), 5);
    assert_eq!(sizes(&s, b, M2), vec![PageSize::Size2M]);
    assert!(s.thp_policy().set_size_mode(1, ThpSizeMode::Always).is_err(), "order 1 is no THP size");
    finish(s, zero, start);
}

#[test]
fn no_huge_leaf_where_the_vma_or_the_slot_does_not_allow_one() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    // A VMA one page short of the slot.
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2 - P);
    write_tag(&mut s, va(a), 1);
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K]);
    // A slot with a page already mapped (a read's zero page, no huge
    // zero page).
    let b = WINDOW.0 + 3 * M2;
    map(&mut s, &zero, b, M2);
    s.thp_policy().set_use_zero_page(false);
    s.fault(va(b + 9 * P), FaultAccess::READ).unwrap().flush.ignore();
    s.thp_policy().set_use_zero_page(true);
    write_tag(&mut s, va(b), 2);
    assert_eq!(sizes(&s, b, M2), vec![PageSize::Size4K, PageSize::Size4K]);
    // Shared anonymous memory is not eligible.
    let c = WINDOW.0 + 5 * M2;
    s.mmap(&zero, &MmapRequest::shared(M2, RW).fixed(va(c)).anonymous()).map(|m| m.flush.ignore()).ok();
    if s.find_vma(va(c)).is_some() {
        write_tag(&mut s, va(c), 3);
        assert!(sizes(&s, c, M2).iter().all(|&z| z == PageSize::Size4K));
    }
    finish(s, zero, start);
}

#[test]
fn a_full_pool_falls_back_to_small_pages() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    // Leave less than one aligned block free.
    let hog = s.frames().alloc(start as u64 - 300).unwrap();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a), 1);
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size4K]);
    drop(hog);
    finish(s, zero, start);
}

#[test]
fn smaller_sizes_map_aligned_contiguous_blocks_with_small_leaves() {
    let (mut s, zero) = thp_space(ThpMode::Never);
    let start = s.frames().pool_free();
    s.thp_policy().set_size_mode(4, ThpSizeMode::Always).unwrap();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a + 21 * P), 5);
    let leaves = s.page_tables().leaves(va(a), M2);
    assert_eq!(leaves.len(), 16, "one 64 KiB block");
    let first = s.translate(leaves[0].va).unwrap().pfn.0;
    assert_eq!(first % 16, 0);
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(l.va.raw(), a + (16 + i as u64) * P);
        assert_eq!(s.translate(l.va).unwrap().pfn.0, first + i as u64, "contiguous");
    }
    assert_eq!(read_tag(&s, va(a + 21 * P)), Some(5));
    finish(s, zero, start);
}

#[test]
fn partial_unmap_dontneed_and_mprotect_pte_map_the_huge_page() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    for i in [0, 1, 2, 300, 511] {
        write_tag(&mut s, va(a + i * P), 100 + i);
    }
    let frame0 = s.translate(va(a)).unwrap().pfn;
    // mprotect of one page: 512 small leaves over the same frames.
    s.mprotect(va(a + P), P, VmFlags::READ).unwrap().ignore();
    let leaves = s.page_tables().leaves(va(a), M2);
    assert_eq!(leaves.len(), 512);
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(s.page_tables().used_leaf(l.va).unwrap().phys, GuestAddress((frame0.0 + i as u64) << 12));
    }
    assert!(!s.translate(va(a + P)).unwrap().prot.writable && s.translate(va(a + 2 * P)).unwrap().prot.writable);
    s.mprotect(va(a + P), P, RW).unwrap().ignore();
    assert_eq!(sizes(&s, a, M2).len(), 512, "stays PTE-mapped");
    // MADV_DONTNEED of one page frees that frame at once.
    let free = s.frames().pool_free();
    s.madvise(va(a + 2 * P), P, Advice::DontNeed).unwrap().ignore();
    assert_eq!(s.frames().pool_free(), free + 1, "one frame back");
    assert!(s.translate(va(a + 2 * P)).is_none());
    // Partial munmap: the frames of the pages unmapped go back.
    s.munmap(va(a + 256 * P), 128 * P).unwrap().ignore();
    assert_eq!(s.frames().pool_free(), free + 1 + 128);
    for (i, t) in [(0, 100), (1, 101), (511, 611)] {
        assert_eq!(read_tag(&s, va(a + i * P)), Some(t), "page {i}");
    }
    assert_eq!(read_tag(&s, va(a + 300 * P)), None);
    assert_eq!(read_tag(&s, va(a + 2 * P)), None);
    finish(s, zero, start);
}

#[test]
fn a_partial_munmap_of_a_pmd_mapped_page_splits_it_first() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a + 10 * P), 9);
    let free = s.frames().pool_free();
    s.munmap(va(a), 8 * P).unwrap().ignore();
    assert_eq!(s.frames().pool_free(), free + 8);
    assert_eq!(sizes(&s, a, M2).len(), 504);
    assert_eq!(read_tag(&s, va(a + 10 * P)), Some(9));
    finish(s, zero, start);
}

#[test]
fn a_partial_mremap_moves_half_and_keeps_the_other_half() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a), 1);
    write_tag(&mut s, va(a + 300 * P), 2);
    let to = WINDOW.0 + 5 * M2 + 64 * P;
    s.mremap(va(a + 256 * P), 256 * P, 256 * P, true, Some(va(to))).unwrap().flush.ignore();
    assert_eq!(read_tag(&s, va(a)), Some(1));
    assert_eq!(read_tag(&s, va(to + 44 * P)), Some(2));
    assert_eq!(sizes(&s, a, M2).len(), 256);
    assert_eq!(sizes(&s, to, 256 * P).len(), 256);
    finish(s, zero, start);
}

#[test]
fn fork_shares_the_huge_leaf_and_a_write_copies_one_small_page() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a), 1);
    write_tag(&mut s, va(a + P), 2);
    let forked = s.fork().unwrap();
    assert!(!forked.flush.is_empty(), "the parent's writable leaf was write-protected");
    let mut child = forked.child;
    for sp in [&s, &child] {
        assert_eq!(sizes(sp, a, M2), vec![PageSize::Size2M], "shared whole");
        assert!(!sp.translate(va(a)).unwrap().prot.writable);
    }
    assert_eq!(s.translate(va(a)).unwrap().pfn, child.translate(va(a)).unwrap().pfn);
    let free = s.frames().pool_free();
    let tables = child.page_tables().tables_in_use();
    // The child writes: its leaf is split (one table page, from the pool)
    // and one page copied.
    write_tag(&mut child, va(a), 10);
    assert_eq!(child.page_tables().tables_in_use(), tables + 1);
    assert_eq!(s.frames().pool_free(), free - 2, "one page copied, one table");
    assert_eq!(sizes(&child, a, M2).len(), 512);
    assert_eq!(read_tag(&child, va(a + P)), Some(2));
    assert_eq!(read_tag(&s, va(a)), Some(1), "the parent does not see the child's write");
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size2M], "the parent's leaf is untouched");
    // The parent writes the page the child no longer maps: reused in place.
    let frame = s.translate(va(a)).unwrap().pfn;
    write_tag(&mut s, va(a), 11);
    assert_eq!(s.translate(va(a)).unwrap().pfn, frame, "reused");
    assert_eq!(s.frames().pool_free(), free - 2, "nothing copied; the table comes from the 48 MiB region");
    // The parent writes a page both still map: copied.
    write_tag(&mut s, va(a + P), 12);
    assert_eq!(read_tag(&child, va(a + P)), Some(2));
    assert_eq!(read_tag(&child, va(a)), Some(10));
    assert_sound(&child);
    child.exit().ignore();
    finish(s, zero, start);
}

#[test]
fn a_boundary_inside_a_huge_page_splits_it_and_fork_shares_only_the_inside() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    map(&mut s, &zero, a, M2);
    write_tag(&mut s, va(a), 1);
    write_tag(&mut s, va(a + 5 * P), 5);
    // cow's "partially shared THP": only the first page goes to the child.
    s.madvise(va(a + P), M2 - P, Advice::DontFork).unwrap().ignore();
    assert_eq!(sizes(&s, a, M2).len(), 512, "the VMA boundary split the leaf");
    let mut child = s.fork().unwrap().child;
    assert_eq!(sizes(&child, a, M2).len(), 1);
    write_tag(&mut s, va(a), 2);
    write_tag(&mut s, va(a + 5 * P), 6);
    assert_eq!(read_tag(&child, va(a)), Some(1), "no leak from parent into child");
    write_tag(&mut child, va(a), 3);
    assert_eq!(read_tag(&s, va(a)), Some(2), "no leak from child into parent");
    assert_sound(&child);
    child.exit().ignore();
    finish(s, zero, start);
}

#[test]
fn a_forced_write_in_a_read_only_vma_places_a_read_only_huge_page() {
    let (mut s, zero) = thp_space(ThpMode::Madvise);
    let start = s.frames().pool_free();
    let a = WINDOW.0 + M2;
    s.mmap(&zero, &MmapRequest::private(M2, VmFlags::READ).fixed(va(a)).anonymous()).unwrap().flush.ignore();
    s.madvise(va(a), M2, Advice::HugePage).unwrap().ignore();
    s.write_forced(va(a), &[7]).unwrap().flush.ignore();
    assert_eq!(sizes(&s, a, M2), vec![PageSize::Size2M]);
    let t = s.translate(va(a + M2 - P)).unwrap();
    assert!(!t.prot.writable, "the VMA's own protection");
    assert!(s.fault(va(a), FaultAccess::WRITE).is_err(), "a plain write still faults");
    let mut b = [0u8];
    s.read_forced(va(a), &mut b).unwrap().flush.ignore();
    assert_eq!(b, [7]);
    finish(s, zero, start);
}

#[test]
fn a_read_maps_the_huge_zero_page_and_a_write_copies_one_page_of_it() {
    let (mut s, zero) = thp_space(ThpMode::Always);
    let start = s.frames().pool_free();
    let (a, b) = (WINDOW.0 + M2, WINDOW.0 + 3 * M2);
    map(&mut s, &zero, a, M2);
    map(&mut s, &zero, b, M2);
    s.fault(va(a + 3 * P), FaultAccess::READ).unwrap().flush.ignore();
    s.fault(va(b), FaultAccess::READ).unwrap().flush.ignore();
    let (ta, tb) = (s.translate(va(a)).unwrap(), s.translate(va(b + M2 - P)).unwrap());
    assert_eq!((ta.size, tb.size), (PageSize::Size2M, PageSize::Size2M));
    assert_eq!(ta.phys.0 + M2 - P, tb.phys.0, "one huge zero page for both");
    assert!(!ta.prot.writable && s.thp_policy().is_huge_zero(ta.pfn));
    assert!(!s.is_pmd_thp(s.find_vma(va(a)).unwrap(), va(a)), "not an anonymous THP");
    assert_eq!(s.frames().pool_free(), start - 512, "allocated once");
    // A write splits the leaf and copies the page written only.
    write_tag(&mut s, va(a + 7 * P), 70);
    assert_eq!(sizes(&s, a, M2).len(), 512);
    assert_eq!(s.frames().pool_free(), start - 512 - 1);
    assert_eq!(read_tag(&s, va(a + 8 * P)), Some(0));
    assert_eq!(read_tag(&s, va(b + 7 * P)), Some(0), "the zero page stays zero");
    // A forced write to the other one copies too.
    s.write_forced(va(b + 5 * P), &[1, 2, 3]).unwrap().flush.ignore();
    assert_eq!(read_tag(&s, va(a + 5 * P)), Some(0));
    assert_eq!(read_tag(&s, va(b + 5 * P)), Some(0x030201));
    // A child shares it, read-only.
    let mut child = s.fork().unwrap().child;
    assert_eq!(read_tag(&child, va(b + 6 * P)), Some(0));
    write_tag(&mut child, va(b + 6 * P), 5);
    assert_eq!(read_tag(&s, va(b + 6 * P)), Some(0));
    assert_sound(&child);
    child.exit().ignore();
    finish(s, zero, start);
}
