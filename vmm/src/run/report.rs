//! The run report: one line per check, pass or fail, a summary, and the
//! process exit code. Printed as text or, with `--json`, as one JSON
//! object.
//!
//! Exit codes: `0` every check passed; `1` a check failed (or the VMM
//! could not start the guest); `2` the guest crashed (unexpected
//! exception, triple fault, vCPU error); `124` the watchdog stopped it;
//! `141` the console's reader went away (as for `SIGPIPE`).
//! A user ELF guest that ends through the exit port or `exit_group`
//! passes its own status through instead, as QEMU's `isa-debug-exit`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hosted::hypercall::CheckRecord;
use crate::run::control::Outcome;
use crate::run::vm_exit::ExitCounts;

/// Exit code: a check failed.
pub const EXIT_CHECK_FAILED: i32 = 1;
/// Exit code: the guest crashed.
pub const EXIT_CRASHED: i32 = 2;
/// Exit code: the watchdog stopped the guest.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code: the console's reader went away (`128 + SIGPIPE`, what a
/// shell reports for a writer killed by `SIGPIPE`).
pub const EXIT_OUTPUT_CLOSED: i32 = 141;

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    /// Check number (`None` for lines the VMM adds itself).
    pub id: Option<u64>,
    /// What was checked.
    pub name: String,
    /// Pass or fail.
    pub passed: bool,
    /// Details (what failed, or what was measured).
    pub detail: String,
}

/// The report of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Which program ran.
    pub guest: String,
    /// How the run ended.
    pub outcome: Option<Outcome>,
    /// The checks.
    pub checks: Vec<CheckLine>,
    /// Exits per vCPU.
    pub exits: Vec<ExitCounts>,
    /// Checks passed.
    pub passed: usize,
    /// Checks in total.
    pub total: usize,
    /// The process exit code.
    pub exit_code: i32,
    /// The end-of-run invariant check, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invariants: Option<Invariants>,
    /// The guest owns standard output: a text report goes to standard
    /// error, so stdout holds only what the guest wrote
    /// (`GuestKind::stdout_is_the_guests`).
    #[serde(skip)]
    pub to_stderr: bool,
}

/// What the end-of-run invariant check looked at and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invariants {
    /// Table pages reachable from CR3.
    pub tables: usize,
    /// Leaves walked.
    pub leaves: usize,
    /// Counted (map-count holding) leaves among them.
    pub counted_leaves: u64,
    /// VMAs.
    pub vmas: usize,
    /// Pool frames free.
    pub pool_free: usize,
    /// Pool frames used.
    pub pool_used: usize,
    /// Pool frames in total.
    pub pool_total: usize,
    /// Every violation, as a message.
    pub violations: Vec<String>,
}

/// Name of the report line of the invariant check.
pub const INVARIANTS_CHECK: &str = "VMM invariants after the run: table census, map counts, pool";

