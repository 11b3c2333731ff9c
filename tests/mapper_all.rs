//! Every mapper test (`tests/mapper_*.rs`, except the BAR lifecycle, which
//! needs the `devices` crate) in one test binary, for mutation testing:
//! cargo-mutants then links one binary per mutant instead of twelve (see
//! `.cargo/mutants.toml`). Built only with the `mutation-suite` feature;
//! the usual test run has each file as its own binary.
#![cfg(feature = "mutation-suite")]

#[path = "mapper_bad_frame_hook.rs"]
mod mapper_bad_frame_hook;
#[path = "mapper_failure_flush.rs"]
mod mapper_failure_flush;
#[path = "mapper_failure_injection.rs"]
mod mapper_failure_injection;
#[path = "mapper_fault.rs"]
mod mapper_fault;
#[path = "mapper_frame_per_page.rs"]
mod mapper_frame_per_page;
#[path = "mapper_invariants.rs"]
mod mapper_invariants;
#[path = "mapper_limits.rs"]
mod mapper_limits;
#[path = "mapper_model.rs"]
mod mapper_model;
#[path = "mapper_model_lazy.rs"]
mod mapper_model_lazy;
#[path = "mapper_pipeline.rs"]
mod mapper_pipeline;
#[path = "mapper_remap.rs"]
mod mapper_remap;
#[path = "mapper_vma_memory.rs"]
mod mapper_vma_memory;
