//! A shared-memory object (a memfd, a tmpfs file, a SysV segment): a
//! byte size and the pool pages behind it, allocated on first touch,
//! readable and writable by the VMM (`read`/`write` on the descriptor)
//! and mappable.
//!
//! - A **shared** mapping faults in the object's own page (allocating it,
//!   zeroed, in a hole): every shared mapping and the VMM's reads and
//!   writes see the same bytes.
//! - A **private** mapping maps the object's pages copy-on-write; a write
//!   gets a private copy (of the object's page, or a zeroed page in a
//!   hole, which leaves the object untouched), as a `MAP_PRIVATE` file
//!   mapping does.
//! - A fault at or past the object's size fails (`SIGBUS` in Linux).
//! - [`ShmemObject::set_len`] (ftruncate) and [`ShmemObject::punch_hole`]
//!   (`fallocate(PUNCH_HOLE)`, `MADV_REMOVE`) drop the object's pages in
//!   the range and zero the partial pages at its edges.
//! - An object made [`ShmemObject::with_quota`] charges a shared
//!   [`ShmemQuota`] for every page it holds (a tmpfs mount's `size=`):
//!   a write past it is short or `ENOSPC`, a fault in a hole `SIGBUS`.
//!
//! What this does not do on its own: truncating or punching does not
//! unmap the dropped pages from existing mappings. The caller does, with
//! [`crate::AddressSpace::unmap_mapping_range`] over
//! [`ShmemObject::vma_ops`] (Linux's `unmap_mapping_range` after
//! `truncate_setsize`). Until then a mapped page stays mapped and pinned
//! (so it is never reused while mapped) and no longer belongs to the
//! object. No huge-page variant, no seals, no swap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use super::ShmemQuota;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::frames::{Frames, PoolPages};
use crate::provider::MmapProvider;
use crate::vma::{FaultAccess, FaultInfo, FaultPage, ObjectKey, Punched, Vma, VmaOps};

/// Largest size an object may have (Linux's `MAX_LFS_FILESIZE`).
pub const MAX_SHMEM_SIZE: u64 = i64::MAX as u64;

/// The object's size and the pages it holds, by page index.
#[derive(Default)]
struct State {
    size: u64,
    pages: BTreeMap<u64, Arc<PoolPages>>,
}

struct Inner<M> {
    name: String,
    frames: Frames,
    mem: M,
    state: Mutex<State>,
    quota: Option<ShmemQuota>,
}

impl<M> Drop for Inner<M> {
    fn drop(&mut self) {
        let held = self.state.get_mut().map_or_else(|e| e.into_inner().pages.len(), |st| st.pages.len());
        if let Some(q) = &self.quota {
            q.uncharge(held as u64);
        }
    }
}

/// A shared-memory object; cheap to clone (clones are the same object).
pub struct ShmemObject<M>(Arc<Inner<M>>);

impl<M> Clone for ShmemObject<M> {
    fn clone(&self) -> Self {
        ShmemObject(self.0.clone())
    }
}

fn mem_err(p: Pfn) -> MmError {
    MmError::GuestMemory { addr: p.addr().0 }
}

