//! Item 12e: `fork()` of a process with 64 MiB written in a 1 GiB
//! private mapping, under the VMM and on the host (Linux's own fork),
//! and the parent's first write to each of those pages afterwards.
//!
//! The program is `fork.c` beside this file, built at bench time with
//! `gcc -static -O2` (skipped with a message where that fails). It maps
//! 1 GiB of private anonymous memory, writes one byte to each page of
//! the first 64 MiB, then forks [`Params::forks`] times, the child
//! calling `_exit(0)` at once and the parent waiting for it, each fork
//! timed around the `fork()` call alone with `CLOCK_MONOTONIC` inside
//! the program; then [`Params::rounds`] forks whose child waits on a
//! pipe while the parent writes each of the 64 MiB pages once (every
//! write a copy-on-write copy, the pass timed), after which the child
//! checks that it still sees the values from before the fork. The
//! program checks the children's statuses and both views of the pages
//! and prints `ok` last; [`parse`] refuses a run without it.
//!
//! The same executable runs under the VMM (in this process, as `vmm run
//! --guest` runs it, `--mem 512M`) and on the host as a child process,
//! in the same repetition. The figures are the program's own medians
//! (fork: over its forks; copy: over its rounds), one per repetition.

use std::path::Path;
use std::process::Command;

use super::super::session::{guest_err, TempFile};
use super::session::{run, Counting, LinuxGuest};
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};

const ITEM: &str = "12 (fork)";

/// The program's source.
pub const SOURCE: &str = include_str!("fork.c");

/// Guest memory for the run under the VMM: the 64 MiB written, a copy
/// of them, and room.
const MEM: u64 = 512 << 20;

/// Pages the program writes (64 MiB of 4 KiB pages).
pub const PAGES: u64 = 16384;

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Forks timed per run.
    pub forks: u32,
    /// Copy-on-write passes per run.
    pub rounds: u32,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        Params { forks: if quick { 5 } else { 15 }, rounds: 1 }
    }
}

/// What one run of the program printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Printed {
    /// Median `fork()` time, ns.
    pub fork_ns_median: f64,
    /// Shortest `fork()` time, ns.
    pub fork_ns_min: f64,
    /// Median time per page of the first-write pass after a fork, ns.
    pub cow_ns_per_page: f64,
}

/// Reads the program's output: every figure present, the fork and page
/// counts those asked for, `ok` last, and exit status 0.
pub fn parse(out: &[u8], exit_code: i32, p: &Params) -> Result<Printed, BenchError> {
    let text = checked_output(ITEM, out, exit_code)?;
    let value = |name: &str| printed_value(ITEM, &text, name);
    if value("forks")? != f64::from(p.forks) || value("cow_pages")? != PAGES as f64 {
        return Err(guest_err(ITEM, format!("the program did other work than asked: {}", text.trim())));
    }
    Ok(Printed {
        fork_ns_median: value("fork_ns_median")?,
        fork_ns_min: value("fork_ns_min")?,
        cow_ns_per_page: value("cow_ns_per_page_median")?,
    })
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Under the VMM.
    pub vmm: Printed,
    /// On the host.
    pub host: Printed,
}

/// The built program; one [`Forker::sample`] per repetition.
pub struct Forker {
    exe: TempFile,
    params: Params,
}

/// Whether `gcc` runs at all (the progress count; [`build`] says why
/// not).
pub fn have_gcc() -> bool {
    Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Builds `fork.c` with `gcc -static -O2`; why not where it cannot.
pub fn build(params: Params) -> Result<Forker, String> {
    Ok(Forker { exe: build_static_c(SOURCE, "fork", &[])?, params })
}

/// A C program's output, when it exited 0 with `ok` as its last line.
pub fn checked_output(item: &str, out: &[u8], exit_code: i32) -> Result<String, BenchError> {
    let text = String::from_utf8_lossy(out).into_owned();
    if exit_code != 0 || text.lines().last() != Some("ok") {
        return Err(guest_err(item, format!("the program failed (status {exit_code}): {}", text.trim())));
    }
    Ok(text)
}

/// The value of the `NAME VALUE` line `name` of a program's output
/// (finite, not negative).
pub fn printed_value(item: &str, text: &str, name: &str) -> Result<f64, BenchError> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| guest_err(item, format!("no {name} in the program's output: {}", text.trim())))
}

/// Builds the C program `source` (a file named `NAME.c`) with `gcc
/// -static -O2` and `flags`: the executable, or why not.
pub fn build_static_c(source: &str, name: &str, flags: &[&str]) -> Result<TempFile, String> {
    let src = TempFile::write_as(source.as_bytes(), "c").map_err(|e| format!("cannot write {name}.c: {e}"))?;
    let exe = TempFile::write_as(&[], name).map_err(|e| format!("cannot make the executable's file: {e}"))?;
    let out = Command::new("gcc")
        .args(["-static", "-O2"])
        .args(flags)
        .arg("-o")
        .arg(exe.path())
        .arg(src.path())
        .output()
        .map_err(|e| format!("no gcc ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "gcc -static could not build {name}.c (no static libc?): {}",
            String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("")
        ));
    }
    Ok(exe)
}

