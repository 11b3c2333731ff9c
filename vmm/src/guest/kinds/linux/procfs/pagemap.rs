//! `/proc/self/pagemap`: 8 bytes per virtual page of `[0, TASK_SIZE)`,
//! read at any 8-byte-aligned offset, computed by walking the page
//! tables of the range asked for only (the file is 256 GiB; nothing
//! materialises it).
//!
//! Each entry, as Linux 6.12's `pte_to_pagemap_entry` builds it for a
//! process mapped once: bit 63 present (a leaf maps the page, PROT_NONE
//! included, as `pte_present`); bit 61 for a page that is not anonymous
//! (a file page, a memfd or shared anonymous page); bit 56 exclusively
//! mapped (a page of the mapping's own, or one a fork shared that only
//! this process still maps); bits
//! 0-54 the frame number, always 0 here: Linux shows it only to
//! `CAP_SYS_ADMIN`, and a guest-physical frame means nothing to the
//! program; bit 55 (soft-dirty) is never set (no soft-dirty tracking).
//! The shared zero page (a copy-on-write leaf) and `VM_PFNMAP` frames
//! are present only (`vm_normal_page` refuses them). Pages outside every
//! VMA, and absent pages, are 0 (nothing is ever swapped).

use guest_mm::{GuestVirtAddr, VmFlags, Vma, PAGE_SHIFT, PAGE_SIZE};
use thiserror::Error;

use super::region::ProcView;
use super::stats::page_is_anon;

/// Bytes per entry.
pub const PM_ENTRY_BYTES: u64 = 8;
/// The page is present.
pub const PM_PRESENT: u64 = 1 << 63;
/// A file page or shared anonymous page.
pub const PM_FILE: u64 = 1 << 61;
/// The page is mapped exactly once.
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;

/// Why a pagemap read is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PagemapError {
    /// The offset or the length is not a multiple of 8 bytes.
    #[error("pagemap offset {offset:#x} or length {len:#x} is not a multiple of 8")]
    Misaligned {
        /// The file offset.
        offset: u64,
        /// The length.
        len: usize,
    },
}

impl PagemapError {
    /// The errno the guest sees (`EINVAL`).
    pub fn errno(&self) -> i32 {
        libc::EINVAL
    }
}

/// The entry of a present page at `va` of `vma` mapped by `leaf`.
fn entry_bits(view: &ProcView<'_>, vma: &Vma, va: u64, leaf: &guest_mm::Leaf) -> u64 {
    let mut bits = PM_PRESENT;
    if (leaf.is_copy_on_write() && !leaf.is_fork_shared()) || vma.flags().contains(VmFlags::PFNMAP) {
        return bits;
    }
    // A page a fork shared is exclusive once no other process pins it.
    if !leaf.is_fork_shared() || view.space.frames().pin_count(leaf.frame()) <= 1 {
        bits |= PM_MMAP_EXCLUSIVE;
    }
    let dirty = leaf.is_dirty();
    if !page_is_anon(vma, view.backing_at(vma, va), dirty) {
        bits |= PM_FILE;
    }
    bits
}

/// The `len` bytes of `/proc/self/pagemap` at `offset` (fewer past
/// `TASK_SIZE`: the file ends there). The caller bounds `len`; the
/// result holds at most `len` bytes and costs the tables under the
/// range, not its size.
pub fn pagemap_read(view: &ProcView<'_>, offset: u64, len: usize) -> Result<Vec<u8>, PagemapError> {
    if offset % PM_ENTRY_BYTES != 0 || len as u64 % PM_ENTRY_BYTES != 0 {
        return Err(PagemapError::Misaligned { offset, len });
    }
    let task_size = view.task_size.raw();
    let first = offset / PM_ENTRY_BYTES;
    let last_page = task_size >> PAGE_SHIFT;
    if first >= last_page {
        return Ok(Vec::new());
    }
    let pages = (len as u64 / PM_ENTRY_BYTES).min(last_page - first);
    let mut entries = vec![0u64; pages as usize];
    let start = first << PAGE_SHIFT;
    let end = start + (pages << PAGE_SHIFT);
    let Ok(va) = GuestVirtAddr::try_new(start) else { return Ok(Vec::new()) };
    for leaf in view.space.page_tables().leaves(va, end - start) {
        let (ls, le) = (leaf.va.raw().max(start), (leaf.va.raw() + leaf.size.bytes()).min(end));
        let mut vma: Option<&Vma> = None;
        let mut page = ls;
        while page < le {
            if !vma.is_some_and(|v| v.contains(page)) {
                vma = GuestVirtAddr::try_new(page).ok().and_then(|a| view.space.find_vma(a));
            }
            // A page no VMA covers is the VMM's own: 0, as Linux shows
            // addresses outside every VMA.
            if let Some(v) = vma {
                entries[((page - start) / PAGE_SIZE) as usize] = entry_bits(view, v, page, &leaf);
            }
            page += PAGE_SIZE;
        }
    }
    Ok(entries.iter().flat_map(|e| e.to_le_bytes()).collect())
}
