//! The bytes of the kind's in-memory files (`/tmp`, `/dev/shm`) in guest
//! RAM: each regular file is a guest-mm [`ShmemObject`] charging the
//! tmpfs budget's quota, as a memfd is, so that `read`/`write` on a
//! descriptor and every mapping of the file see the same pages at once.
//!
//! When a file shrinks or has a hole punched (`ftruncate`, `fallocate`,
//! `MADV_REMOVE`; memfds and hugetlbfs memfds alike), the pages dropped
//! must leave every mapping too, in every process (Linux's
//! `unmap_mapping_range`). The file
//! layer cannot reach the address space, so the store records what to
//! clear ([`Zaps`]) and the kind clears it when the call that caused it
//! returns ([`apply`]), before the program runs again.
//!
//! Not here: the mapping of a file (`syscalls::mm`), its name in
//! `/proc/self/maps` (`procfs::region`).

use std::any::Any;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use guest_mm::providers::{ShmemObject, ShmemQuota};
use guest_mm::{Cows, MmError, ObjectKey, Pfn, Punched, PAGE_SIZE};

use super::fs::errno::{Errno, EFBIG, EINVAL, ENOSPC, ENXIO};
use super::fs::{FileStore, StoreFactory};
use crate::hosted::hypercall::HostedKernel;
use crate::memory::GuestMem;

/// `MAX_LFS_FILESIZE`.
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// One range of an object to clear from its mappings.
pub struct Zap {
    /// The object ([`guest_mm::VmaOps::object_key`] of its mappings).
    key: ObjectKey,
    /// Its page offsets (4 KiB units).
    pages: Range<u64>,
    /// `None`: private copies go too (a truncation, a hugetlbfs punch);
    /// otherwise the object's frames the range held (a shmem punch keeps
    /// private copies).
    frames: Option<BTreeSet<Pfn>>,
}

/// The ranges waiting to be cleared; shared by every store and the kind.
#[derive(Clone, Default)]
pub struct Zaps(Arc<Mutex<Vec<Zap>>>);

/// The key every mapping of `obj` reports.
fn key_of(obj: &ShmemObject<GuestMem>) -> Option<ObjectKey> {
    obj.vma_ops().object_key()
}

impl Zaps {
    fn push(&self, z: Zap) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(z);
    }

    fn take(&self) -> Vec<Zap> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records that `obj` shrank to `size`: every page from the first
    /// wholly past it goes from its mappings (`truncate_pagecache`).
    pub fn truncated(&self, obj: &ShmemObject<GuestMem>, size: u64) {
        if let Some(key) = key_of(obj) {
            self.push(Zap { key, pages: size.div_ceil(PAGE_SIZE)..u64::MAX, frames: None });
        }
    }

    /// Punches `[off, off + len)` out of `obj`, recording the whole pages
    /// to clear from its mappings (`shmem_fallocate`'s unmap).
    pub fn punch(&self, obj: &ShmemObject<GuestMem>, off: u64, len: u64) -> Result<(), MmError> {
        let (first, end) = (off.div_ceil(PAGE_SIZE), off.saturating_add(len) / PAGE_SIZE);
        let frames: BTreeSet<Pfn> = obj.frames_in(first, end).into_iter().collect();
        obj.punch_hole(off, len)?;
        if let (false, Some(key)) = (frames.is_empty(), key_of(obj)) {
            self.push(Zap { key, pages: first..end, frames: Some(frames) });
        }
        Ok(())
    }

    /// Records that the pages `pages` of the object `key` were freed with
    /// their private copies (a hugetlbfs file truncated or punched): every
    /// mapping of it loses them.
    pub fn dropped(&self, key: ObjectKey, pages: Range<u64>) {
        if !pages.is_empty() {
            self.push(Zap { key, pages, frames: None });
        }
    }

    /// Records what `MADV_REMOVE` punched in the running process
    /// ([`guest_mm::AddressSpace::take_punches`]): every other process's
    /// mappings of each object lose the pages too (the caller's own lost
    /// them in the call).
    pub fn punched(&self, punches: Vec<(ObjectKey, Punched)>) {
        for (key, p) in punches {
            if !p.pages.is_empty() {
                self.push(Zap { key, pages: p.pages, frames: p.frames });
            }
        }
    }
}

