//! The guest's page faults that the VMM resolves: a user-mode `#PF` on an
//! absent entry inside a VMA with a fault handler (lazy memory), or a
//! write to a copy-on-write page. guest-mm's fault path runs under the
//! address-space lock; a replaced entry is shot down on every vCPU before
//! the lock is released, like any other change, except a copy-on-write
//! copy's old entry on a one-vCPU VM after a `#PF` the guest retries,
//! whose flush waits for that retry (`cow_flush`). Anything guest-mm refuses
//! (no VMA, an access the VMA does not allow, no handler, no memory) is
//! left to the caller to report exactly as before.

use guest_mm::{FaultAccess, FaultKind, GuestVirtAddr, VmFlags};

use super::kernel::HostedKernel;
use super::mm::ranges;
use crate::hosted::tlb::Range;

/// `#PF` error-code bits.
mod pf {
    /// The entry was present (a protection fault).
    pub const PRESENT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// From user mode.
    pub const USER: u64 = 1 << 2;
    /// A reserved bit was set in an entry.
    pub const RESERVED: u64 = 1 << 3;
    /// An instruction fetch.
    pub const FETCH: u64 = 1 << 4;
}

/// What became of a page fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Resolved: retry the faulting instruction.
    Resolved,
    /// Not the VMM's to resolve: report it (or resume an armed handler).
    Unresolved,
    /// The tables changed but the shootdown failed: the run cannot go on.
    Fatal(String),
}

/// Why a user page fault was not resolved, as Linux's signal for it
/// tells it (`SIGSEGV` with `SEGV_MAPERR` or `SEGV_ACCERR`, or `SIGBUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// No mapping at the address (or not a user address at all).
    NoMapping,
    /// A mapping that does not allow the access.
    Access,
    /// A mapping that allows it, whose page could not be given (no
    /// memory, past the end of its object, a provider that refused).
    Bus,
}

/// Could a fault with `error` be resolved at all? User mode, no reserved
/// bit, and an absent entry or a write to a present one (copy-on-write).
/// Other protection faults stay reports.
pub fn resolvable(error: u64) -> bool {
    error & pf::USER != 0
        && error & pf::RESERVED == 0
        && (error & pf::PRESENT == 0 || (error & pf::WRITE != 0 && error & pf::FETCH == 0))
}

impl HostedKernel {
    /// Why the fault at `addr` with `error` that [`HostedKernel::page_fault`]
    /// left unresolved was refused; asked after it, under the lock again.
    pub fn fault_cause(&self, addr: u64, error: u64) -> FaultCause {
        let Ok(va) = GuestVirtAddr::try_new(addr) else { return FaultCause::NoMapping };
        if addr >= 1 << 47 {
            return FaultCause::NoMapping;
        }
        let m = self.mapper();
        let Some(vma) = m.space().find_vma(va) else { return FaultCause::NoMapping };
        let flags = vma.flags();
        let denied = (error & pf::WRITE != 0 && !flags.contains(VmFlags::WRITE))
            || (error & pf::FETCH != 0 && !flags.contains(VmFlags::EXEC))
            || !flags.intersects(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC);
        if denied || !resolvable(error) {
            return FaultCause::Access;
        }
        FaultCause::Bus
    }

    /// Resolves a page fault at `addr` with `error` on `vcpu`'s behalf, if
    /// it is a lazy page or a copy-on-write write: the VMM's own accesses
    /// to user memory (a system call's copy), after which no instruction
    /// is retried, so every replaced entry is shot down at once.
    pub fn page_fault(&self, vcpu: u8, addr: u64, error: u64) -> FaultOutcome {
        self.resolve_fault(vcpu, addr, error, false)
    }

    /// Resolves the page fault vCPU `vcpu` took at `addr` with `error` (a
    /// `#PF` the kernel stub reported), if it is a lazy page or a
    /// copy-on-write write; the caller resumes the faulting instruction
    /// when it is resolved, so a copy's flush may wait for that retry
    /// (`cow_flush`).
    pub fn page_fault_retried(&self, vcpu: u8, addr: u64, error: u64) -> FaultOutcome {
        self.resolve_fault(vcpu, addr, error, true)
    }

    fn resolve_fault(&self, vcpu: u8, addr: u64, error: u64, retried: bool) -> FaultOutcome {
        if !resolvable(error) {
            return FaultOutcome::Unresolved;
        }
        let Ok(va) = GuestVirtAddr::try_new(addr) else { return FaultOutcome::Unresolved };
        let access = FaultAccess { write: error & pf::WRITE != 0, exec: error & pf::FETCH != 0 };
        let mut m = self.mapper();
        let r = m.space_mut().fault(va, access);
        let mut flush: Vec<Range> = ranges(m.space_mut().take_deferred_flush());
        let out = match r {
            Ok(f) => {
                log::trace!("vCPU {vcpu}: fault at {addr:#x} ({access:?}): {:?}, {} around", f.kind, f.around);
                if f.kind != FaultKind::Spurious {
                    self.faults_resolved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                flush.extend(ranges(f.flush));
                // A copy's old entry: flushed by the retry itself where
                // that is enough (see `cow_flush`).
                if retried
                    && f.kind == FaultKind::CopiedOnWrite
                    && access.write
                    && self.defer_cow_flush(&m, addr, &flush)
                {
                    flush.clear();
                }
                FaultOutcome::Resolved
            }
            Err(e @ guest_mm::MmError::OutOfMemory(_)) => {
                // Linux without swap would OOM-kill; the run ends as this
                // fault, and the log says why.
                log::warn!("vCPU {vcpu}: fault at {addr:#x} ({access:?}) cannot be filled, guest RAM exhausted: {e}");
                FaultOutcome::Unresolved
            }
            Err(e) => {
                log::debug!("vCPU {vcpu}: fault at {addr:#x} ({access:?}) not resolved: {e}");
                FaultOutcome::Unresolved
            }
        };
        if let Some(msg) = self.shoot_down(vcpu, &flush) {
            return FaultOutcome::Fatal(msg);
        }
        drop(m);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_absent_or_write_faults_are_resolvable() {
        assert!(resolvable(pf::USER));
        assert!(resolvable(pf::USER | pf::WRITE));
        assert!(resolvable(pf::USER | pf::PRESENT | pf::WRITE));
        assert!(resolvable(pf::USER | pf::FETCH));
        assert!(!resolvable(pf::USER | pf::PRESENT));
        assert!(!resolvable(pf::USER | pf::PRESENT | pf::FETCH));
        assert!(!resolvable(pf::WRITE));
        assert!(!resolvable(pf::USER | pf::RESERVED));
    }
}
