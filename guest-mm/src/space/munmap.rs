//! munmap: clear the entries, free emptied tables, and split or remove
//! the VMAs (a removed VMA drops its hold on the page arrays it mapped).
//! A VMA of huge pages (its ops' `pagesize`) is split only on a boundary
//! of its pages, as hugetlbfs's `may_split` allows (`EINVAL` otherwise).

use vm_memory::GuestMemoryBackend;

use super::{checked_len, checked_range, vma_life, AddressSpace};
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::paging::FlushSet;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Unmaps `[addr, addr + len)`. Unmapped parts are skipped, as in
    /// Linux. On error (`EPERM` if any of it is sealed; `ENOMEM` for a
    /// huge-leaf split, or a VMA split past the VMA limit; `EINVAL` for a
    /// split of a huge-page VMA off its pages) nothing changed.
    pub fn munmap(&mut self, addr: GuestVirtAddr, len: u64) -> Result<FlushSet, MmError> {
        let len = checked_len(len)?;
        let end = checked_range(addr, len)?;
        if !self.vmas.intersects(addr.raw(), end) {
            return Ok(FlushSet::default());
        }
        self.check_unsealed(addr.raw(), end)?;
        self.check_huge_split(addr.raw(), end)?;
        // A hole punched into one VMA makes two (Linux: ENOMEM at the limit).
        self.check_map_count(addr.raw(), end, Some(0))?;
        let un = self.pt.unmap_range(addr, len)?;
        // The entries are gone; now the VMAs and the faulted runs may let
        // go of their pins (and private state of its pool pages).
        drop(self.page_pins.take(addr.raw(), end));
        let gone = self.take_vmas(addr.raw(), end);
        vma_life::close_all(gone);
        Ok(un.flush)
    }

    /// Refuses a cut at `addr` or `end` inside a VMA whose pages are
    /// larger than 4 KiB (its ops' `pagesize`), unless it falls on a
    /// boundary of those pages: hugetlbfs's `may_split`, which `munmap`
    /// and `mprotect` both meet through `split_vma`.
    pub(super) fn check_huge_split(&self, addr: u64, end: u64) -> Result<(), MmError> {
        for cut in [addr, end] {
            let Some(vma) = self.vmas.find(cut) else { continue };
            if cut == vma.start().raw() {
                continue;
            }
            let page = vma.ops().map_or(PAGE_SIZE, |o| o.pagesize(vma));
            if cut % page != 0 {
                return Err(MmError::Misaligned { what: "huge-page split", value: cut, align: page });
            }
        }
        Ok(())
    }
}
