//! The operations a provider attaches to its VMAs (`vm_operations_struct`)
//! and what the fault path passes to them.
//!
//! A provider sets them in `mmap_prepare` with `VmaDesc::set_ops` (the
//! descriptor's write-only `vm_ops`); the address space calls them at the
//! points Linux does:
//!
//! - [`VmaOps::fault`]: the guest touched an absent page of the VMA (or
//!   wrote a copy-on-write page); return the frame to map, or refuse;
//! - [`VmaOps::map_pages`]: fault-around: frames for absent neighbours in
//!   the same leaf table, inserted in the same fault with the batched path;
//! - [`VmaOps::mapped`]: `mmap` made the VMA (called once, when it is
//!   inserted, before the action completes; a later failure closes it);
//! - [`VmaOps::open`]: a VMA was duplicated (a split, a move); every VMA
//!   that exists was announced by `mapped` or `open`;
//! - [`VmaOps::close`]: a VMA goes away (unmap, the part a split or merge
//!   removes, a fixed mapping replacing it, a failed mapping undone). Each
//!   VMA is closed exactly once, so `mapped + opens - closes` is the number
//!   of VMAs carrying the ops;
//! - [`VmaOps::mremap`]: the VMA is about to be moved or resized; may
//!   refuse (resctrl does);
//! - [`VmaOps::dup_for_fork`]: the ops of a fork's child's copy (shared
//!   unless the provider says otherwise);
//! - [`VmaOps::pagesize`]: the granule of the VMA (huge pages);
//! - [`VmaOps::is_anonymous`]: anonymous memory (the seal rules of madvise);
//! - [`VmaOps::object_key`] and [`VmaOps::remove`]: the object behind the
//!   VMA (`vma->vm_file->f_mapping`) and `MADV_REMOVE`'s hole punch in it.
//!
//! Every method but [`VmaOps::name`] has the default Linux has when the
//! provider leaves it `NULL`. Nothing here touches page tables: the
//! address space maps what the ops return.

use std::any::Any;
use std::sync::Arc;

use crate::addr::{GuestVirtAddr, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::vma::Vma;

/// What the guest did when it faulted (`struct vm_fault` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultAccess {
    /// A write (`FAULT_FLAG_WRITE`).
    pub write: bool,
    /// An instruction fetch.
    pub exec: bool,
}

impl FaultAccess {
    /// A read.
    pub const READ: FaultAccess = FaultAccess { write: false, exec: false };
    /// A write.
    pub const WRITE: FaultAccess = FaultAccess { write: true, exec: false };
}

/// One fault, as the ops see it (`struct vm_fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// The faulting page (page aligned).
    pub addr: GuestVirtAddr,
    /// Its offset, in pages, into what the provider maps
    /// (`vma.pgoff + (addr - vma.start) / 4 KiB`).
    pub pgoff: u64,
    /// The access.
    pub access: FaultAccess,
    /// The frame mapped there now, when the fault is a write to a
    /// copy-on-write page (`vmf->page` in `do_wp_page`); `None` for an
    /// absent page.
    pub cow_from: Option<Pfn>,
}

/// The page a fault maps (`vmf->page` plus how to map it).
#[derive(Clone)]
pub struct FaultPage {
    /// The frame.
    pub pfn: Pfn,
    /// Map it read-only even in a writable VMA and keep it so through
    /// mprotect: a later write faults again and [`VmaOps::fault`] is
    /// asked for a private copy (the shared zero page).
    pub copy_on_write: bool,
    /// Keeps a freshly allocated frame alive until the mapping holds its
    /// own count (a [`crate::PoolPages`]); dropped after the fault, so a
    /// frame the fault could not map returns to the pool.
    pub hold: Option<Arc<dyn Any + Send + Sync>>,
}

impl FaultPage {
    /// `pfn`, mapped as the VMA's protection allows.
    pub fn new(pfn: Pfn) -> Self {
        FaultPage { pfn, copy_on_write: false, hold: None }
    }
}

impl std::fmt::Debug for FaultPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPage").field("pfn", &self.pfn).field("copy_on_write", &self.copy_on_write).finish()
    }
}

/// Operations attached to VMAs (`vm_operations_struct`).
pub trait VmaOps: Send + Sync {
    /// A name for reports (`/proc/self/maps`-style listings).
    fn name(&self) -> &str;

    /// Fills one page (`vm_ops->fault`; for a write to a copy-on-write
    /// page, `do_wp_page`'s copy). The default, like a VMA without a
    /// `fault` handler, refuses (`SIGBUS`).
    fn fault(&self, _vma: &Vma, _vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        Err(MmError::NotSupported("no fault handler"))
    }

    /// Fault-around (`vm_ops->map_pages`): frames for the pages
    /// `first_pgoff..first_pgoff + nr` of the VMA that are absent now, in
    /// order; `None` for a page the provider cannot give without work (it
    /// stays absent). `access` is the faulting access. The default maps
    /// nothing around.
    fn map_pages(&self, _vma: &Vma, _first_pgoff: u64, _nr: u64, _access: FaultAccess) -> Vec<Option<FaultPage>> {
        Vec::new()
    }

    /// `mmap` made `vma` (Linux's drivers take this reference in their
    /// `mmap`; with `mmap_prepare` there is no live VMA to count yet, and
    /// a success hook would run too late to cover a failed complete, which
    /// still closes the VMA).
    fn mapped(&self, _vma: &Vma) {}

