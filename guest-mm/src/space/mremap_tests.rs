//! mremap's in-place paths that the model tests reach only by chance:
//! growing into exactly the free room after a VMA (and no further),
//! growing in the supervisor half, and shrinking beside a neighbour.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, Plain, WINDOW};
use super::{MmapRequest, KERNEL_HALF, USER_END};
use crate::addr::PAGE_SIZE;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

const P: u64 = PAGE_SIZE;

fn map(s: &mut super::AddressSpace<vm_memory::GuestMemoryMmap<()>>, at: u64, pages: u64, prot: VmFlags) {
    s.mmap(&Plain, &MmapRequest::shared(pages * P, prot).fixed(va(at))).unwrap().flush.ignore();
}

#[test]
fn growing_in_place_takes_exactly_the_free_room() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    map(&mut s, w, 4, VmFlags::READ);
    map(&mut s, w + 8 * P, 2, VmFlags::READ | VmFlags::WRITE);
    // Nine pages would cover the neighbour: refused without MAYMOVE.
    let e = s.mremap(va(w), 4 * P, 9 * P, false, None).map(|r| r.addr);
    assert_eq!(e, Err(MmError::NoSpace { len: 9 * P }));
    assert_eq!(s.find_vma(va(w + 8 * P)).unwrap().start().raw(), w + 8 * P, "the neighbour is untouched");
    assert_eq!(s.find_vma(va(w)).unwrap().end(), w + 4 * P);
    // Eight pages fill the room exactly: in place.
    let r = s.mremap(va(w), 4 * P, 8 * P, false, None).unwrap();
    assert_eq!(r.addr.raw(), w);
    r.flush.ignore();
    assert_eq!(s.find_vma(va(w)).unwrap().end(), w + 8 * P);
    assert_eq!(s.vmas().count(), 2);
}

#[test]
fn the_supervisor_half_grows_in_place_and_the_user_half_stops_at_its_end() {
    let mut s = space();
    let k = KERNEL_HALF + (1 << 30);
    map(&mut s, k, 4, VmFlags::READ);
    let r = s.mremap(va(k), 4 * P, 8 * P, false, None).unwrap();
    assert_eq!(r.addr.raw(), k);
    r.flush.ignore();
    assert_eq!(s.find_vma(va(k)).unwrap().end(), k + 8 * P);
    // The last user pages cannot grow past the end of the user half.
    let top = USER_END - 4 * P;
    map(&mut s, top, 4, VmFlags::READ);
    let e = s.mremap(va(top), 4 * P, 8 * P, false, None).map(|r| r.addr);
    assert_eq!(e, Err(MmError::NoSpace { len: 8 * P }));
}

#[test]
fn shrinking_in_place_leaves_the_neighbour_alone() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    map(&mut s, w, 4, VmFlags::READ);
    map(&mut s, w + 4 * P, 2, VmFlags::READ | VmFlags::WRITE);
    let r = s.mremap(va(w), 4 * P, 2 * P, false, None).unwrap();
    assert_eq!(r.addr.raw(), w);
    r.flush.ignore();
    assert_eq!(s.find_vma(va(w)).unwrap().end(), w + 2 * P);
    assert!(s.find_vma(va(w + 2 * P)).is_none_or(|v| v.start().raw() == w + 4 * P));
    let n = s.find_vma(va(w + 4 * P)).unwrap();
    assert_eq!((n.start().raw(), n.end()), (w + 4 * P, w + 6 * P), "the neighbour is whole");
}

/// Remaps its VMA whole to guest-physical frame `.0` on: as huge leaves
/// wherever virtual and physical addresses are aligned alike.
struct Remap(u64);
impl MmapProvider for Remap {
    fn name(&self) -> &str {
        "remap"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_ioremap_full(crate::addr::Pfn(self.0));
        Ok(())
    }
}

const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

