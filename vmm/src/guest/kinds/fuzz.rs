//! The in-guest fuzzer as a kind (`vmm fuzz-guest`): the program
//! `guest::fuzz` generates, loaded with the VMM's ABI; a clean run is
//! every vCPU calling `exit(0)` with all its checks passed.

use super::load_vmm_abi_program;
use crate::config::{ConfigError, VmConfig};
use crate::control::Outcome;
use crate::guest::fuzz::{self, Params};
use crate::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd};
use crate::program::Program;
use crate::report::{self, RunReport};
use crate::runner::RunError;

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
        report::build(self.name(), end.outcome, end.records, &fuzz::checks(), Some(&clean), end.exits)
    }
}
