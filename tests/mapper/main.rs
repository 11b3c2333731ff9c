//! The mapper tests: guest-mm through its public API, without KVM. One
//! module per scenario, named after the file it lives in, so that
//! `cargo test --test mapper mapper_remap` runs one of them.
//!
//! This binary builds without the root package's `vmm-stack` feature
//! (only `mapper_bar_lifecycle` needs it, for the `devices` crate):
//! mutation testing builds it that way, so that a mutant of guest-mm
//! rebuilds guest-mm and this binary but not the VMM (`.cargo/mutants.toml`,
//! docs/reliability.md). The fixture, the independent page-table walker
//! and the reference model it checks against are in the root library
//! (`vmm_suite`, `src/`).
//!
//! The binary's global allocator counts heap bytes per thread (see
//! `mapper_vma_memory`), so that test measures only its own thread's
//! allocations while other tests run beside it.

mod mapper_bad_frame_hook;
#[cfg(feature = "vmm-stack")]
mod mapper_bar_cache;
#[cfg(feature = "vmm-stack")]
mod mapper_bar_lifecycle;
mod mapper_failure_flush;
mod mapper_failure_injection;
mod mapper_fault;
mod mapper_frame_per_page;
mod mapper_invariants;
mod mapper_limits;
mod mapper_model;
mod mapper_model_lazy;
mod mapper_pipeline;
mod mapper_remap;
mod mapper_vma_memory;
