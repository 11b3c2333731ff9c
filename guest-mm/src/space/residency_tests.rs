//! mincore and the resident-page count: their argument rules (Linux's
//! errno values), huge leaves counted by the pages inside the range,
//! PROT_NONE leaves counted resident, and a sparse 16 TiB VMA counted by
//! walking only the tables that exist (an O(range) count would not finish).

#![allow(clippy::unwrap_used)]

use super::test_util::{pool_space, va, WINDOW};
use super::MmapRequest;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

/// I/O-remaps its VMA whole from guest-physical frame `.0` on: huge
/// leaves where virtual and physical addresses align alike.
struct IoRemap(u64);
impl MmapProvider for IoRemap {
    fn name(&self) -> &str {
        "ioremap"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_ioremap_full(Pfn(self.0));
        Ok(())
    }
}

#[test]
fn mincore_reports_what_the_tables_map_and_refuses_as_linux() {
    let mut s = pool_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    s.mmap(&z, &MmapRequest::private(8 * P, RW).fixed(va(a))).unwrap().flush.ignore();
    for i in [1, 4, 5] {
        s.fault(va(a + i * P), FaultAccess::WRITE).unwrap().flush.ignore();
    }
    assert_eq!(s.mincore(va(a), 8 * P).unwrap(), vec![0, 1, 0, 0, 1, 1, 0, 0]);
    // The length is rounded up to pages; zero asks for nothing.
    assert_eq!(s.mincore(va(a + P), 1).unwrap(), vec![1]);
    assert_eq!(s.mincore(va(a), 0).unwrap(), Vec::<u8>::new());
    // A PROT_NONE page keeps its frame: still resident.
    s.mprotect(va(a + 4 * P), P, VmFlags::empty()).unwrap().ignore();
    assert!(s.translate(va(a + 4 * P)).is_none());
    assert_eq!(s.mincore(va(a + 4 * P), 2 * P).unwrap(), vec![1, 1]);
    assert_eq!(s.resident_pages(va(a), 8 * P), 3);
    // Misaligned: EINVAL; a hole, or past the user half: ENOMEM.
    assert_eq!(s.mincore(va(a + 8), P).map_err(|e| e.errno()), Err(errno::EINVAL));
    assert_eq!(s.mincore(va(a), 9 * P), Err(MmError::NotMapped { addr: a + 8 * P }));
    assert_eq!(s.mincore(va(a - P), 2 * P), Err(MmError::NotMapped { addr: a - P }));
    assert_eq!(s.mincore(va((1 << 47) - P), 2 * P).map_err(|e| e.errno()), Err(errno::ENOMEM));
    assert_eq!(s.mincore(va(a), u64::MAX).map_err(|e| e.errno()), Err(errno::ENOMEM));
}

#[test]
fn huge_leaves_count_the_pages_inside_the_range() {
    let mut s = pool_space();
    let x = 1u64 << 40;
    s.mmap(&IoRemap((1 << 32) / P), &MmapRequest::shared(2 * M2, RW).fixed(va(x))).unwrap().flush.ignore();
    assert_eq!(s.page_tables().leaves(va(x), 2 * M2).len(), 2, "two 2 MiB leaves");
    assert_eq!(s.resident_pages(va(x), 2 * M2), 1024);
    assert_eq!(s.resident_pages(va(x + M2 - 3 * P), 5 * P), 5, "across the two leaves");
    assert_eq!(s.resident_pages(va(x - 4 * P), 8 * P), 4, "half before the mapping");
    let m = s.mincore(va(x + M2 - P), 2 * P).unwrap();
    assert_eq!(m, vec![1, 1]);
}

#[test]
fn a_sparse_sixteen_tib_vma_is_counted_by_what_is_mapped() {
    let mut s = pool_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let (x, len) = (1u64 << 44, 1u64 << 44);
    s.mmap(&z, &MmapRequest::private(len, RW).fixed(va(x))).unwrap().flush.ignore();
    let touched = [x, x + (3 << 30) + 5 * P, x + len - P];
    for t in touched {
        s.fault(va(t), FaultAccess::WRITE).unwrap().flush.ignore();
    }
    let start = std::time::Instant::now();
    assert_eq!(s.resident_pages(va(x), len), 3);
    assert_eq!(s.resident_pages(va(x + P), len - 2 * P), 1, "the ends excluded");
    // 2^32 pages: a page-by-page count would take minutes.
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    // The pages are where the faults put them.
    for t in touched {
        assert_eq!(s.mincore(va(t), P).unwrap(), vec![1]);
    }
}
