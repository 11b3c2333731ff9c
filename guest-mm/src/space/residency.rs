//! Which pages of a range are resident: `mincore` (one byte per page) and
//! the resident-page count of a range (smaps' `Rss`).
//!
//! Resident means a leaf maps the page (present, or PROT_NONE, which
//! still holds its frame, as `pte_present` says on x86), or, for `mincore`
//! of a VMA whose object holds pages ([`crate::VmaOps::cached_pages`]: a
//! shmem file, memfd or SysV segment), the object holds the page, mapped
//! here or not (Linux asks the page cache for a page no entry maps, in
//! shared and private file mappings alike). There is no swap, so any
//! other absent entry is a page that is not resident. The `Rss` count
//! reads the page tables only.

use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, USER_END};
use crate::addr::{GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `mincore`: one byte per page of `[addr, addr + len)` (`len` rounded
    /// up to pages), bit 0 set when the page is resident. `EINVAL` for a
    /// misaligned `addr`, `ENOMEM` when part of the range is not mapped or
    /// lies outside the user half. The caller bounds `len` (the vector has
    /// one byte per page).
    pub fn mincore(&self, addr: GuestVirtAddr, len: u64) -> Result<Vec<u8>, MmError> {
        if !addr.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
        }
        let pages = (len >> PAGE_SHIFT) + u64::from(len % PAGE_SIZE != 0);
        if pages == 0 {
            return Ok(Vec::new());
        }
        let start = addr.raw();
        // `access_ok` fails with `ENOMEM` for a range leaving user space.
        let end = match pages.checked_mul(PAGE_SIZE).and_then(|b| b.checked_add(start)) {
            Some(end) if end <= USER_END => end,
            _ => return Err(MmError::NotMapped { addr: start.max(USER_END) }),
        };
        let (_, hole) = self.mapped_parts(start, end);
        if let Some(hole) = hole {
            return Err(MmError::NotMapped { addr: hole });
        }
        let n = usize::try_from(pages).map_err(|_| MmError::Overflow { addr: start, len })?;
        let mut out = vec![0u8; n];
        for leaf in self.pt.leaves(addr, end - start) {
            let (ls, le) = (leaf.va.raw().max(start), (leaf.va.raw() + leaf.size.bytes()).min(end));
            let (first, last) = ((ls - start) >> PAGE_SHIFT, (le - start) >> PAGE_SHIFT);
            for b in out.iter_mut().take(last as usize).skip(first as usize) {
                *b = 1;
            }
        }
        // What the objects behind the range's VMAs hold (one lookup per
        // VMA, bounded by the pages asked for).
        for v in self.vmas.overlapping(start, end) {
            let Some(ops) = v.ops() else { continue };
            let (vs, ve) = (v.start().raw(), v.end());
            let first = v.pgoff().saturating_add((start.max(vs) - vs) >> PAGE_SHIFT);
            let last = v.pgoff().saturating_add((end.min(ve) - vs) >> PAGE_SHIFT);
            for pg in ops.cached_pages(first, last) {
                let at = vs + ((pg - v.pgoff()) << PAGE_SHIFT);
                if let Some(b) = usize::try_from((at - start) >> PAGE_SHIFT).ok().and_then(|i| out.get_mut(i)) {
                    *b = 1;
                }
            }
        }
        Ok(out)
    }

    /// The resident 4 KiB pages of `[addr, addr + len)`, counted by walking
    /// the page tables (only the tables that exist: a huge sparse VMA
    /// costs what is mapped in it).
    pub fn resident_pages(&self, addr: GuestVirtAddr, len: u64) -> u64 {
        self.pt.resident_pages(addr, len)
    }
}
