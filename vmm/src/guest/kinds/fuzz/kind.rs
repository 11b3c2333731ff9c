//! The in-guest fuzzer as a kind (`vmm fuzz-guest`): the program
//! `guest::fuzz` generates, loaded with the VMM's ABI; a clean run is
//! every vCPU calling `exit(0)` with all its checks passed.

use super::program::{self as fuzz, Params};
use crate::config::{ConfigError, VmConfig};
use crate::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd};
use crate::guest::kinds::load_vmm_abi_program;
use crate::hosted::hypercall::CheckRecord;
use crate::hosted::program::Program;
use crate::run::control::Outcome;
use crate::run::report::{self, RunReport};
use crate::run::runner::RunError;

/// The in-guest fuzzer.
#[derive(Debug)]
pub struct Fuzz {
    params: Params,
    prog: Program,
}

impl Fuzz {
    /// Generates the fuzzer for `cfg`'s machine.
    pub fn new(cfg: &VmConfig, seed: u64, calls: u64) -> Result<Self, RunError> {
        if cfg.vcpus > fuzz::MAX_VCPUS {
            let max = fuzz::MAX_VCPUS;
            return Err(ConfigError::Invalid(format!("the in-guest fuzzer runs on at most {max} vCPUs")).into());
        }
        let params = Params { seed, calls, vcpus: cfg.vcpus, mem_size: cfg.mem_size };
        let prog = fuzz::build(&params).map_err(|e| RunError::Assemble(e.to_string()))?;
        Ok(Fuzz { params, prog })
    }
}

impl GuestKind for Fuzz {
    fn name(&self) -> String {
        let p = &self.params;
        format!("in-guest fuzzer (seed {:#x}, {} calls, {} vCPUs)", p.seed, p.calls, p.vcpus)
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, RunError> {
        load_vmm_abi_program(ctx, &self.prog)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        let clean = Outcome::Exited { status: 0 };
        let records = totals(end.records, self.params.vcpus);
        report::build(self.name(), end.outcome, &records, &fuzz::checks(), Some(&clean), end.exits)
    }
}

/// One record per check with the counts summed over the vCPUs: it passes
/// when every one of `vcpus` vCPUs reported it passed; a failure keeps
/// the first failing vCPU's step (the call number where it went wrong).
fn totals(records: &[CheckRecord], vcpus: u8) -> Vec<CheckRecord> {
    let mut out: Vec<(CheckRecord, u8)> = Vec::new();
    for r in records {
        match out.iter_mut().find(|(t, _)| t.id == r.id) {
            Some((t, n)) => {
                if t.passed && !r.passed {
                    (t.vcpu, t.step) = (r.vcpu, r.step);
                }
                t.passed &= r.passed;
                t.got = t.got.saturating_add(r.got);
                t.expected = t.expected.saturating_add(r.expected);
                *n += 1;
            }
            None => out.push((r.clone(), 1)),
        }
    }
    out.into_iter()
        .map(|(mut t, n)| {
            t.passed &= n == vcpus;
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(vcpu: u8, id: u64, passed: bool, got: u64, step: u64) -> CheckRecord {
        CheckRecord { vcpu, id, passed, got, expected: 10, step }
    }

    #[test]
    fn totals_sum_and_keep_the_first_failure() {
        let t = totals(&[rec(0, 1, true, 3, 0), rec(1, 1, false, 4, 77), rec(0, 2, true, 5, 0)], 2);
        assert_eq!(t[0], CheckRecord { vcpu: 1, id: 1, passed: false, got: 7, expected: 20, step: 77 });
        // Check 2 came from one vCPU of two: not passed.
        assert_eq!(t[1], CheckRecord { vcpu: 0, id: 2, passed: false, got: 5, expected: 10, step: 0 });
        assert!(totals(&[rec(0, 2, true, 5, 0)], 1)[0].passed);
    }
}
