//! Solo5 `spt` unikernels, run unmodified: the personality that makes
//! the VMM look like `solo5-spt` to them.
//!
//! - Loader: a segment `solo5-spt` refuses (writable and executable,
//!   or more file than memory bytes: [`segments`]) is refused at load;
//!   the `PT_LOAD` segments are mapped through guest-mm with
//!   exactly their rights (text is not writable, data not executable),
//!   the rest of the unikernel's memory `[64 KiB, mem)` read/write and not
//!   executable, page zero unmapped; the boot-info block, manifest and
//!   command line are written where the `spt` ABI puts them
//!   ([`layout`]).
//! - Entry: long mode at CPL 3 at the ELF entry, `rdi` = the boot-info
//!   block, `rsp` = top of memory - 8; `LSTAR` points at the kernel stub
//!   where `syscall` enters CPL 0, or, where the backend keeps `syscall`
//!   in user mode, at the unikernel's own user-mode trampoline
//!   ([`fastcall`]), which answers `clock_gettime` and the yield's
//!   `timerfd_settime` without an exit, from a clock page the host keeps
//!   ([`clock`]).
//! - System calls: [`syscalls`], with Linux numbers.
//! - End: `exit_group(n)` gives `n & 0xff`; a fault gives 139 (SIGSEGV);
//!   a call the `spt` seccomp policy refuses gives 159 (SIGSYS).
//!
//! - Block devices: host files attached by name ([`block`]), served by
//!   `pread64`/`pwrite64`.
//! - Network devices: host tap interfaces attached by name ([`net`],
//!   [`tap`]), served by `read`/`write`, one frame each, and waited for
//!   in the yield's `epoll_pwait`.
//!
//!   A tap may also be a descriptor the caller passed in
//!   (`--net:NAME=@FD`, as for `solo5-spt`).
//!
//! Not supported yet: `--x-exec-heap` (refused: the heap is never executable
//! here), and more than one vCPU (Solo5 has one).

mod block;
mod clock;
mod fastcall;
mod kind;
mod layout;
mod mac;
mod memory;
mod net;
#[cfg(test)]
mod net_tests;
pub mod note;
mod numbers;
pub mod segments;
mod syscalls;
#[cfg(test)]
mod syscalls_tests;
mod tap;

pub use self::kind::{
    check_block_name, is_solo5, parse_block, parse_sector_size, DeviceArgs, Solo5, Spec, BLOCK, BLOCK_NAME_MAX,
    BLOCK_SECTOR_SIZE, NET, NET_MAC, SIGSEGV_STATUS, SPEC, X_EXEC_HEAP,
};
pub use self::layout::DEFAULT_MEM;
pub use self::mac::Mac;