/// Every page of `[at, at + len)` translates to `phys` on, page by page;
/// the page before and the page after map nothing. Returns the leaf sizes.
fn maps_exactly(s: &super::AddressSpace<vm_memory::GuestMemoryMmap<()>>, at: u64, len: u64, phys: u64) -> Vec<u64> {
    for i in 0..len / P {
        let t = s.page_tables().translate(va(at + i * P)).unwrap_or_else(|| panic!("{:#x} unmapped", at + i * P));
        assert_eq!(t.phys.0, phys + i * P, "page {i} of {at:#x}");
    }
    assert!(s.page_tables().translate(va(at - P)).is_none(), "the page before {at:#x}");
    assert!(s.page_tables().translate(va(at + len)).is_none(), "the page after {:#x}", at + len);
    s.page_tables().leaves(va(at), len).iter().map(|l| l.size.bytes()).collect()
}

#[test]
fn a_moved_huge_mapping_keeps_its_leaves_when_aligned_and_splits_them_when_not() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let x = 1 << 40;
    let phys = 1 << 32;
    s.mmap(&Remap(phys / P), &MmapRequest::shared(2 * M2, rw).fixed(va(x))).unwrap().flush.ignore();
    assert_eq!(maps_exactly(&s, x, 2 * M2, phys), vec![M2, M2]);
    // To an aligned target: the two leaves move whole.
    let y = x + G1;
    let r = s.mremap(va(x), 2 * M2, 2 * M2, true, Some(va(y))).unwrap();
    assert_eq!(r.addr.raw(), y);
    r.flush.ignore();
    assert_eq!(maps_exactly(&s, y, 2 * M2, phys), vec![M2, M2]);
    assert!(s.page_tables().leaves(va(x), 2 * M2).is_empty());
    // To a target one page off: every page where it belongs, as 4 KiB.
    let z = x + 2 * G1 + P;
    s.mremap(va(y), 2 * M2, 2 * M2, true, Some(va(z))).unwrap().flush.ignore();
    let sizes = maps_exactly(&s, z, 2 * M2, phys);
    assert!(sizes.len() == 1024 && sizes.iter().all(|&b| b == P), "{} leaves", sizes.len());
}

#[test]
fn a_move_of_part_of_a_huge_leaf_takes_exactly_that_part() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let x = 1 << 40;
    let phys = 1 << 32;
    s.mmap(&Remap(phys / P), &MmapRequest::shared(2 * M2, rw).fixed(va(x))).unwrap().flush.ignore();
    // The second half of the first leaf and the first half of the second.
    let w = x + G1;
    s.mremap(va(x + M2 / 2), M2, M2, true, Some(va(w))).unwrap().flush.ignore();
    let sizes = maps_exactly(&s, w, M2, phys + M2 / 2);
    assert!(sizes.iter().all(|&b| b == P), "{sizes:?}");
    // What stayed behind still maps its own frames; the middle is gone.
    maps_exactly(&s, x, M2 / 2, phys);
    maps_exactly(&s, x + 3 * M2 / 2, M2 / 2, phys + 3 * M2 / 2);
    // Again, to a target where the second leaf's piece would land aligned:
    // still only the part inside the range moves.
    let mut s = space();
    s.mmap(&Remap(phys / P), &MmapRequest::shared(2 * M2, rw).fixed(va(x))).unwrap().flush.ignore();
    let w = x + G1 + M2 / 2;
    s.mremap(va(x + M2 / 2), M2, M2, true, Some(va(w))).unwrap().flush.ignore();
    maps_exactly(&s, w, M2, phys + M2 / 2);
}

