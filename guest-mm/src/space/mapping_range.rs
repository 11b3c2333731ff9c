//! Linux's `unmap_mapping_range`: when a file shrinks or has a hole
//! punched in it, the entries that map the dropped part of the file are
//! cleared from every VMA mapping that file, so the next access faults
//! and sees the file as it is now (a page again, or `SIGBUS` past the
//! end). The VMAs stay; only entries go.
//!
//! A VMA maps the file when its [`VmaOps`] report the file's
//! [`VmaOps::object_key`] (the clearing is
//! [`AddressSpace::unmap_object_range`]'s). A private VMA also holds its own
//! copy-on-write copies: a truncation drops them too (`even_cows`, as
//! `truncate_pagecache` asks), a hole punch keeps them and clears only
//! entries that still map one of the file's frames.
//!
//! Not here: finding VMAs through a reverse map (every VMA is looked at
//! once: `O(VMAs)` per call), other address spaces (the caller calls this
//! for each).

use std::collections::BTreeSet;
use std::sync::Arc;

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SHIFT};
use crate::error::MmError;
use crate::paging::FlushSet;
use crate::vma::VmaOps;

/// What [`AddressSpace::unmap_mapping_range`] clears in private VMAs.
#[derive(Debug, Clone, Copy)]
pub enum Cows<'a> {
    /// Every entry, copies included (a truncation).
    Even,
    /// Only entries mapping one of these frames (the file's own pages in
    /// the range, before a hole punch dropped them).
    Keep(&'a BTreeSet<Pfn>),
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Clears the entries of file pages `[first, end)` (page offsets into
    /// the file) in every VMA mapping the object behind `ops` (the same
    /// [`VmaOps::object_key`]; none when it has no key); `cows` says what
    /// happens to private copies. Returns the entries to flush. Locked VMAs are
    /// cleared too, as Linux clears them (they refault on next touch).
    pub fn unmap_mapping_range(
        &mut self,
        ops: &Arc<dyn VmaOps>,
        first: u64,
        end: u64,
        cows: Cows<'_>,
    ) -> Result<FlushSet, MmError> {
        match ops.object_key() {
            Some(key) if first < end => self.unmap_object_range(key, first..end, cows),
            _ => Ok(FlushSet::default()),
        }
    }

    /// Clears the leaves of `[s, e)` that map one of `frames` (they are
    /// few: pages both mapped privately and not yet copied). Only the
    /// leaves present in the tables are looked at, so the work follows
    /// what is mapped, not the range's size (a sparse object mapped over
    /// terabytes costs what its few pages cost). PROT_NONE leaves are
    /// cleared too: they still hold their frame, which the punch is about
    /// to free. A huge leaf holding one of the frames goes whole (its
    /// part inside the range): an object's pages are 4 KiB leaves today,
    /// and a private copy never holds an object's frame.
    pub(super) fn clear_file_frames(
        &mut self,
        s: u64,
        e: u64,
        frames: &BTreeSet<Pfn>,
        flush: &mut FlushSet,
    ) -> Result<(), MmError> {
        let mut doomed = Vec::new();
        for leaf in self.pt.leaves(GuestVirtAddr::try_new(s)?, e - s) {
            let base = leaf.frame().0;
            let pages = leaf.size.bytes() >> PAGE_SHIFT;
            if frames.range(Pfn(base)..Pfn(base + pages)).next().is_some() {
                doomed.push((leaf.va.raw().max(s), (leaf.va.raw() + leaf.size.bytes()).min(e)));
            }
        }
        for (a, b) in doomed {
            self.drop_pages(a, b, flush)?;
        }
        Ok(())
    }
}