/// Clears the recorded ranges from every process's mappings, the
/// running one's and those set aside (Linux's `unmap_mapping_range`
/// reaches every mm that maps the file); a fatal message if a shootdown
/// after it failed.
pub fn apply(hv: &HostedKernel, vcpu: u8, linux: &super::process::Linux) -> Option<String> {
    let pending = linux.file_zaps().take();
    if pending.is_empty() {
        return None;
    }
    // Every range is cleared even after one fails, and what was cleared
    // is always flushed (a cleared entry may have released its frame).
    let clear = |space: &mut guest_mm::AddressSpace<GuestMem>, whose: &str| -> guest_mm::FlushSet {
        let mut flush = guest_mm::FlushSet::default();
        for z in &pending {
            let cows = z.frames.as_ref().map_or(Cows::Even, Cows::Keep);
            match space.unmap_object_range(z.key, z.pages.clone(), cows) {
                Ok(f) => flush.merge(f),
                Err(e) => log::error!("linux: clearing a file's pages from {whose} mappings failed: {e}"),
            }
        }
        flush.merge(space.take_deferred_flush());
        flush
    };
    let done = hv.space_op(vcpu, |m| Ok(((), clear(m.space_mut(), "the running process's"))));
    // The other processes' spaces: no vCPU runs them, but the backend may
    // keep translations of their tables, so what was cleared is shot down.
    let mut others = guest_mm::FlushSet::default();
    for (pid, sh) in linux.aside().iter_mut() {
        others.merge(clear(&mut sh.space, &format!("process {pid}'s")));
    }
    done.fatal.or_else(|| hv.shoot_down_other(vcpu, others))
}

/// A file's bytes in guest RAM.
pub struct GuestFile {
    obj: ShmemObject<GuestMem>,
    zaps: Zaps,
}

/// The file layer's errno for a guest-mm error of a store.
fn errno(e: MmError) -> Errno {
    match e.errno() {
        0 => EINVAL,
        n => Errno(n),
    }
}

impl FileStore for GuestFile {
    fn size(&self) -> u64 {
        self.obj.len()
    }

    fn pages(&self) -> u64 {
        self.obj.resident_pages()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let n = usize::try_from(self.obj.len().saturating_sub(offset)).unwrap_or(usize::MAX).min(len);
        let mut buf = vec![0u8; n];
        let got = self.obj.read_at(offset, &mut buf).map_err(errno)?;
        buf.truncate(got);
        Ok(buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let data = &data[..data.len().min((MAX_FILE_SIZE - offset) as usize)];
        match self.obj.write_at(offset, data) {
            Ok(n) => Ok(n),
            Err(MmError::QuotaFull(_)) => Err(ENOSPC),
            Err(e) => Err(errno(e)),
        }
    }

    fn truncate(&mut self, size: u64) -> Result<(), Errno> {
        let old = self.obj.len();
        self.obj.set_len(size).map_err(errno)?;
        if size < old {
            self.zaps.truncated(&self.obj, size);
        }
        Ok(())
    }

    fn allocate(&mut self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno> {
        self.obj.allocate(offset, len, keep_size).map_err(|e| match e {
            MmError::Overflow { .. } => EFBIG,
            e => errno(e),
        })
    }

    fn punch_hole(&mut self, offset: u64, len: u64) -> Result<(), Errno> {
        // The whole range, past the size too (pages allocated with
        // `KEEP_SIZE`), as Linux's `shmem_truncate_range`.
        if len == 0 {
            return Ok(());
        }
        self.zaps.punch(&self.obj, offset, len).map_err(errno)
    }

    fn seek_data(&self, offset: u64) -> Result<u64, Errno> {
        self.obj.seek_data(offset).ok_or(ENXIO)
    }

    fn seek_hole(&self, offset: u64) -> Result<u64, Errno> {
        self.obj.seek_hole(offset).ok_or(ENXIO)
    }

    /// The object goes with its last holder: this store, or the last
    /// mapping of it (its pages stay charged until then, as Linux keeps
    /// an unlinked file's pages while it is mapped).
    fn release(&mut self) {}

    fn mappable(&self) -> Option<Box<dyn Any + Send>> {
        Some(Box::new(self.obj.clone()))
    }
}

/// The factory the kind sets on its file tree: new files in guest RAM
/// (pages from `frames`' pool, through `mem`), charging `quota`, their
/// truncations recorded in `zaps`.
pub fn factory(frames: guest_mm::Frames, mem: GuestMem, quota: ShmemQuota, zaps: Zaps) -> StoreFactory {
    Arc::new(move |name: &[u8]| {
        let label = format!("tmpfs:{}", String::from_utf8_lossy(name));
        let obj = ShmemObject::with_quota(&label, frames.clone(), mem.clone(), 0, quota.clone()).map_err(errno)?;
        Ok(Box::new(GuestFile { obj, zaps: zaps.clone() }) as Box<dyn FileStore>)
    })
}
