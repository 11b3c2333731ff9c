//! madvise: `MADV_DONTNEED` drops the pages of a range (the VMAs stay; a
//! lazy mapping refaults zero pages or the provider's pages) and
//! `MADV_WILLNEED` populates a lazy range now, batched through the VMAs'
//! `map_pages`.
//!
//! Unlike Linux, which applies the advice to the mapped parts and then
//! returns `ENOMEM` for a hole, a range with a hole is refused up front
//! and nothing changes.

use vm_memory::GuestMemoryBackend;

use super::{checked_range, AddressSpace};
use crate::addr::{page_align_up, GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;
use crate::vma::FaultAccess;

/// The advice values this address space implements (Linux numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_WILLNEED` (3): populate now.
    WillNeed,
    /// `MADV_DONTNEED` (4): drop the pages.
    DontNeed,
}

impl Advice {
    /// Linux's number.
    pub fn linux(self) -> u64 {
        match self {
            Advice::WillNeed => 3,
            Advice::DontNeed => 4,
        }
    }

    /// From Linux's number; `EINVAL` for advice not implemented.
    pub fn from_linux(advice: u64) -> Result<Advice, MmError> {
        match advice {
            3 => Ok(Advice::WillNeed),
            4 => Ok(Advice::DontNeed),
            _ => Err(MmError::Invalid("unknown or unsupported madvise advice")),
        }
    }
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Applies `advice` to `[addr, addr + len)`. `EINVAL` for a misaligned
    /// address or (DONTNEED) a `VM_PFNMAP`/`VM_IO`/`VM_HUGETLB` VMA,
    /// `ENOMEM` for a hole, `EPERM` for DONTNEED on sealed read-only
    /// anonymous memory ([`AddressSpace::check_madvise_seal`]); on error
    /// nothing changed. Returns the entries
    /// DONTNEED cleared, to be flushed.
    pub fn madvise(&mut self, addr: GuestVirtAddr, len: u64, advice: Advice) -> Result<FlushSet, MmError> {
        if !addr.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
        }
        if len == 0 {
            return Ok(FlushSet::default());
        }
        let len = page_align_up(len).ok_or(MmError::Overflow { addr: addr.raw(), len })?;
        let end = checked_range(addr, len)?;
        if !self.vmas.covers(addr.raw(), end) {
            return Err(MmError::NotMapped { addr: addr.raw() });
        }
        self.check_madvise_seal(addr, len, advice.linux())?;
        match advice {
            Advice::DontNeed => {
                let special = VmFlags::PFNMAP | VmFlags::IO | VmFlags::HUGETLB;
                if self.vmas.overlapping(addr.raw(), end).any(|v| v.flags().intersects(special)) {
                    return Err(MmError::Invalid("MADV_DONTNEED on a PFNMAP, I/O or huge-page mapping"));
                }
                let un = self.pt.unmap_range(addr, len)?;
                // The entries are gone: the faulted runs of the range let
                // go of their pages (a page-array mapping's frames stay
                // pinned by its VMA, which stays).
                drop(self.page_pins.take(addr.raw(), end));
                Ok(un.flush)
            }
            Advice::WillNeed => {
                self.populate(addr.raw(), end);
                Ok(FlushSet::default())
            }
        }
    }

    /// Populates the absent pages of `[start, end)` in VMAs with ops, one
    /// `map_pages` call and one batched insert per run of absent pages (at
    /// most a leaf table). Best effort, like the advice: what the provider
    /// cannot give stays absent.
    pub(crate) fn populate(&mut self, start: u64, end: u64) {
        let vmas: Vec<_> = self.vmas.overlapping(start, end).filter(|v| v.ops().is_some()).cloned().collect();
        for vma in vmas {
            let Some(ops) = vma.ops().cloned() else { continue };
            let (s, e) = (vma.start().raw().max(start), vma.end().min(end));
            // A private writable mapping is populated for writing (fresh
            // pages), anything else for reading (as `populate_vma_page_range`).
            let write = vma.flags().contains(VmFlags::WRITE) && !vma.flags().contains(VmFlags::SHARED);
            let access = FaultAccess { write, exec: false };
            let Ok(sva) = GuestVirtAddr::try_new(s) else { continue };
            let present: std::collections::BTreeSet<u64> =
                self.pt.leaves(sva, e - s).iter().map(|l| l.va.raw()).collect();
            let mut at = s;
            while at < e {
                // A run of absent pages inside one leaf table.
                if present.contains(&at) {
                    at += PAGE_SIZE;
                    continue;
                }
                let table_end = ((at >> 21) + 1) << 21;
                let mut run_end = at + PAGE_SIZE;
                while run_end < e.min(table_end) && !present.contains(&run_end) {
                    run_end += PAGE_SIZE;
                }
                let first = vma.pgoff() + ((at - vma.start().raw()) >> PAGE_SHIFT);
                let got = ops.map_pages(&vma, first, (run_end - at) >> PAGE_SHIFT, access);
                self.map_offered(&vma, at, &got);
                at = run_end;
            }
        }
    }
}
