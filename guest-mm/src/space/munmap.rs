//! munmap: clear the entries, free emptied tables, drop map counts, and
//! split or remove the VMAs.

use vm_memory::GuestMemoryBackend;

use super::{checked_len, checked_range, vma_life, AddressSpace};
use crate::addr::GuestVirtAddr;
use crate::error::MmError;
use crate::paging::FlushSet;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Unmaps `[addr, addr + len)`. Unmapped parts are skipped, as in
    /// Linux. On error (`ENOMEM` for a huge-leaf split) nothing changed.
    pub fn munmap(&mut self, addr: GuestVirtAddr, len: u64) -> Result<FlushSet, MmError> {
        let len = checked_len(len)?;
        let end = checked_range(addr, len)?;
        if !self.vmas.intersects(addr.raw(), end) {
            return Ok(FlushSet::default());
        }
        let mut released = Vec::new();
        let un = {
            let mut fs = self.frames.lock();
            let un = self.pt.unmap_range(addr, len, &mut fs.counts, &mut released)?;
            fs.release(&released);
            un
        };
        // Dropped outside the frame lock: private state may own pool pages.
        let gone = self.take_vmas(addr.raw(), end);
        vma_life::close_all(gone);
        Ok(un.flush)
    }
}
