//! The guest-side suite (items 5–9, 11 and 12), on KVM.
//!
//! Every figure here comes from guests the VMM really runs: small user
//! programs assembled with `iced-x86` ([`programs`]) and run through the
//! same path as `vmm run --guest FILE` ([`session`]), plus the bare
//! `KVM_RUN` loop item 7a is compared with ([`bare_exit`]) and whole `vmm`
//! processes for item 9 ([`launch`]).
//!
//! **Timing.** Guests time themselves at CPL 3 with `lfence; rdtsc`
//! around the code under test and leave raw cycle counts in guest memory;
//! the host converts them with a TSC rate it calibrates against its
//! monotonic clock before the suite ([`tsc`]). Each run is checked to see
//! the host's counter (its first and last readings lie between the host's
//! readings around the run), so the conversion is sound. Host peers over
//! guest memory ([`host_read`]) use the same counter; process launches use
//! the host's monotonic clock. No exit, no VMM code and no host scheduling
//! delay is excluded from a guest's timing: what a guest loop measures is
//! what it experienced.
//!
//! **Repetitions.** Each item runs `reps` repetitions; one repetition
//! measures ours and the peer back to back (most pairs in the same guest
//! run), so every ratio is formed from one repetition's pair.
//!
//! | item | module | ours | peer |
//! |------|--------|------|------|
//! | 5, 6 | [`read_bandwidth`] | guest reads through kernel pages; first touch | host reads of the same bytes; second pass |
//! | 7 | [`mmio`] | trapped write; doorbell; passed-through window | bare exit loop; trapped write; guest RAM |
//! | 8 | [`hypercall`] | 1-page mmap + munmap | no-op hypercall |
//! | 9 | [`launch`] | `vmm run` wall time; resident memory beyond guest | `true` |
//! | 11 | [`fault`] | 64 MiB lazy touch; faults; fault round trip | eager + touch; no fault-around; no-op hypercall |
//! | 12 | [`linux`] | Linux programs: system call, lazy write touch, busybox sort, VMM memory | bare exit; eager populate; the host; a small `--mem` |

pub mod bare_exit;
pub mod child_cpu;
pub mod fault;
pub mod host_read;
pub mod hypercall;
pub mod launch;
pub mod launch_floor;
pub mod linux;
pub mod mmio;
pub mod peak_rss;
pub mod programs;
pub mod read_bandwidth;
pub mod session;
pub mod smaps;
pub mod tsc;

use std::time::Duration;

use super::error::BenchError;
use super::figure::Figure;
use super::machine::Machine;
use super::progress::Progress;
use super::report::Skipped;
use super::{BenchOptions, Parts};

/// Calibration windows and their length.
const CALIBRATION: (usize, Duration) = (5, Duration::from_millis(20));

/// Steps `run` reports to the progress bar: the calibration, then one per
/// repetition of items 5+6, 7, 8 and 11, and of 9 when there is a `vmm` to
/// launch.
pub fn steps(opts: &BenchOptions, reps: usize) -> u64 {
    let launch = u64::from(opts.vmm_binary.is_some());
    match opts.parts {
        Parts::Linux => 1 + linux::steps(opts, reps),
        Parts::Launch => launch * reps as u64,
        _ => 1 + (4 + launch) * reps as u64 + linux::steps(opts, reps),
    }
}

/// `reps` results of `f`, one progress step each.
fn repeat<T>(
    reps: usize,
    progress: &mut Progress,
    mut f: impl FnMut() -> Result<T, BenchError>,
) -> Result<Vec<T>, BenchError> {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        v.push(f()?);
        progress.inc();
    }
    Ok(v)
}

/// Runs items 5–9, 11 and 12 (only 12 for [`Parts::Linux`], only 9 for
/// [`Parts::Launch`]); returns the
/// figures and the items it could not run.
pub fn run(
    opts: &BenchOptions,
    reps: usize,
    progress: &mut Progress,
) -> Result<(Vec<Figure>, Vec<Skipped>), BenchError> {
    if opts.parts == Parts::Launch {
        let mut figures = Vec::new();
        let mut skipped = Vec::new();
        launch_item(opts, reps, progress, &mut figures, &mut skipped)?;
        return Ok((figures, skipped));
    }
    progress.stage("5-8: calibrating the TSC");
    let cal = tsc::calibrate(CALIBRATION.0, CALIBRATION.1)?;
    progress.inc();
    let machine = Machine::detect();
    let tdp = machine.kvm.two_dimensional_paging;
    let mut figures = Vec::new();
    let mut skipped = Vec::new();
    if opts.parts == Parts::Linux {
        return linux::run(opts, reps, &cal, &machine.kvm.description, progress);
    }

    progress.stage("5+6: guest read bandwidth, first touch");
    let p = read_bandwidth::Params::new(opts.quick);
    let s = repeat(reps, progress, || read_bandwidth::sample(&p, &cal))?;
    let mut f = read_bandwidth::figures(&p, &s, tdp)?;
    if let Some(first) = f.first_mut() {
        first.details.insert("tsc_mhz".into(), cal.hz / 1e6);
    }
    figures.extend(f);

    progress.stage("7: MMIO: trapped, bare exit, doorbell, passthrough");
    let p = mmio::Params::new(opts.quick);
    let s = repeat(reps, progress, || mmio::sample(&p, &cal))?;
    figures.extend(mmio::figures(&p, &s)?);

    progress.stage("8: hypercall mmap + munmap");
    let p = hypercall::Params::new(opts.quick);
    let s = repeat(reps, progress, || hypercall::sample(&p, &cal))?;
    figures.extend(hypercall::figures(&p, &s)?);

    progress.stage("11: fault path: lazy 64 MiB touch, fault round trip");
    let p = fault::Params::new(opts.quick);
    let s = repeat(reps, progress, || fault::sample(&p, &cal))?;
    figures.extend(fault::figures(&s, &Machine::detect().kvm.description)?);

    launch_item(opts, reps, progress, &mut figures, &mut skipped)?;

    let (f, s) = linux::run(opts, reps, &cal, &machine.kvm.description, progress)?;
    figures.extend(f);
    skipped.extend(s);
    Ok((figures, skipped))
}

/// Item 9, when there is a `vmm` executable to launch.
fn launch_item(
    opts: &BenchOptions,
    reps: usize,
    progress: &mut Progress,
    figures: &mut Vec<Figure>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), BenchError> {
    match &opts.vmm_binary {
        Some(vmm) => {
            progress.stage("9: launch and resident memory");
            let l = launch::Launcher::new(vmm, opts.spt.as_deref())?;
            let s = repeat(reps, progress, || l.sample())?;
            figures.extend(launch::figures(&s)?);
        }
        None => skipped.push(Skipped { item: 9, reason: "no vmm executable to launch".into() }),
    }
    Ok(())
}
