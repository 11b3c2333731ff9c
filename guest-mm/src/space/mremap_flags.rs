//! What a caller asks of [`crate::AddressSpace::mremap_with`]: Linux's
//! `MREMAP_*` flags and the fixed target, checked for the combinations
//! Linux refuses before it looks at any mapping.

use crate::addr::GuestVirtAddr;
use crate::error::MmError;

/// `MREMAP_MAYMOVE`.
pub const MREMAP_MAYMOVE: u64 = 1;
/// `MREMAP_FIXED`.
pub const MREMAP_FIXED: u64 = 2;
/// `MREMAP_DONTUNMAP`.
pub const MREMAP_DONTUNMAP: u64 = 4;

/// The options of an mremap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MremapFlags {
    /// `MREMAP_MAYMOVE`: the mapping may move to grow.
    pub may_move: bool,
    /// `MREMAP_FIXED` with its target (needs `may_move`).
    pub fixed: Option<GuestVirtAddr>,
    /// `MREMAP_DONTUNMAP`: move the pages and leave the old range mapped
    /// but empty (needs `may_move` and equal lengths).
    pub dont_unmap: bool,
}

impl MremapFlags {
    /// In place only (no flags).
    pub const IN_PLACE: MremapFlags = MremapFlags { may_move: false, fixed: None, dont_unmap: false };

    /// `MREMAP_MAYMOVE`.
    pub const MAY_MOVE: MremapFlags = MremapFlags { may_move: true, fixed: None, dont_unmap: false };

    /// From the syscall's `flags` and `new_address`: `EINVAL` for unknown
    /// bits, and for a `MREMAP_FIXED` target that is not a canonical
    /// address (Linux: beyond `TASK_SIZE`). `new_address` is ignored
    /// without `MREMAP_FIXED` (a hint Linux may ignore too).
    pub fn from_linux(flags: u64, new_address: u64) -> Result<MremapFlags, MmError> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
            return Err(MmError::Invalid("unknown mremap flags"));
        }
        let fixed = if flags & MREMAP_FIXED != 0 {
            Some(GuestVirtAddr::try_new(new_address).map_err(|_| MmError::Invalid("MREMAP_FIXED target"))?)
        } else {
            None
        };
        Ok(MremapFlags { may_move: flags & MREMAP_MAYMOVE != 0, fixed, dont_unmap: flags & MREMAP_DONTUNMAP != 0 })
    }

    /// The combinations Linux refuses up front (`EINVAL`): `MREMAP_FIXED`
    /// or `MREMAP_DONTUNMAP` without `MREMAP_MAYMOVE`, and
    /// `MREMAP_DONTUNMAP` with lengths that differ (as passed, before
    /// they are rounded to pages).
    pub(crate) fn check(&self, old_len: u64, new_len: u64) -> Result<(), MmError> {
        if self.fixed.is_some() && !self.may_move {
            return Err(MmError::Invalid("MREMAP_FIXED without MREMAP_MAYMOVE"));
        }
        if self.dont_unmap && !self.may_move {
            return Err(MmError::Invalid("MREMAP_DONTUNMAP without MREMAP_MAYMOVE"));
        }
        if self.dont_unmap && old_len != new_len {
            return Err(MmError::Invalid("MREMAP_DONTUNMAP with a change of length"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn linux_flags_decode_and_unknown_bits_are_refused() {
        let to = GuestVirtAddr::try_new(0x7000).unwrap();
        assert_eq!(MremapFlags::from_linux(0, 0x7000).unwrap(), MremapFlags::IN_PLACE);
        assert_eq!(MremapFlags::from_linux(1, 0x7000).unwrap(), MremapFlags::MAY_MOVE);
        let f = MremapFlags::from_linux(1 | 2 | 4, 0x7000).unwrap();
        assert_eq!(f, MremapFlags { may_move: true, fixed: Some(to), dont_unmap: true });
        assert!(MremapFlags::from_linux(8, 0).is_err());
        assert!(MremapFlags::from_linux(1 << 40 | 1, 0).is_err());
        // A non-canonical fixed target; ignored without MREMAP_FIXED.
        assert!(MremapFlags::from_linux(1 | 2, 1 << 47).is_err());
        assert_eq!(MremapFlags::from_linux(1, 1 << 47).unwrap(), MremapFlags::MAY_MOVE);
    }

    #[test]
    fn refused_combinations() {
        let to = GuestVirtAddr::try_new(0x7000).unwrap();
        let bad = |f: MremapFlags, o: u64, n: u64| f.check(o, n).unwrap_err().errno();
        let einval = crate::error::errno::EINVAL;
        assert_eq!(bad(MremapFlags { fixed: Some(to), ..MremapFlags::IN_PLACE }, 1, 1), einval);
        assert_eq!(bad(MremapFlags { dont_unmap: true, ..MremapFlags::IN_PLACE }, 1, 1), einval);
        let du = MremapFlags { dont_unmap: true, ..MremapFlags::MAY_MOVE };
        assert_eq!(bad(du, 0x1000, 0x2000), einval);
        // Lengths compare as passed: 1 and 4096 are the same page, and still differ.
        assert_eq!(bad(du, 1, 0x1000), einval);
        assert!(du.check(0x1000, 0x1000).is_ok());
        assert!(MremapFlags { fixed: Some(to), ..du }.check(5, 5).is_ok());
    }
}
