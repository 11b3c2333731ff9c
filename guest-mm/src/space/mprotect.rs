//! mprotect: change the access of a fully mapped range, within what each
//! VMA's `MAY*` flags allow; split and re-merge VMAs (a huge-page VMA only
//! on a boundary of its pages). Two orders for a range that cannot change
//! whole: [`AddressSpace::mprotect`] changes nothing (the VMM's own ABI),
//! [`AddressSpace::mprotect_in_order`] changes the VMAs before the one
//! that fails, as Linux's `do_mprotect_pkey` loop does (the Linux
//! personality).

use vm_memory::GuestMemoryBackend;

use super::{checked_len, checked_range, AddressSpace, KERNEL_HALF};
use crate::addr::GuestVirtAddr;
use crate::error::MmError;
use crate::flags::{PageProt, VmFlags, VM_ACCESS_FLAGS};
use crate::paging::FlushSet;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Sets the access of `[addr, addr + len)` to `prot`. `ENOMEM` if part
    /// of it is unmapped or the VMA splits would pass the VMA limit, `EACCES`
    /// if a VMA may never have that access, `EPERM` if a VMA is sealed
    /// (checked after its access, as Linux's loop does), `EINVAL` if it would split a
    /// huge-page VMA off its pages (hugetlbfs's `may_split`). On error
    /// nothing changed.
    pub fn mprotect(&mut self, addr: GuestVirtAddr, len: u64, prot: VmFlags) -> Result<FlushSet, MmError> {
        let len = checked_len(len)?;
        let end = checked_range(addr, len)?;
        if !(prot - VM_ACCESS_FLAGS).is_empty() {
            return Err(MmError::Invalid("unknown protection bits"));
        }
        if !self.vmas.covers(addr.raw(), end) {
            let hole = self.first_hole(addr.raw(), end);
            return Err(MmError::NotMapped { addr: hole });
        }
        let need = VmFlags::may_bits_for(prot);
        // The pieces to change, with their old and new protection.
        let mut pieces = Vec::new();
        for v in self.vmas.overlapping(addr.raw(), end) {
            if !v.flags().contains(need) {
                return Err(MmError::Access("mprotect beyond the mapping's MAY flags"));
            }
            if v.is_sealed() {
                return Err(MmError::Sealed { addr: v.start().raw() });
            }
            if v.start().raw() >= KERNEL_HALF && prot.is_empty() {
                return Err(MmError::Invalid("PROT_NONE in the supervisor half"));
            }
            let mut new = PageProt::from_flags(prot).with_cache(v.page_prot().cache);
            new.user = new.user && v.start().raw() < KERNEL_HALF;
            let s = v.start().raw().max(addr.raw());
            let e = v.end().min(end);
            pieces.push((s, e, v.page_prot(), new));
        }
        // A huge-page VMA splits only on a boundary of its pages.
        self.check_huge_split(addr.raw(), end)?;
        // Splitting the VMAs at the range's ends must stay within the limit.
        self.check_map_count(addr.raw(), end, None)?;
        // Page tables first; undo what succeeded if a later piece fails.
        let mut flush = FlushSet::default();
        for (i, &(s, e, _, new)) in pieces.iter().enumerate() {
            let va = GuestVirtAddr::try_new(s)?;
            match self.pt.protect_range(va, e - s, new) {
                Ok(f) => flush.merge(f),
                Err(err) => {
                    for &(s, e, old, _) in pieces[..i].iter().rev() {
                        if let Ok(va) = GuestVirtAddr::try_new(s) {
                            match self.pt.protect_range(va, e - s, old) {
                                Ok(f) => flush.merge(f),
                                Err(e2) => log::error!("mprotect rollback at {s:#x} failed: {e2}"),
                            }
                        }
                    }
                    self.deferred.merge(flush);
                    return Err(err);
                }
            }
        }
        // Then the VMAs.
        self.split_vma(addr.raw());
        self.split_vma(end);
        self.vmas.update_range(addr.raw(), end, |v| {
            let mut new = PageProt::from_flags(prot).with_cache(v.page_prot.cache);
            new.user = new.user && v.start.raw() < KERNEL_HALF;
            v.flags = (v.flags - VM_ACCESS_FLAGS) | prot;
            v.page_prot = new;
        });
        // Each piece merges with both neighbours: the last one with the VMA
        // after the range too.
        let starts: Vec<u64> = self.vmas.overlapping(addr.raw(), end).map(|v| v.start().raw()).collect();
        for s in starts.into_iter().rev() {
            self.merge_vmas(s);
        }
        Ok(flush)
    }

    /// [`AddressSpace::mprotect`] in Linux's order (`do_mprotect_pkey`):
    /// the VMAs from `addr` on change one after another until one cannot,
    /// at a hole (`ENOMEM`), a VMA that may not have `prot` (`EACCES`) or a
    /// sealed one (`EPERM`), checked in that order per VMA; the VMAs before
    /// it keep their new access (their entries are flushed with the
    /// space's deferred flushes) and the error is returned. Nothing changes
    /// when the first VMA fails, or when the range starts in a hole.
    pub fn mprotect_in_order(&mut self, addr: GuestVirtAddr, len: u64, prot: VmFlags) -> Result<FlushSet, MmError> {
        self.mprotect_in_order_with(addr, len, prot, |_| false)
    }

    /// [`AddressSpace::mprotect_in_order`] with one more per-VMA check,
    /// made after the `MAY` flags and before the seal, as Linux's loop
    /// checks memory-deny-write-execute (`map_deny_write_exec`): where
    /// `denied(vma)` holds, the loop stops there with `EACCES`.
    pub fn mprotect_in_order_with(
        &mut self,
        addr: GuestVirtAddr,
        len: u64,
        prot: VmFlags,
        denied: impl Fn(&crate::vma::Vma) -> bool,
    ) -> Result<FlushSet, MmError> {
        let len = checked_len(len)?;
        let end = checked_range(addr, len)?;
        let need = VmFlags::may_bits_for(prot);
        // Where Linux's loop stops, and why.
        let mut at = addr.raw();
        let mut stop = None;
        for v in self.vmas.overlapping(addr.raw(), end) {
            if v.start().raw() > at {
                stop = Some(MmError::NotMapped { addr: at });
                break;
            }
            if !v.flags().contains(need) {
                stop = Some(MmError::Access("mprotect beyond the mapping's MAY flags"));
                break;
            }
            if denied(v) {
                stop = Some(MmError::Access("mprotect denied for this mapping"));
                break;
            }
            if v.is_sealed() {
                stop = Some(MmError::Sealed { addr: v.start().raw() });
                break;
            }
            at = v.end();
        }
        if stop.is_none() && at < end {
            stop = Some(MmError::NotMapped { addr: at });
        }
        let Some(err) = stop else {
            return self.mprotect(addr, len, prot);
        };
        let done = at.min(end);
        if done > addr.raw() {
            let flush = self.mprotect(addr, done - addr.raw(), prot)?;
            self.deferred.merge(flush);
        }
        Err(err)
    }

    pub(super) fn first_hole(&self, start: u64, end: u64) -> u64 {
        let mut at = start;
        for v in self.vmas.overlapping(start, end) {
            if v.start().raw() > at {
                return at;
            }
            at = v.end();
        }
        at
    }
}
