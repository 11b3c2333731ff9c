//! Item 12f: two threads that compute in user mode at once, under the
//! VMM on two vCPUs (`--vcpus 2`), on one vCPU, and on the host: what
//! running a program's threads on several vCPUs buys.
//!
//! The program is `parallel.c` beside this file, built at bench time with
//! `gcc -static -O2` (skipped with a message where that fails): two
//! threads each run the same fixed number of multiply-adds with no
//! system call inside, timed inside the program from before the first
//! `pthread_create` to after the last `pthread_join` (`CLOCK_MONOTONIC`);
//! it then recomputes each thread's result alone and prints `ok` only
//! when both match (every iteration was done). The three runs of a
//! repetition use the same executable and iteration count.

use std::path::Path;
use std::process::Command;

use super::super::session::{guest_err, TempFile};
use super::session::{run, Counting, LinuxGuest};
use crate::error::BenchError;
use crate::figure::{Figure, RatioKind, Unit};

const ITEM: &str = "12 (parallel)";

/// The program's source.
pub const SOURCE: &str = include_str!("parallel.c");

/// Workload size.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Iterations per thread.
    pub iterations: u64,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        Params { iterations: if quick { 50_000_000 } else { 200_000_000 } }
    }
}

/// Reads the program's output: the elapsed ns, with the thread and
/// iteration counts asked for, `ok` last and exit status 0.
pub fn parse(out: &[u8], exit_code: i32, p: &Params) -> Result<f64, BenchError> {
    let text = super::fork::checked_output(ITEM, out, exit_code)?;
    let value = |name: &str| super::fork::printed_value(ITEM, &text, name);
    if value("threads")? != 2.0 || value("iterations")? != p.iterations as f64 {
        return Err(guest_err(ITEM, format!("the program did other work than asked: {}", text.trim())));
    }
    value("elapsed_ns")
}

/// One repetition's elapsed times, ms.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Under the VMM on two vCPUs.
    pub two: f64,
    /// Under the VMM on one vCPU.
    pub one: f64,
    /// On the host.
    pub host: f64,
}

/// The built program.
pub struct Parallel {
    exe: TempFile,
    params: Params,
}

/// Builds `parallel.c` with `gcc -static -O2 -pthread`; why not where it
/// cannot.
pub fn build(params: Params) -> Result<Parallel, String> {
    Ok(Parallel { exe: super::fork::build_static_c(SOURCE, "parallel", &["-pthread"])?, params })
}

impl Parallel {
    /// The executable.
    pub fn path(&self) -> &Path {
        self.exe.path()
    }

    fn under_vmm(&self, vcpus: u8) -> Result<f64, BenchError> {
        let g = LinuxGuest {
            path: self.path().to_path_buf(),
            args: vec![self.params.iterations.to_string()],
            files: Vec::new(),
            mem: None,
            vcpus: Some(vcpus),
        };
        let r = run(ITEM, &g, Counting::No)?;
        Ok(parse(&r.stdout, r.exit_code, &self.params)? / 1e6)
    }

    /// One repetition: two vCPUs, one vCPU, the host; each checked.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let two = self.under_vmm(2)?;
        let one = self.under_vmm(1)?;
        let host =
            Command::new(self.path()).arg(self.params.iterations.to_string()).env_clear().output().map_err(
                |source| BenchError::Io { context: format!("{ITEM}: running the program on the host"), source },
            )?;
        let host = parse(&host.stdout, host.status.code().unwrap_or(-1), &self.params)? / 1e6;
        Ok(Sample { two, one, host })
    }
}

/// The figure; `backend` names the KVM backend.
pub fn figure(s: &[Sample], p: &Params, backend: &str) -> Result<Figure, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let mut one = col(|x| x.one);
    one.sort_by(f64::total_cmp);
    let mut speedup: Vec<f64> = s.iter().map(|x| x.one / x.two).collect();
    speedup.sort_by(f64::total_cmp);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    Ok(Figure::new(
        12,
        "linux.two_threads_two_vcpus",
        "Linux program: two threads computing at once (no system calls), --vcpus 2 (create to join)",
        Unit::Ms,
        col(|x| x.two),
    )?
    .vs("the same program on the host", col(|x| x.host), RatioKind::Times)?
    .detail("one_vcpu_ms_median", one[one.len() / 2])
    .detail("speedup_over_one_vcpu_median", speedup[speedup.len() / 2])
    .detail("iterations_per_thread", p.iterations as f64)
    .detail("host_cpus", cpus as f64)
    .note(format!(
        "no target. The same executable on one vCPU takes the time of both threads in turn (time \
         slices); on two they run at once where the host has two CPUs free ({cpus} here); backend: \
         {backend}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params { iterations: 1000 };

    #[test]
    fn a_good_run_is_read_and_a_bad_one_refused() {
        let good = b"threads 2\niterations 1000\nelapsed_ns 2500000\nok\n";
        assert_eq!(parse(good, 0, &P).unwrap(), 2_500_000.0);
        assert!(parse(good, 1, &P).is_err(), "a failed status");
        assert!(parse(b"FAILED thread 1 computed 3\n", 1, &P).is_err(), "a wrong result");
        assert!(parse(b"threads 2\niterations 999\nelapsed_ns 5\nok\n", 0, &P).is_err(), "less work");
        assert!(parse(b"threads 1\niterations 1000\nelapsed_ns 5\nok\n", 0, &P).is_err(), "one thread");
        assert!(parse(b"threads 2\niterations 1000\nok\n", 0, &P).is_err(), "no time");
    }

    #[test]
    fn the_source_is_the_program_described() {
        assert!(SOURCE.contains("#define THREADS 2"));
        assert!(SOURCE.contains("pthread_join"));
    }
}
