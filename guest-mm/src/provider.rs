//! The provider side of the pipeline (`f_op->mmap_prepare`).
//!
//! A provider (guest RAM, the zero pool, a page buffer, a device window)
//! inspects and edits a [`VmaDesc`] and chooses an action. It never sees a
//! live VMA or the page tables.

use crate::addr::PAGE_SIZE;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::vma::ProviderId;

/// Something that can be mapped.
pub trait MmapProvider: Send + Sync {
    /// A short name for reports and VMA listings.
    fn name(&self) -> &str;

    /// Validates the request described by `desc`, adjusts its mutable
    /// fields and sets its action. An error leaves nothing behind.
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError>;

    /// Alignment wanted for addresses chosen by the mapper (the kernel's
    /// `get_unmapped_area` for huge pages). A power of two, at least 4 KiB.
    fn align(&self) -> u64 {
        PAGE_SIZE
    }
}

/// The identity VMAs record so that only VMAs of the same provider merge.
pub fn provider_id(p: &dyn MmapProvider) -> ProviderId {
    ProviderId(p as *const dyn MmapProvider as *const () as usize)
}