impl<M: GuestMemory> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object's page `index`, allocated (zeroed) if it is a hole.
    fn page(&self, st: &mut State, index: u64) -> Result<Arc<PoolPages>, MmError> {
        if let Some(p) = st.pages.get(&index) {
            return Ok(p.clone());
        }
        if self.quota.as_ref().is_some_and(|q| !q.try_charge(1)) {
            return Err(MmError::QuotaFull("tmpfs size"));
        }
        let page = match self.frames.alloc(1).and_then(|p| p.zero(&self.mem).map(|()| p)) {
            Ok(p) => p,
            Err(e) => {
                self.uncharge(1);
                return Err(e);
            }
        };
        let page = Arc::new(page);
        st.pages.insert(index, page.clone());
        Ok(page)
    }

    /// Gives `n` pages back to the quota, if there is one.
    fn uncharge(&self, n: u64) {
        if let Some(q) = &self.quota {
            q.uncharge(n);
        }
    }

    /// A fresh pool page holding a copy of `from` (zeroed for `None`).
    fn private_copy(&self, from: Option<Pfn>) -> Result<FaultPage, MmError> {
        let page = self.frames.alloc(1)?;
        let dst = page.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
        match from {
            Some(src) => {
                let mut buf = [0u8; PAGE_SIZE as usize];
                self.mem.read_slice(&mut buf, src.addr()).map_err(|_| mem_err(src))?;
                self.mem.write_slice(&buf, dst.addr()).map_err(|_| mem_err(dst))?;
            }
            None => page.zero(&self.mem)?,
        }
        Ok(FaultPage { pfn: dst, copy_on_write: false, hold: Some(Arc::new(page)) })
    }

    /// Drops the pages wholly inside `[from, to)` (bytes) and zeroes the
    /// parts of the edge pages inside it.
    fn clear(&self, st: &mut State, from: u64, to: u64) -> Result<(), MmError> {
        if from >= to {
            return Ok(());
        }
        let first_whole = from.div_ceil(PAGE_SIZE);
        let end_whole = to / PAGE_SIZE;
        if first_whole < end_whole {
            let doomed: Vec<u64> = st.pages.range(first_whole..end_whole).map(|(&i, _)| i).collect();
            self.uncharge(doomed.len() as u64);
            for i in doomed {
                st.pages.remove(&i);
            }
        }
        // The partial pages at either edge (one page if both are in it).
        let mut edges = vec![(from, to.min((from / PAGE_SIZE + 1) * PAGE_SIZE))];
        if to % PAGE_SIZE != 0 && to / PAGE_SIZE != from / PAGE_SIZE {
            edges.push((to - to % PAGE_SIZE, to));
        }
        for (a, b) in edges {
            let index = a / PAGE_SIZE;
            if a % PAGE_SIZE == 0 && b - a == PAGE_SIZE {
                continue;
            }
            if let Some(p) = st.pages.get(&index) {
                let pfn = p.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
                let zeros = vec![0u8; (b - a) as usize];
                let at = GuestAddress(pfn.addr().0 + a % PAGE_SIZE);
                self.mem.write_slice(&zeros, at).map_err(|_| mem_err(pfn))?;
            }
        }
        Ok(())
    }
}

