//! One module per subcommand: its options (`clap`) and the glue that
//! turns them into a call of the `vmm` library, `vmm-bench`, [`crate::kut`] or [`crate::ltest`].

pub mod bench;
pub mod example_elf;
pub mod fuzz_guest;
pub mod kut;
pub mod ltest;
pub mod run;
