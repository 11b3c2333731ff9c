//! A hugetlbfs file (`memfd_create(MFD_HUGETLB)`, and what a SysV
//! `SHM_HUGETLB` segment is in Linux): a size and 2 MiB pages from a
//! [`HugetlbPool`], by page index, with the file's reservations
//! (`resv_map` of the inode). Its mappings are in
//! [`super::HugetlbFileProvider`].
//!
//! Linux 6.12's hugetlbfs rules (`fs/hugetlbfs/inode.c`, `mm/hugetlb.c`):
//!
//! - The size is set by `ftruncate` to whole huge pages only (`EINVAL`
//!   otherwise), grows by a writable mapping past its end
//!   (`hugetlbfs_file_mmap`) and by `fallocate` without `KEEP_SIZE`.
//! - A page index is *accounted* when the file holds its page or a
//!   reservation for it. A shared mapping reserves the indexes it covers
//!   that are not accounted (`ENOMEM` when the pool cannot promise them);
//!   the first fault or `fallocate` of a reserved index consumes the
//!   reservation.
//! - `fallocate` (mode 0 or `KEEP_SIZE`) allocates the pages of the huge
//!   pages the range touches (out of pages: [`MmError::OutOfMemory`], which
//!   `fallocate` reports as `ENOSPC`; pages allocated before stay).
//! - A hole punch frees the whole huge pages inside the range and their
//!   reservations, and zeroes the parts of partial pages at its edges; a
//!   shrink frees every page past the new size. Both return the page
//!   range that every mapping must lose
//!   ([`crate::AddressSpace::unmap_object_range`] with [`HugetlbFile::key`]).
//! - `read` works (holes read as zeroes, up to the size); `write` is
//!   Linux's `EINVAL` (hugetlbfs has no `write_iter`): nothing here writes.
//! - Dropping the last handle (descriptors and mappings) gives the pages
//!   and reservations back.
//!
//! What it does not do: 1 GiB pages, seals, subpools (`size=` mount
//! options), surplus pages.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use super::hugetlb_pool::{HugePage, HugetlbPool, PoolInner, FRAMES_PER_HUGE_PAGE, HUGE_PAGE_SIZE};
use crate::addr::Pfn;
use crate::error::MmError;
use crate::vma::ObjectKey;

/// Largest size a file may have (`MAX_LFS_FILESIZE`, whole huge pages).
pub const MAX_HUGETLB_FILE_SIZE: u64 = (i64::MAX as u64) & !(HUGE_PAGE_SIZE - 1);

#[derive(Default)]
pub(super) struct FileState {
    pub(super) size: u64,
    /// The file's pages, by huge-page index.
    pub(super) pages: BTreeMap<u64, Arc<HugePage>>,
    /// Indexes reserved and not yet allocated (disjoint from `pages`).
    pub(super) reserved: BTreeSet<u64>,
}

pub(super) struct FileInner<M> {
    pub(super) name: String,
    pub(super) pool: Arc<PoolInner<M>>,
    state: Mutex<FileState>,
}

