//! A hugetlb shared-memory object: the file behind a SysV `SHM_HUGETLB`
//! segment (Linux's `hugetlb_file_setup` for `HUGETLB_SHMFS_INODE`). Its
//! size is whole 2 MiB pages; it reserves one pool page per huge page
//! when it is made (unless asked not to, `SHM_NORESERVE`), as Linux
//! reserves at `shmget`, and every shared mapping of it maps the same
//! pages, faulted in on first touch from the reservations. The pages and
//! any unconsumed reservations go back to the pool when the object and
//! every VMA mapping it are gone.
//!
//! What it does not do: private (copy-on-write) mappings (`EOPNOTSUPP`;
//! SysV attaches are always shared), `read`/`write`/`fallocate` of the
//! object, growing it, 1 GiB pages. A hugetlbfs file or a
//! `memfd_create(MFD_HUGETLB)` needs those.

use std::collections::BTreeSet;
use std::sync::Arc;

use vm_memory::GuestMemory;

use super::hugetlb::HugetlbMapping;
use super::hugetlb_pool::{HugetlbPool, HUGE_PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::vma::VmaOps;

/// A hugetlb shared-memory object; cheap to clone (clones are the same
/// object).
pub struct HugetlbShm<M> {
    mapping: Arc<HugetlbMapping<M>>,
    size: u64,
    name: Arc<str>,
}

impl<M> Clone for HugetlbShm<M> {
    fn clone(&self) -> Self {
        HugetlbShm { mapping: self.mapping.clone(), size: self.size, name: self.name.clone() }
    }
}

impl<M> HugetlbPool<M> {
    /// A shared object of `size` bytes (a whole number of 2 MiB pages,
    /// else `Misaligned`; 0 is `Invalid`) named `name`, holding one
    /// reservation per page unless `noreserve`: `OutOfMemory` (`ENOMEM`)
    /// when the pool cannot promise them.
    pub fn shm_object(&self, name: &str, size: u64, noreserve: bool) -> Result<HugetlbShm<M>, MmError> {
        if size == 0 {
            return Err(MmError::Invalid("empty hugetlb object"));
        }
        if size % HUGE_PAGE_SIZE != 0 {
            return Err(MmError::Misaligned { what: "hugetlb object size", value: size, align: HUGE_PAGE_SIZE });
        }
        let n = size / HUGE_PAGE_SIZE;
        let mut reserved = BTreeSet::new();
        if !noreserve {
            self.0.reserve(n)?;
            reserved.extend(0..n);
        }
        let mapping = Arc::new(HugetlbMapping::shared_object(self.0.clone(), reserved));
        Ok(HugetlbShm { mapping, size, name: Arc::from(name) })
    }
}

impl<M: GuestMemory + Send + Sync + 'static> HugetlbShm<M> {
    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Never: an object has at least one page.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Huge pages the object holds now (faulted in, not yet given back).
    pub fn resident_pages(&self) -> u64 {
        self.mapping.lock().pages.len() as u64
    }

    /// Reservations not yet consumed by a fault.
    pub fn reserved_pages(&self) -> u64 {
        self.mapping.lock().res.reserved.len() as u64
    }

    /// The operations every VMA of the object carries (for a provider
    /// that wraps the object and must attach them itself).
    pub fn vma_ops(&self) -> Arc<dyn VmaOps> {
        self.mapping.clone()
    }
}

impl<M: GuestMemory + Send + Sync + 'static> MmapProvider for HugetlbShm<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn align(&self) -> u64 {
        HUGE_PAGE_SIZE
    }

    /// A shared mapping of whole pages inside the object: start, length
    /// and offset 2 MiB multiples (`Misaligned`), not past its end
    /// (`Invalid`); a private one is `NotSupported`.
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        if !desc.test_flags(VmFlags::SHARED) {
            return Err(MmError::NotSupported("private mapping of a hugetlb shared-memory object"));
        }
        super::hugetlb_pool::check_huge_desc(desc)?;
        let end = desc.pgoff.checked_mul(crate::addr::PAGE_SIZE).and_then(|o| o.checked_add(desc.size()));
        if end.is_none_or(|e| e > self.size) {
            return Err(MmError::Invalid("mapping past the end of a hugetlb object"));
        }
        desc.set_flags(VmFlags::HUGETLB | VmFlags::DONTEXPAND);
        desc.set_ops(self.mapping.clone());
        Ok(())
    }
}
