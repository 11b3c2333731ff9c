//! The descriptor calls on an `MFD_HUGETLB` memfd (a guest-mm
//! [`HugetlbFile`]), as Linux's hugetlbfs answers them: `read` works,
//! `write` is `EINVAL` (hugetlbfs has no `write_iter`), `ftruncate` takes
//! whole huge pages only (`EINVAL`), `fallocate` allocates pages (mode 0,
//! `KEEP_SIZE`; out of pages `ENOSPC`) or punches holes
//! (`PUNCH_HOLE | KEEP_SIZE`), anything else `EOPNOTSUPP`. A punch or a
//! shrink takes the freed pages out of every mapping of the file, private
//! copies included, and flushes them before the call returns.

use std::ops::Range;

use guest_mm::providers::HugetlbFile;
use guest_mm::MmError;

use super::ctx::Ctx;
use crate::hosted::hypercall::Outcome;
use crate::memory::GuestMem;

/// `fallocate`'s `FALLOC_FL_KEEP_SIZE`.
const KEEP_SIZE: u64 = 1;
/// `fallocate`'s `FALLOC_FL_PUNCH_HOLE`.
const PUNCH_HOLE: u64 = 2;

/// Up to `len` bytes of `f` from `off` (fewer at its end).
pub fn read(f: &HugetlbFile<GuestMem>, off: u64, len: usize) -> Result<Vec<u8>, i32> {
    let avail = usize::try_from(f.len().saturating_sub(off)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; len.min(avail)];
    let n = f.read_at(off, &mut buf).map_err(|e| e.errno())?;
    buf.truncate(n);
    Ok(buf)
}

/// Every mapping of `f`, in every process, loses `pages` (file page
/// offsets) with their private copies; cleared and flushed when the call
/// returns ([`super::super::file_pages::apply`]).
fn unmap(c: &Ctx<'_>, f: &HugetlbFile<GuestMem>, pages: Range<u64>) -> Outcome {
    c.linux.file_zaps().dropped(f.key(), pages);
    Outcome::ret(0)
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(c: &Ctx<'_>, f: &HugetlbFile<GuestMem>, len: u64) -> Outcome {
    if (len as i64) < 0 {
        return Outcome::err(libc::EINVAL);
    }
    match f.set_len(len) {
        Ok(pages) => unmap(c, f, pages),
        Err(e) => Outcome::err(e.errno()),
    }
}

/// `fallocate(fd, mode, off, len)`.
pub fn fallocate(c: &Ctx<'_>, f: &HugetlbFile<GuestMem>, mode: u64, off: u64, len: u64) -> Outcome {
    if (off as i64) < 0 || (len as i64) <= 0 {
        return Outcome::err(libc::EINVAL);
    }
    if off.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
        return Outcome::err(libc::EFBIG);
    }
    match mode {
        0 | KEEP_SIZE => match f.allocate(off, len, mode == KEEP_SIZE) {
            Ok(()) => Outcome::ret(0),
            Err(MmError::OutOfMemory(_)) => Outcome::err(libc::ENOSPC),
            Err(e) => Outcome::err(e.errno()),
        },
        m if m == PUNCH_HOLE | KEEP_SIZE => match f.punch_hole(off, len) {
            Ok(pages) => unmap(c, f, pages),
            Err(e) => Outcome::err(e.errno()),
        },
        _ => Outcome::err(libc::EOPNOTSUPP),
    }
}
