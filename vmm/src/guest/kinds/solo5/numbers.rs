//! The Linux system-call numbers a Solo5 `spt` unikernel makes, shared
//! by the call table ([`super::syscalls`]) and the block device
//! ([`super::block`]).

/// Linux x86-64 system-call numbers the bindings use.
pub mod nr {
    /// `read`
    pub const READ: u64 = 0;
    /// `write`
    pub const WRITE: u64 = 1;
    /// `pread64`
    pub const PREAD64: u64 = 17;
    /// `pwrite64`
    pub const PWRITE64: u64 = 18;
    /// `arch_prctl`
    pub const ARCH_PRCTL: u64 = 158;
    /// `clock_gettime`
    pub const CLOCK_GETTIME: u64 = 228;
    /// `exit_group`
    pub const EXIT_GROUP: u64 = 231;
    /// `epoll_pwait`
    pub const EPOLL_PWAIT: u64 = 281;
    /// `timerfd_settime`
    pub const TIMERFD_SETTIME: u64 = 286;
}
