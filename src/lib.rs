//! Workspace-level test and benchmark support. The integration tests live
//! in `tests/` and the criterion benchmarks in `benches/`; this library only
//! holds what several of them share.
