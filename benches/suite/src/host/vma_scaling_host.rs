//! The host-kernel peer of item 10: this process's own `mmap` and `munmap`
//! of one anonymous page while it holds `n` extra VMAs.
//!
//! The extra VMAs are one anonymous reservation whose pages alternate
//! `PROT_READ|PROT_WRITE` and `PROT_READ` (made with `mprotect` before any
//! timing). The host caps the VMAs of a process at `vm.max_map_count`;
//! [`HostVmas::new`] takes `min(n, cap - in use - margin)` and says how
//! many it got. The sysctl is never changed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::error::BenchError;

const PAGE: usize = 4096;
/// VMAs left free under the cap for the rest of the process (allocator,
/// threads, the mapper's own guest memory).
const MARGIN: usize = 1024;

/// `vm.max_map_count`, if readable.
pub fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// VMAs this process has now (lines of `/proc/self/maps`).
pub fn vmas_in_use() -> Result<usize, BenchError> {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .map_err(|source| BenchError::Io { context: "reading /proc/self/maps".into(), source })
}

/// `n` extra VMAs held by this process.
pub struct HostVmas {
    base: *mut libc::c_void,
    len: usize,
    /// How many extra VMAs were made (`n` or the cap's share).
    pub n: usize,
}

impl HostVmas {
    /// Reserves and splits `min(n, cap room)` pages into as many VMAs.
    pub fn new(n: usize) -> Result<HostVmas, BenchError> {
        let before = vmas_in_use()?;
        let room = max_map_count().map_or(n, |cap| cap.saturating_sub(before + MARGIN));
        let n = n.min(room).max(1);
        let len = n * PAGE;
        // SAFETY: a fresh anonymous private mapping at an address the
        // kernel picks; only this value unmaps it and it is never read.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(BenchError::last_os("host reservation for item 10"));
        }
        let v = HostVmas { base, len, n };
        for i in (1..n).step_by(2) {
            // SAFETY: page `i` lies inside the reservation made above.
            let r = unsafe { libc::mprotect(base.cast::<u8>().add(i * PAGE).cast(), PAGE, libc::PROT_READ) };
            if r != 0 {
                return Err(BenchError::last_os(format!("host mprotect splitting into {n} VMAs")));
            }
        }
        let after = vmas_in_use()?;
        // The reservation may merge with a neighbour at either end.
        if after + 2 < before + n {
            return Err(BenchError::Check(format!("host: {n} VMAs wanted, the process went {before} → {after}")));
        }
        Ok(v)
    }

    /// Times `calls` one-page `mmap`s (each followed by its `munmap`,
    /// timed apart); returns the mean ns of each. Results checked after.
    pub fn sample(&self, calls: usize) -> Result<(f64, f64), BenchError> {
        let mut placed = vec![std::ptr::null_mut::<libc::c_void>(); calls];
        let mut unmapped = vec![0i32; calls];
        let (mut t_map, mut t_unmap) = (Duration::ZERO, Duration::ZERO);
        for (slot, res) in placed.iter_mut().zip(unmapped.iter_mut()) {
            let t = Instant::now();
            // SAFETY: a fresh one-page anonymous mapping at an address the
            // kernel picks; unmapped right below, never dereferenced.
            let p = unsafe {
                libc::mmap(std::ptr::null_mut(), PAGE, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            };
            t_map += t.elapsed();
            *slot = black_box(p);
            if p == libc::MAP_FAILED {
                break;
            }
            let t = Instant::now();
            // SAFETY: `p` is the one-page mapping made above.
            *res = unsafe { libc::munmap(p, PAGE) };
            t_unmap += t.elapsed();
        }
        if placed.iter().any(|p| *p == libc::MAP_FAILED || p.is_null()) {
            return Err(BenchError::Peer { peer: "host mmap".into(), reason: "a one-page mmap failed".into() });
        }
        if unmapped.iter().any(|r| *r != 0) {
            return Err(BenchError::Peer { peer: "host munmap".into(), reason: "a one-page munmap failed".into() });
        }
        let per = |d: Duration| d.as_nanos() as f64 / calls as f64;
        Ok((per(t_map), per(t_unmap)))
    }
}

impl Drop for HostVmas {
    fn drop(&mut self) {
        // SAFETY: the reservation made in `new`, unmapped once.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
