//! The guest-side suite (items 5–9), on KVM. (Being written.)

use super::error::BenchError;
use super::figure::Figure;
use super::progress::Progress;
use super::report::Skipped;
use super::BenchOptions;

/// Steps `run` reports to the progress bar.
pub fn steps(_opts: &BenchOptions, _reps: usize) -> u64 {
    0
}

/// Runs items 5–9; returns the figures and the items it could not run.
pub fn run(
    _opts: &BenchOptions,
    _reps: usize,
    _progress: &mut Progress,
) -> Result<(Vec<Figure>, Vec<Skipped>), BenchError> {
    let skipped = (5..=9).map(|item| Skipped { item, reason: "not written yet".into() }).collect();
    Ok((Vec::new(), skipped))
}
