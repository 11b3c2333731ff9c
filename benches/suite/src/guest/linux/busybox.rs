//! Item 12c: `busybox sort` of a 17 MB file under the VMM, against the
//! same busybox run natively on the host.
//!
//! Debian's static busybox (`/bin/busybox`, package `busybox-static`) is
//! run as an unmodified Linux program: `busybox sort FILE`, the file made
//! reachable with `--file FILE=FILE`, standard output captured. Beside it,
//! in the same repetition, the host runs `/bin/busybox sort FILE` as a
//! child process, its standard output read through a pipe. Both are timed
//! from start to exit with the host's monotonic clock: under the VMM from
//! opening the program (reading the ELF) through building the machine to
//! the end of the run; on the host from spawn to exit, exec included.
//! After timing, both must have exited 0 and printed the same bytes.
//!
//! The input is 17 MB of lines `"<16 hex digits> <number>"` from a fixed
//! xorshift sequence (the same every run), 2 MB with `--quick`. The
//! run's system calls, page faults and exits are counted
//! ([`super::session::Counted`]): the ratio to the host is mostly the
//! backend's exit cost made visible, each call and each fault one exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::super::session::{guest_err, TempFile};
use super::session::{run, Counting, LinuxGuest};
use crate::error::BenchError;
use crate::figure::{Figure, RatioKind, Unit};

const ITEM: &str = "12 (busybox sort)";

/// Where Debian's `busybox-static` puts it.
pub const BUSYBOX: &str = "/bin/busybox";

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Bytes of input (at least).
    pub bytes: usize,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        Params { bytes: if quick { 2_000_000 } else { 17_000_000 } }
    }
}

/// `/bin/busybox` if it is a static 64-bit ELF; otherwise why not.
pub fn find() -> Result<PathBuf, String> {
    let p = PathBuf::from(BUSYBOX);
    match std::fs::read(&p) {
        Ok(b) if b.len() > 64 && b.starts_with(b"\x7fELF") && b[4] == 2 => Ok(p),
        Ok(_) => Err(format!("{BUSYBOX} is not a 64-bit ELF")),
        Err(e) => Err(format!("no {BUSYBOX} ({e}); Debian: apt-get install busybox-static")),
    }
}

/// The input text: `bytes` or a line more.
pub fn input(bytes: usize) -> Vec<u8> {
    let mut s = String::with_capacity(bytes + 64);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{:016x} {}\n", x, x % 1000));
    }
    s.into_bytes()
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Under the VMM, ms.
    pub vmm_ms: f64,
    /// On the host, ms.
    pub host_ms: f64,
    /// Exits of the run.
    pub exits: u64,
    /// System calls the program made.
    pub syscalls: u64,
    /// Page faults the VMM resolved.
    pub faults: u64,
}

/// The sorter: the input written once, then one [`Sorter::sample`] per
/// repetition.
pub struct Sorter {
    busybox: PathBuf,
    file: TempFile,
    bytes: usize,
}

impl Sorter {
    /// Writes the input; `busybox` is the executable.
    pub fn new(busybox: &Path, p: &Params) -> Result<Sorter, BenchError> {
        let text = input(p.bytes);
        let file = TempFile::write_as(&text, "txt")
            .map_err(|source| BenchError::Io { context: format!("{ITEM}: writing the input"), source })?;
        Ok(Sorter { busybox: busybox.to_path_buf(), file, bytes: text.len() })
    }

    /// Bytes of input.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// One repetition: under the VMM, then on the host; outputs compared.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let path = self.file.path().display().to_string();
        let g = LinuxGuest {
            path: self.busybox.clone(),
            args: vec!["sort".into(), path.clone()],
            files: vec![format!("{path}={path}")],
            mem: None,
            vcpus: None,
        };
        let r = run(ITEM, &g, Counting::Yes)?;
        let t = Instant::now();
        let host = Command::new(&self.busybox)
            .args(["sort", &path])
            .output()
            .map_err(|source| BenchError::Io { context: format!("{ITEM}: running busybox on the host"), source })?;
        let host_ms = t.elapsed().as_secs_f64() * 1e3;
        if !host.status.success() {
            return Err(guest_err(ITEM, format!("busybox sort on the host: {}", host.status)));
        }
        check_same_output(r.exit_code, &r.stdout, &host.stdout)?;
        let log = r.log.unwrap_or_default();
        let faults = log.last.map_or(0, |s| s.faults);
        Ok(Sample { vmm_ms: r.wall.as_secs_f64() * 1e3, host_ms, exits: r.exits, syscalls: log.calls, faults })
    }
}

/// The run under the VMM must have exited 0 and printed what the host's
/// printed (and something).
pub fn check_same_output(exit_code: i32, vmm: &[u8], host: &[u8]) -> Result<(), BenchError> {
    if exit_code != 0 {
        return Err(guest_err(ITEM, format!("busybox sort under the VMM exited with status {exit_code}")));
    }
    if host.is_empty() || vmm != host {
        return Err(guest_err(
            ITEM,
            format!("the output under the VMM ({} bytes) differs from the host's ({} bytes)", vmm.len(), host.len()),
        ));
    }
    Ok(())
}

/// The figure; `backend` names the KVM backend.
pub fn figure(bytes: usize, s: &[Sample], backend: &str) -> Result<Figure, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let last = s.last().ok_or_else(|| BenchError::NoSamples("linux.busybox_sort".into()))?;
    let f = Figure::new(
        12,
        "linux.busybox_sort",
        &format!(
            "`busybox sort` of a {:.0} MB file, static Debian busybox under the VMM: start to exit",
            bytes as f64 / 1e6
        ),
        Unit::Ms,
        col(|x| x.vmm_ms),
    )?
    .vs("the same busybox sort natively on the host (spawn to exit)", col(|x| x.host_ms), RatioKind::Times)?
    .detail("input_bytes", bytes as f64)
    .detail("exits", last.exits as f64)
    .detail("syscalls", last.syscalls as f64)
    .detail("page_faults", last.faults as f64)
    .detail("other_exits", last.exits.saturating_sub(last.syscalls + last.faults) as f64);
    Ok(f.note(format!(
        "no target: the ratio is the backend's exit cost made visible. Every system call and every page \
         fault is an exit to the VMM, as long as linux.syscall_round_trip each, where the host pays about a \
         µs or less (counts: last repetition). Backend: {backend}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_fixed_and_sized() {
        let a = input(10_000);
        assert!(a.len() >= 10_000 && a.len() < 10_064);
        assert_eq!(a, input(10_000));
        assert!(a.ends_with(b"\n"));
    }

    #[test]
    fn outputs_must_match_and_the_status_be_zero() {
        assert!(check_same_output(0, b"a\nb\n", b"a\nb\n").is_ok());
        assert!(check_same_output(0, b"b\na\n", b"a\nb\n").is_err(), "different order");
        assert!(check_same_output(0, b"a\n", b"a\nb\n").is_err(), "cut short");
        assert!(check_same_output(1, b"a\nb\n", b"a\nb\n").is_err(), "failed");
        assert!(check_same_output(0, b"", b"").is_err(), "nothing sorted");
    }
}
