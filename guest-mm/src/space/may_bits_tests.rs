//! A provider may take `MAY*` bits away in `mmap_prepare`; the mapping is
//! then refused if it asks for that access, with the access named, and
//! mprotect can never add it later.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, Flags, WINDOW};
use super::MmapRequest;
use crate::addr::PAGE_SIZE;
use crate::error::MmError;
use crate::flags::VmFlags;

#[test]
fn an_access_without_its_may_bit_is_refused_and_named() {
    let mut s = space();
    let (r, w, x) = (VmFlags::READ, VmFlags::WRITE, VmFlags::EXEC);
    let cases = [
        (VmFlags::MAYWRITE, r | w, "write"),
        (VmFlags::MAYEXEC, r | x, "exec"),
        (VmFlags::MAYREAD, r, "read"),
        // A missing MAYWRITE that the request does not need is not the
        // reason.
        (VmFlags::MAYREAD | VmFlags::MAYWRITE, r, "read"),
        (VmFlags::MAYEXEC | VmFlags::MAYWRITE, r | x, "exec"),
        // Nor is a missing MAYEXEC, or a present one.
        (VmFlags::MAYREAD | VmFlags::MAYEXEC, r, "read"),
        (VmFlags::MAYREAD, r | x, "read"),
    ];
    for (cleared, prot, want) in cases {
        let e = s.mmap(&Flags(VmFlags::empty(), cleared), &MmapRequest::shared(PAGE_SIZE, prot)).map(|m| m.addr);
        assert_eq!(e, Err(MmError::Access(want)), "{cleared:?} {prot:?}");
    }
    assert_eq!(s.vmas().count(), 0);
    // Without the access it is mapped, and mprotect cannot add it.
    let at = va(WINDOW.0);
    s.mmap(&Flags(VmFlags::empty(), VmFlags::MAYWRITE), &MmapRequest::shared(PAGE_SIZE, r).fixed(at))
        .unwrap()
        .flush
        .ignore();
    let e = s.mprotect(at, PAGE_SIZE, r | w).map(|f| f.ignore());
    assert_eq!(e, Err(MmError::Access("mprotect beyond the mapping's MAY flags")));
}
