//! The report: machine, options, figures; printed as a table and written
//! as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::figure::{Figure, Unit};
use super::machine::Machine;
use super::stats::Stat;

/// Version of the JSON layout; bumped on incompatible changes.
pub const SCHEMA: u32 = 1;

/// A suite item that did not run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// The item (1–9).
    pub item: u8,
    /// Why.
    pub reason: String,
}

/// Everything one `vmm bench` run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The `vmm` version that ran.
    pub vmm_version: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Wall time of the whole suite, seconds.
    pub wall_seconds: f64,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Repetitions per figure.
    pub reps: usize,
    /// The machine and KVM backend.
    pub machine: Machine,
    /// Which parts ran: `"all"`, `"host"` (items 1–4, 10), `"guest"` (5–9,
    /// 11, 12) or `"linux"` (12).
    pub parts: String,
    /// The figures, in suite order.
    pub figures: Vec<Figure>,
    /// Items that did not run, and why.
    pub skipped: Vec<Skipped>,
    /// Errors that stopped part of the suite (the run then exits non-zero).
    pub errors: Vec<String>,
    /// Target totals.
    pub targets: TargetSummary,
}

/// How many targets were checked and which were missed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TargetSummary {
    /// Targets checked.
    pub checked: usize,
    /// Targets met.
    pub met: usize,
    /// `figure id: target text (value)` for each miss.
    pub missed: Vec<String>,
}

impl TargetSummary {
    /// Tallies the targets of `figures`.
    pub fn of(figures: &[Figure]) -> TargetSummary {
        let mut s = TargetSummary::default();
        for f in figures {
            for t in &f.targets {
                s.checked += 1;
                if t.met {
                    s.met += 1;
                } else {
                    s.missed.push(format!("{}: {} (got {})", f.id, t.text, number(t.value)));
                }
            }
        }
        s
    }
}

/// A number with about three significant digits.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "n/a".into()
    } else if a == 0.0 || a >= 100.0 || v.fract() == 0.0 && a < 1e15 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn stat(s: &Stat, unit: Unit) -> String {
    format!("{} {} [{}–{}]", number(s.median), unit.symbol(), number(s.min), number(s.max))
}

impl Report {
    /// The report as a plain-text table (one row per figure).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "vmm bench {} on {}", self.vmm_version, self.machine.summary());
        let _ = writeln!(
            out,
            "{} repetitions per figure{}; values are median [min–max]; ratios are formed per repetition.",
            self.reps,
            if self.quick { " (--quick)" } else { "" }
        );
        let mut item = 0;
        for f in &self.figures {
            if f.item != item {
                item = f.item;
                let _ = writeln!(out, "\n{}. {}", item, item_name(item));
            }
            let _ = writeln!(out, "  {:<44} ours  {}", f.id, stat(&f.ours, f.unit));
            if let (Some(p), Some(r)) = (&f.peer, &f.ratio) {
                let _ = writeln!(out, "  {:<44} peer  {}  ({})", "", stat(&p.value, f.unit), p.name);
                let _ = writeln!(
                    out,
                    "  {:<44} ratio {} [{}–{}]",
                    "",
                    r.kind.format(r.value.median),
                    r.kind.format(r.value.min),
                    r.kind.format(r.value.max)
                );
            }
            if !f.details.is_empty() {
                let d: Vec<String> = f.details.iter().map(|(k, v)| format!("{k} {}", number(*v))).collect();
                let _ = writeln!(out, "  {:<44} {}", "", d.join(", "));
            }
            for t in &f.targets {
                let _ = writeln!(
                    out,
                    "  {:<44} target: {} — {}",
                    "",
                    t.text,
                    if t.met { "met".to_string() } else { format!("MISSED (got {})", number(t.value)) }
                );
            }
            if let Some(n) = &f.note {
                let _ = writeln!(out, "  {:<44} note: {n}", "");
            }
        }
        for s in &self.skipped {
            let _ = writeln!(out, "\nitem {} skipped: {}", s.item, s.reason);
        }
        for e in &self.errors {
            let _ = writeln!(out, "\nERROR: {e}");
        }
        let t = &self.targets;
        let _ = writeln!(out, "\ntargets: {} of {} met", t.met, t.checked);
        for m in &t.missed {
            let _ = writeln!(out, "  missed: {m}");
        }
        let _ = writeln!(out, "suite wall time {:.1} s", self.wall_seconds);
        out
    }
}

/// The suite's item names.
pub fn item_name(item: u8) -> &'static str {
    match item {
        1 => "map-kernel-pages: 262,144 scattered frames, full pipeline",
        2 => "remap of a contiguous range",
        3 => "munmap of item 1's range",
        4 => "batch-size sweep of item 1",
        5 => "guest read bandwidth through kernel pages",
        6 => "first touch vs second pass",
        7 => "MMIO: trapped, bare exit, ioeventfd, passthrough",
        8 => "hypercall: 1-page mmap + munmap",
        9 => "launch: whole run and resident memory",
        10 => "VMA-count scaling: mmap, munmap, mprotect, lookup at 10 to 100k VMAs",
        11 => "fault path: lazy touch, faults, round trip",
        12 => "Linux programs: system call, lazy write touch, busybox sort, VMM memory in --mem",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(number(2.3456), "2.35");
        assert_eq!(number(23.456), "23.5");
        assert_eq!(number(234.56), "235");
        assert_eq!(number(0.5556), "0.556");
        assert_eq!(number(262144.0), "262144");
        assert_eq!(number(f64::NAN), "n/a");
    }
}