impl<M: GuestMemory + Send + Sync + 'static> ShmemObject<M> {
    /// An object of `size` bytes (all a hole) named `name`, its pages
    /// from `frames`' pool, read and written through `mem`.
    pub fn new(name: &str, frames: Frames, mem: M, size: u64) -> Result<Self, MmError> {
        if size > MAX_SHMEM_SIZE {
            return Err(MmError::Invalid("shared-memory object too large"));
        }
        let state = Mutex::new(State { size, pages: BTreeMap::new() });
        Ok(ShmemObject(Arc::new(Inner { name: name.to_owned(), frames, mem, state, quota: None })))
    }

    /// As [`ShmemObject::new`], charging `quota` for every page it holds
    /// (see the module docs).
    pub fn with_quota(name: &str, frames: Frames, mem: M, size: u64, quota: ShmemQuota) -> Result<Self, MmError> {
        if size > MAX_SHMEM_SIZE {
            return Err(MmError::Invalid("shared-memory object too large"));
        }
        let state = Mutex::new(State { size, pages: BTreeMap::new() });
        Ok(ShmemObject(Arc::new(Inner { name: name.to_owned(), frames, mem, state, quota: Some(quota) })))
    }

    /// The operations every VMA of the object carries: what
    /// [`crate::AddressSpace::unmap_mapping_range`] finds them by, and
    /// what a provider that wraps the object attaches itself.
    pub fn vma_ops(&self) -> Arc<dyn crate::vma::VmaOps> {
        self.0.clone()
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.0.lock().size
    }

    /// True when the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pages the object holds (the rest are holes).
    pub fn resident_pages(&self) -> u64 {
        self.0.lock().pages.len() as u64
    }

    /// The frame of page `index`, if the object holds it.
    pub fn frame(&self, index: u64) -> Option<Pfn> {
        self.0.lock().pages.get(&index).and_then(|p| p.pfns().first().copied())
    }

    /// ftruncate: a new size. Growing adds a hole; shrinking drops the
    /// pages past the new size and zeroes the tail of the last page (see
    /// the module doc for mapped pages).
    pub fn set_len(&self, len: u64) -> Result<(), MmError> {
        if len > MAX_SHMEM_SIZE {
            return Err(MmError::Invalid("shared-memory object too large"));
        }
        let mut st = self.0.lock();
        let old = st.size;
        if len < old {
            // Every page from the one holding `len` on, cleared.
            let end = old.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
            self.0.clear(&mut st, len, end)?;
        }
        st.size = len;
        Ok(())
    }

    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: drops the pages wholly inside
    /// `[off, off + len)` and zeroes the rest of the range; the size stays.
    pub fn punch_hole(&self, off: u64, len: u64) -> Result<(), MmError> {
        let end = off.checked_add(len).ok_or(MmError::Overflow { addr: off, len })?;
        // Every page of the range goes, past the size too (a page
        // allocated with `KEEP_SIZE`, the last partial page), as Linux's
        // `shmem_truncate_range` takes them.
        let mut st = self.0.lock();
        self.0.clear(&mut st, off, end)
    }

    /// `fallocate` mode 0 or `KEEP_SIZE`: gives every page of
    /// `[off, off + len)` a (zeroed) page, all or nothing: `ENOSPC` when
    /// the quota lacks them, `ENOMEM` when the pool does (nothing is
    /// allocated then). Grows the size to `off + len` unless `keep_size`.
    pub fn allocate(&self, off: u64, len: u64, keep_size: bool) -> Result<(), MmError> {
        let end = off.checked_add(len).filter(|&e| e <= MAX_SHMEM_SIZE);
        let end = end.ok_or(MmError::Overflow { addr: off, len })?;
        let mut st = self.0.lock();
        let (first, last) = (off / PAGE_SIZE, end.div_ceil(PAGE_SIZE));
        let missing: Vec<u64> = (first..last).filter(|i| !st.pages.contains_key(i)).collect();
        let n = missing.len() as u64;
        if self.0.quota.as_ref().is_some_and(|q| !q.try_charge(n)) {
            return Err(MmError::QuotaFull("tmpfs size"));
        }
        let mut fresh = Vec::with_capacity(missing.len());
        for _ in &missing {
            match self.0.frames.alloc(1).and_then(|p| p.zero(&self.0.mem).map(|()| p)) {
                Ok(p) => fresh.push(Arc::new(p)),
                Err(e) => {
                    self.0.uncharge(n);
                    return Err(e);
                }
            }
        }
        st.pages.extend(missing.into_iter().zip(fresh));
        if !keep_size {
            st.size = st.size.max(end);
        }
        Ok(())
    }

    /// `SEEK_DATA`: the first offset at or after `off`, before the end,
    /// in a page the object holds; `None` when there is none.
    pub fn seek_data(&self, off: u64) -> Option<u64> {
        let st = self.0.lock();
        if off >= st.size {
            return None;
        }
        let (&index, _) = st.pages.range(off / PAGE_SIZE..).next()?;
        let at = index.checked_mul(PAGE_SIZE)?.max(off);
        (at < st.size).then_some(at)
    }

    /// `SEEK_HOLE`: the first offset at or after `off` in no page the
    /// object holds (the end counts as a hole); `None` at or past the end.
    pub fn seek_hole(&self, off: u64) -> Option<u64> {
        let st = self.0.lock();
        if off >= st.size {
            return None;
        }
        let mut index = off / PAGE_SIZE;
        for (&i, _) in st.pages.range(index..) {
            if i != index {
                break;
            }
            index += 1;
        }
        Some(index.saturating_mul(PAGE_SIZE).max(off).min(st.size))
    }

    /// The frames of the pages the object holds in `[first, end)` (page
    /// indexes): what a hole punch must unmap from private mappings,
    /// which keep their own copies.
    pub fn frames_in(&self, first: u64, end: u64) -> Vec<Pfn> {
        let st = self.0.lock();
        if first >= end {
            return Vec::new();
        }
        st.pages.range(first..end).filter_map(|(_, p)| p.pfns().first().copied()).collect()
    }

    /// pread: up to `buf.len()` bytes from `off`; fewer at the end of the
    /// object, 0 at or past it. A hole reads as zeroes without taking a
    /// page.
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, MmError> {
        let st = self.0.lock();
        let n = usize::try_from(st.size.saturating_sub(off)).unwrap_or(usize::MAX).min(buf.len());
        let mut done = 0usize;
        while done < n {
            let pos = off + done as u64;
            let in_page = (PAGE_SIZE - pos % PAGE_SIZE).min((n - done) as u64) as usize;
            let chunk = &mut buf[done..done + in_page];
            match st.pages.get(&(pos / PAGE_SIZE)).and_then(|p| p.pfns().first().copied()) {
                Some(pfn) => {
                    let at = GuestAddress(pfn.addr().0 + pos % PAGE_SIZE);
                    self.0.mem.read_slice(chunk, at).map_err(|_| mem_err(pfn))?;
                }
                None => chunk.fill(0),
            }
            done += in_page;
        }
        Ok(n)
    }

    /// pwrite: `data` at `off`, allocating the pages it touches and
    /// growing the object past its end. When the pool (`ENOMEM`) or the
    /// quota (`ENOSPC`) runs out part way the write is short: what was
    /// written stays, the size grows only over it, and the count is
    /// returned; the error only when not one byte could be written.
    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<usize, MmError> {
        let end = off.checked_add(data.len() as u64).filter(|&e| e <= MAX_SHMEM_SIZE);
        let end = end.ok_or(MmError::Invalid("write past the largest shared-memory object"))?;
        let mut st = self.0.lock();
        let mut done = 0usize;
        while done < data.len() {
            let pos = off + done as u64;
            let in_page = (PAGE_SIZE - pos % PAGE_SIZE).min((data.len() - done) as u64) as usize;
            let page = match self.0.page(&mut st, pos / PAGE_SIZE) {
                Ok(p) => p,
                Err(e) => {
                    st.size = st.size.max(pos);
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
            };
            let pfn = page.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
            let at = GuestAddress(pfn.addr().0 + pos % PAGE_SIZE);
            self.0.mem.write_slice(&data[done..done + in_page], at).map_err(|_| mem_err(pfn))?;
            done += in_page;
        }
        st.size = st.size.max(end);
        Ok(done)
    }
}

