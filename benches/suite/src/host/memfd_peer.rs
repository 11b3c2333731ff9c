//! The host-kernel peer of item 1: Linux populating the same number of
//! page-table entries, `mmap(MAP_SHARED | MAP_POPULATE)` of a memfd whose
//! pages already exist. The `mmap` call is item 1's peer; the `munmap`
//! that follows, timed apart, is item 3's (it includes the host kernel's
//! own TLB flush).
//!
//! Checked after every sample (untimed): `/proc/self/pagemap` must show
//! every page of the mapping present (populated, not left to faults), and
//! a sample of pages must read the marker written into the memfd when it
//! was filled; after the munmap the range must be gone.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::verify;
use crate::error::BenchError;

/// A memfd of `pages` allocated pages, each starting with its index.
pub struct FilledMemfd {
    fd: libc::c_int,
    len: usize,
    pagemap: File,
}

/// Bit 63 of a pagemap entry: the page is present.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap's swapped bit: a non-present entry that holds a page
/// elsewhere. Without swap only a page the host kernel is migrating
/// (compaction) shows so; it is populated all the same, and CI saw 8 of
/// 262,144 pages in that state right after `MAP_POPULATE`.
const PM_SWAP: u64 = 1 << 62;

impl FilledMemfd {
    /// Creates the memfd, allocates all its pages and writes each page's
    /// index at its start.
    pub fn new(pages: u64) -> Result<FilledMemfd, BenchError> {
        let len = (pages * 4096) as usize;
        let pagemap = File::open("/proc/self/pagemap").map_err(|e| BenchError::Io {
            context: "opening /proc/self/pagemap (to check the memfd peer populated)".into(),
            source: e,
        })?;
        // SAFETY: a valid NUL-terminated name and no flags; the result is
        // checked.
        let fd = unsafe { libc::memfd_create(c"vmm-bench".as_ptr(), 0) };
        if fd < 0 {
            return Err(BenchError::last_os("memfd_create"));
        }
        let m = FilledMemfd { fd, len, pagemap };
        // SAFETY: `fd` is the memfd just created and owned by `m`.
        if unsafe { libc::fallocate(fd, 0, 0, len as libc::off_t) } != 0 {
            return Err(BenchError::last_os("fallocate of the memfd"));
        }
        for i in 0..pages {
            let v = i.to_le_bytes();
            // SAFETY: `v` is 8 readable bytes; the offset lies inside the
            // file just allocated.
            let n = unsafe { libc::pwrite(fd, v.as_ptr().cast(), v.len(), (i * 4096) as libc::off_t) };
            if n != v.len() as isize {
                return Err(BenchError::last_os("writing the memfd's page markers"));
            }
        }
        Ok(m)
    }

    /// Maps the whole memfd with `MAP_POPULATE`, then unmaps it; returns
    /// the time of the `mmap` call and of the `munmap` call.
    pub fn populate_and_unmap(&self) -> Result<(Duration, Duration), BenchError> {
        let t = Instant::now();
        // SAFETY: a fresh shared mapping of our own memfd at an address the
        // kernel picks; it is unmapped below and only read through raw
        // pointers inside it.
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
        let checked = self.check_populated(p as usize);
        let t = Instant::now();
        // SAFETY: `p` is the mapping of `self.len` bytes made above.
        let r = unsafe { libc::munmap(p, self.len) };
        let unmap = t.elapsed();
        if r != 0 {
            return Err(BenchError::last_os("munmap of the memfd"));
        }
        checked?;
        if self.present_pages(p as usize)? != 0 {
            return Err(BenchError::Peer { peer: "host munmap".into(), reason: "pages still present".into() });
        }
        Ok((elapsed, unmap))
    }

    /// Pages of the `len` bytes at `addr` that pagemap shows present (or
    /// in migration, see [`PM_SWAP`]).
    fn present_pages(&self, addr: usize) -> Result<usize, BenchError> {
        let pages = self.len / 4096;
        let mut buf = vec![0u8; pages * 8];
        self.pagemap
            .read_exact_at(&mut buf, (addr / 4096 * 8) as u64)
            .map_err(|e| BenchError::Io { context: "reading /proc/self/pagemap".into(), source: e })?;
        Ok(buf
            .chunks_exact(8)
            .filter(|c| {
                u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) & (PM_PRESENT | PM_SWAP) != 0
            })
            .count())
    }

    /// The first page pagemap shows absent, with its raw entry.
    fn first_absent(&self, addr: usize) -> Result<(usize, u64), BenchError> {
        let pages = self.len / 4096;
        let mut buf = vec![0u8; pages * 8];
        self.pagemap
            .read_exact_at(&mut buf, (addr / 4096 * 8) as u64)
            .map_err(|e| BenchError::Io { context: "reading /proc/self/pagemap".into(), source: e })?;
        let entries = buf.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        Ok(entries.enumerate().find(|(_, e)| e & (PM_PRESENT | PM_SWAP) == 0).unwrap_or((pages, 0)))
    }

    /// Every page present (populated by the kernel, not by our reads, which
    /// come after this count), and sampled pages hold their markers.
    fn check_populated(&self, addr: usize) -> Result<(), BenchError> {
        let pages = self.len / 4096;
        let fail = |reason: String| BenchError::Peer { peer: "host mmap(MAP_POPULATE)".into(), reason };
        // A page the host kernel is moving may be absent for an instant:
        // counted again a few times (nothing here touches the pages).
        let mut present = self.present_pages(addr)?;
        for _ in 0..5 {
            if present == pages {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            present = self.present_pages(addr)?;
        }
        if present != pages {
            let first = self.first_absent(addr)?;
            return Err(fail(format!(
                "{present} of {pages} pages present after MAP_POPULATE (first absent: page {}, pagemap {:#x})",
                first.0, first.1
            )));
        }
        for i in verify::sample(pages) {
            // SAFETY: `addr + i * 4096` lies inside the mapping of
            // `self.len` bytes (i < pages), readable, 8-byte aligned.
            let v = unsafe { ((addr + i * 4096) as *const u64).read_volatile() };
            if v != i as u64 {
                return Err(fail(format!("page {i} reads {v:#x}, expected its index")));
            }
        }
        Ok(())
    }
}

impl Drop for FilledMemfd {
    fn drop(&mut self) {
        // SAFETY: `fd` is owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}
