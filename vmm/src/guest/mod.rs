//! Guest programs the VMM can run: the built-in test guest (generated
//! here with `iced-x86`, no checked-in binaries) and freestanding ELF
//! files.

pub mod asm;
pub mod builtin;
pub mod elf;
