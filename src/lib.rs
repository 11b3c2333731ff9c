//! Workspace-level test and benchmark support. The integration tests live
//! in `tests/` and the criterion benchmarks in `benches/`; this library
//! holds what several of them share: a standard guest-memory fixture and a
//! page-table walker that reads guest memory on its own, without trusting
//! the code that wrote the tables.

pub mod census;
pub mod fixture;
pub mod frame_guarantee;
