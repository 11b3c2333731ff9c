//! The built-in test guest: generated with `iced-x86` for the machine it
//! runs on ([`program`], its checks in [`checks`]), it exercises every
//! mapping kind through the CPU and reports each check; [`kind`] runs it.

pub mod checks;
mod kind;
pub mod params;
pub mod program;

pub use self::kind::{Builtin, Spec, SPEC};
