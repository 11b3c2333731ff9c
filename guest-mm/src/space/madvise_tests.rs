//! madvise's refusals that the mapper tests reach only through remaps
//! (which carry every special flag at once): each of `VM_PFNMAP`, `VM_IO`
//! and `VM_HUGETLB` alone refuses `MADV_DONTNEED`.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, Flags, WINDOW};
use super::{Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::MmError;
use crate::flags::VmFlags;

#[test]
fn each_special_flag_alone_refuses_dontneed() {
    let mut s = space();
    let refused = MmError::Invalid("MADV_DONTNEED on a PFNMAP, I/O, huge-page or locked mapping");
    for (i, flag) in [VmFlags::PFNMAP, VmFlags::IO, VmFlags::HUGETLB, VmFlags::empty()].into_iter().enumerate() {
        let at = va(WINDOW.0 + 4 * i as u64 * PAGE_SIZE);
        s.mmap(&Flags(flag, VmFlags::empty()), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(at))
            .unwrap()
            .flush
            .ignore();
        let r = s.madvise(at, PAGE_SIZE, Advice::DontNeed).map(|f| f.ignore());
        if flag.is_empty() {
            assert_eq!(r, Ok(()));
        } else {
            assert_eq!(r, Err(refused.clone()), "{flag:?}");
        }
    }
}
