//! `mmap`, `munmap` and `mprotect`: Linux arguments in, guest-mm's
//! pipeline, a result or `-errno` out.
//!
//! What is checked here (before guest-mm sees anything): the protection
//! and flag bits are known, exactly one of `MAP_SHARED`/`MAP_PRIVATE` is
//! given, the offset is page aligned, and a fixed range lies in the user
//! half (`ENOMEM` past it, as Linux). Everything else (alignment, overflow,
//! overlap, frames) is guest-mm's and the provider's to refuse.

use guest_mm::{errno, FlushSet, GuestVirtAddr, MmError, MmapRequest, Placement, VmFlags};

use super::{Effects, Hypervisor, Outcome};
use crate::kernel::abi::{fd, map, prot};
use crate::layout::PAGE_SIZE;
use crate::tlb::Range;

/// End of the user half.
const USER_END: u64 = 1 << 47;

fn prot_flags(p: u64) -> Result<VmFlags, i32> {
    if p & !(prot::READ | prot::WRITE | prot::EXEC) != 0 {
        return Err(errno::EINVAL);
    }
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
    Ok(f)
}

/// A user range: canonical, page-aligned start, inside the lower half.
fn user_range(addr: u64, len: u64) -> Result<GuestVirtAddr, i32> {
    if addr % PAGE_SIZE != 0 {
        return Err(errno::EINVAL);
    }
    let end = addr.checked_add(len).ok_or(errno::EINVAL)?;
    if end > USER_END {
        return Err(errno::ENOMEM);
    }
    GuestVirtAddr::try_new(addr).map_err(|_| errno::EINVAL)
}

fn done(r: Result<(u64, Vec<Range>), i32>) -> Outcome {
    match r {
        Ok((ret, flush)) => Outcome { ret: ret as i64, effects: Effects { flush, ..Default::default() } },
        Err(e) => Outcome::err(e),
    }
}

/// The ranges of a flush set (consumed).
fn ranges(fs: FlushSet) -> Vec<Range> {
    let r = fs.ranges().iter().map(|&(va, len)| (va.raw(), len)).collect();
    fs.ignore();
    r
}

fn mm_err(e: &MmError) -> i32 {
    e.errno()
}

impl Hypervisor {
    /// `mmap(addr, len, prot, flags, fd, off)`.
    pub(super) fn mmap(&self, args: [u64; 6]) -> Outcome {
        let mut flush = Vec::new();
        let r = self.mmap_inner(args, &mut flush);
        let ret = match r {
            Ok(addr) => addr as i64,
            Err(e) => -i64::from(e),
        };
        Outcome { ret, effects: Effects { flush, ..Default::default() } }
    }

    fn mmap_inner(&self, args: [u64; 6], flush: &mut Vec<Range>) -> Result<u64, i32> {
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
        let req = MmapRequest { addr: hint, len, prot, shared, placement, pgoff: off / PAGE_SIZE };
        let mut m = self.mapper();
        let result = m.space_mut().mmap(provider.provider(), &req);
        let deferred = m.space_mut().take_deferred_flush();
        // Entries a failure path cleared after vCPUs could have used them
        // are flushed like any other (the error is still returned).
        flush.extend(ranges(deferred));
        match result {
            Ok(mapped) => {
                log::debug!("mmap {:#x}+{len:#x} via {} -> {:#x}", addr, provider.provider().name(), mapped.addr.raw());
                flush.extend(ranges(mapped.flush));
                Ok(mapped.addr.raw())
            }
            Err(e) => {
                log::debug!("mmap {addr:#x}+{len:#x} via {} failed: {e}", provider.provider().name());
                Err(mm_err(&e))
            }
        }
    }

    /// `munmap(addr, len)`.
    pub(super) fn munmap(&self, addr: u64, len: u64) -> Outcome {
        let r = (|| {
            let va = user_range(addr, len)?;
            let mut m = self.mapper();
            let fl = m.space_mut().munmap(va, len).map_err(|e| mm_err(&e))?;
            Ok((0, ranges(fl)))
        })();
        done(r)
    }

    /// `mprotect(addr, len, prot)`.
    pub(super) fn mprotect(&self, addr: u64, len: u64, p: u64) -> Outcome {
        let r = (|| {
            let prot = prot_flags(p)?;
            let va = user_range(addr, len)?;
            let mut m = self.mapper();
            let fl = m.space_mut().mprotect(va, len, prot).map_err(|e| mm_err(&e))?;
            Ok((0, ranges(fl)))
        })();
        done(r)
    }
}
