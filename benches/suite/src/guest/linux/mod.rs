//! Item 12: unmodified static Linux programs (issue 18): what the Linux
//! kind costs beside its physical floor, on the backend the report names.
//!
//! | figure | module | ours | peer |
//! |--------|--------|------|------|
//! | `linux.syscall_round_trip` | [`syscall`] | `getpid` via `syscall` | bare `KVM_RUN` exit, same repetition |
//! | `linux.lazy_write_touch_64mib` | [`touch`] | lazy mmap + a store per page | `MAP_POPULATE` + the same stores |
//! | `linux.busybox_sort` | [`busybox`] | `busybox sort` of 17 MB under the VMM | the same on the host |
//! | `linux.rss_beyond_touched_*m` | [`rss`] | peak RSS beyond touched pages, `--mem 3584M` | the same at `--mem 64M` |
//! | `linux.fork_64mib_touched` | [`fork`] | `fork()` with 64 MiB written, timed in the program | Linux's own fork on the host |
//! | `linux.first_write_after_fork` | [`fork`] | the parent's first write per page after fork | the same on the host |
//! | `linux.two_threads_two_vcpus` | [`parallel`] | two computing threads, `--vcpus 2` | the same on the host (and on one vCPU, a detail) |
//!
//! The programs are tiny static Linux executables assembled here
//! ([`program`]) and run as `vmm run --guest` runs them ([`session`]),
//! except busybox (Debian's `busybox-static`, skipped with a message
//! where absent), the fork program (C, built with `gcc -static` at bench
//! time, skipped where that fails) and the memory figures, which launch
//! `vmm run` itself.
//! Every result is checked after timing.

pub mod busybox;
pub mod fork;
pub mod parallel;
pub mod program;
pub mod rss;
pub mod session;
pub mod syscall;
pub mod touch;

use super::repeat;
use crate::error::BenchError;
use crate::figure::Figure;
use crate::progress::Progress;
use crate::report::Skipped;
use crate::BenchOptions;

/// The suite item.
pub const ITEM: u8 = 12;

/// Progress steps of [`run`] (one per repetition of each part that runs).
pub fn steps(opts: &BenchOptions, reps: usize) -> u64 {
    let parts =
        2 + u64::from(busybox::find().is_ok()) + u64::from(opts.vmm_binary.is_some()) + 2 * u64::from(fork::have_gcc());
    parts * reps as u64
}

/// Runs item 12; returns its figures and what it skipped.
pub fn run(
    opts: &BenchOptions,
    reps: usize,
    cal: &super::tsc::Calibration,
    backend: &str,
    progress: &mut Progress,
) -> Result<(Vec<Figure>, Vec<Skipped>), BenchError> {
    let mut figures = Vec::new();
    let mut skipped = Vec::new();

    progress.stage("12: Linux system call round trip, bare exit");
    let p = syscall::Params::new(opts.quick);
    let s = repeat(reps, progress, || syscall::sample(&p, cal))?;
    figures.push(syscall::figure(&p, &s, backend)?);

    progress.stage("12: Linux 64 MiB lazy write touch");
    let s = repeat(reps, progress, || touch::sample(cal))?;
    figures.push(touch::figure(&s, backend)?);

    match busybox::find() {
        Ok(bb) => {
            progress.stage("12: busybox sort under the VMM and on the host");
            let sorter = busybox::Sorter::new(&bb, &busybox::Params::new(opts.quick))?;
            let s = repeat(reps, progress, || sorter.sample())?;
            figures.push(busybox::figure(sorter.bytes(), &s, backend)?);
        }
        Err(why) => skipped.push(Skipped { item: ITEM, reason: format!("busybox sort: {why}") }),
    }

    match fork::build(fork::Params::new(opts.quick)) {
        Ok(forker) => {
            progress.stage("12: fork with 64 MiB written, under the VMM and on the host");
            let s = repeat(reps, progress, || forker.sample())?;
            figures.extend(fork::figures(&s, backend)?);
        }
        Err(why) => skipped.push(Skipped { item: ITEM, reason: format!("fork: {why}") }),
    }

    let pp = parallel::Params::new(opts.quick);
    match parallel::build(pp) {
        Ok(par) => {
            progress.stage("12: two computing threads on two vCPUs, one vCPU and the host");
            let s = repeat(reps, progress, || par.sample())?;
            figures.push(parallel::figure(&s, &pp, backend)?);
        }
        Err(why) => skipped.push(Skipped { item: ITEM, reason: format!("parallel threads: {why}") }),
    }

    match &opts.vmm_binary {
        Some(vmm) => {
            progress.stage("12: VMM memory at --mem 64M and 3584M");
            let l = rss::Launcher::new(vmm)?;
            let s = repeat(reps, progress, || l.sample())?;
            figures.extend(rss::figures(&s)?);
        }
        None => skipped.push(Skipped { item: ITEM, reason: "memory figures: no vmm executable to launch".into() }),
    }
    Ok((figures, skipped))
}
