//! The host-kernel peer of item 1: Linux populating the same number of
//! page-table entries, `mmap(MAP_SHARED | MAP_POPULATE)` of a memfd whose
//! pages already exist. The `mmap` call is item 1's peer; the `munmap`
//! that follows, timed apart, is item 3's.

use std::time::{Duration, Instant};

use crate::bench::error::BenchError;

/// A memfd of `pages` allocated pages.
pub struct FilledMemfd {
    fd: libc::c_int,
    len: usize,
}

impl FilledMemfd {
    /// Creates the memfd and allocates all its pages.
    pub fn new(pages: u64) -> Result<FilledMemfd, BenchError> {
        let len = (pages * 4096) as usize;
        // SAFETY: a valid NUL-terminated name and no flags; the result is
        // checked.
        let fd = unsafe { libc::memfd_create(c"vmm-bench".as_ptr(), 0) };
        if fd < 0 {
            return Err(BenchError::last_os("memfd_create"));
        }
        let m = FilledMemfd { fd, len };
        // SAFETY: `fd` is the memfd just created and owned by `m`.
        if unsafe { libc::fallocate(fd, 0, 0, len as libc::off_t) } != 0 {
            return Err(BenchError::last_os("fallocate of the memfd"));
        }
        Ok(m)
    }

    /// Maps the whole memfd with `MAP_POPULATE`, then unmaps it; returns
    /// the time of the `mmap` call and of the `munmap` call.
    pub fn populate_and_unmap(&self) -> Result<(Duration, Duration), BenchError> {
        let t = Instant::now();
        // SAFETY: a fresh shared mapping of our own memfd at an address the
        // kernel picks; it is unmapped below and never turned into a
        // reference.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                self.fd,
                0,
            )
        };
        let elapsed = t.elapsed();
        if p == libc::MAP_FAILED {
            return Err(BenchError::last_os("mmap of the memfd with MAP_POPULATE"));
        }
        let t = Instant::now();
        // SAFETY: `p` is the mapping of `self.len` bytes made above.
        let r = unsafe { libc::munmap(p, self.len) };
        let unmap = t.elapsed();
        if r != 0 {
            return Err(BenchError::last_os("munmap of the memfd"));
        }
        Ok((elapsed, unmap))
    }
}

impl Drop for FilledMemfd {
    fn drop(&mut self) {
        // SAFETY: `fd` is owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}
