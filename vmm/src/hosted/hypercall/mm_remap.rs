//! `mremap` and `madvise`: Linux arguments in, guest-mm's
//! [`AddressSpace::mremap`](guest_mm::AddressSpace::mremap) and
//! [`AddressSpace::madvise`](guest_mm::AddressSpace::madvise), a result or
//! `-errno` out. Checked here: known flags (`MREMAP_DONTUNMAP` is not
//! implemented: `EINVAL`), both ranges in the user half (`ENOMEM` past
//! it, `EINVAL` misaligned). Removed entries are shot down on every vCPU
//! before the address-space lock is released, as for `munmap`.

use guest_mm::{errno, Advice};

use super::call::Outcome;
use super::kernel::HostedKernel;
use super::mm::{done, mm_err, ranges, user_range};
use crate::hosted::stub::abi::mremap;

impl HostedKernel {
    /// `mremap(old, old_len, new_len, flags, new)`.
    pub(super) fn mremap(&self, vcpu: u8, args: [u64; 6]) -> Outcome {
        let [old, old_len, new_len, flags, new, _] = args;
        let mut fatal = None;
        let r = (|| {
            if flags & !(mremap::MAYMOVE | mremap::FIXED) != 0 {
                return Err(errno::EINVAL);
            }
            let old = user_range(old, old_len)?;
            let fixed = if flags & mremap::FIXED != 0 { Some(user_range(new, new_len)?) } else { None };
            let mut m = self.mapper();
            let r = m.space_mut().mremap(old, old_len, new_len, flags & mremap::MAYMOVE != 0, fixed);
            let mut flush = ranges(m.space_mut().take_deferred_flush());
            let r = r.map(|rm| {
                flush.extend(ranges(rm.flush));
                rm.addr.raw()
            });
            fatal = self.shoot_down(vcpu, &flush);
            drop(m);
            r.map_err(|e| mm_err(&e))
        })();
        done(r, fatal)
    }

    /// `madvise(addr, len, advice)`.
    pub(super) fn madvise(&self, vcpu: u8, addr: u64, len: u64, advice: u64) -> Outcome {
        let mut fatal = None;
        let r = (|| {
            let advice = Advice::from_linux(advice).map_err(|e| mm_err(&e))?;
            let va = user_range(addr, len)?;
            let mut m = self.mapper();
            let r = m.space_mut().madvise(va, len, advice);
            // As every call that changes mappings: what an undone insert
            // left (WILLNEED populates best effort) goes with it, success
            // or not.
            let mut flush = ranges(m.space_mut().take_deferred_flush());
            let r = r.map(|fl| flush.extend(ranges(fl)));
            fatal = self.shoot_down(vcpu, &flush);
            drop(m);
            r.map(|()| 0).map_err(|e| mm_err(&e))
        })();
        done(r, fatal)
    }
}
