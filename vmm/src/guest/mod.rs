//! The guests the VMM runs: [`kind`] is the seam every kind of guest
//! implements, [`kinds`] holds one folder per kind, [`registry`] lists
//! them and chooses a run's kind, [`options`] carries the options each
//! kind declares; [`asm`] and [`elf`] are shared by the kinds that
//! generate or read programs.

pub mod asm;
pub mod elf;
pub mod kind;
pub mod kinds;
pub mod options;
pub mod registry;
pub mod spec;