#[test]
fn a_move_out_of_a_gigabyte_leaf_keeps_whole_2m_pieces_where_aligned() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let x = 1 << 40;
    let phys = 1 << 32;
    s.mmap(&Remap(phys / P), &MmapRequest::shared(G1, rw).fixed(va(x))).unwrap().flush.ignore();
    assert_eq!(s.page_tables().leaves(va(x), G1).len(), 1, "one 1 GiB leaf");
    // Two whole 2 MiB pieces to a 2 MiB-aligned target.
    let w = x + 4 * G1;
    s.mremap(va(x + 2 * M2), 2 * M2, 2 * M2, true, Some(va(w))).unwrap().flush.ignore();
    assert_eq!(maps_exactly(&s, w, 2 * M2, phys + 2 * M2), vec![M2, M2]);
    // A piece across a 2 MiB boundary: 4 KiB leaves, two levels down.
    let v = x + 8 * G1;
    s.mremap(va(x + 7 * M2 - 3 * P), 5 * P, 5 * P, true, Some(va(v))).unwrap().flush.ignore();
    assert_eq!(maps_exactly(&s, v, 5 * P, phys + 7 * M2 - 3 * P), vec![P; 5]);
    maps_exactly(&s, x, 2 * M2, phys);
    maps_exactly(&s, x + 4 * M2, 3 * M2 - 3 * P, phys + 4 * M2);
    maps_exactly(&s, x + 7 * M2 + 2 * P, G1 - 7 * M2 - 2 * P, phys + 7 * M2 + 2 * P);
}

#[test]
fn growing_to_the_last_user_page_is_allowed() {
    let mut s = space();
    let top = USER_END - 8 * P;
    map(&mut s, top, 4, VmFlags::READ);
    let r = s.mremap(va(top), 4 * P, 8 * P, false, None).unwrap();
    assert_eq!(r.addr.raw(), top);
    r.flush.ignore();
    assert_eq!(s.find_vma(va(top)).unwrap().end(), USER_END);
}

#[test]
fn a_shrinking_move_leaves_nothing_of_the_old_range_and_its_neighbour_whole() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    map(&mut s, w, 4, VmFlags::READ);
    map(&mut s, w + 4 * P, 2, VmFlags::READ | VmFlags::WRITE);
    let to = WINDOW.0 + 64 * P;
    let r = s.mremap(va(w), 4 * P, P, true, Some(va(to))).unwrap();
    assert_eq!(r.addr.raw(), to);
    r.flush.ignore();
    assert!(s.vmas().all(|v| v.end() <= w || v.start().raw() >= w + 4 * P), "the old range is empty");
    let n = s.find_vma(va(w + 4 * P)).unwrap();
    assert_eq!((n.start().raw(), n.end()), (w + 4 * P, w + 6 * P), "the neighbour is whole");
    assert_eq!(s.vmas().count(), 2);
}

#[test]
fn a_fixed_target_right_before_or_after_the_old_range_is_not_an_overlap() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    map(&mut s, w, 4, VmFlags::READ);
    // Ending where the old range starts.
    let r = s.mremap(va(w), 2 * P, 2 * P, true, Some(va(w - 2 * P))).unwrap();
    assert_eq!(r.addr.raw(), w - 2 * P);
    r.flush.ignore();
    // Starting where the old range ends.
    let r = s.mremap(va(w + 2 * P), 2 * P, 2 * P, true, Some(va(w + 4 * P))).unwrap();
    assert_eq!(r.addr.raw(), w + 4 * P);
    r.flush.ignore();
    // Overlapping by one page either way is refused.
    let overlap = Err(MmError::Invalid("MREMAP_FIXED target overlaps the old range"));
    assert_eq!(s.mremap(va(w + 4 * P), 2 * P, 2 * P, true, Some(va(w + 5 * P))).map(|r| r.addr), overlap);
    assert_eq!(s.mremap(va(w + 4 * P), 2 * P, 2 * P, true, Some(va(w + 3 * P))).map(|r| r.addr), overlap);
}

