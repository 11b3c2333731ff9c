//! Control-register, EFER, RFLAGS and MSR values for a long-mode vCPU
//! whose workload runs at CPL 3.

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type (always 1 on modern CPUs).
pub const CR0_ET: u64 = 1 << 4;

/// CR0: protection, monitor coprocessor, extension type, native FPU
/// errors, supervisor write protection, paging.
pub const CR0: u64 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
/// CR4: PAE (required for long mode), SSE enabled for the OS (FXSR,
/// XMMEXCPT). No PGE: a CR3 reload flushes every translation.
pub const CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
/// EFER: syscall enable, long mode enable + active, no-execute enable.
pub const EFER: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
/// User RFLAGS: reserved bit 1 only (IOPL 0, interrupts off).
pub const USER_RFLAGS: u64 = 0x2;
/// Bits `syscall` clears in RFLAGS (TF, IF, DF, AC, NT...), as Linux.
pub const SFMASK: u64 = 0x47700;

/// MSR numbers.
pub mod msr {
    /// IA32_STAR.
    pub const STAR: u32 = 0xc000_0081;
    /// IA32_LSTAR: 64-bit syscall entry.
    pub const LSTAR: u32 = 0xc000_0082;
    /// IA32_CSTAR: compat-mode syscall entry (unused).
    pub const CSTAR: u32 = 0xc000_0083;
    /// IA32_FMASK.
    pub const SFMASK: u32 = 0xc000_0084;
    /// IA32_FS_BASE.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// IA32_GS_BASE.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// IA32_KERNEL_GS_BASE (swapped in by `swapgs`).
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
}

/// x87 control word after `fninit`.
pub const FPU_FCW: u16 = 0x37f;
/// MXCSR reset value (all exceptions masked).
pub const MXCSR: u32 = 0x1f80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(CR0, 0x8001_0033);
        assert_eq!(CR4, 0x620);
        assert_eq!(EFER, 0xd01);
    }
}
