//! # vmm-bench: the throughput suite behind `vmm bench`
//!
//! Every figure is measured beside its peer or floor in the same run. The
//! `vmm` command (package `vmm-cli`) parses `vmm bench`'s options and
//! calls [`run`]; the criterion benches in the root `benches/` run the
//! same host-side workloads ([`host`]). Nothing here is part of the VMM's
//! runtime: the `vmm` library does not depend on this crate.
//!
//! Items 1–4 and 10 ([`host`]) exercise the mapper on plain guest memory; items
//! 5–9, 11 and 12 ([`guest`]) run guests on KVM (12: unmodified Linux programs). Each item repeats its measurement
//! `reps` times, interleaving ours and the peer within each repetition, and
//! reports median and min–max of both and of their per-repetition ratio
//! ([`figure`]). Targets from the issue are checked and a miss is printed,
//! never hidden. The [`report`] names the machine and KVM backend
//! ([`machine`]); [`plot`] draws ns/page against batch size.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod figure;
pub mod guest;
pub mod host;
pub mod machine;
pub mod plot;
pub mod progress;
pub mod report;
pub mod stats;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use error::BenchError;
pub use figure::Figure;
pub use report::Report;

use machine::Machine;
use progress::Progress;
use report::{Skipped, TargetSummary};

/// Which parts of the suite to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parts {
    /// Items 1–11.
    All,
    /// Items 1–4 and 10 (no KVM needed).
    Host,
    /// Items 5–9, 11 and 12.
    Guest,
    /// Item 12 alone: Linux programs.
    Linux,
    /// Item 9 alone: launches and resident memory.
    Launch,
}

/// Options of one run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The reduced suite: fewer repetitions and smaller guest workloads.
    pub quick: bool,
    /// Repetitions per figure (default 3 with `quick`, 11 without).
    pub reps: Option<usize>,
    /// Which parts.
    pub parts: Parts,
    /// The `vmm` executable item 9 launches (`vmm run`); `None` skips the
    /// launch figures.
    pub vmm_binary: Option<PathBuf>,
    /// Show progress on stderr.
    pub progress: bool,
    /// A Solo5 `spt` unikernel to launch beside the minimal guest (item 9).
    pub spt: Option<PathBuf>,
}

impl BenchOptions {
    /// Repetitions per figure.
    pub fn reps(&self) -> usize {
        self.reps.unwrap_or(if self.quick { 3 } else { 11 }).max(1)
    }
}

/// Runs the suite and returns its report.
pub fn run(opts: &BenchOptions) -> Result<Report, BenchError> {
    let started = Instant::now();
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let machine = Machine::detect();
    let reps = opts.reps();
    let host = matches!(opts.parts, Parts::All | Parts::Host);
    let guest = opts.parts != Parts::Host;
    let guest_items: Vec<u8> = match opts.parts {
        Parts::Linux => vec![12],
        Parts::Launch => vec![9],
        _ => (5..=9).chain([11, 12]).collect(),
    };
    let kvm = machine.kvm.available;
    let total = if host { host::steps(reps) } else { 0 } + if guest && kvm { guest::steps(opts, reps) } else { 0 };
    let mut progress = Progress::new(total, opts.progress);
    let mut figures = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    if host {
        figures.extend(host::run(reps, kvm, &mut progress)?);
    } else {
        let only = match opts.parts {
            Parts::Linux => "--only linux",
            Parts::Launch => "--only launch",
            _ => "--only guest",
        };
        skipped.extend((1..=4).chain([10]).map(|item| Skipped { item, reason: format!("not requested ({only})") }));
    }
    if !guest {
        skipped
            .extend((5..=9).chain([11, 12]).map(|item| Skipped { item, reason: "not requested (--only host)".into() }));
    } else if !kvm {
        let reason = format!("KVM {}", machine.kvm.description);
        skipped.extend(guest_items.iter().map(|&item| Skipped { item, reason: reason.clone() }));
    } else {
        // A failed guest benchmark does not throw away what was measured:
        // the report says what failed and `vmm bench` exits non-zero.
        match guest::run(opts, reps, &mut progress) {
            Ok((f, s)) => {
                figures.extend(f);
                skipped.extend(s);
            }
            Err(e) => {
                errors.push(e.to_string());
                skipped.extend(guest_items.iter().map(|&item| Skipped { item, reason: format!("failed: {e}") }));
            }
        }
    }
    progress.finish();
    let targets = TargetSummary::of(&figures);
    Ok(Report {
        schema: report::SCHEMA,
        vmm_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
        wall_seconds: started.elapsed().as_secs_f64(),
        quick: opts.quick,
        reps,
        machine,
        figures,
        parts: match opts.parts {
            Parts::All => "all",
            Parts::Host => "host",
            Parts::Guest => "guest",
            Parts::Linux => "linux",
            Parts::Launch => "launch",
        }
        .to_string(),
        skipped,
        errors,
        targets,
    })
}
