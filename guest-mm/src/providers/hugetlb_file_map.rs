//! Mappings of a [`HugetlbFile`] (`hugetlbfs_file_mmap` and the hugetlb
//! fault path for file pages), by 2 MiB leaves from the fault path's
//! huge-page branch.
//!
//! - Every mapping is `VM_HUGETLB | VM_DONTEXPAND` with a 2 MiB page size;
//!   start, length and offset must be whole huge pages (`EINVAL`; the
//!   caller rounds the length up first, as Linux's `mmap` does for
//!   hugetlbfs files). A writable mapping grows the file to its end.
//! - A **shared** mapping reserves the file's indexes it covers that the
//!   file does not account yet (the reservations are the file's); its
//!   faults map the file's pages, allocating a hole's page into the file.
//! - A **private** mapping reserves one page per huge page it covers (its
//!   own reservations, given back when its pieces go, as
//!   `hugetlb_vm_op_close`). A read maps the file's page read-only and
//!   copy-on-write; a write, or a write to such a page, gets a private
//!   copy; a hole gives a private zeroed page. Its own pages go with the
//!   faulted run that maps them (munmap, `MADV_DONTNEED`).
//! - A fault at or past the file's size fails (`SIGBUS`).
//! - `MADV_REMOVE` punches the file ([`HugetlbFile::punch_hole`]) and
//!   every mapping of it loses the range (private copies too, as Linux).
//!
//! `MAP_NORESERVE` mappings reserve nothing; their faults take a page
//! nobody was promised or fail.

use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::GuestMemory;

use super::hugetlb_file::{FileInner, HugetlbFile};
use super::hugetlb_pool::{HugePage, FRAMES_PER_HUGE_PAGE, HUGE_PAGE_SIZE};
use super::hugetlb_reserve::Reservations;
use crate::addr::{GuestVirtAddr, PAGE_SHIFT};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::vma::{FaultInfo, FaultPage, ObjectKey, Punched, Vma, VmaOps};

/// Maps a hugetlbfs file; see the module docs.
pub struct HugetlbFileProvider<M> {
    file: Arc<FileInner<M>>,
    noreserve: bool,
}

impl<M> HugetlbFile<M> {
    /// A provider of mappings of this file; with `noreserve`
    /// (`MAP_NORESERVE`) mappings reserve nothing.
    pub fn provider(&self, noreserve: bool) -> HugetlbFileProvider<M> {
        HugetlbFileProvider { file: self.0.clone(), noreserve }
    }
}

#[derive(Default)]
struct PrivState {
    /// A private mapping's reservations by huge-page index.
    res: Reservations,
}

/// One mapping (`mmap` call): the ops of its VMAs.
struct FileMapping<M> {
    file: Arc<FileInner<M>>,
    shared: bool,
    state: Mutex<PrivState>,
}

impl<M> FileMapping<M> {
    fn lock(&self) -> MutexGuard<'_, PrivState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<M> Drop for FileMapping<M> {
    fn drop(&mut self) {
        let n = self.lock().res.reserved.len() as u64;
        self.file.pool.unreserve(n);
    }
}

impl<M: GuestMemory + Send + Sync + 'static> FileMapping<M> {
    /// A fresh private page for index `idx` (with the mapping's
    /// reservation if it still has one), a copy of `from` or zeroed.
    fn private_page(&self, idx: u64, from: Option<crate::addr::Pfn>) -> Result<FaultPage, MmError> {
        let mut st = self.lock();
        let reserved = st.res.reserved.remove(&idx);
        let page = match self.file.pool.take(reserved) {
            Ok(p) => p,
            Err(e) => {
                if reserved {
                    st.res.reserved.insert(idx);
                }
                return Err(e);
            }
        };
        drop(st);
        match from {
            Some(src) => self.file.pool.copy(src, &page)?,
            None => self.file.pool.zero(&page)?,
        }
        Ok(page_of(page, false))
    }
}

fn page_of(page: Arc<HugePage>, copy_on_write: bool) -> FaultPage {
    FaultPage { pfn: page.head(), copy_on_write, hold: Some(page) }
}

impl<M: GuestMemory + Send + Sync + 'static> VmaOps for FileMapping<M> {
    fn name(&self) -> &str {
        &self.file.name
    }

    fn fault(&self, _vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        if vmf.pgoff % FRAMES_PER_HUGE_PAGE != 0 {
            return Err(MmError::Misaligned { what: "huge-page fault", value: vmf.pgoff, align: FRAMES_PER_HUGE_PAGE });
        }
        let idx = vmf.pgoff / FRAMES_PER_HUGE_PAGE;
        let mut st = self.file.lock();
        if vmf.pgoff.checked_mul(1 << PAGE_SHIFT).is_none_or(|b| b >= st.size) {
            return Err(MmError::NotSupported("fault past the end of the hugetlbfs file"));
        }
        if self.shared {
            return Ok(page_of(self.file.page(&mut st, idx)?, false));
        }
        if let Some(src) = vmf.cow_from {
            drop(st);
            return self.private_page(idx, Some(src));
        }
        match st.pages.get(&idx).cloned() {
            Some(p) if vmf.access.write => {
                drop(st);
                // The page stays alive through `p` while it is copied.
                let copy = self.private_page(idx, Some(p.head()));
                drop(p);
                copy
            }
            Some(p) => Ok(page_of(p, true)),
            None => {
                drop(st);
                self.private_page(idx, None)
            }
        }
    }

    fn mremap(&self, vma: &Vma, new_start: GuestVirtAddr, _new_len: u64) -> Result<(), MmError> {
        self.lock().res.moving(vma, new_start);
        Ok(())
    }

    fn close(&self, vma: &Vma) {
        let gone = self.lock().res.close(vma, self.shared);
        self.file.pool.unreserve(gone);
    }

    fn pagesize(&self, _vma: &Vma) -> u64 {
        HUGE_PAGE_SIZE
    }

    fn object_key(&self) -> Option<ObjectKey> {
        Some(self.file.key())
    }

    fn remove(&self, _vma: &Vma, offset: u64, len: u64) -> Result<Option<Punched>, MmError> {
        let pages = HugetlbFile(self.file.clone()).punch_hole(offset, len)?;
        Ok(Some(Punched { pages, frames: None }))
    }
}

impl<M: GuestMemory + Send + Sync + 'static> MmapProvider for HugetlbFileProvider<M> {
    fn name(&self) -> &str {
        &self.file.name
    }

    fn align(&self) -> u64 {
        HUGE_PAGE_SIZE
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        super::hugetlb_pool::check_huge_desc(desc)?;
        let end = desc
            .pgoff
            .checked_mul(1 << PAGE_SHIFT)
            .and_then(|o| o.checked_add(desc.size()))
            .ok_or(MmError::Invalid("hugetlbfs mapping past the largest offset"))?;
        let first = desc.pgoff / FRAMES_PER_HUGE_PAGE;
        let n = desc.size() / HUGE_PAGE_SIZE;
        let shared = desc.test_flags(VmFlags::SHARED);
        let mut state = PrivState::default();
        if !self.noreserve {
            if shared {
                self.file.reserve(first, n)?;
            } else {
                self.file.pool.reserve(n)?;
                state.res.reserved.extend(first..first + n);
            }
        }
        if desc.test_flags(VmFlags::WRITE) {
            HugetlbFile(self.file.clone()).grow_to(end);
        }
        let mapping = FileMapping { file: self.file.clone(), shared, state: Mutex::new(state) };
        desc.set_flags(VmFlags::HUGETLB | VmFlags::DONTEXPAND);
        desc.set_ops(Arc::new(mapping));
        Ok(())
    }
}
