//! `mmap`, `munmap` and `mprotect`: Linux arguments in, guest-mm's
//! pipeline, a result or `-errno` out.
//!
//! What is checked here (before guest-mm sees anything): the protection
//! and flag bits are known, exactly one of `MAP_SHARED`/`MAP_PRIVATE` is
//! given, the offset is page aligned, and a fixed range lies in the user
//! half (`ENOMEM` past it, as Linux). Everything else (alignment, overflow,
//! overlap, frames) is guest-mm's and the provider's to refuse.
//!
//! When entries were removed or downgraded, every vCPU drops them before
//! the address-space lock is released (see `tlb`): nothing can reuse the
//! range or the freed frames while a stale translation exists.

use guest_mm::{errno, FlushSet, GuestVirtAddr, MmError, MmapRequest, Placement, VmFlags};

use super::call::{Effects, Outcome};
use super::kernel::HostedKernel;
use crate::hosted::mapper::Mapper;
use crate::hosted::stub::abi::{fd, map, prot};
use crate::hosted::tlb::Range;
use crate::layout::PAGE_SIZE;

/// End of the user half.
const USER_END: u64 = 1 << 47;

fn prot_flags(p: u64) -> Result<VmFlags, i32> {
    if p & !(prot::READ | prot::WRITE | prot::EXEC) != 0 {
        return Err(errno::EINVAL);
    }
    Ok(prot_vm_flags(p))
}

/// The access flags of Linux's `PROT_READ`/`PROT_WRITE`/`PROT_EXEC` bits
/// in `p` (other bits are the caller's to check).
pub fn prot_vm_flags(p: u64) -> VmFlags {
    let mut f = VmFlags::empty();
    if p & prot::READ != 0 {
        f |= VmFlags::READ;
    }
    if p & prot::WRITE != 0 {
        f |= VmFlags::WRITE;
    }
    if p & prot::EXEC != 0 {
        f |= VmFlags::EXEC;
    }
    f
}

/// A user range: canonical, page-aligned start, inside the lower half.
pub(super) fn user_range(addr: u64, len: u64) -> Result<GuestVirtAddr, i32> {
    if addr % PAGE_SIZE != 0 {
        return Err(errno::EINVAL);
    }
    let end = addr.checked_add(len).ok_or(errno::EINVAL)?;
    if end > USER_END {
        return Err(errno::ENOMEM);
    }
    GuestVirtAddr::try_new(addr).map_err(|_| errno::EINVAL)
}

pub(super) fn done(r: Result<u64, i32>, fatal: Option<String>) -> Outcome {
    let ret = match r {
        Ok(v) => v as i64,
        Err(e) => -i64::from(e),
    };
    Outcome { ret, effects: Effects { fatal, ..Default::default() } }
}

/// The ranges to shoot down for a flush set (consumed); none when nothing
/// it covers can be cached (see [`crate::hosted::tlb::shootdown_ranges`]).
pub(super) fn ranges(fs: FlushSet) -> Vec<Range> {
    crate::hosted::tlb::shootdown_ranges(fs)
}

pub(super) fn mm_err(e: &MmError) -> i32 {
    e.errno()
}

