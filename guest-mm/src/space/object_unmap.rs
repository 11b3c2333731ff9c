//! `unmap_mapping_range` for objects mapped by several VMAs: when an
//! object frees pages (a hugetlbfs hole punch, a truncate, `MADV_REMOVE`),
//! every VMA mapping those pages loses its entries, and with them its
//! faulted runs, so the frames can go back to their pool.
//!
//! What private VMAs lose is the caller's choice ([`Cows`]): with
//! [`Cows::Even`] their private copies in the range too (hugetlbfs's
//! `hugetlb_vmdelete_list`, a truncation's `even_cows`; `hugetlb-madvise`
//! checks it), with [`Cows::Keep`] only the entries still mapping one of
//! the object's freed frames (a shmem hole punch). The VMAs stay; their
//! pages refault from the object. Nothing here knows what the object is:
//! VMAs are matched by [`VmaOps::object_key`].

use std::ops::Range;

use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, Cows};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;
use crate::vma::ObjectKey;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Clears, in every VMA whose ops have `object_key() == Some(key)`,
    /// the entries mapping the object's pages `pages` (4 KiB page
    /// offsets), rounded inwards to each VMA's page size (so a huge leaf
    /// is cleared whole or not at all); `cows` says what private VMAs
    /// lose. Returns the entries to flush; on an error the entries already
    /// cleared are in the deferred flush.
    pub fn unmap_object_range(
        &mut self,
        key: ObjectKey,
        pages: Range<u64>,
        cows: Cows<'_>,
    ) -> Result<FlushSet, MmError> {
        let mut parts = Vec::new();
        for v in self.vmas.iter() {
            let Some(ops) = v.ops().filter(|o| o.object_key() == Some(key)) else { continue };
            let first = v.pgoff().max(pages.start);
            let end = (v.pgoff() + v.pages()).min(pages.end);
            if first >= end {
                continue;
            }
            let size = ops.pagesize(v).max(PAGE_SIZE);
            let s = (v.start().raw() + ((first - v.pgoff()) << PAGE_SHIFT)).next_multiple_of(size);
            let e = v.start().raw() + ((end - v.pgoff()) << PAGE_SHIFT);
            let e = e - e % size;
            if s < e {
                parts.push((s, e, v.flags().contains(VmFlags::MAYSHARE)));
            }
        }
        let mut flush = FlushSet::default();
        for (s, e, shared) in parts {
            let done = match cows {
                Cows::Keep(frames) if !shared => self.clear_file_frames(s, e, frames, &mut flush),
                _ => self.drop_pages(s, e, &mut flush),
            };
            if let Err(err) = done {
                self.deferred.merge(flush);
                return Err(err);
            }
        }
        Ok(flush)
    }
}