/// Turns what happened into checks and an exit code.
///
/// `expected` lists the checks the program promises to report (the
/// built-in guest's); every one of them must be reported, and pass on
/// every vCPU that reported it. `clean_end` is the outcome that counts as
/// a clean finish; `None` means a user guest, whose exit status is passed
/// through.
pub fn build(
    guest: String,
    outcome: Option<Outcome>,
    records: &[CheckRecord],
    expected: &[(u64, String)],
    clean_end: Option<&Outcome>,
    exits: Vec<ExitCounts>,
) -> RunReport {
    let mut checks = Vec::new();
    let name_of = |id: u64| expected.iter().find(|(i, _)| *i == id).map(|(_, n)| n.to_string());
    for (id, name) in expected {
        let (id, name) = (*id, name.as_str());
        let mine: Vec<&CheckRecord> = records.iter().filter(|r| r.id == id).collect();
        let line = match mine.iter().find(|r| !r.passed) {
            _ if mine.is_empty() => {
                CheckLine { id: Some(id), name: name.into(), passed: false, detail: "not reported".into() }
            }
            Some(r) => CheckLine { id: Some(id), name: name.into(), passed: false, detail: failure_detail(r) },
            None => {
                let r = mine[0];
                let mut detail = String::new();
                if r.got != 0 || r.expected != 0 {
                    let _ = write!(detail, "value {:#x}", r.got);
                }
                if mine.len() > 1 {
                    let _ = write!(detail, "{}on {} vCPUs", if detail.is_empty() { "" } else { ", " }, mine.len());
                }
                CheckLine { id: Some(id), name: name.into(), passed: true, detail }
            }
        };
        checks.push(line);
    }
    // Checks a program reported that nobody announced (a user guest's).
    for r in records.iter().filter(|r| name_of(r.id).is_none()) {
        checks.push(CheckLine {
            id: Some(r.id),
            name: format!("guest check {} (vCPU {})", r.id, r.vcpu),
            passed: r.passed,
            detail: if r.passed { format!("value {:#x}", r.got) } else { failure_detail(r) },
        });
    }
    let end_ok = match (&outcome, clean_end) {
        (Some(o), Some(clean)) => o == clean,
        (Some(Outcome::ExitPort { .. } | Outcome::Exited { .. }), None) => true,
        _ => false,
    };
    checks.push(CheckLine {
        id: None,
        name: "guest ran to completion".into(),
        passed: end_ok,
        detail: outcome.as_ref().map_or_else(|| "no outcome recorded".into(), ToString::to_string),
    });

    let passed = checks.iter().filter(|c| c.passed).count();
    let total = checks.len();
    let exit_code = match &outcome {
        Some(Outcome::Fault { .. } | Outcome::TripleFault { .. } | Outcome::VcpuError { .. }) => EXIT_CRASHED,
        Some(Outcome::Timeout { .. }) => EXIT_TIMEOUT,
        Some(Outcome::OutputClosed) => EXIT_OUTPUT_CLOSED,
        Some(Outcome::ExitPort { status } | Outcome::Exited { status }) if clean_end.is_none() => {
            if passed == total {
                *status
            } else {
                EXIT_CHECK_FAILED
            }
        }
        _ if passed == total => 0,
        _ => EXIT_CHECK_FAILED,
    };
    RunReport { guest, outcome, checks, exits, passed, total, exit_code, invariants: None, to_stderr: false }
}

/// Violations listed one per line in the text report.
const MAX_TEXT_VIOLATIONS: usize = 20;

fn failure_detail(r: &CheckRecord) -> String {
    format!("vCPU {}: step {} got {:#x}, expected {:#x}", r.vcpu, r.step, r.got, r.expected)
}

