//! Keeping glibc's allocator inside the allow-lists: the `malloc` settings
//! a run under the filters makes before any filter is on ([`tune`]).
//!
//! The allow-lists name the system calls the VMM makes, but glibc's
//! `malloc` makes some behind the program's back, on whatever thread
//! frees or allocates:
//!
//! - **Shrinking a thread arena** (`heap_trim` → `shrink_heap`) first
//!   asks whether the kernel overcommits, by opening
//!   `/proc/sys/vm/overcommit_memory` (once per process). No thread may
//!   `openat`, so a guest that made a vCPU thread free enough memory (64
//!   GiB mapped, `madvise(WILLNEED)`, unmapped) ended the VMM with
//!   `SIGSYS` (issue 20, item 1). `M_TRIM_THRESHOLD` at its maximum
//!   (2 GiB − 1) makes `heap_trim` return before `shrink_heap`: a thread
//!   heap is at most 64 MiB, so its free top never reaches the threshold.
//! - **A ninth arena**: once more than 8 arenas exist, glibc asks for the
//!   number of CPUs (`sched_getaffinity`, or `/sys/devices/system/cpu/online`
//!   in other versions) to size the arena limit. `M_ARENA_MAX` set makes
//!   it use that limit instead and never ask. 8 is the limit glibc itself
//!   reaches without asking, so up to 8 threads nothing changes; more
//!   threads share arenas (they wait on the arena's lock, no syscall
//!   beyond `futex`).
//!
//! Why this and not the alternatives: a musl build (Firecracker's way)
//! needs a target this machine cannot install; calling into glibc once
//! before the filters so that it caches the file would depend on which
//! arena a priming thread gets; and letting the filters answer `openat`
//! with an errno would hide any other file a thread opens behind a
//! silent failure, where the `SIGSYS` handler ([`super::sigsys`]) now
//! names it. What the settings cost: freed memory at the top of an arena
//! is kept for reuse instead of given back with `MADV_DONTNEED` or a
//! lower `brk`. Blocks of 128 KiB or more are still their own mappings,
//! unmapped when freed (setting the trim threshold also stops glibc from
//! raising the mmap threshold), and a thread heap that becomes wholly
//! free is still unmapped, neither of which touches a file.
//!
//! This module does not cover other libraries' hidden calls; the filters'
//! trap and its handler are what make such a miss a clear error.

/// The largest trim threshold `mallopt` takes (an `int`).
const NEVER_TRIM: libc::c_int = libc::c_int::MAX;
/// The arena limit: what glibc reaches before it would count CPUs.
const ARENAS: libc::c_int = 8;

/// Sets the allocator so that no later `malloc` or `free`, on any thread,
/// makes a system call outside the allow-lists. Process-wide and
/// idempotent; call before any filtered thread starts.
pub fn tune() -> Result<(), &'static str> {
    for (param, value, what) in
        [(libc::M_TRIM_THRESHOLD, NEVER_TRIM, "M_TRIM_THRESHOLD"), (libc::M_ARENA_MAX, ARENAS, "M_ARENA_MAX")]
    {
        // SAFETY: mallopt takes two integers and changes only malloc's
        // own parameters (under its lock).
        if unsafe { libc::mallopt(param, value) } != 1 {
            return Err(what);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_settings() {
        assert_eq!(tune(), Ok(()));
        // Again: idempotent.
        assert_eq!(tune(), Ok(()));
    }
}
