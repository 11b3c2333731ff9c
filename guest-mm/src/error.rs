//! The one error type of the mapper, with the `errno` it becomes when it
//! crosses to a guest.

use thiserror::Error;

/// Linux errno values used by the mapper.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such device or address.
    pub const ENXIO: i32 = 6;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Function not implemented.
    pub const ENOSYS: i32 = 38;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
}

/// Everything that can go wrong in the mapper. The doc comment of each
/// variant is its message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MmError {
    /// The address lies in the non-canonical hole.
    #[error("address {addr:#x} is not canonical")]
    NonCanonical {
        /// The offending address.
        addr: u64,
    },
    /// An address or length is not aligned as required.
    #[error("{what} {value:#x} is not aligned to {align:#x}")]
    Misaligned {
        /// What was misaligned ("address", "length", "pgoff", ...).
        what: &'static str,
        /// The value.
        value: u64,
        /// The alignment it needed.
        align: u64,
    },
    /// An address computation overflowed.
    #[error("range at {addr:#x} with length {len:#x} overflows")]
    Overflow {
        /// Start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// A generic invalid argument, with the reason.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A range does not lie inside the VMA (or descriptor) it targets.
    #[error("range [{start:#x}, {end:#x}) is outside the mapping [{vma_start:#x}, {vma_end:#x})")]
    OutsideVma {
        /// Start of the offending range.
        start: u64,
        /// Its exclusive end.
        end: u64,
        /// Start of the VMA.
        vma_start: u64,
        /// Exclusive end of the VMA.
        vma_end: u64,
    },
    /// A frame is not backed by guest memory.
    #[error("frame {pfn:#x} is not guest memory")]
    FrameNotInGuest {
        /// The frame.
        pfn: u64,
    },
    /// A frame belongs to the VMM (page tables, reserved region).
    #[error("frame {pfn:#x} is reserved for the VMM")]
    FrameReserved {
        /// The frame.
        pfn: u64,
    },
    /// A physical range may not be mapped by this provider.
    #[error("physical range [{start:#x}, {end:#x}) may not be mapped")]
    NotAllowed {
        /// Start of the physical range.
        start: u64,
        /// Exclusive end.
        end: u64,
    },
    /// Not enough address space in the placement window.
    #[error("no free virtual range of {len:#x} bytes")]
    NoSpace {
        /// The length asked for.
        len: u64,
    },
    /// Part of the range is not mapped (mprotect, compat prepare).
    #[error("address {addr:#x} is not mapped")]
    NotMapped {
        /// First unmapped address found.
        addr: u64,
    },
    /// The operation would need more VMAs than the limit allows.
    #[error("more than {limit} mappings (max_map_count)")]
    TooManyMappings {
        /// The limit.
        limit: usize,
    },
    /// Out of page-table pages or pool pages.
    #[error("out of {0}")]
    OutOfMemory(&'static str),
    /// A no-replace fixed mapping hit an existing one.
    #[error("range at {addr:#x} is already mapped")]
    Exists {
        /// Start of the requested range.
        addr: u64,
    },
    /// mprotect asked for access the mapping may never have.
    #[error("access {0} not permitted on this mapping")]
    Access(&'static str),
    /// The provider's memory may not be executable (`VM_EXEC` asked).
    #[error("{0} cannot be mapped executable")]
    NoExec(&'static str),
    /// The provider knows no such window or object.
    #[error("no device window at {addr:#x}")]
    NoDevice {
        /// What was asked for.
        addr: u64,
    },
    /// A transient failure (the guest-RAM provider's filtered error).
    #[error("mapping failed, try again")]
    Again,
    /// An operation the provider does not support.
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    /// The object is still mapped (a BAR window being removed).
    #[error("{0} is still mapped")]
    Busy(&'static str),
    /// Populating a page failed the way a guest access would (`SIGBUS` or
    /// `SIGSEGV`: the provider refused, or nothing can fault it in).
    #[error("populating {addr:#x} failed")]
    FaultFailed {
        /// The page that could not be populated.
        addr: u64,
    },
    /// The range holds a mapping sealed by `mseal` that the operation
    /// would change.
    #[error("the mapping at {addr:#x} is sealed")]
    Sealed {
        /// Start of the sealed VMA met first.
        addr: u64,
    },
    /// No VMA covers the address where the operation needs one (`mbind`,
    /// `get_mempolicy`: `EFAULT`).
    #[error("no mapping at {addr:#x}")]
    Hole {
        /// First address no VMA covers.
        addr: u64,
    },
    /// A shared-memory object's page quota (a tmpfs `size=`) is used up.
    #[error("the {0} quota is used up")]
    QuotaFull(&'static str),
    /// Guest memory could not be accessed.
    #[error("guest memory access failed at {addr:#x}")]
    GuestMemory {
        /// Guest-physical address of the failed access.
        addr: u64,
    },
}

impl MmError {
    /// The Linux errno this error is reported as to a guest (positive).
    pub fn errno(&self) -> i32 {
        use errno::*;
        match self {
            MmError::NonCanonical { .. }
            | MmError::Misaligned { .. }
            | MmError::Overflow { .. }
            | MmError::Invalid(_) => EINVAL,
            MmError::OutsideVma { .. } | MmError::FrameNotInGuest { .. } | MmError::Hole { .. } => EFAULT,
            MmError::GuestMemory { .. } | MmError::FaultFailed { .. } => EFAULT,
            MmError::FrameReserved { .. }
            | MmError::NotAllowed { .. }
            | MmError::NoExec(_)
            | MmError::Sealed { .. } => EPERM,
            MmError::NoSpace { .. }
            | MmError::OutOfMemory(_)
            | MmError::NotMapped { .. }
            | MmError::TooManyMappings { .. } => ENOMEM,
            MmError::Exists { .. } => EEXIST,
            MmError::Access(_) => EACCES,
            MmError::NoDevice { .. } => ENXIO,
            MmError::Again => EAGAIN,
            MmError::NotSupported(_) => EOPNOTSUPP,
            MmError::Busy(_) => EBUSY,
            MmError::QuotaFull(_) => ENOSPC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        let table: &[(MmError, i32)] = &[
            (MmError::Invalid("x"), errno::EINVAL),
            (MmError::Overflow { addr: 0, len: 0 }, errno::EINVAL),
            (MmError::FrameNotInGuest { pfn: 1 }, errno::EFAULT),
            (MmError::FrameReserved { pfn: 1 }, errno::EPERM),
            (MmError::NoSpace { len: 1 }, errno::ENOMEM),
            (MmError::TooManyMappings { limit: 1 }, errno::ENOMEM),
            (MmError::Exists { addr: 0 }, errno::EEXIST),
            (MmError::NoDevice { addr: 0 }, errno::ENXIO),
            (MmError::NoExec("x"), errno::EPERM),
            (MmError::Again, errno::EAGAIN),
            (MmError::Access("write"), errno::EACCES),
            (MmError::Busy("x"), errno::EBUSY),
            (MmError::FaultFailed { addr: 0 }, errno::EFAULT),
            (MmError::Sealed { addr: 0x1000 }, errno::EPERM),
            (MmError::QuotaFull("tmpfs"), errno::ENOSPC),
            (MmError::Hole { addr: 0 }, errno::EFAULT),
        ];
        for (e, n) in table {
            assert_eq!(e.errno(), *n, "{e}");
        }
    }

    #[test]
    fn messages_print_hex() {
        let e = MmError::FrameReserved { pfn: 0x1234 };
        assert_eq!(e.to_string(), "frame 0x1234 is reserved for the VMM");
    }
}
