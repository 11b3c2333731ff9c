//! mseal: seal a fully mapped range so its mappings can no longer change
//! (Linux 6.12's `mm/mseal.c`), and the checks the other operations make
//! against sealed VMAs.
//!
//! A sealed VMA carries [`VmFlags::SEALED`] for good: the flag survives
//! splits and merges (VMAs merge only with equal flags, so a sealed VMA
//! never absorbs an unsealed neighbour). What is refused with `EPERM`
//! (`MmError::Sealed`), with nothing changed:
//! - `munmap` of any part of a sealed VMA;
//! - `mremap` of a sealed source (shrink, grow, move, `MREMAP_DONTUNMAP`)
//!   and a `MREMAP_FIXED` target over a sealed VMA;
//! - `mmap` with a fixed placement over a sealed VMA;
//! - `mprotect` of a range holding a sealed VMA (even to the same access);
//! - discarding advice (`MADV_DONTNEED`, `FREE`, `DONTNEED_LOCKED`,
//!   `REMOVE`, `DONTFORK`, `WIPEONFORK`) on a sealed VMA of read-only
//!   private anonymous memory ([`AddressSpace::check_madvise_seal`]).
//!
//! Unlike Linux 6.12, which meets a sealed VMA while it walks the range
//! (and may have changed the VMAs before it), every check here runs
//! before anything changes. Sealing itself is not undone by anything:
//! there is no unseal.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{page_align_up, GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;

/// Linux's advice numbers that discard pages or their future copies
/// (`is_madv_discard` in 6.12): `MADV_DONTNEED` (4), `MADV_FREE` (8),
/// `MADV_REMOVE` (9), `MADV_DONTFORK` (10), `MADV_WIPEONFORK` (18),
/// `MADV_DONTNEED_LOCKED` (24).
pub const DISCARD_ADVICE: [u64; 6] = [4, 8, 9, 10, 18, 24];

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `mseal(addr, len, flags)`: seals every VMA of `[addr, addr + len)`,
    /// splitting the VMAs at the range's ends and merging the sealed
    /// pieces with sealed neighbours, as mprotect does.
    ///
    /// `EINVAL` for non-zero `flags`, a misaligned `addr`, or a length
    /// that overflows; a zero length seals nothing and succeeds. `ENOMEM`
    /// if part of the range is unmapped (`NotMapped`, the first hole) or
    /// the splits would pass the VMA limit; `EINVAL` for a split of a
    /// huge-page VMA off its pages. On error nothing changed. Sealing a
    /// sealed range again succeeds and changes nothing.
    pub fn mseal(&mut self, addr: GuestVirtAddr, len: u64, flags: u64) -> Result<(), MmError> {
        if flags != 0 {
            return Err(MmError::Invalid("mseal flags must be 0"));
        }
        if !addr.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
        }
        let len = page_align_up(len).ok_or(MmError::Overflow { addr: addr.raw(), len })?;
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_end(len)?;
        if !self.vmas.covers(addr.raw(), end) {
            return Err(MmError::NotMapped { addr: self.first_hole(addr.raw(), end) });
        }
        if self.vmas.overlapping(addr.raw(), end).all(|v| v.is_sealed()) {
            return Ok(());
        }
        self.check_huge_split(addr.raw(), end)?;
        self.check_map_count(addr.raw(), end, None)?;
        self.split_vma(addr.raw());
        self.split_vma(end);
        self.vmas.update_range(addr.raw(), end, |v| v.flags.insert(VmFlags::SEALED));
        let starts: Vec<u64> = self.vmas.overlapping(addr.raw(), end).map(|v| v.start().raw()).collect();
        for s in starts.into_iter().rev() {
            self.merge_vmas(s);
        }
        Ok(())
    }

    /// `EPERM` (`MmError::Sealed`, naming the first one) if a sealed VMA
    /// overlaps `[start, end)`.
    pub(crate) fn check_unsealed(&self, start: u64, end: u64) -> Result<(), MmError> {
        match self.vmas.overlapping(start, end).find(|v| v.is_sealed()) {
            Some(v) => Err(MmError::Sealed { addr: v.start().raw() }),
            None => Ok(()),
        }
    }

    /// May `madvise(addr, len, advice)` (Linux's advice number) change
    /// the range, as far as sealing goes? `EPERM` if `advice` discards
    /// ([`DISCARD_ADVICE`]) and a VMA of the range is sealed, private,
    /// anonymous ([`crate::VmaOps::is_anonymous`]) and not writable
    /// (`can_modify_vma_madv`). A caller implementing advice this space
    /// does not (`MADV_FREE`, `MADV_DONTFORK`, ...) asks this first; the
    /// space's own [`AddressSpace::madvise`] does. Addresses are taken as
    /// given (page aligned up, clamped at the end of the address space):
    /// the caller checks the arguments.
    pub fn check_madvise_seal(&self, addr: GuestVirtAddr, len: u64, advice: u64) -> Result<(), MmError> {
        if !DISCARD_ADVICE.contains(&advice) {
            return Ok(());
        }
        let end = page_align_up(len).and_then(|l| addr.raw().checked_add(l)).unwrap_or(u64::MAX);
        let refused = |v: &&crate::vma::Vma| {
            v.is_sealed()
                && v.is_anonymous()
                && !v.flags().contains(VmFlags::SHARED)
                && !v.flags().contains(VmFlags::WRITE)
        };
        match self.vmas.overlapping(addr.raw(), end).find(refused) {
            Some(v) => Err(MmError::Sealed { addr: v.start().raw() }),
            None => Ok(()),
        }
    }
}
