//! A freestanding x86-64 ELF written for the VMM's own ABI
//! (`docs/guest-abi.md`): `PT_LOAD` segments mapped by guest-mm, long
//! mode at CPL 3, hypercalls. The guest's exit status (exit port or
//! `exit_group`) becomes the VMM's.

use super::load::load_vmm_abi_program;
use crate::guest::elf_program;
use crate::guest::kind::{Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind};
use crate::guest::spec::{KindSpec, Launch};
use crate::hosted::program::Program;
use crate::run::report::{self, RunReport};

/// An ELF guest with the VMM's ABI.
#[derive(Debug)]
pub struct AbiElf {
    name: String,
    prog: Program,
}

impl AbiElf {
    /// The program in the ELF image `bytes` (named `name` in reports).
    pub fn new(name: String, bytes: &[u8]) -> Result<Self, KindError> {
        Ok(AbiElf { name, prog: elf_program::parse(bytes)? })
    }
}

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "vmm"
    }

    fn about(&self) -> &'static str {
        "a freestanding x86-64 ELF written for the VMM's own hypercall ABI"
    }

    fn runs_files(&self) -> bool {
        true
    }

    /// An ELF carrying the VMM's ABI note (every guest the project
    /// generates does); one built elsewhere runs with `--abi vmm`.
    fn claims(&self, bytes: &[u8]) -> bool {
        elf_program::has_vmm_abi_note(bytes)
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let Some((path, bytes)) = launch.file else {
            return Err(KindError::Invalid("an own-ABI guest needs --guest FILE".into()));
        };
        Ok(std::sync::Arc::new(AbiElf::new(path.display().to_string(), bytes)?))
    }
}

impl GuestKind for AbiElf {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        load_vmm_abi_program(ctx, &self.prog)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        report::build(self.name(), end.outcome, end.records, &[], None, end.exits)
    }
}
