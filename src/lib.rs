//! Workspace-level test and benchmark support. The integration tests live
//! in `tests/` and the criterion benchmarks in `benches/`; this library
//! holds what several of them share: a standard guest-memory fixture, a
//! page-table walker that reads guest memory on its own, without trusting
//! the code that wrote the tables, the reference model of the mapper, and
//! the fuzz targets (`fuzz/` runs them under libFuzzer, `tests/fuzz_corpus.rs`
//! replays their corpus), and the import-circle check of the workspace
//! ([`import_graph`]).

pub mod census;
pub mod fixture;
pub mod frame_guarantee;
#[cfg(feature = "vmm-stack")]
pub mod fuzz;
pub mod import_graph;
pub mod input;
pub mod model;
pub mod walk;
