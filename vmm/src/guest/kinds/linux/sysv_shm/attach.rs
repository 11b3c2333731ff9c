//! A segment's pages ([`Backing`], the seam where hugetlb backing is
//! chosen) and what `shmat` maps ([`Attach`]): the backing's own VMA
//! operations, wrapped so that every VMA of an attach counts in the
//! segment's `shm_nattch` (`shm_open` on `mapped`/`open`, `shm_close` on
//! `close`), and the last detach of a removed segment destroys it.
//!
//! Each attach tags its VMAs with an [`AttachTag`] (the VMA's private
//! state): `shmdt` finds the VMAs of one attach by it, as Linux compares
//! `vm_file`, and `/proc/self/maps` names them `/SYSV%08x (deleted)` by
//! the provider name. Nothing here checks permissions or places the
//! mapping: `super::table` and the `shmat` handler do.

use std::sync::{Arc, Mutex};

use guest_mm::providers::{HugetlbPool, HugetlbShm, ShmemObject, HUGE_PAGE_SIZE};
use guest_mm::{
    FaultAccess, FaultInfo, FaultPage, GuestVirtAddr, MmError, MmapProvider, ObjectKey, Punched, VmFlags, Vma, VmaDesc,
    VmaOps,
};

use super::table::{ShmId, ShmTable};
use crate::memory::GuestMem;

/// The pages of a segment.
#[derive(Clone)]
pub enum Backing {
    /// 4 KiB pages from the page pool (a shmem object of the segment's
    /// size).
    Small(ShmemObject<GuestMem>),
    /// 2 MiB pages from the hugetlb pool (`SHM_HUGETLB`).
    Huge(HugetlbShm<GuestMem>),
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::Small(o) => write!(f, "Small({} bytes)", o.len()),
            Backing::Huge(o) => write!(f, "Huge({} bytes)", o.len()),
        }
    }
}

/// The hugetlb backing of a `SHM_HUGETLB` segment of `size` bytes (the
/// seam: another hugetlb object, e.g. a hugetlbfs memfd's, can stand in
/// here). The size is rounded up to 2 MiB; the pages are reserved now
/// unless `noreserve` (`ENOMEM` when the pool cannot promise them).
pub fn huge_backing(pool: &HugetlbPool<GuestMem>, name: &str, size: u64, noreserve: bool) -> Result<Backing, i32> {
    let size = size.checked_next_multiple_of(HUGE_PAGE_SIZE).ok_or(libc::ENOMEM)?;
    pool.shm_object(name, size, noreserve).map(Backing::Huge).map_err(|e| e.errno())
}

impl Backing {
    /// The provider whose `mmap_prepare` sets the VMA up.
    fn provider(&self) -> &dyn MmapProvider {
        match self {
            Backing::Small(o) => o,
            Backing::Huge(o) => o,
        }
    }

    fn vma_ops(&self) -> Arc<dyn VmaOps> {
        match self {
            Backing::Small(o) => o.vma_ops(),
            Backing::Huge(o) => o.vma_ops(),
        }
    }

    /// The size of the segment's file: what `shmat` maps (the size asked
    /// for, or rounded up to 2 MiB for huge pages).
    pub fn file_size(&self) -> u64 {
        match self {
            Backing::Small(o) => o.len(),
            Backing::Huge(o) => o.len(),
        }
    }

    /// Bytes of memory the segment holds now.
    pub fn resident_bytes(&self) -> u64 {
        match self {
            Backing::Small(o) => o.resident_pages() * guest_mm::PAGE_SIZE,
            Backing::Huge(o) => o.resident_pages() * HUGE_PAGE_SIZE,
        }
    }

    /// Made with huge pages.
    pub fn is_huge(&self) -> bool {
        matches!(self, Backing::Huge(_))
    }
}

/// The table the hooks update (shared with the process).
pub type SharedTable = Arc<Mutex<ShmTable<Backing>>>;

