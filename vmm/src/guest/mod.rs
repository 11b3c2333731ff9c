//! Guest programs the VMM can run: the built-in test guest and the
//! in-guest fuzzer (generated here with `iced-x86`, no checked-in
//! binaries) and freestanding ELF files; [`kind`] is the seam every kind of guest implements and
//! [`kinds`] holds the implementations.

pub mod asm;
pub mod builtin;
mod checks_bar;
mod checks_fault;
mod checks_lazy;
mod checks_map;
pub mod elf;
pub mod example;
pub mod fuzz;
pub mod kind;
pub mod kinds;
pub mod raw;