impl<M> FileInner<M> {
    pub(super) fn lock(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn key(self: &Arc<Self>) -> ObjectKey {
        ObjectKey(Arc::as_ptr(self) as *const () as usize)
    }

    /// Reserves the indexes `first..first + n` that are not accounted yet
    /// (`hugetlb_reserve_pages` for a shared mapping): all or nothing.
    pub(super) fn reserve(&self, first: u64, n: u64) -> Result<(), MmError> {
        let end = first.checked_add(n).ok_or(MmError::Invalid("huge-page range overflows"))?;
        let mut st = self.lock();
        let held = st.pages.range(first..end).count() as u64 + st.reserved.range(first..end).count() as u64;
        let need = n.saturating_sub(held);
        self.pool.reserve(need)?;
        // `need` is at most the pool's size, so this loop is bounded too.
        let missing: Vec<u64> = (first..end)
            .filter(|i| !st.pages.contains_key(i) && !st.reserved.contains(i))
            .take(need as usize)
            .collect();
        st.reserved.extend(missing);
        Ok(())
    }

    /// Frees the pages of indexes `first..end`; a truncation (`truncate`)
    /// also gives back the reservations of the indexes never faulted, a
    /// hole punch keeps them (Linux's `remove_inode_hugepages` gives back
    /// only what each freed page had, which its fault had consumed: a
    /// refault of a punched page takes an unreserved one).
    fn free(&self, st: &mut FileState, first: u64, end: u64, truncate: bool) {
        if first >= end {
            return;
        }
        let doomed: Vec<u64> = st.pages.range(first..end).map(|(&i, _)| i).collect();
        for i in doomed {
            st.pages.remove(&i);
        }
        if !truncate {
            return;
        }
        let unres: Vec<u64> = st.reserved.range(first..end).copied().collect();
        for i in &unres {
            st.reserved.remove(i);
        }
        self.pool.unreserve(unres.len() as u64);
    }
}

impl<M: GuestMemory> FileInner<M> {
    /// The file's page `idx`, allocated (zeroed, consuming its reservation
    /// if it has one) when it is a hole.
    pub(super) fn page(&self, st: &mut FileState, idx: u64) -> Result<Arc<HugePage>, MmError> {
        if let Some(p) = st.pages.get(&idx) {
            return Ok(p.clone());
        }
        let reserved = st.reserved.remove(&idx);
        let page = match self.pool.take(reserved) {
            Ok(p) => p,
            Err(e) => {
                if reserved {
                    st.reserved.insert(idx);
                }
                return Err(e);
            }
        };
        self.pool.zero(&page)?;
        st.pages.insert(idx, page.clone());
        Ok(page)
    }
}

impl<M> Drop for FileInner<M> {
    fn drop(&mut self) {
        let n = self.lock().reserved.len() as u64;
        self.pool.unreserve(n);
    }
}

/// A hugetlbfs file; cheap to clone (clones are the same file).
pub struct HugetlbFile<M>(pub(super) Arc<FileInner<M>>);

impl<M> Clone for HugetlbFile<M> {
    fn clone(&self) -> Self {
        HugetlbFile(self.0.clone())
    }
}

impl<M> HugetlbPool<M> {
    /// A new empty hugetlbfs file named `name` (`/proc` shows it as
    /// `/NAME (deleted)`), its pages from this pool.
    pub fn file(&self, name: &str) -> HugetlbFile<M> {
        let state = Mutex::new(FileState::default());
        HugetlbFile(Arc::new(FileInner { name: name.to_owned(), pool: self.0.clone(), state }))
    }
}

/// `[off, off + len)` as whole huge-page indexes, rounded outwards.
fn outer(off: u64, len: u64) -> Result<Range<u64>, MmError> {
    let end = off.checked_add(len).filter(|&e| e <= MAX_HUGETLB_FILE_SIZE);
    let end = end.ok_or(MmError::Overflow { addr: off, len })?;
    Ok(off / HUGE_PAGE_SIZE..end.div_ceil(HUGE_PAGE_SIZE))
}

impl<M: GuestMemory> HugetlbFile<M> {
    /// The identity its mappings report ([`crate::VmaOps::object_key`]).
    pub fn key(&self) -> ObjectKey {
        self.0.key()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.0.lock().size
    }

    /// True when the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Huge pages the file holds.
    pub fn resident_pages(&self) -> u64 {
        self.0.lock().pages.len() as u64
    }

    /// Huge-page indexes reserved and not yet allocated.
    pub fn reserved_pages(&self) -> u64 {
        self.0.lock().reserved.len() as u64
    }

    /// The first frame of huge page `index`, if the file holds it.
    pub fn frame(&self, index: u64) -> Option<Pfn> {
        self.0.lock().pages.get(&index).map(|p| p.head())
    }

    /// Reserves the huge pages of `[off, off + len)` (rounded outwards)
    /// that the file does not account yet, as a shared mapping does
    /// (`hugetlb_file_setup` for SysV segments); `ENOMEM` when the pool
    /// cannot promise them, with nothing reserved.
    pub fn reserve(&self, off: u64, len: u64) -> Result<(), MmError> {
        let r = outer(off, len)?;
        self.0.reserve(r.start, r.end - r.start)
    }

    /// Grows the size to at least `len` (a writable mapping's end).
    pub(super) fn grow_to(&self, len: u64) {
        let mut st = self.0.lock();
        st.size = st.size.max(len.min(MAX_HUGETLB_FILE_SIZE));
    }

