//! The guests the VMM runs: [`kind`] is the seam every kind of guest
//! implements, [`kinds`] holds one folder per kind and the one place a
//! run's kind is chosen; [`asm`] and [`elf`] are shared by the kinds that
//! generate or read programs.

pub mod asm;
pub mod elf;
pub mod kind;
pub mod kinds;
