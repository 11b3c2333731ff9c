//! Huge-page mappings keep to their page size as Linux's hugetlbfs does:
//! `mremap`, `munmap` and `mprotect` refuse (`EINVAL`) anything that would leave a
//! piece that is not whole huge pages, with the real huge-page provider
//! (its VMA ops report the page size, `vm_operations_struct::pagesize`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vm_memory::GuestAddress;

use super::test_util::{space, va, WINDOW};
use super::MmapRequest;
use crate::addr::{PageSize, PAGE_SIZE};
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::providers::HugePageProvider;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;

/// A space with a 4 MiB huge-page mapping (two 2 MiB pages) at `at`.
fn with_huge(at: u64) -> (super::AddressSpace<vm_memory::GuestMemoryMmap<()>>, Arc<HugePageProvider>) {
    let mut s = space();
    let huge = Arc::new(HugePageProvider::new(GuestAddress(16 << 20), 8 * M2, PageSize::Size2M).unwrap());
    let rw = VmFlags::READ | VmFlags::WRITE;
    s.mmap(huge.as_ref(), &MmapRequest::shared(2 * M2, rw).fixed(va(at))).unwrap().flush.ignore();
    (s, huge)
}

/// The VMAs as (start, end).
fn vmas(s: &super::AddressSpace<vm_memory::GuestMemoryMmap<()>>) -> Vec<(u64, u64)> {
    s.vmas().map(|v| (v.start().raw(), v.end())).collect()
}

#[test]
fn the_huge_page_provider_reports_its_page_size() {
    let at = WINDOW.0 + 8 * M2;
    let (s, _huge) = with_huge(at);
    let v = s.find_vma(va(at)).unwrap();
    assert_eq!(v.ops().map(|o| o.pagesize(v)), Some(M2));
}

#[test]
fn mremap_refuses_to_shrink_or_move_a_huge_mapping_off_its_pages() {
    let at = WINDOW.0 + 8 * M2;
    let (mut s, _huge) = with_huge(at);
    let before = vmas(&s);
    let refused = |e: MmError| {
        assert!(matches!(e, MmError::Misaligned { what: "huge-page mremap", align: M2, .. }), "{e:?}");
        assert_eq!(e.errno(), errno::EINVAL);
    };
    // Shrink to 4 KiB, to 2 MiB - 4 KiB.
    refused(s.mremap(va(at), 2 * M2, P, false, None).map(|r| r.addr).unwrap_err());
    refused(s.mremap(va(at), 2 * M2, M2 - P, false, None).map(|r| r.addr).unwrap_err());
    // Move by 4 KiB.
    let to = va(WINDOW.0 + 16 * M2 + P);
    refused(s.mremap(va(at), 2 * M2, 2 * M2, true, Some(to)).map(|r| r.addr).unwrap_err());
    assert_eq!(vmas(&s), before, "nothing changed");
    // Whole pages are fine: shrink to 2 MiB, then move to a 2 MiB boundary.
    s.mremap(va(at), 2 * M2, M2, false, None).unwrap().flush.ignore();
    let to = va(WINDOW.0 + 16 * M2);
    let r = s.mremap(va(at), M2, M2, true, Some(to)).unwrap();
    assert_eq!(r.addr, to);
    r.flush.ignore();
    assert_eq!(vmas(&s), vec![(to.raw(), to.raw() + M2)]);
    let (_, violations) = s.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn munmap_refuses_to_split_a_huge_mapping_off_its_pages() {
    let at = WINDOW.0 + 8 * M2;
    let (mut s, _huge) = with_huge(at);
    let before = vmas(&s);
    let refused = |e: MmError| {
        assert!(matches!(e, MmError::Misaligned { what: "huge-page split", align: M2, .. }), "{e:?}");
        assert_eq!(e.errno(), errno::EINVAL);
    };
    // The first 4 KiB, the last 4 KiB, a 4 KiB hole, 2 MiB from 4 KiB in.
    refused(s.munmap(va(at), P).map(|_| ()).unwrap_err());
    refused(s.munmap(va(at + 2 * M2 - P), P).map(|_| ()).unwrap_err());
    refused(s.munmap(va(at + M2), P).map(|_| ()).unwrap_err());
    refused(s.munmap(va(at + P), M2).map(|_| ()).unwrap_err());
    assert_eq!(vmas(&s), before, "nothing changed");
    // Ends outside the VMA split nothing: misaligned is fine there.
    let mut s2 = with_huge(at).0;
    s2.munmap(va(at - P), 2 * M2 + 2 * P).unwrap().ignore();
    assert!(vmas(&s2).is_empty());
    // Whole huge pages: the first one goes, the second stays.
    s.munmap(va(at), M2).unwrap().ignore();
    assert_eq!(vmas(&s), vec![(at + M2, at + 2 * M2)]);
    let (_, violations) = s.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn mprotect_refuses_to_split_a_huge_mapping_off_its_pages() {
    let at = WINDOW.0 + 8 * M2;
    let (mut s, _huge) = with_huge(at);
    let before = vmas(&s);
    let e = s.mprotect(va(at + P), M2, VmFlags::READ).map(|_| ()).unwrap_err();
    assert!(matches!(e, MmError::Misaligned { what: "huge-page split", align: M2, .. }), "{e:?}");
    assert_eq!(e.errno(), errno::EINVAL);
    assert_eq!(vmas(&s), before, "nothing changed");
    s.mprotect(va(at), M2, VmFlags::READ).unwrap().ignore();
    assert_eq!(vmas(&s), vec![(at, at + M2), (at + M2, at + 2 * M2)]);
}
