//! The in-guest fuzzer as a kind (`vmm fuzz-guest`): the program
//! `guest::fuzz` generates, loaded with the VMM's ABI; a clean run is
//! every vCPU calling `exit(0)` with all its checks passed.

use super::program::{self as fuzz, Params};
use crate::config::{ConfigError, VmConfig};
use crate::guest::kind::{Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind};
use crate::guest::kinds::abi_elf::load::load_vmm_abi_program;
use crate::guest::options::KindOption;
use crate::guest::spec::{KindSpec, Launch};
use crate::hosted::hypercall::CheckRecord;
use crate::hosted::program::Program;
use crate::run::control::Outcome;
use crate::run::report::{self, RunReport};

/// The in-guest fuzzer.
#[derive(Debug)]
pub struct Fuzz {
    params: Params,
    prog: Program,
}

impl Fuzz {
    /// Generates the fuzzer for `cfg`'s machine.
    pub fn new(cfg: &VmConfig, seed: u64, calls: u64) -> Result<Self, KindError> {
        if cfg.vcpus > fuzz::MAX_VCPUS {
            let max = fuzz::MAX_VCPUS;
            return Err(ConfigError::Invalid(format!("the in-guest fuzzer runs on at most {max} vCPUs")).into());
        }
        let params = Params { seed, calls, vcpus: cfg.vcpus, mem_size: cfg.mem_size };
        let prog = fuzz::build(&params)
            .map_err(|e| KindError::Assemble { what: "the in-guest fuzzer", message: e.to_string() })?;
        Ok(Fuzz { params, prog })
    }
}

/// Option: the seed of the fuzzer's generators.
pub const SEED: &str = "fuzz-seed";
/// Option: hypercalls in total, over all vCPUs.
pub const CALLS: &str = "fuzz-calls";

/// A u64 in decimal or `0x` hex.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn check_u64(s: &str) -> Result<(), String> {
    parse_u64(s).map(|_| ())
}

/// Makes `cfg` run the fuzzer with `seed` and `calls` (what
/// `vmm fuzz-guest` does).
pub fn configure(cfg: &mut VmConfig, seed: u64, calls: u64) {
    cfg.guest = crate::config::GuestChoice::Kind(SPEC.name().into());
    cfg.kind_args.set(SEED, vec![format!("{seed:#x}")]);
    cfg.kind_args.set(CALLS, vec![calls.to_string()]);
}

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "fuzz"
    }

    fn about(&self) -> &'static str {
        "the in-guest fuzzer (vmm fuzz-guest): random hypercalls and probes from every vCPU"
    }

    fn options(&self) -> &'static [KindOption] {
        const OPTIONS: &[KindOption] = &[
            KindOption::new(SEED, "S", "seed of the in-guest fuzzer's generators").hidden().checked(check_u64),
            KindOption::new(CALLS, "N", "hypercalls the in-guest fuzzer makes in total").hidden().checked(check_u64),
        ];
        OPTIONS
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let get = |name: &str, default: u64| match launch.args().value(name) {
            Some(v) => parse_u64(v).map_err(|e| KindError::Invalid(format!("--{name}: {e}"))),
            None => Ok(default),
        };
        let (seed, calls) = (get(SEED, 0)?, get(CALLS, 1_000_000)?);
        Ok(std::sync::Arc::new(Fuzz::new(launch.cfg, seed, calls)?))
    }
}

impl GuestKind for Fuzz {
    fn name(&self) -> String {
        let p = &self.params;
        format!("in-guest fuzzer (seed {:#x}, {} calls, {} vCPUs)", p.seed, p.calls, p.vcpus)
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
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