impl HostedKernel {
    /// Shoots `ranges` down (with the address-space lock held by the
    /// caller); a failure is fatal for the run.
    pub(super) fn shoot_down(&self, vcpu: u8, ranges: &[Range]) -> Option<String> {
        if ranges.is_empty() {
            return None;
        }
        if let Some(c) = self.counters.get(vcpu as usize) {
            c.shootdowns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.flusher.flush(vcpu, ranges).err().map(|e| e.to_string())
    }

    /// Shoots down what a munmap or mprotect changed, and on success or
    /// failure alike what a failure path changed and undid (the deferred
    /// flush: a failed mprotect puts pieces it had already changed back).
    fn flush_after(
        &self,
        vcpu: u8,
        m: &mut Mapper,
        result: Result<FlushSet, MmError>,
        fatal: &mut Option<String>,
    ) -> Result<u64, i32> {
        let mut flush = ranges(m.space_mut().take_deferred_flush());
        let r = match result {
            Ok(fl) => {
                flush.extend(ranges(fl));
                Ok(0)
            }
            Err(e) => Err(mm_err(&e)),
        };
        *fatal = self.shoot_down(vcpu, &flush);
        r
    }

    /// `mmap(addr, len, prot, flags, fd, off)`.
    pub(super) fn mmap(&self, vcpu: u8, args: [u64; 6]) -> Outcome {
        let mut fatal = None;
        let r = self.mmap_inner(vcpu, args, &mut fatal);
        done(r, fatal)
    }

    fn mmap_inner(&self, vcpu: u8, args: [u64; 6], fatal: &mut Option<String>) -> Result<u64, i32> {
        let [addr, len, p, flags, handle, off] = args;
        let prot = prot_flags(p)?;
        let known = map::SHARED | map::PRIVATE | map::FIXED | map::ANONYMOUS | map::FIXED_NOREPLACE;
        if flags & !known != 0 {
            return Err(errno::EINVAL);
        }
        let shared = match flags & (map::SHARED | map::PRIVATE) {
            map::SHARED => true,
            map::PRIVATE => false,
            _ => return Err(errno::EINVAL),
        };
        if off % PAGE_SIZE != 0 {
            return Err(errno::EINVAL);
        }
        let placement = if flags & map::FIXED_NOREPLACE != 0 {
            Placement::FixedNoReplace
        } else if flags & map::FIXED != 0 {
            Placement::Fixed
        } else {
            Placement::Anywhere
        };
        let hint = match placement {
            Placement::Anywhere => {
                // A hint that is not a usable user address is ignored.
                (addr != 0).then(|| user_range(addr, len).ok()).flatten()
            }
            _ => Some(user_range(addr, len)?),
        };
        let handle = if flags & map::ANONYMOUS != 0 { fd::ZERO } else { handle };
        let provider = self.providers.get(handle)?;
        let req =
            MmapRequest { addr: hint, len, prot, shared, placement, pgoff: off / PAGE_SIZE, ..Default::default() };
        let mut m = self.mapper();
        let result = m.space_mut().mmap(provider.provider(), &req);
        let deferred = m.space_mut().take_deferred_flush();
        // Entries a failure path cleared after vCPUs could have used them
        // are flushed like any other (the error is still returned).
        let mut flush = ranges(deferred);
        let r = match result {
            Ok(mapped) => {
                log::debug!("mmap {:#x}+{len:#x} via {} -> {:#x}", addr, provider.provider().name(), mapped.addr.raw());
                flush.extend(ranges(mapped.flush));
                Ok(mapped.addr.raw())
            }
            Err(e) => {
                log::debug!("mmap {addr:#x}+{len:#x} via {} failed: {e}", provider.provider().name());
                Err(mm_err(&e))
            }
        };
        *fatal = self.shoot_down(vcpu, &flush);
        drop(m);
        r
    }

    /// `munmap(addr, len)`.
    pub(super) fn munmap(&self, vcpu: u8, addr: u64, len: u64) -> Outcome {
        let mut fatal = None;
        let r = (|| {
            let va = user_range(addr, len)?;
            let mut m = self.mapper();
            let result = m.space_mut().munmap(va, len);
            let r = self.flush_after(vcpu, &mut m, result, &mut fatal);
            drop(m);
            r
        })();
        done(r, fatal)
    }

    /// `mprotect(addr, len, prot)`.
    pub(super) fn mprotect(&self, vcpu: u8, addr: u64, len: u64, p: u64) -> Outcome {
        let mut fatal = None;
        let r = (|| {
            let prot = prot_flags(p)?;
            let va = user_range(addr, len)?;
            let mut m = self.mapper();
            let result = m.space_mut().mprotect(va, len, prot);
            let r = self.flush_after(vcpu, &mut m, result, &mut fatal);
            drop(m);
            r
        })();
        done(r, fatal)
    }
}
