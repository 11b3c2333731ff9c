//! Providers that show the API off and that the VMM uses: guest RAM, zero
//! pages, a kernel page buffer, huge pages (a fixed region, or a hugetlb
//! pool faulted in page by page, anonymous or a hugetlbfs file),
//! shared-memory objects, and a
//! delegating read-only view.
//! Device windows (BARs) live with the devices.

mod anon;
mod guest_ram;
mod huge;
mod hugetlb;
mod hugetlb_file;
mod hugetlb_file_map;
#[cfg(test)]
mod hugetlb_file_tests;
mod hugetlb_pool;
mod hugetlb_reserve;
mod hugetlb_shm;
#[cfg(test)]
mod hugetlb_shm_tests;
#[cfg(test)]
mod hugetlb_tests;
mod page_buffer;
mod read_only;
mod shmem;
#[cfg(test)]
mod shmem_mapping_tests;
mod shmem_quota;
#[cfg(test)]
mod shmem_tests;
#[cfg(test)]
mod small_tests;
mod zero;

pub use anon::AnonOps;
pub use guest_ram::GuestRamProvider;
pub use huge::{HugePageProvider, HugeVmaState};
pub use hugetlb::{HugetlbProvider, HUGETLB_NAME};
pub use hugetlb_file::{HugetlbFile, MAX_HUGETLB_FILE_SIZE};
pub use hugetlb_file_map::HugetlbFileProvider;
pub use hugetlb_pool::{HugePage, HugetlbCounts, HugetlbPool, FRAMES_PER_HUGE_PAGE, HUGE_PAGE_SIZE};
pub use hugetlb_shm::HugetlbShm;
pub use page_buffer::{BufferOps, PageBuffer};
pub use read_only::ReadOnlyView;
pub use shmem::{ShmemObject, MAX_SHMEM_SIZE};
pub use shmem_quota::ShmemQuota;
pub use zero::ZeroProvider;
