//! The in-guest fuzzer (`vmm fuzz-guest`): a generated program that makes
//! random hypercalls and probes from every vCPU ([`program`]), run with
//! the VMM's ABI ([`kind`]).

mod kind;
pub mod program;

pub use self::kind::{configure, parse_u64, Fuzz, Spec, CALLS, SEED, SPEC};
pub use self::program::MAX_VCPUS;