impl RunReport {
    /// Adds the end-of-run invariant check: one report line, and a failed
    /// run (exit code 1 unless the guest crashed or timed out) when
    /// anything is violated.
    pub fn add_invariants(&mut self, audit: &guest_mm::Audit, violations: &[guest_mm::Violation]) {
        let inv = Invariants {
            tables: audit.tables,
            leaves: audit.leaves,
            counted_leaves: audit.counted,
            vmas: audit.vmas,
            pool_free: audit.pool.0,
            pool_used: audit.pool.1,
            pool_total: audit.pool.2,
            violations: violations.iter().map(ToString::to_string).collect(),
        };
        let passed = violations.is_empty();
        let detail = if passed {
            format!(
                "{} tables, {} leaves ({} counted), {} VMAs, pool {}+{}/{}",
                inv.tables, inv.leaves, inv.counted_leaves, inv.vmas, inv.pool_free, inv.pool_used, inv.pool_total
            )
        } else {
            format!("{} violations, first: {}", violations.len(), inv.violations[0])
        };
        self.checks.push(CheckLine { id: None, name: INVARIANTS_CHECK.into(), passed, detail });
        self.total += 1;
        if passed {
            self.passed += 1;
        } else if self.exit_code != EXIT_CRASHED && self.exit_code != EXIT_TIMEOUT {
            self.exit_code = EXIT_CHECK_FAILED;
        }
        self.invariants = Some(inv);
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "== vmm report: {}", self.guest);
        for c in &self.checks {
            let id = c.id.map_or_else(|| "  -".to_string(), |i| format!("{i:3}"));
            let _ = write!(s, "[{}] {id} {}", if c.passed { "PASS" } else { "FAIL" }, c.name);
            if !c.detail.is_empty() {
                let _ = write!(s, " ({})", c.detail);
            }
            s.push('\n');
        }
        for v in self.invariants.iter().flat_map(|i| i.violations.iter().take(MAX_TEXT_VIOLATIONS)) {
            let _ = writeln!(s, "       violation: {v}");
        }
        if let Some(n) = self.invariants.as_ref().map(|i| i.violations.len()).filter(|&n| n > MAX_TEXT_VIOLATIONS) {
            let _ = writeln!(s, "       ... {} more (all of them in --json)", n - MAX_TEXT_VIOLATIONS);
        }
        for (i, e) in self.exits.iter().enumerate() {
            let _ = writeln!(s, "vCPU {i}: {} exits ({} MMIO, {} port I/O)", e.total, e.mmio, e.pio);
        }
        let _ = writeln!(
            s,
            "== {}/{} checks passed: {} (exit code {})",
            self.passed,
            self.total,
            if self.passed == self.total { "PASS" } else { "FAIL" },
            self.exit_code
        );
        s
    }

    /// The JSON report.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, passed: bool) -> CheckRecord {
        CheckRecord { vcpu: 0, id, passed, got: 1, expected: 2, step: 3 }
    }

    fn expected() -> Vec<(u64, String)> {
        vec![(0, "boot".into()), (1, "pages".into())]
    }
    const CLEAN: Outcome = Outcome::ExitPort { status: 1 };

    #[test]
    fn all_pass() {
        let r = build("builtin".into(), Some(CLEAN), &[rec(0, true), rec(1, true)], &expected(), Some(&CLEAN), vec![]);
        assert_eq!((r.passed, r.total, r.exit_code), (3, 3, 0));
        assert!(r.to_text().contains("== 3/3 checks passed: PASS (exit code 0)"));
    }

    #[test]
    fn missing_and_failed_checks() {
        let r = build("builtin".into(), Some(CLEAN), &[rec(0, false)], &expected(), Some(&CLEAN), vec![]);
        assert_eq!(r.exit_code, EXIT_CHECK_FAILED);
        assert_eq!(r.checks[0].detail, "vCPU 0: step 3 got 0x1, expected 0x2");
        assert_eq!(r.checks[1].detail, "not reported");
        let text = r.to_text();
        assert!(text.contains("[FAIL]   0 boot (vCPU 0: step 3 got 0x1, expected 0x2)"), "{text}");
    }

    #[test]
    fn crash_and_timeout_codes() {
        let r = build("x".into(), Some(Outcome::TripleFault { vcpu: 0 }), &[], &[], Some(&CLEAN), vec![]);
        assert_eq!(r.exit_code, EXIT_CRASHED);
        let r = build("x".into(), Some(Outcome::Timeout { secs: 1 }), &[], &[], None, vec![]);
        assert_eq!(r.exit_code, EXIT_TIMEOUT);
        assert!(!r.checks[0].passed);
    }

    #[test]
    fn invariant_violations_fail_the_run() {
        let mut r =
            build("builtin".into(), Some(CLEAN), &[rec(0, true), rec(1, true)], &expected(), Some(&CLEAN), vec![]);
        let audit = guest_mm::Audit { tables: 5, leaves: 9, counted: 3, vmas: 2, pool: (10, 2, 12) };
        r.add_invariants(&audit, &[]);
        assert_eq!((r.passed, r.total, r.exit_code), (4, 4, 0));
        assert!(r.to_text().contains("pool 10+2/12"), "{}", r.to_text());
        let v = guest_mm::Violation::TableLeaked { pfn: guest_mm::Pfn(0x412) };
        let mut r = build("elf".into(), Some(Outcome::ExitPort { status: 0x21 }), &[], &[], None, vec![]);
        r.add_invariants(&audit, &[v.clone(), v]);
        assert_eq!((r.passed, r.total, r.exit_code), (1, 2, EXIT_CHECK_FAILED));
        let text = r.to_text();
        assert!(text.contains("violation: table page 0x412 is held by the allocator but not reachable"), "{text}");
        assert!(r.to_json().contains("\"violations\": ["), "{}", r.to_json());
        // A crash keeps its own exit code.
        let mut r = build("x".into(), Some(Outcome::TripleFault { vcpu: 0 }), &[], &[], Some(&CLEAN), vec![]);
        r.add_invariants(&audit, &[guest_mm::Violation::PoolLeaked { pfn: guest_mm::Pfn(1) }]);
        assert_eq!(r.exit_code, EXIT_CRASHED);
    }

    #[test]
    fn user_guest_status_passes_through() {
        let r = build("elf".into(), Some(Outcome::ExitPort { status: 0x21 }), &[], &[], None, vec![]);
        assert_eq!(r.exit_code, 0x21);
        let json = r.to_json();
        assert!(json.contains("\"kind\": \"exit_port\""), "{json}");
    }
}
