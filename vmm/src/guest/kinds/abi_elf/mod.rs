//! Freestanding ELF programs written for the VMM's own ABI
//! (`docs/guest-abi.md`): the kind that runs them ([`kind`]) and the
//! example program `vmm example-elf` writes ([`example`]).

pub mod example;
mod kind;
pub mod load;

pub use self::kind::{AbiElf, Spec, SPEC};
pub use self::load::load_vmm_abi_program;