    /// A copy of a VMA came into being (`vm_ops->open`): a split made
    /// `vma` out of a larger one, or a move made it.
    fn open(&self, _vma: &Vma) {}

    /// `vma` goes away (`vm_ops->close`).
    fn close(&self, _vma: &Vma) {}

    /// `vma` is about to move to `new_start` or change its size to
    /// `new_len` (`vm_ops->mremap`); an error refuses the mremap before
    /// anything changes.
    fn mremap(&self, _vma: &Vma, _new_start: GuestVirtAddr, _new_len: u64) -> Result<(), MmError> {
        Ok(())
    }

    /// Whether the VMA is anonymous memory (Linux's `vma_is_anonymous`: no
    /// file behind it: a discard turns its pages into zero pages).
    /// `MADV_FREE` and `MADV_WIPEONFORK` need it, `MADV_REMOVE` refuses
    /// it, and the seal rules of `madvise` ask it. False by default.
    fn is_anonymous(&self) -> bool {
        false
    }

    /// The ops a fork's child's copy of `vma` gets; `None` (the default)
    /// shares these. A provider whose state must not follow a copy into
    /// another process answers fresh ops (Linux's `hugetlb_dup_vma_private`:
    /// the child's copy of a private hugetlb VMA has no reservations).
    fn dup_for_fork(&self, _vma: &Vma) -> Option<Arc<dyn VmaOps>> {
        None
    }

    /// The page size of the VMA (`vm_ops->pagesize`); 4 KiB by default.
    fn pagesize(&self, _vma: &Vma) -> u64 {
        PAGE_SIZE
    }

    /// Which object the VMA maps (`vma->vm_file->f_mapping`), as a key
    /// equal for every VMA of the same object, so that
    /// `AddressSpace::unmap_object_range` finds them all (Linux's
    /// `unmap_mapping_range`). `None` (the default): no such object.
    fn object_key(&self) -> Option<ObjectKey> {
        None
    }

    /// The page offsets in `[first, end)` (4 KiB units) the object behind
    /// the VMA holds, mapped or not (Linux's page cache of the file, which
    /// `mincore` consults for a page no entry maps). Empty (the default):
    /// no such object, and `mincore` reports what is mapped only.
    fn cached_pages(&self, _first: u64, _end: u64) -> Vec<u64> {
        Vec::new()
    }

    /// `MADV_REMOVE` on `vma` (`vfs_fallocate(PUNCH_HOLE | KEEP_SIZE)` of
    /// the object behind it): punch the bytes `[offset, offset + len)` of
    /// the object. `Ok(Some(punched))` when the object freed pages: the
    /// address space then clears them from every VMA of
    /// [`VmaOps::object_key`] as [`Punched`] says. `Ok(None)` (the
    /// default): the object punches nothing; only this VMA's entries of
    /// the range are dropped.
    fn remove(&self, _vma: &Vma, _offset: u64, _len: u64) -> Result<Option<Punched>, MmError> {
        Ok(None)
    }
}

/// What an object's hole punch freed ([`VmaOps::remove`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punched {
    /// The object's pages freed (page offsets, 4 KiB units).
    pub pages: std::ops::Range<u64>,
    /// `None`: private mappings lose their copies of those pages too
    /// (hugetlbfs's `hugetlb_vmdelete_list`). `Some(frames)`: the frames
    /// the object held there before the punch; private mappings lose only
    /// the entries still mapping one of them and keep their copies (shmem:
    /// Linux's `unmap_mapping_range` without `even_cows`).
    pub frames: Option<std::collections::BTreeSet<Pfn>>,
}

impl Punched {
    /// What clearing the pages does to private copies.
    pub fn cows(&self) -> crate::space::Cows<'_> {
        self.frames.as_ref().map_or(crate::space::Cows::Even, crate::space::Cows::Keep)
    }
}

/// The identity of an object mapped by VMAs ([`VmaOps::object_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(pub usize);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::flags::VmFlags;

    struct Bare;
    impl VmaOps for Bare {
        fn name(&self) -> &str {
            "bare"
        }
    }

    #[test]
    fn the_defaults_are_those_of_a_vma_without_handlers() {
        let v = Vma::bare(0x1000, 0x3000, 0, VmFlags::READ);
        let vmf = FaultInfo { addr: v.start(), pgoff: 0, access: FaultAccess::READ, cow_from: None };
        // No fault handler: SIGBUS.
        assert!(matches!(Bare.fault(&v, &vmf), Err(MmError::NotSupported(_))));
        // No fault-around.
        assert!(Bare.map_pages(&v, 0, 2, FaultAccess::WRITE).is_empty());
        // Any move or resize is allowed; pages are 4 KiB.
        assert_eq!(Bare.mremap(&v, GuestVirtAddr::try_new(0x8000).unwrap(), 0x1000), Ok(()));
        assert_eq!(Bare.pagesize(&v), PAGE_SIZE);
        // A fork's child shares the ops.
        assert!(Bare.dup_for_fork(&v).is_none());
        // Not anonymous memory unless the ops say so.
        assert!(!Bare.is_anonymous());
        let p = FaultPage::new(Pfn(5));
        assert_eq!((p.pfn, p.copy_on_write, p.hold.is_none()), (Pfn(5), false, true));
        assert!(format!("{p:?}").contains("copy_on_write"));
    }
}
