//! mlock, munlock, mlockall, munlockall (Linux 6.12 `mm/mlock.c`).
//!
//! Locking sets `VM_LOCKED` (and `VM_LOCKONFAULT` for the on-fault kind)
//! on the VMAs of a range, cut and re-merged as mprotect does, then
//! populates them as `__mm_populate` does: private writable VMAs by write
//! faults (a copy-on-write page is broken), the others by reads;
//! on-fault VMAs and `VM_IO`/`VM_PFNMAP` ones are not populated. Nothing
//! here evicts pages, so a locked page simply stays; `MADV_DONTNEED`,
//! `MADV_FREE`, `MADV_COLD` and `MADV_PAGEOUT` refuse locked VMAs.
//!
//! What Linux does and this keeps:
//! - a hole: the VMAs before it are locked (or unlocked), then `ENOMEM`,
//!   and nothing is populated;
//! - `VM_SPECIAL` (`VM_IO`, `VM_PFNMAP`, `VM_MIXEDMAP`, `VM_DONTEXPAND`)
//!   and huge-page VMAs are skipped: never flagged, never counted;
//! - a PROT_NONE VMA is locked but cannot be populated: the populate stops
//!   there with `ENOMEM` (`EFAULT` turned into `ENOMEM` by
//!   `__mlock_posix_error_return`, as out of memory becomes `EAGAIN`);
//! - `mlockall(MCL_FUTURE)` sets the space's default flags, which
//!   [`AddressSpace::mmap`] adds to every new VMA of the user half (and
//!   then populates it, errors ignored); any `mlockall` clears the
//!   previous default first.
//!
//! The guest's process is the user half: `mlockall`, `munlockall` and the
//! counts leave supervisor-half VMAs (the VMM's own) alone.
//!
//! `RLIMIT_MEMLOCK` and `CAP_IPC_LOCK` are the caller's: it gets the
//! counts `do_mlock` and `mlockall` check against the limit
//! ([`AddressSpace::locked_bytes`], [`AddressSpace::locked_bytes_in`],
//! [`AddressSpace::mapped_bytes`]).