/// The private state of every VMA of one attach.
#[derive(Debug)]
pub struct AttachTag {
    /// The segment.
    pub id: ShmId,
    /// Its file size (`shmdt` unmaps no further than this).
    pub file_size: u64,
}

/// The attach's tag on `vma`, if it is a VMA of an attached segment.
pub fn tag_of(vma: &Vma) -> Option<&AttachTag> {
    vma.private().and_then(|p| p.downcast_ref::<AttachTag>())
}

/// The seconds since the epoch (the table's times).
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The operations of an attach's VMAs: the backing's, and the attach
/// count.
struct AttachOps {
    inner: Arc<dyn VmaOps>,
    id: ShmId,
    table: SharedTable,
    pid: i32,
}

impl AttachOps {
    fn opened(&self) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).vma_opened(self.id, self.pid, now());
    }
}

impl VmaOps for AttachOps {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fault(&self, vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        self.inner.fault(vma, vmf)
    }

    fn map_pages(&self, vma: &Vma, first: u64, nr: u64, access: FaultAccess) -> Vec<Option<FaultPage>> {
        self.inner.map_pages(vma, first, nr, access)
    }

    fn mapped(&self, vma: &Vma) {
        self.inner.mapped(vma);
        self.opened();
    }

    fn open(&self, vma: &Vma) {
        self.inner.open(vma);
        self.opened();
    }

    fn close(&self, vma: &Vma) {
        self.inner.close(vma);
        let gone = self.table.lock().unwrap_or_else(|e| e.into_inner()).vma_closed(self.id, self.pid, now());
        // A destroyed segment's backing is dropped here, outside the
        // table's lock; its pages go when the VMAs holding them do.
        drop(gone);
    }

    fn mremap(&self, vma: &Vma, new_start: GuestVirtAddr, new_len: u64) -> Result<(), MmError> {
        self.inner.mremap(vma, new_start, new_len)
    }

    fn is_anonymous(&self) -> bool {
        self.inner.is_anonymous()
    }

    fn pagesize(&self, vma: &Vma) -> u64 {
        self.inner.pagesize(vma)
    }

    /// The segment's object: every attach, in every process, and the
    /// object's other mappings are found by it.
    fn object_key(&self) -> Option<ObjectKey> {
        self.inner.object_key()
    }

    fn cached_pages(&self, first: u64, end: u64) -> Vec<u64> {
        self.inner.cached_pages(first, end)
    }

    /// `MADV_REMOVE` punches the segment (Linux's `shm_fallocate`).
    fn remove(&self, vma: &Vma, offset: u64, len: u64) -> Result<Option<Punched>, MmError> {
        self.inner.remove(vma, offset, len)
    }
}

/// One `shmat`: maps the segment's backing under the name
/// `SYSV%08x` (its key at creation).
pub struct Attach {
    name: String,
    backing: Backing,
    ops: Arc<AttachOps>,
    tag: Arc<AttachTag>,
    read_only: bool,
}

impl Attach {
    /// An attach of segment `id` (made with key `file_key`) backed by
    /// `backing`, counted in `table`, by process `pid`; `read_only`
    /// (`SHM_RDONLY`) maps it without `VM_MAYWRITE`.
    pub fn new(id: ShmId, file_key: i32, backing: Backing, table: SharedTable, pid: i32, read_only: bool) -> Self {
        let ops = Arc::new(AttachOps { inner: backing.vma_ops(), id, table, pid });
        let tag = Arc::new(AttachTag { id, file_size: backing.file_size() });
        Attach { name: format!("SYSV{:08x}", file_key as u32), backing, ops, tag, read_only }
    }
}

impl MmapProvider for Attach {
    fn name(&self) -> &str {
        &self.name
    }

    fn align(&self) -> u64 {
        self.backing.provider().align()
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        self.backing.provider().mmap_prepare(desc)?;
        if self.read_only {
            desc.clear_flags(VmFlags::MAYWRITE);
        }
        desc.set_ops(self.ops.clone());
        desc.set_private(self.tag.clone());
        Ok(())
    }
}