impl Forker {
    fn args(&self) -> Vec<String> {
        vec![self.params.forks.to_string(), self.params.rounds.to_string()]
    }

    /// The executable.
    pub fn path(&self) -> &Path {
        self.exe.path()
    }

    /// One repetition: under the VMM, then on the host; both checked.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let g = LinuxGuest {
            path: self.path().to_path_buf(),
            args: self.args(),
            files: Vec::new(),
            mem: Some(MEM),
            vcpus: None,
        };
        let r = run(ITEM, &g, Counting::No)?;
        let vmm = parse(&r.stdout, r.exit_code, &self.params)?;
        let host = Command::new(self.path())
            .args(self.args())
            .env_clear()
            .output()
            .map_err(|source| BenchError::Io { context: format!("{ITEM}: running the program on the host"), source })?;
        let host = parse(&host.stdout, host.status.code().unwrap_or(-1), &self.params)?;
        Ok(Sample { vmm, host })
    }
}

/// The two figures (fork, first write after fork); `backend` names the
/// KVM backend.
pub fn figures(s: &[Sample], backend: &str) -> Result<Vec<Figure>, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let fork = Figure::new(
        12,
        "linux.fork_64mib_touched",
        "Linux program: fork() of a process with 64 MiB written in a 1 GiB private mapping (median over its forks)",
        Unit::Us,
        col(|x| x.vmm.fork_ns_median / 1e3),
    )?
    .vs("Linux's own fork of the same program on the host", col(|x| x.host.fork_ns_median / 1e3), RatioKind::Times)?
    .detail("vmm_min_us", col(|x| x.vmm.fork_ns_min / 1e3).into_iter().fold(f64::INFINITY, f64::min))
    .detail("host_min_us", col(|x| x.host.fork_ns_min / 1e3).into_iter().fold(f64::INFINITY, f64::min))
    .detail("pages_written", PAGES as f64)
    .target_ratio(Bound::AtMost(2.0), "within 2× of Linux's own fork");
    let why = if fork.all_met() {
        ""
    } else {
        " Missed: the VMM copies the page tables (a page-table walk and a frame reference per written \
         page) and write-protects the parent's pages, whose shootdown is a memory-slot zap that drops \
         every shadow page on a shadow-paging backend; the child's exit zaps again; see docs/benchmarks.md."
    };
    let fork = fork.note(format!(
        "timed inside the program with CLOCK_MONOTONIC around fork() alone; the child _exit(0)s at once and \
         the parent waits for it between forks; backend: {backend}.{why}"
    ));
    let cow = Figure::new(
        12,
        "linux.first_write_after_fork",
        "Linux program: the parent's first write to each of 64 MiB of pages after fork, child alive (a copy each)",
        Unit::NsPerPage,
        col(|x| x.vmm.cow_ns_per_page),
    )?
    .vs("the same on the host (Linux's copy-on-write)", col(|x| x.host.cow_ns_per_page), RatioKind::Times)?
    .detail("pages", PAGES as f64);
    let cow = cow.note(format!(
        "no target. Each copy is a write fault the VMM serves, an exit; on this one-vCPU VM the old \
         entry's flush is left to the faulting instruction's retry, and shot down (a memory-slot zap that \
         drops every shadow page on a shadow-paging backend) only where the retry did not settle it; \
         backend: {backend}"
    ));
    Ok(vec![fork, cow])
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params { forks: 5, rounds: 1 };

    fn out(forks: u32, pages: u64, last: &str) -> Vec<u8> {
        format!(
            "forks {forks}\nfork_ns_min 1000\nfork_ns_median 1500\ncow_pages {pages}\n\
             cow_ns_per_page_median 250.5\n{last}\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_good_run_is_read_and_a_bad_one_refused() {
        let p = parse(&out(5, PAGES, "ok"), 0, &P).unwrap();
        assert_eq!(p, Printed { fork_ns_median: 1500.0, fork_ns_min: 1000.0, cow_ns_per_page: 250.5 });
        assert!(parse(&out(5, PAGES, "ok"), 1, &P).is_err(), "a failed status");
        assert!(parse(&out(5, PAGES, "FAILED the child saw the parent's writes"), 0, &P).is_err(), "a failed check");
        assert!(parse(&out(4, PAGES, "ok"), 0, &P).is_err(), "fewer forks");
        assert!(parse(&out(5, PAGES / 2, "ok"), 0, &P).is_err(), "fewer pages");
        assert!(parse(b"forks 5\nok\n", 0, &P).is_err(), "figures missing");
        assert!(parse(b"", 0, &P).is_err(), "nothing");
    }

    #[test]
    fn the_source_is_the_program_described() {
        assert!(SOURCE.contains("#define TOUCHED (64UL << 20)"));
        assert!(SOURCE.contains("#define MAP_BYTES (1UL << 30)"));
        assert_eq!(PAGES, (64 << 20) / 4096);
    }
}