use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, USER_END};
use crate::addr::{page_align_up, GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{VmFlags, VM_LOCKED_MASK};
use crate::paging::FlushSet;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `mlock`/`mlock2`: locks the pages of `[addr, addr + len)` (`addr`
    /// rounded down, the end up, to pages; zero length does nothing) and
    /// populates them unless `on_fault`. `EINVAL` if the range wraps or
    /// leaves its half, `ENOMEM` for a hole (the VMAs before it stay
    /// locked) or an unpopulatable page, `EAGAIN` when out of memory while
    /// populating. Returns the entries replaced while populating (broken
    /// copy-on-write pages), to be flushed; on error they are in the
    /// deferred flush.
    pub fn mlock(&mut self, addr: GuestVirtAddr, len: u64, on_fault: bool) -> Result<FlushSet, MmError> {
        let Some((start, end)) = lock_range(addr, len)? else {
            return Ok(FlushSet::default());
        };
        let lock = if on_fault { VM_LOCKED_MASK } else { VmFlags::LOCKED };
        self.apply_lock_flags(start, end, lock)?;
        let mut flush = FlushSet::default();
        match self.populate_locked(start, end, false, &mut flush) {
            Ok(()) => Ok(flush),
            Err(e) => {
                self.deferred.merge(flush);
                Err(posix_error(e))
            }
        }
    }

    /// `munlock`: unlocks `[addr, addr + len)` (rounded as
    /// [`AddressSpace::mlock`]). `ENOMEM` for a hole (the VMAs before it
    /// are unlocked), `EINVAL` if the range wraps.
    pub fn munlock(&mut self, addr: GuestVirtAddr, len: u64) -> Result<(), MmError> {
        match lock_range(addr, len)? {
            Some((start, end)) => self.apply_lock_flags(start, end, VmFlags::empty()),
            None => Ok(()),
        }
    }

    /// `mlockall`: `future` makes every later mapping locked (on fault if
    /// `on_fault`), `current` locks every VMA now and populates them (errors
    /// ignored, as `mm_populate`). `EINVAL` when neither is asked. Each
    /// call replaces the default of an earlier one: without `future` later
    /// mappings are not locked any more. Returns the entries replaced
    /// while populating.
    pub fn mlockall(&mut self, current: bool, future: bool, on_fault: bool) -> Result<FlushSet, MmError> {
        if !current && !future {
            return Err(MmError::Invalid("mlockall without MCL_CURRENT or MCL_FUTURE"));
        }
        let lock = if on_fault { VM_LOCKED_MASK } else { VmFlags::LOCKED };
        self.def_flags = if future { lock } else { VmFlags::empty() };
        let mut flush = FlushSet::default();
        if current {
            self.lock_all(lock);
            for (s, e) in self.user_vmas() {
                if let Err(err) = self.populate_locked(s, e, true, &mut flush) {
                    log::debug!("mlockall: populating {s:#x}..{e:#x} stopped: {err}");
                }
            }
        }
        Ok(flush)
    }

    /// `munlockall`: unlocks every VMA and clears the default lock flags.
    pub fn munlockall(&mut self) {
        self.def_flags = VmFlags::empty();
        self.lock_all(VmFlags::empty());
    }

    /// The flags `mlockall(MCL_FUTURE)` adds to every new mapping
    /// (`mm->def_flags`): empty, `VM_LOCKED`, or both lock bits.
    pub fn def_flags(&self) -> VmFlags {
        self.def_flags
    }

    /// Bytes in locked VMAs of the user half (`mm->locked_vm`, `VmLck`).
    pub fn locked_bytes(&self) -> u64 {
        self.vmas.overlapping(0, USER_END).filter(|v| v.flags().contains(VmFlags::LOCKED)).map(|v| v.size()).sum()
    }

    /// Bytes of `[addr, addr + len)` (rounded as [`AddressSpace::mlock`])
    /// already in locked VMAs (`count_mm_mlocked_page_nr`). Linux's
    /// `RLIMIT_MEMLOCK` check for `mlock` is `locked_bytes() + rounded len
    /// - locked_bytes_in(..) > limit`; a range that wraps counts nothing.
    pub fn locked_bytes_in(&self, addr: GuestVirtAddr, len: u64) -> u64 {
        let Ok(Some((start, end))) = lock_range(addr, len) else { return 0 };
        self.vmas
            .overlapping(start, end)
            .filter(|v| v.flags().contains(VmFlags::LOCKED))
            .map(|v| v.end().min(end) - v.start().raw().max(start))
            .sum()
    }

    /// Bytes in the VMAs of the user half (`mm->total_vm`):
    /// `mlockall(MCL_CURRENT)` is refused with `ENOMEM` when it exceeds
    /// `RLIMIT_MEMLOCK` (the caller's check).
    pub fn mapped_bytes(&self) -> u64 {
        self.vmas.overlapping(0, USER_END).map(|v| v.size()).sum()
    }

    /// The ranges of the user half's VMAs, in order.
    fn user_vmas(&self) -> Vec<(u64, u64)> {
        self.vmas.overlapping(0, USER_END).map(|v| (v.start().raw(), v.end())).collect()
    }

    /// `apply_vma_lock_flags`: sets the lock bits of each VMA of
    /// `[start, end)` to `lock` up to the first hole, skipping the VMAs
    /// mlock leaves alone; `ENOMEM` for a hole.
    fn apply_lock_flags(&mut self, start: u64, end: u64, lock: VmFlags) -> Result<(), MmError> {
        let (parts, hole) = self.mapped_parts(start, end);
        for (s, e) in parts {
            if hole.is_some_and(|h| h < s) {
                break;
            }
            self.set_lock_bits(s, e, lock)?;
        }
        match hole {
            Some(addr) => Err(MmError::NotMapped { addr }),
            None => Ok(()),
        }
    }

    /// `apply_mlockall_flags`' loop: every user-half VMA's lock bits
    /// become `lock`, errors ignored.
    fn lock_all(&mut self, lock: VmFlags) {
        for (s, e) in self.user_vmas() {
            if let Err(err) = self.set_lock_bits(s, e, lock) {
                log::debug!("locking {s:#x}..{e:#x} failed: {err}");
            }
        }
    }

    /// `mlock_fixup` for `[s, e)` inside one VMA.
    fn set_lock_bits(&mut self, s: u64, e: u64, lock: VmFlags) -> Result<(), MmError> {
        if self.vmas.find(s).is_some_and(|v| v.flags().is_unlockable()) {
            return Ok(());
        }
        self.modify_flags(s, e, |f| (f - VM_LOCKED_MASK) | lock)
    }

    /// `__mm_populate` over `[start, end)`: skips holes and `VM_IO`/
    /// `VM_PFNMAP` VMAs; a VMA that is not (or on-fault) locked and not
    /// asked for is populated too (as Linux does for `MAP_POPULATE`). With
    /// `ignore_errors` a VMA that fails is left and the next one tried.
    pub(super) fn populate_locked(
        &mut self,
        start: u64,
        end: u64,
        ignore_errors: bool,
        flush: &mut FlushSet,
    ) -> Result<(), MmError> {
        let (parts, _) = self.mapped_parts(start, end);
        for (s, e) in parts {
            let Some(v) = self.vmas.find(s) else { continue };
            let flags = v.flags();
            if flags.intersects(VmFlags::IO | VmFlags::PFNMAP) || flags.contains(VmFlags::LOCKONFAULT) {
                continue;
            }
            let done = if flags.intersects(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC) {
                let write = flags.contains(VmFlags::WRITE) && !flags.contains(VmFlags::SHARED);
                self.fault_in(s, e, write, flush)
            } else {
                Err(MmError::FaultFailed { addr: s })
            };
            match done {
                Err(e) if !ignore_errors => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// mlock's range: `addr` rounded down to its page, the length grown by the
/// offset and rounded up; `None` for nothing to do, `EINVAL` when it wraps
/// or leaves its half.
fn lock_range(addr: GuestVirtAddr, len: u64) -> Result<Option<(u64, u64)>, MmError> {
    let off = addr.raw() % PAGE_SIZE;
    let start = GuestVirtAddr::try_new(addr.raw() - off)?;
    let len = len.checked_add(off).and_then(page_align_up).ok_or(MmError::Overflow { addr: addr.raw(), len })?;
    if len == 0 {
        return Ok(None);
    }
    Ok(Some((start.raw(), start.checked_end(len)?)))
}

/// `__mlock_posix_error_return`: a page that cannot be faulted in is
/// `ENOMEM`, out of memory is `EAGAIN`.
fn posix_error(e: MmError) -> MmError {
    match e.errno() {
        crate::error::errno::EFAULT => match e {
            MmError::FaultFailed { addr } => MmError::NotMapped { addr },
            _ => MmError::NotMapped { addr: 0 },
        },
        crate::error::errno::ENOMEM => MmError::Again,
        _ => e,
    }
}
