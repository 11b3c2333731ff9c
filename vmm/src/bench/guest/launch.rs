//! Item 9: launching the VMM as a user would, and what it keeps resident.
//!
//! - **Wall time**: `vmm run --timeout 60` (the built-in test guest,
//!   default machine: 1 vCPU, 128 MiB, a trapped and a passed-through
//!   BAR; the watchdog only guards the bench against a hang) as a child
//!   process, from `spawn` to `wait`, output discarded; it must exit 0
//!   (every check passed). The peer, in the same repetition, is spawning
//!   and waiting for `true`: what any process launch costs here.
//! - **Resident memory beyond guest memory**: a second `vmm run` of the
//!   same guest whose `/proc/<pid>/smaps` is read over and over, from
//!   spawn until it exits (a few hundred samples over its tens of
//!   milliseconds). Each sample's total `Rss` minus resident guest RAM and
//!   passed-through windows ([`super::smaps`]) is what the VMM itself
//!   holds at that moment; the largest sample is the figure, so it is the
//!   peak the sampling saw (a lower bound of the true peak). Samples taken
//!   before guest memory exists or while the process is torn down are
//!   skipped. The peak including guest memory (`VmHWM`) is a detail. This
//!   run is separate from the timed one: reading `/proc` competes for the
//!   CPU and would slow it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::session::guest_err;
use super::smaps;
use crate::bench::error::BenchError;
use crate::bench::figure::{Bound, Figure, RatioKind, Unit};
use crate::config::DEFAULT_MEM;

const ITEM: &str = "9 (launch)";

/// The command line: `vmm run` with a watchdog, so a guest that never
/// finishes cannot hang the bench.
const RUN: [&str; 3] = ["run", "--timeout", "60"];

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// `vmm run` wall time, ms.
    pub vmm_ms: f64,
    /// `true` wall time, ms.
    pub true_ms: f64,
    /// The resident split at the largest sample.
    pub rss: smaps::Breakdown,
    /// Peak resident memory of that process (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// Usable smaps samples.
    pub samples: u64,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { context: format!("item {ITEM}: {context}"), source }
}

/// Spawns `cmd`, waits, and returns the wall time in ms and the exit code.
fn timed(cmd: &mut Command) -> Result<(f64, Option<i32>), BenchError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let status = cmd.spawn().and_then(|mut c| c.wait()).map_err(io("spawning a process"))?;
    Ok((t.elapsed().as_secs_f64() * 1e3, status.code()))
}

/// `VmHWM` of `/proc/<pid>/status`, KiB.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Samples one `vmm run` from spawn to exit; returns the largest
/// breakdown seen, `VmHWM`, and the number of usable samples.
fn resident(vmm: &Path, binary: &str) -> Result<(smaps::Breakdown, u64, u64), BenchError> {
    let mut child = Command::new(vmm)
        .args(RUN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("spawning vmm run"))?;
    let pid = child.id();
    let mut best: Option<smaps::Breakdown> = None;
    let (mut hwm, mut samples) = (0u64, 0u64);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for vmm run"))? {
            break status;
        }
        // Either read fails once the process is gone; the loop then ends
        // at `try_wait`.
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        let b = smaps::breakdown(&smaps::parse(&text), DEFAULT_MEM, binary);
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(b) = b {
            samples += 1;
            if best.is_none_or(|x| b.beyond_guest_kib() > x.beyond_guest_kib()) {
                best = Some(b);
            }
            hwm = hwm.max(vm_hwm_kib(&proc_status).unwrap_or(0));
        }
    };
    if status.code() != Some(0) {
        return Err(guest_err(ITEM, format!("the sampled `vmm run` exited with {status}, not 0")));
    }
    let b = best.ok_or_else(|| guest_err(ITEM, "no smaps sample showed the guest-RAM mapping"))?;
    Ok((b, hwm, samples))
}

/// Launches one `vmm` executable.
pub struct Launcher {
    vmm: PathBuf,
    /// Its path as `/proc/<pid>/smaps` names it.
    resolved: String,
}

impl Launcher {
    /// Prepares the launches of `vmm`.
    pub fn new(vmm: &Path) -> Result<Launcher, BenchError> {
        let resolved = std::fs::canonicalize(vmm).map_err(io("resolving the vmm path"))?;
        Ok(Launcher { vmm: vmm.to_path_buf(), resolved: resolved.display().to_string() })
    }

    /// One repetition: `vmm run`, `true`, then the sampled `vmm run`.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let (vmm_ms, code) = timed(Command::new(&self.vmm).args(RUN))?;
        if code != Some(0) {
            return Err(guest_err(ITEM, format!("`vmm run` exited with {code:?}, not 0")));
        }
        let (true_ms, code) = timed(&mut Command::new("true"))?;
        if code != Some(0) {
            return Err(guest_err(ITEM, format!("`true` exited with {code:?}")));
        }
        let (rss, hwm_kib, samples) = resident(&self.vmm, &self.resolved)?;
        Ok(Sample { vmm_ms, true_ms, rss, hwm_kib, samples })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures of item 9.
pub fn figures(s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let col = |f: &dyn Fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let last = s.last().ok_or_else(|| BenchError::NoSamples("launch".into()))?;
    let wall = Figure::new(
        9,
        "launch.wall_time",
        "`vmm run --timeout 60` of the built-in guest to completion: whole process, spawn to exit (code 0)",
        Unit::Ms,
        col(&|x| x.vmm_ms),
    )?
    .vs("spawning and waiting for `true`", col(&|x| x.true_ms), RatioKind::Times)?
    .target_ours(Bound::AtMost(100.0), "the built-in guest's whole run well under 100 ms");
    let rss = Figure::new(
        9,
        "launch.rss_beyond_guest",
        "VMM resident memory beyond guest memory during `vmm run` (built-in guest), peak of continuous sampling",
        Unit::Mib,
        col(&|x| mib(x.rss.beyond_guest_kib())),
    )?
    .detail("total_rss_mib", mib(last.rss.total_kib))
    .detail("guest_ram_rss_mib", mib(last.rss.guest_ram_kib))
    .detail("bar_window_rss_mib", mib(last.rss.windows_kib))
    .detail("vmm_binary_rss_mib", mib(last.rss.binary_kib))
    .detail("shared_library_rss_mib", mib(last.rss.libraries_kib))
    .detail("peak_rss_with_guest_mib", mib(last.hwm_kib))
    .detail("smaps_samples", last.samples as f64)
    .target_ours(Bound::AtMost(5.0), "VMM overhead under 5 MiB resident (Firecracker's published bound)");
    let method = "method: /proc/<pid>/smaps read continuously from spawn to exit; per sample, total Rss minus the \
                  guest-RAM mapping and passed-through BAR windows; the largest sample (details: last repetition)";
    let rss = if rss.all_met() {
        rss.note(method)
    } else {
        let b = last.rss;
        rss.note(format!(
            "{method}. In the last repetition, {:.2} MiB of its {:.2} MiB are resident pages of the vmm \
             executable and {:.2} MiB of shared libraries (libc and others: the same pages every process using \
             them maps)",
            mib(b.binary_kib),
            mib(b.beyond_guest_kib()),
            mib(b.libraries_kib)
        ))
    };
    Ok(vec![wall, rss])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_status() {
        let status = "Name:\tvmm\nVmPeak:\t  200000 kB\nVmHWM:\t   22016 kB\nVmRSS:\t   21000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(22016));
        assert_eq!(vm_hwm_kib("Name:\tvmm\n"), None);
    }
}
