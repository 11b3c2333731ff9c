//! Workspace-level test and benchmark support. The integration tests live
//! in `tests/` (three binaries: `mapper`, `vmm`, `guests`) and the
//! criterion benchmarks in `benches/`; this library holds what they
//! share: a standard guest-memory fixture, a page-table walker that reads
//! guest memory on its own, without trusting the code that wrote the
//! tables, the reference model of the mapper, the fuzz targets (`fuzz/`
//! runs them under libFuzzer, `tests/vmm/fuzz_corpus.rs` replays their
//! corpus), running the VMM on KVM ([`kvm`]), and the import-circle
//! check of the workspace ([`import_graph`]).
//!
//! A library rather than a module of the tests: `fuzz/` and `benches/`
//! use it too, and it is built once for all three test binaries. What
//! needs the VMM (`fuzz`, `kvm`) is behind the `vmm-stack` feature, so
//! the `mapper` tests build without it.

pub mod census;
pub mod fixture;
pub mod frame_guarantee;
#[cfg(feature = "vmm-stack")]
pub mod fuzz_targets;
pub mod import_graph;
pub mod input;
#[cfg(feature = "vmm-stack")]
pub mod kvm;
pub mod model;
pub mod walk;