impl<M: GuestMemory + Send + Sync + 'static> VmaOps for Inner<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn fault(&self, vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        let mut st = self.lock();
        if vmf.pgoff.checked_mul(PAGE_SIZE).is_none_or(|b| b >= st.size) {
            return Err(MmError::NotSupported("fault past the end of the shared-memory object"));
        }
        if vma.flags().contains(VmFlags::SHARED) {
            let page = self.page(&mut st, vmf.pgoff)?;
            let pfn = page.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
            return Ok(FaultPage { pfn, copy_on_write: false, hold: Some(page) });
        }
        let existing = st.pages.get(&vmf.pgoff).cloned();
        if !vmf.access.write {
            // A read maps the object's page copy-on-write; in a hole, the
            // object gets the page (it reads as zeroes either way).
            let page = match existing {
                Some(p) => p,
                None => self.page(&mut st, vmf.pgoff)?,
            };
            let pfn = page.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))?;
            return Ok(FaultPage { pfn, copy_on_write: true, hold: Some(page) });
        }
        // A write: a private copy of the object's page. In a hole the
        // object gets the page first (zeroes), as Linux's `do_cow_fault`
        // reads the page through `shmem_fault`, so `mincore` and the
        // object's block count see it.
        let existing = match (existing, vmf.cow_from) {
            (None, None) => Some(self.page(&mut st, vmf.pgoff)?),
            (e, _) => e,
        };
        drop(st);
        let from = vmf.cow_from.or_else(|| existing.and_then(|p| p.pfns().first().copied()));
        self.private_copy(from)
    }

    /// The object itself: every mapping of it, shared or private, in the
    /// space reports the same key.
    fn object_key(&self) -> Option<ObjectKey> {
        Some(ObjectKey(self as *const Self as *const () as usize))
    }

    /// The pages the object holds: `mincore` counts them resident in
    /// every mapping of it, as Linux's page cache of a tmpfs file.
    fn cached_pages(&self, first: u64, end: u64) -> Vec<u64> {
        if first >= end {
            return Vec::new();
        }
        self.lock().pages.range(first..end).map(|(&i, _)| i).collect()
    }

    /// `MADV_REMOVE` (`shmem_fallocate(PUNCH_HOLE | KEEP_SIZE)`): the
    /// object drops the pages of the range (its mappings then drop them
    /// too, private copies staying, see [`Punched`]); a later touch reads
    /// zeroes.
    fn remove(&self, _vma: &Vma, offset: u64, len: u64) -> Result<Option<Punched>, MmError> {
        let end = offset.checked_add(len).ok_or(MmError::Overflow { addr: offset, len })?;
        let pages = offset / PAGE_SIZE..end.div_ceil(PAGE_SIZE);
        let mut st = self.lock();
        let frames = st.pages.range(pages.clone()).filter_map(|(_, p)| p.pfns().first().copied()).collect();
        self.clear(&mut st, offset, end)?;
        Ok(Some(Punched { pages, frames: Some(frames) }))
    }

    fn map_pages(&self, vma: &Vma, first: u64, nr: u64, access: FaultAccess) -> Vec<Option<FaultPage>> {
        // Like filemap_map_pages: only pages the object holds, only for
        // reads (private ones copy-on-write).
        if access.write {
            return Vec::new();
        }
        let cow = !vma.flags().contains(VmFlags::SHARED);
        let st = self.lock();
        let last = st.size.div_ceil(PAGE_SIZE);
        (first..first.saturating_add(nr))
            .map(|i| {
                let page = st.pages.get(&i).filter(|_| i < last)?;
                let pfn = page.pfns().first().copied()?;
                Some(FaultPage { pfn, copy_on_write: cow, hold: Some(page.clone()) })
            })
            .collect()
    }
}

impl<M: GuestMemory + Send + Sync + 'static> MmapProvider for ShmemObject<M> {
    fn name(&self) -> &str {
        &self.0.name
    }

    /// Every mapping is lazy: the fault path asks the object for pages.
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.set_ops(self.0.clone());
        Ok(())
    }
}
