//! mremap's in-place paths that the model tests reach only by chance:
//! growing into exactly the free room after a VMA (and no further),
//! growing in the supervisor half, and shrinking beside a neighbour.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, WINDOW};
use super::{MmapRequest, KERNEL_HALF, USER_END};
use crate::addr::PAGE_SIZE;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

const P: u64 = PAGE_SIZE;

/// An empty VMA (no action, no ops).
struct Plain;
impl MmapProvider for Plain {
    fn name(&self) -> &str {
        "plain"
    }
    fn mmap_prepare(&self, _desc: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

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
