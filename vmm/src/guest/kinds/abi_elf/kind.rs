//! A freestanding x86-64 ELF written for the VMM's own ABI
//! (`docs/guest-abi.md`): `PT_LOAD` segments mapped by guest-mm, long
//! mode at CPL 3, hypercalls. The guest's exit status (exit port or
//! `exit_group`) becomes the VMM's.

use crate::guest::elf;
use crate::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd};
use crate::guest::kinds::load_vmm_abi_program;
use crate::hosted::program::Program;
use crate::run::report::{self, RunReport};
use crate::run::runner::RunError;

/// An ELF guest with the VMM's ABI.
#[derive(Debug)]
pub struct AbiElf {
    name: String,
    prog: Program,
}

impl AbiElf {
    /// The program in the ELF image `bytes` (named `name` in reports).
    pub fn new(name: String, bytes: &[u8]) -> Result<Self, RunError> {
        Ok(AbiElf { name, prog: elf::parse(bytes)? })
    }
}

impl GuestKind for AbiElf {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, RunError> {
        load_vmm_abi_program(ctx, &self.prog)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        report::build(self.name(), end.outcome, end.records, &[], None, end.exits)
    }
}