/// An old size of 0 (Linux's "duplicate shm area"): a shared VMA gets a
/// second VMA at a free range or the fixed target, from the old address's
/// page offset, and the source stays; a private VMA is `EINVAL`, no
/// `MREMAP_MAYMOVE` `ENOMEM`, a fixed target at the source `EFAULT` with
/// nothing changed, a zero new size `EINVAL`.
#[test]
fn an_old_size_of_zero_duplicates_a_shared_mapping_only() {
    let mut s = super::test_util::pooled_space();
    let w = WINDOW.0 + 16 * P;
    let obj = crate::providers::ShmemObject::new("dup", s.frames().clone(), s.memory().clone(), 8 * P).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    s.mmap(&obj, &MmapRequest::shared(4 * P, rw).fixed(va(w))).unwrap().flush.ignore();
    let src = s.find_vma(va(w)).unwrap().clone();
    let d = s.mremap(va(w + P), 0, 2 * P, true, None).unwrap();
    d.flush.ignore();
    assert_ne!(d.addr.raw(), w + P);
    let copy = s.find_vma(d.addr).unwrap();
    assert_eq!((copy.start(), copy.end(), copy.pgoff()), (d.addr, d.addr.raw() + 2 * P, src.pgoff() + 1));
    assert_eq!(copy.flags(), src.flags());
    let after = s.find_vma(va(w)).unwrap();
    assert_eq!((after.start().raw(), after.end(), after.pgoff()), (w, w + 4 * P, src.pgoff()), "the source stays");
    assert_eq!(s.vmas().count(), 2);
    // Without MREMAP_MAYMOVE there is nowhere to put it.
    assert_eq!(s.mremap(va(w), 0, P, false, None).map(|r| r.addr), Err(MmError::NoSpace { len: P }));
    // MREMAP_FIXED: over whatever was there.
    let t = WINDOW.0 + 64 * P;
    map(&mut s, t, 3, VmFlags::READ);
    let f = s.mremap(va(w), 0, 2 * P, true, Some(va(t + P))).unwrap();
    f.flush.ignore();
    assert_eq!(f.addr.raw(), t + P);
    assert_eq!(s.find_vma(va(t + P)).unwrap().pgoff(), src.pgoff());
    assert_eq!(s.find_vma(va(t)).unwrap().end(), t + P, "the target's first page keeps its old mapping");
    // A fixed target that starts below the source address and covers it
    // overlaps (EINVAL, as Linux's check with an old size of 0); one that
    // starts at it is EFAULT in Linux (6.18 checked) after it unmapped the
    // source, here before anything changed.
    let n = s.vmas().count();
    let e = s.mremap(va(w + P), 0, 2 * P, true, Some(va(w))).map(|r| r.addr).unwrap_err();
    assert_eq!(e.errno(), crate::error::errno::EINVAL);
    let e = s.mremap(va(w + P), 0, 2 * P, true, Some(va(w + P))).map(|r| r.addr).unwrap_err();
    assert_eq!(e.errno(), crate::error::errno::EFAULT);
    assert_eq!((s.vmas().count(), s.find_vma(va(w)).unwrap().end()), (n, w + 4 * P));
    assert_eq!(s.mremap(va(w), 0, 0, true, None).unwrap_err().errno(), crate::error::errno::EINVAL);
    // Nor one without a fault handler (its pages could not fault in).
    let pa = WINDOW.0 + 256 * P;
    map(&mut s, pa, 2, rw);
    assert_eq!(s.mremap(va(pa), 0, P, true, None).unwrap_err().errno(), crate::error::errno::EINVAL);
    // A private mapping cannot be duplicated.
    let pv = WINDOW.0 + 128 * P;
    s.mmap(&Plain, &MmapRequest::private(2 * P, VmFlags::READ).fixed(va(pv))).unwrap().flush.ignore();
    let e = s.mremap(va(pv), 0, P, true, None).unwrap_err();
    assert_eq!(e.errno(), crate::error::errno::EINVAL);
    super::test_util::assert_sound(&s);
}
