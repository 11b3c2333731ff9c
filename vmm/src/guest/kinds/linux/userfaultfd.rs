//! `userfaultfd` without fault delivery: a descriptor that takes the
//! `UFFDIO_API` handshake, checks `UFFDIO_REGISTER` /
//! `UFFDIO_UNREGISTER` ranges as Linux 6.12 does (`fs/userfaultfd.c`),
//! with its errno values, and serves `UFFDIO_COPY` into registered
//! ranges (`syscalls/uffd.rs`).
//!
//! What it does not do: deliver faults. No feature and no other range
//! ioctl (`ZEROPAGE`, `WAKE`, ...) is offered, nothing reads events
//! (`read` is `EAGAIN`), and a registered range faults as if it were not
//! registered. Linux would hand a missing-page fault to a reader; a
//! one-thread program with no reader would wait forever there, so a
//! program that runs to its end on Linux never relies on it.
//! Registrations are kept per context as ranges, not on the VMAs: an
//! `munmap` or `mremap` does not drop them as Linux does (it drops them
//! on `mremap` too when, as here, `UFFD_FEATURE_EVENT_REMAP` was not asked
//! for, which is what `hugepage-mremap` exercises), so a copy into an
//! unmapped-and-remapped range is accepted here where Linux says
//! `ENOENT`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::fs::{Fd, Special, Vfs};

/// First tag of a userfaultfd descriptor ([`Special::Tag`]).
pub const UFFD_TAG_BASE: u32 = 0x800;
/// One past the last (memfds start there).
pub const UFFD_TAG_END: u32 = super::memfd::MEMFD_TAG_BASE;

/// `UFFD_API`.
pub const UFFD_API: u64 = 0xaa;
/// `_UFFDIO_REGISTER`, `_UFFDIO_UNREGISTER`, `_UFFDIO_API`: the ioctl
/// numbers the descriptor serves (bits of `uffdio_api.ioctls`).
pub const API_IOCTLS: u64 = (1 << 0) | (1 << 1) | (1 << 0x3f);
/// `UFFDIO_REGISTER_MODE_{MISSING,WP,MINOR}`.
pub mod mode {
    /// Missing pages.
    pub const MISSING: u64 = 1;
    /// Write protection.
    pub const WP: u64 = 2;
    /// Minor faults (hugetlb and shmem only).
    pub const MINOR: u64 = 4;
}

/// The userfaultfd tag of a special node, if it is one.
pub fn tag_of(s: Special) -> Option<u32> {
    match s {
        Special::Tag(t) if (UFFD_TAG_BASE..UFFD_TAG_END).contains(&t) => Some(t),
        _ => None,
    }
}

/// Most userfaultfd descriptors alive at once.
const UFFD_MAX: usize = 1024;

/// The process's userfaultfd contexts, by tag: whether the handshake
/// happened.
#[derive(Default)]
pub struct Uffds {
    api_done: Mutex<BTreeMap<u32, bool>>,
    next: Mutex<u32>,
    /// Each context's registered ranges `[start, end)`, as registered
    /// (kept by the context, not by the VMAs: an unmapped range stays
    /// registered here, where Linux drops it with the VMA).
    ranges: Mutex<BTreeMap<u32, Vec<(u64, u64)>>>,
}

