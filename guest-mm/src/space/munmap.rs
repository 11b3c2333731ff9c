//! munmap: clear the entries, free emptied tables, and split or remove
//! the VMAs (a removed VMA drops its hold on the page arrays it mapped).

use vm_memory::GuestMemoryBackend;

use super::{checked_len, checked_range, vma_life, AddressSpace};
use crate::addr::GuestVirtAddr;
use crate::error::MmError;
use crate::paging::FlushSet;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Unmaps `[addr, addr + len)`. Unmapped parts are skipped, as in
    /// Linux. On error (`ENOMEM` for a huge-leaf split, or a VMA split past
    /// the VMA limit) nothing changed.
    pub fn munmap(&mut self, addr: GuestVirtAddr, len: u64) -> Result<FlushSet, MmError> {
        let len = checked_len(len)?;
        let end = checked_range(addr, len)?;
        if !self.vmas.intersects(addr.raw(), end) {
            return Ok(FlushSet::default());
        }
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
}
