//! Freestanding ELF programs written for the VMM's own ABI
//! (`docs/guest-abi.md`): the kind that runs them ([`kind`]) and the
//! example program `vmm example-elf` writes ([`example`]).

pub mod example;
mod kind;

pub use self::kind::AbiElf;