    /// ftruncate: `EINVAL` unless `len` is whole huge pages. Shrinking
    /// frees the pages (and reservations) past `len`; returns the page
    /// range (4 KiB offsets) every mapping must lose, empty when the size
    /// grows (pages a `KEEP_SIZE` fallocate put past the end stay then;
    /// an unchanged size frees them, as `hugetlbfs_setattr`).
    pub fn set_len(&self, len: u64) -> Result<Range<u64>, MmError> {
        if len % HUGE_PAGE_SIZE != 0 || len > MAX_HUGETLB_FILE_SIZE {
            return Err(MmError::Misaligned { what: "hugetlbfs size", value: len, align: HUGE_PAGE_SIZE });
        }
        let mut st = self.0.lock();
        let old = std::mem::replace(&mut st.size, len);
        if len > old {
            return Ok(0..0);
        }
        let first = len / HUGE_PAGE_SIZE;
        self.0.free(&mut st, first, u64::MAX, true);
        Ok(first * FRAMES_PER_HUGE_PAGE..u64::MAX)
    }

    /// `fallocate(mode 0)` (`keep_size` for `FALLOC_FL_KEEP_SIZE`):
    /// allocates every huge page `[off, off + len)` touches, consuming
    /// their reservations; without `keep_size` the size grows to the
    /// range's end. Out of pages: [`MmError::OutOfMemory`] (`ENOSPC`),
    /// the pages allocated so far stay and the size does not change.
    pub fn allocate(&self, off: u64, len: u64, keep_size: bool) -> Result<(), MmError> {
        let r = outer(off, len)?;
        let mut st = self.0.lock();
        for idx in r {
            self.0.page(&mut st, idx)?;
        }
        if !keep_size {
            st.size = st.size.max(off + len);
        }
        Ok(())
    }

    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: frees the whole huge pages
    /// inside `[off, off + len)` (the reservations of pages never
    /// faulted stay, as on Linux) and zeroes the rest of the range in
    /// pages the file holds. Returns the freed page
    /// range (4 KiB offsets; empty when no whole page is inside), which
    /// every mapping must lose.
    pub fn punch_hole(&self, off: u64, len: u64) -> Result<Range<u64>, MmError> {
        let end = off.checked_add(len).ok_or(MmError::Overflow { addr: off, len })?;
        let hs = off.div_ceil(HUGE_PAGE_SIZE);
        let he = end / HUGE_PAGE_SIZE;
        let mut st = self.0.lock();
        // The partial pages at the edges (one page if both are in it).
        let mut edges = Vec::new();
        if hs > he {
            edges.push((off, end));
        } else {
            edges.push((off, hs * HUGE_PAGE_SIZE));
            edges.push((he * HUGE_PAGE_SIZE, end));
        }
        for (a, b) in edges.into_iter().filter(|(a, b)| a < b) {
            if let Some(p) = st.pages.get(&(a / HUGE_PAGE_SIZE)) {
                let at = p.head().addr().0 + a % HUGE_PAGE_SIZE;
                let zeros = vec![0u8; (b - a) as usize];
                self.0.pool.mem.write_slice(&zeros, GuestAddress(at)).map_err(|_| MmError::GuestMemory { addr: at })?;
            }
        }
        if hs >= he {
            return Ok(0..0);
        }
        self.0.free(&mut st, hs, he, false);
        Ok(hs * FRAMES_PER_HUGE_PAGE..he * FRAMES_PER_HUGE_PAGE)
    }

    /// pread: up to `buf.len()` bytes from `off`, fewer at the end of the
    /// file, 0 at or past it; holes read as zeroes without a page.
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, MmError> {
        let st = self.0.lock();
        let n = usize::try_from(st.size.saturating_sub(off)).unwrap_or(usize::MAX).min(buf.len());
        let mut done = 0usize;
        while done < n {
            let pos = off + done as u64;
            let in_page = (HUGE_PAGE_SIZE - pos % HUGE_PAGE_SIZE).min((n - done) as u64) as usize;
            let chunk = &mut buf[done..done + in_page];
            match st.pages.get(&(pos / HUGE_PAGE_SIZE)) {
                Some(p) => {
                    let at = p.head().addr().0 + pos % HUGE_PAGE_SIZE;
                    self.0
                        .pool
                        .mem
                        .read_slice(chunk, GuestAddress(at))
                        .map_err(|_| MmError::GuestMemory { addr: at })?;
                }
                None => chunk.fill(0),
            }
            done += in_page;
        }
        Ok(n)
    }
}
