//! The guests the VMM runs: [`kind`] is the seam every kind of guest
//! implements, [`kinds`] holds one folder per kind, [`registry`] lists
//! them and chooses a run's kind, [`options`] carries the options each
//! kind declares, [`spec`] is what a kind tells the registry; [`asm`]
//! (generating programs) and [`elf_program`] (an ELF executable as a
//! hosted program, read with `crate::elf`) are shared by the kinds;
//! [`user_state`] is a vCPU's user-mode registers as a kind may change
//! them.

pub mod asm;
pub mod elf_program;
pub mod kind;
pub mod kinds;
pub mod options;
pub mod registry;
pub mod spec;
pub mod user_state;
