//! The checks a guest reports with the `report` hypercall.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One reported check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckRecord {
    /// vCPU that reported it.
    pub vcpu: u8,
    /// Check number.
    pub id: u64,
    /// Did it pass?
    pub passed: bool,
    /// What the guest saw.
    pub got: u64,
    /// What it expected.
    pub expected: u64,
    /// The failing step (0 when it passed or has no steps).
    pub step: u64,
}

/// The checks reported so far, shared with the report printer.
#[derive(Clone, Debug, Default)]
pub struct ReportLog(Arc<Mutex<Vec<CheckRecord>>>);

impl ReportLog {
    /// Records a check (at most 4096 are kept: a guest cannot make the
    /// VMM grow without bound).
    pub fn record(&self, rec: CheckRecord) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 4096 {
            v.push(rec);
        } else {
            devices::warn_limited!("report log full: dropped check {} from vCPU {}", rec.id, rec.vcpu);
        }
    }

    /// Everything reported, in order.
    pub fn records(&self) -> Vec<CheckRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: u64) -> CheckRecord {
        CheckRecord { vcpu: 1, id, passed: id % 2 == 0, got: id, expected: 0, step: 0 }
    }

    #[test]
    fn the_first_4096_checks_are_kept_in_order() {
        let log = ReportLog::default();
        for id in 0..4100 {
            log.record(check(id));
        }
        let kept = log.records();
        assert_eq!(kept.len(), 4096);
        assert_eq!(kept.first(), Some(&check(0)));
        assert_eq!(kept.last(), Some(&check(4095)));
    }
}
