//! madvise's refusals that the mapper tests reach only through remaps
//! (which carry every special flag at once): each of `VM_PFNMAP`, `VM_IO`
//! and `VM_HUGETLB` alone refuses `MADV_DONTNEED`.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, WINDOW};
use super::{Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

/// Sets `.0` on its descriptor's flags, nothing else.
struct Sets(VmFlags);
impl MmapProvider for Sets {
    fn name(&self) -> &str {
        "sets"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.set_flags(self.0);
        Ok(())
    }
}

#[test]
fn each_special_flag_alone_refuses_dontneed() {
    let mut s = space();
    let refused = MmError::Invalid("MADV_DONTNEED on a PFNMAP, I/O or huge-page mapping");
    for (i, flag) in [VmFlags::PFNMAP, VmFlags::IO, VmFlags::HUGETLB, VmFlags::empty()].into_iter().enumerate() {
        let at = va(WINDOW.0 + 4 * i as u64 * PAGE_SIZE);
        s.mmap(&Sets(flag), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(at)).unwrap().flush.ignore();
        let r = s.madvise(at, PAGE_SIZE, Advice::DontNeed).map(|f| f.ignore());
        if flag.is_empty() {
            assert_eq!(r, Ok(()));
        } else {
            assert_eq!(r, Err(refused.clone()), "{flag:?}");
        }
    }
}
