//! Stacks that grow down (`MAP_GROWSDOWN`, Linux's `VM_GROWSDOWN` and
//! `expand_stack`): a fault at an address in the free range just below
//! such a VMA moves the VMA's start down to that page, and the fault then
//! proceeds as inside it.
//!
//! The rules are Linux's `expand_downwards` and `acct_stack_growth`:
//! - the page must lie at or above the mmap window's bottom
//!   (`mmap_min_addr`);
//! - the VMA below it, if accessible and not itself growing down, must
//!   stay at least [`STACK_GUARD_GAP`] below the new start;
//! - the grown VMA may be at most the stack limit long (`RLIMIT_STACK`,
//!   [`AddressSpace::set_stack_limit`]);
//! - only private anonymous 4 KiB-page VMAs grow (their page offset
//!   moves down with the start, and may not pass 0); a sealed one grows
//!   too (`expand_downwards` does not look at seals).
//!
//! A refused growth leaves the fault unserved (`ENOMEM`, which a guest
//! kind reports as `SIGSEGV`), as Linux's `bad_area`. New mappings are
//! not placed within the guard gap below a growing VMA
//! ([`crate::VmaTree::find_gap_top_down`]), `MAP_FIXED` may put one there.
//! Not here: `VM_GROWSUP` (no x86 stack grows up).

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{VmFlags, VM_ACCESS_FLAGS};
use crate::vma::{Vma, STACK_GUARD_GAP};

/// `RLIMIT_STACK`'s default (8 MiB).
pub(super) const DEFAULT_STACK_LIMIT: u64 = 8 << 20;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Sets how long a growing stack may become (`RLIMIT_STACK`'s soft
    /// limit; `u64::MAX` for none). Existing VMAs are not shrunk.
    pub fn set_stack_limit(&mut self, bytes: u64) {
        self.stack_limit = bytes;
    }

    /// The stack limit ([`AddressSpace::set_stack_limit`]).
    pub fn stack_limit(&self) -> u64 {
        self.stack_limit
    }

    /// The range `mprotect` with `PROT_GROWSDOWN` (`down`) or
    /// `PROT_GROWSUP` (`up`) changes instead of `[start, end)`, as Linux's
    /// `do_mprotect_pkey`: with `down`, from the start of the first VMA
    /// in the range, which must grow down (`EINVAL`); with `up`, `EINVAL`
    /// (no VMA grows up on x86) once a VMA covers `start`. `ENOMEM` when
    /// no VMA is in the range, or (`up`, or neither) none covers `start`.
    pub fn grows_range(&self, start: u64, end: u64, down: bool, up: bool) -> Result<(u64, u64), MmError> {
        let vma = self.vmas.overlapping(start, end).next().ok_or(MmError::NotMapped { addr: start })?;
        if down {
            if !vma.flags().contains(VmFlags::GROWSDOWN) {
                return Err(MmError::Invalid("PROT_GROWSDOWN on a mapping that does not grow down"));
            }
            return Ok((vma.start().raw(), end));
        }
        if vma.start().raw() > start {
            return Err(MmError::NotMapped { addr: start });
        }
        if up {
            return Err(MmError::Invalid("PROT_GROWSUP: no mapping grows up"));
        }
        Ok((start, end))
    }

    /// Grows the `VM_GROWSDOWN` VMA just above `page` (an address in a
    /// hole) down to `page`, as a fault there asks; returns the grown
    /// VMA. `NotMapped` when there is no such VMA or a rule refuses.
    pub(super) fn grow_stack_to(&mut self, page: u64) -> Result<Vma, MmError> {
        let refused = || MmError::NotMapped { addr: page };
        let page = page & !(PAGE_SIZE - 1);
        let vma = self.vmas.next_from(page).filter(|v| v.flags().contains(VmFlags::GROWSDOWN)).cloned();
        let Some(vma) = vma else { return Err(refused()) };
        let anon = vma.ops().is_some_and(|o| o.is_anonymous() && o.pagesize(&vma) == PAGE_SIZE);
        if !anon || vma.flags().contains(VmFlags::SHARED) || page < self.window.0 {
            return Err(refused());
        }
        if let Some(prev) = self.vmas.prev_of(page) {
            let guarded = !prev.flags().contains(VmFlags::GROWSDOWN) && prev.flags().intersects(VM_ACCESS_FLAGS);
            if guarded && page - prev.end() < STACK_GUARD_GAP {
                return Err(refused());
            }
        }
        let grow = (vma.start().raw() - page) >> PAGE_SHIFT;
        if vma.end() - page > self.stack_limit || vma.pgoff() < grow {
            return Err(refused());
        }
        let mut v = vma.clone();
        drop(self.vmas.remove_range(vma.start().raw(), vma.end()));
        v.start = crate::addr::GuestVirtAddr::try_new(page)?;
        v.pgoff -= grow;
        self.vmas.insert(v.clone());
        log::trace!("stack at {:#x} grew down to {page:#x}", vma.start().raw());
        Ok(v)
    }
}
