//! Linux's `unmap_mapping_range`: when a file shrinks or has a hole
//! punched in it, the entries that map the dropped part of the file are
//! cleared from every VMA mapping that file, so the next access faults
//! and sees the file as it is now (a page again, or `SIGBUS` past the
//! end). The VMAs stay; only entries go.
//!
//! A VMA maps the file when it carries the file's [`VmaOps`] (the same
//! object, compared by address). A private VMA also holds its own
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
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
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
    /// the file) in every VMA carrying `ops`; `cows` says what happens to
    /// private copies. Returns the entries to flush. Locked VMAs are
    /// cleared too, as Linux clears them (they refault on next touch).
    pub fn unmap_mapping_range(
        &mut self,
        ops: &Arc<dyn VmaOps>,
        first: u64,
        end: u64,
        cows: Cows<'_>,
    ) -> Result<FlushSet, MmError> {
        let mut flush = FlushSet::default();
        if first >= end {
            return Ok(flush);
        }
        let target = Arc::as_ptr(ops);
        // The address ranges to clear, collected before any change.
        let mut ranges: Vec<(u64, u64, bool)> = Vec::new();
        for vma in self.vmas.iter() {
            let Some(o) = vma.ops() else { continue };
            if !std::ptr::addr_eq(Arc::as_ptr(o), target) {
                continue;
            }
            let pages = (vma.end() - vma.start().raw()) >> PAGE_SHIFT;
            let (lo, hi) = (vma.pgoff().max(first), vma.pgoff().saturating_add(pages).min(end));
            if lo >= hi {
                continue;
            }
            let s = vma.start().raw() + ((lo - vma.pgoff()) << PAGE_SHIFT);
            let e = s + ((hi - lo) << PAGE_SHIFT);
            let every = vma.flags().contains(VmFlags::MAYSHARE) || matches!(cows, Cows::Even);
            ranges.push((s, e, every));
        }
        let result = ranges.into_iter().try_for_each(|(s, e, every)| match (every, cows) {
            (false, Cows::Keep(frames)) => self.clear_file_frames(s, e, frames, &mut flush),
            _ => self.clear_entries(s, e, &mut flush),
        });
        match result {
            Ok(()) => Ok(flush),
            Err(e) => {
                self.deferred.merge(flush);
                Err(e)
            }
        }
    }

    /// Clears `[s, e)` and lets go of the faulted runs' pins there.
    fn clear_entries(&mut self, s: u64, e: u64, flush: &mut FlushSet) -> Result<(), MmError> {
        let un = self.pt.unmap_range(GuestVirtAddr::try_new(s)?, e - s)?;
        flush.merge(un.flush);
        drop(self.page_pins.take(s, e));
        Ok(())
    }

    /// Clears the pages of `[s, e)` whose entry maps one of `frames`,
    /// each on its own (they are few: pages both mapped privately and
    /// not yet copied). Only the leaves present in the tables are looked
    /// at, so the work follows what is mapped, not the range's size (a
    /// sparse object mapped over terabytes costs what its few pages
    /// cost). PROT_NONE leaves are cleared too: they still hold their
    /// frame, which the punch is about to free.
    fn clear_file_frames(
        &mut self,
        s: u64,
        e: u64,
        frames: &BTreeSet<Pfn>,
        flush: &mut FlushSet,
    ) -> Result<(), MmError> {
        let (Some(&lo), Some(&hi)) = (frames.first(), frames.last()) else { return Ok(()) };
        let mut doomed = Vec::new();
        for leaf in self.pt.leaves(GuestVirtAddr::try_new(s)?, e - s) {
            let base = leaf.frame().0;
            let pages = leaf.size.bytes() >> PAGE_SHIFT;
            if base.saturating_add(pages) <= lo.0 || base > hi.0 {
                continue;
            }
            // A huge leaf is reported whole: only its pages inside [s, e).
            let first = leaf.va.raw().max(s);
            let end = (leaf.va.raw() + leaf.size.bytes()).min(e);
            let mut va = first;
            while va < end {
                let pfn = Pfn(base + ((va - leaf.va.raw()) >> PAGE_SHIFT));
                if frames.contains(&pfn) {
                    doomed.push(va);
                }
                va += PAGE_SIZE;
            }
        }
        for va in doomed {
            self.clear_entries(va, va + PAGE_SIZE, flush)?;
        }
        Ok(())
    }
}
