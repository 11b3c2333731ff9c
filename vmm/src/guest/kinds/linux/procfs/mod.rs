//! `/proc` and `/sys` files of the `linux` kind, made from guest-mm's own
//! state in Linux 6.12's exact text formats: `/proc/self/maps`, `smaps`,
//! `smaps_rollup`, `status`, `stat`, `cmdline`, `pagemap`, `/proc/meminfo`, the
//! `/proc/sys/vm` knobs and the `hugepages-2048kB` directory of `/sys`.
//!
//! Everything here is a pure function of a [`ProcView`] (the address
//! space plus what the kind knows about the process) returning the file's
//! bytes; the kind registers them as synthetic files (`fs::Vfs`), which
//! call them at `open`. Nothing here touches guest memory other than by
//! reading the page tables, and nothing writes.
//!
//! Not done: `/proc/self/numa_maps`, `clear_refs`, soft-dirty tracking
//! (bit 55 of pagemap and `sd` are never set), the `[vdso]`, `[vvar]`
//! and `[vsyscall]` lines (the VMM maps none of them), and flags guest-mm
//! does not keep (`VM_ACCOUNT`, `VM_GROWSDOWN`, ...: see
//! docs/guest-mm.md, "/proc files").

mod maps;
mod meminfo;
mod pagemap;
mod region;
mod smaps;
mod stat;
mod stats;
mod status;

pub use self::maps::maps;
pub use self::meminfo::{hugepages_file, meminfo, sysctl_vm, MemInfo};
pub use self::pagemap::{pagemap_read, PagemapError, PM_ENTRY_BYTES};
pub use self::region::{
    Backing, FileId, ImageFile, ImageSegment, InodeOf, ProcView, Region, FILE_PREFIX, HEAP_PROVIDER, HUGE_PROVIDER,
    IMAGE_PROVIDER, MEMFD_PREFIX, STACK_PROVIDER, ZERO_PROVIDER,
};
pub use self::smaps::{smaps, smaps_rollup};
pub use self::stat::{cmdline, stat, StatExtra};
pub use self::stats::MemStats;
pub use self::status::{status, StatusExtra, TaskState};

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
