//! Populating ranges ahead of guest accesses, two ways:
//!
//! - [`AddressSpace::populate`] (best effort, `MADV_WILLNEED`): absent
//!   pages of VMAs with ops are filled through `map_pages`, one batched
//!   insert per run; what the provider does not offer stays absent;
//! - [`AddressSpace::fault_in`] (`__get_user_pages` as mlock and
//!   `MADV_POPULATE_(READ|WRITE)` use it): every page of a range goes
//!   through the fault path as a read or write fault would, so a
//!   copy-on-write page is broken by a write, and a page that cannot be
//!   faulted in is an error.
//!
//! Neither checks what a VMA allows: the callers refuse what Linux
//! refuses before faulting in (`check_vma_flags`).

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;
use crate::vma::FaultAccess;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Populates the absent pages of `[start, end)` in VMAs with ops, one
    /// `map_pages` call and one batched insert per run of absent pages (at
    /// most a leaf table). Best effort, like the advice: what the provider
    /// does not offer stays absent. As `__mm_populate`, a `PROT_NONE` VMA
    /// is skipped, and a VMA is left at its first run that cannot be had
    /// (the provider is out of pages, or the tables or pins are): a
    /// terabyte-sized range costs one failed run, not one per leaf table.
    pub(crate) fn populate(&mut self, start: u64, end: u64) {
        let accessible = VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC;
        let vmas: Vec<_> = self
            .vmas
            .overlapping(start, end)
            .filter(|v| v.ops().is_some() && v.flags().intersects(accessible))
            .cloned()
            .collect();
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
                let offered = got.iter().any(Option::is_some);
                // Nothing at all (the provider failed), or pages offered
                // and none mapped (no table or pin): the rest of this VMA
                // would fail the same way.
                if got.is_empty() || (offered && self.map_offered(&vma, at, &got) == 0) {
                    log::debug!("populating {at:#x}..{e:#x} stopped: no pages could be mapped");
                    break;
                }
                at = run_end;
            }
        }
    }

    /// Faults in every page of `[start, end)` (page aligned, inside one
    /// VMA) that a `write` (or read) access would fault on now: absent
    /// pages, and for a write the copy-on-write ones. Fault-around fills
    /// neighbours, so most pages after the first of a window are already
    /// there. Entries a copy-on-write break replaced go to `flush`.
    ///
    /// Stops at the first page that cannot be faulted in: `ENOMEM` when
    /// out of memory, `NotMapped` when the VMA is gone, `FaultFailed`
    /// (`EFAULT`) for anything else (the provider refused, no fault
    /// handler: the guest's `SIGBUS`). The pages before it stay.
    pub(crate) fn fault_in(&mut self, start: u64, end: u64, write: bool, flush: &mut FlushSet) -> Result<(), MmError> {
        let access = FaultAccess { write, exec: false };
        let mut at = start;
        while at < end {
            let va = GuestVirtAddr::try_new(at)?;
            let done = match self.pt.translate(va) {
                Some(t) => !write || t.prot.writable || !self.pt.is_copy_on_write(va),
                None => false,
            };
            if !done {
                match self.fault(va, access) {
                    Ok(f) => flush.merge(f.flush),
                    Err(e @ (MmError::OutOfMemory(_) | MmError::NotMapped { .. })) => return Err(e),
                    Err(e) => {
                        log::debug!("faulting in {at:#x} failed: {e}");
                        return Err(MmError::FaultFailed { addr: at });
                    }
                }
            }
            at += PAGE_SIZE;
        }
        Ok(())
    }
}
