//! Fuzz targets: plain functions from a byte string to "nothing went
//! wrong" (they panic when something did). libFuzzer runs them from the
//! `fuzz/` crate (`fuzz/run.sh`); `tests/vmm/fuzz_corpus.rs` replays every file
//! of `fuzz/corpus/<target>/` through the same functions in `cargo test`.
//!
//! Each target keeps one input cheap: small guest memory, at most a few
//! dozen operations, and it checks the promise it fuzzes with code of its
//! own (an independent page-table walk, a model), not by asking the code
//! under test.

mod config;
mod elf;
mod elf_reader;
mod hypercall;
mod hypercall_check;
mod kut_cfg;
mod linux_elf;
#[cfg(test)]
mod linux_file_map_tests;
pub mod linux_program;
mod linux_syscalls;
mod linux_syscalls_check;
mod multiboot;
mod solo5_notes;

pub use self::kut_cfg::kut_cfg;
pub use config::config;
pub use elf::elf;
pub use elf_reader::elf_reader;
pub use hypercall::hypercalls;
pub use linux_elf::linux_elf;
pub use linux_syscalls::linux_syscalls;
pub use multiboot::multiboot;
pub use solo5_notes::solo5_notes;

use crate::model::{Op, World};

/// guest-mm operation sequences against the reference model.
pub fn mapper_ops(data: &[u8]) {
    World::run(&Op::decode_all(data));
}

/// A fuzz target: panics when the input shows something wrong.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("mapper_ops", mapper_ops),
    ("hypercalls", hypercalls),
    ("elf", elf),
    ("config", config),
    ("elf_reader", elf_reader),
    ("kut_cfg", kut_cfg),
    ("multiboot", multiboot),
    ("solo5_notes", solo5_notes),
    ("linux_elf", linux_elf),
    ("linux_syscalls", linux_syscalls),
];