impl Uffds {
    /// `userfaultfd(flags)`: `O_CLOEXEC`, `O_NONBLOCK` and
    /// `UFFD_USER_MODE_ONLY` (1) are accepted, anything else `EINVAL`.
    pub fn create(&self, vfs: &mut Vfs, flags: u64) -> Result<Fd, i32> {
        const USER_MODE_ONLY: u64 = 1;
        let known = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | USER_MODE_ONLY;
        if flags & !known != 0 {
            return Err(libc::EINVAL);
        }
        let mut ctxs = self.api_done.lock().unwrap_or_else(|e| e.into_inner());
        if ctxs.len() >= UFFD_MAX {
            let live: std::collections::BTreeSet<u32> = vfs
                .open_fds()
                .into_iter()
                .filter_map(|(fd, _)| vfs.special(fd).ok().flatten().and_then(|s| tag_of(s.special)))
                .collect();
            ctxs.retain(|t, _| live.contains(t));
            if ctxs.len() >= UFFD_MAX {
                return Err(libc::ENFILE);
            }
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let span = UFFD_TAG_END - UFFD_TAG_BASE;
        let tag = (0..span).map(|i| UFFD_TAG_BASE + (*next + i) % span).find(|t| !ctxs.contains_key(t));
        let tag = tag.ok_or(libc::ENFILE)?;
        *next = (tag - UFFD_TAG_BASE + 1) % span;
        let oflags = libc::O_RDWR | (flags as i32 & (libc::O_CLOEXEC | libc::O_NONBLOCK));
        let fd = vfs.open_anonymous(Special::Tag(tag), oflags, 0o600).map_err(|e| e.raw())?;
        ctxs.insert(tag, false);
        Ok(fd)
    }

    /// `UFFDIO_API` on context `tag` with `(api, features)`: `EINVAL` for
    /// another API, any feature (none is offered) or a second handshake.
    /// Returns what the call writes back: `(api, features, ioctls)`, all
    /// zero on an error, as Linux clears the struct.
    pub fn api(&self, tag: u32, api: u64, features: u64) -> (Result<(), i32>, [u64; 3]) {
        let mut ctxs = self.api_done.lock().unwrap_or_else(|e| e.into_inner());
        let Some(done) = ctxs.get_mut(&tag) else { return (Err(libc::EBADF), [0; 3]) };
        if api != UFFD_API || features != 0 || *done {
            return (Err(libc::EINVAL), [0; 3]);
        }
        *done = true;
        (Ok(()), [UFFD_API, 0, API_IOCTLS])
    }

    /// Records `[start, end)` as registered with context `tag`.
    pub fn register(&self, tag: u32, start: u64, end: u64) {
        let mut r = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let list = r.entry(tag).or_default();
        cut(list, start, end);
        list.push((start, end));
    }

    /// Forgets `[start, end)` for context `tag` (pieces outside stay).
    pub fn unregister(&self, tag: u32, start: u64, end: u64) {
        let mut r = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = r.get_mut(&tag) {
            cut(list, start, end);
        }
    }

    /// Whether every byte of `[start, end)` is registered with `tag`.
    pub fn covers(&self, tag: u32, start: u64, end: u64) -> bool {
        let r = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(u64, u64)> = r.get(&tag).cloned().unwrap_or_default();
        list.sort_unstable();
        let mut at = start;
        for (s, e) in list {
            if s <= at && e > at {
                at = e;
            }
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// Whether context `tag` finished its handshake (every other ioctl
    /// needs it: `EINVAL`).
    pub fn initialized(&self, tag: u32) -> bool {
        self.api_done.lock().unwrap_or_else(|e| e.into_inner()).get(&tag).copied().unwrap_or(false)
    }
}

/// Removes `[start, end)` from `list`, splitting ranges it cuts.
fn cut(list: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(list.len() + 1);
    for &(s, e) in list.iter() {
        if e <= start || s >= end {
            out.push((s, e));
            continue;
        }
        if s < start {
            out.push((s, start));
        }
        if e > end {
            out.push((end, e));
        }
    }
    *list = out;
}

/// `validate_range`: a page-aligned, non-empty range from
/// `mmap_min_addr` inside the user half (`EINVAL` otherwise).
pub fn validate_range(start: u64, len: u64, min_addr: u64, task_size: u64) -> Result<u64, i32> {
    const PAGE: u64 = 4096;
    if start % PAGE != 0 || len % PAGE != 0 || len == 0 || start < min_addr || start >= task_size {
        return Err(libc::EINVAL);
    }
    if len > task_size - start {
        return Err(libc::EINVAL);
    }
    Ok(start + len)
}

/// A registration mode: non-zero, known bits only (`EINVAL`).
pub fn check_mode(m: u64) -> Result<(), i32> {
    if m == 0 || m & !(mode::MISSING | mode::WP | mode::MINOR) != 0 {
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// What `vma_can_userfault` needs to know of one VMA in the range.
#[derive(Clone, Copy, Debug)]
pub struct VmaKind {
    /// `[start, end)`.
    pub start: u64,
    /// End.
    pub end: u64,
    /// Private anonymous memory (`vma_is_anonymous`).
    pub anonymous: bool,
    /// Shared memory (`vma_is_shmem`: memfds, shared anonymous memory).
    pub shmem: bool,
    /// hugetlb, with its page size.
    pub hugetlb: Option<u64>,
    /// `VM_MAYWRITE`.
    pub may_write: bool,
    /// `VM_DROPPABLE`.
    pub droppable: bool,
}

/// `userfaultfd_register`'s checks of the VMAs meeting `[start, end)`
/// (in address order): at least one (`EINVAL`), a hugetlb first VMA
/// needs a start on its page size and a hugetlb last VMA an end on it,
/// each must be able to take the mode (anonymous, shmem or hugetlb;
/// `MINOR` not anonymous; `WP` anonymous only, as without uffd-wp PTE
/// markers) and be `VM_MAYWRITE`. Returns the range ioctls offered:
/// `UFFDIO_COPY` alone (see the module docs).
pub fn check_register(vmas: &[VmaKind], start: u64, end: u64, m: u64) -> Result<u64, i32> {
    let first = vmas.first().ok_or(libc::EINVAL)?;
    if first.hugetlb.is_some_and(|h| start % h != 0) {
        return Err(libc::EINVAL);
    }
    for v in vmas {
        let minor_ok = m & mode::MINOR == 0 || v.hugetlb.is_some() || v.shmem;
        let wp_ok = m & mode::WP == 0 || v.anonymous;
        let kind_ok = v.anonymous || v.shmem || v.hugetlb.is_some();
        let can = !v.droppable && minor_ok && wp_ok && kind_ok;
        if !can || !v.may_write {
            return Err(libc::EINVAL);
        }
        if let Some(h) = v.hugetlb {
            if end <= v.end && end > v.start && end % h != 0 {
                return Err(libc::EINVAL);
            }
        }
    }
    Ok(1 << UFFDIO_COPY_NR)
}

/// `_UFFDIO_COPY`: the ioctl number, and its bit in a register's answer.
pub const UFFDIO_COPY_NR: u64 = 0x03;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_ranges_are_cut_and_covered() {
        let u = Uffds::default();
        u.register(7, 0x10000, 0x20000);
        u.register(7, 0x20000, 0x30000);
        assert!(u.covers(7, 0x18000, 0x28000), "two adjacent registrations cover across their seam");
        assert!(!u.covers(8, 0x18000, 0x19000), "another context's registration");
        u.unregister(7, 0x14000, 0x15000);
        assert!(!u.covers(7, 0x14000, 0x15000));
        assert!(u.covers(7, 0x10000, 0x14000) && u.covers(7, 0x15000, 0x30000));
        assert!(!u.covers(7, 0x2f000, 0x31000), "past the end");
    }

    const TASK: u64 = 0x7fff_ffff_f000;
    const H: u64 = 2 << 20;

    fn anon(start: u64, end: u64) -> VmaKind {
        VmaKind { start, end, anonymous: true, shmem: false, hugetlb: None, may_write: true, droppable: false }
    }

    #[test]
    fn ranges_and_modes_are_checked_as_linux() {
        assert_eq!(validate_range(0x10000, 0x1000, 0x10000, TASK), Ok(0x11000));
        for (s, l) in [(0x10001, 0x1000), (0x10000, 0x1001), (0x10000, 0), (0x1000, 0x1000), (TASK, 0x1000)] {
            assert_eq!(validate_range(s, l, 0x10000, TASK), Err(libc::EINVAL), "{s:#x} {l:#x}");
        }
        assert_eq!(validate_range(TASK - 0x1000, 0x2000, 0x10000, TASK), Err(libc::EINVAL));
        assert_eq!(check_mode(0), Err(libc::EINVAL));
        assert_eq!(check_mode(8), Err(libc::EINVAL));
        assert_eq!(check_mode(mode::MISSING | mode::WP | mode::MINOR), Ok(()));
    }

    #[test]
    fn vmas_must_be_able_to_take_the_mode() {
        let a = anon(0x10000, 0x20000);
        assert_eq!(check_register(&[], 0x10000, 0x20000, mode::MISSING), Err(libc::EINVAL));
        assert_eq!(check_register(&[a], 0x10000, 0x20000, mode::MISSING), Ok(1 << UFFDIO_COPY_NR));
        assert_eq!(check_register(&[a], 0x10000, 0x20000, mode::MINOR), Err(libc::EINVAL), "minor: not anonymous");
        let ro = VmaKind { may_write: false, ..a };
        assert_eq!(check_register(&[ro], 0x10000, 0x20000, mode::MISSING), Err(libc::EINVAL));
        let file = VmaKind { anonymous: false, ..a };
        assert_eq!(check_register(&[file], 0x10000, 0x20000, mode::MISSING), Err(libc::EINVAL));
        let drop = VmaKind { droppable: true, ..a };
        assert_eq!(check_register(&[drop], 0x10000, 0x20000, mode::MISSING), Err(libc::EINVAL));
        let huge = VmaKind { anonymous: false, shmem: false, hugetlb: Some(H), ..anon(4 * H, 8 * H) };
        assert_eq!(check_register(&[huge], 4 * H, 8 * H, mode::MISSING | mode::MINOR), Ok(1 << UFFDIO_COPY_NR));
        assert_eq!(check_register(&[huge], 4 * H + 0x1000, 8 * H, mode::MISSING), Err(libc::EINVAL));
        assert_eq!(check_register(&[huge], 4 * H, 6 * H + 0x1000, mode::MISSING), Err(libc::EINVAL));
        assert_eq!(check_register(&[huge], 4 * H, 8 * H, mode::WP), Err(libc::EINVAL), "wp: anonymous only");
    }

    #[test]
    fn the_handshake_happens_once_with_no_features() {
        let u = Uffds::default();
        u.api_done.lock().unwrap_or_else(|e| e.into_inner()).insert(UFFD_TAG_BASE, false);
        assert!(!u.initialized(UFFD_TAG_BASE));
        assert_eq!(u.api(UFFD_TAG_BASE, 0xab, 0), (Err(libc::EINVAL), [0; 3]));
        assert_eq!(u.api(UFFD_TAG_BASE, UFFD_API, 1), (Err(libc::EINVAL), [0; 3]));
        assert_eq!(u.api(UFFD_TAG_BASE, UFFD_API, 0), (Ok(()), [UFFD_API, 0, API_IOCTLS]));
        assert!(u.initialized(UFFD_TAG_BASE));
        assert_eq!(u.api(UFFD_TAG_BASE, UFFD_API, 0).0, Err(libc::EINVAL), "a second handshake");
        assert_eq!(u.api(UFFD_TAG_BASE + 1, UFFD_API, 0).0, Err(libc::EBADF));
    }
}
