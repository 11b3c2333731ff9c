//! The physical floor of item 1: a plain loop storing one 8-byte entry per
//! frame, computed the way a leaf entry is, into the same guest memory the
//! page tables live in. No walk, no check, no count: nothing a mapper can
//! do with fewer stores.

use std::time::{Duration, Instant};

use super::fixture::{Fixture, PAGES, PEER_TABLES};
use crate::bench::error::BenchError;

/// Stores `PAGES` entries into the peer table region and returns the time.
pub fn store_entries(fx: &Fixture) -> Result<Duration, BenchError> {
    let bytes = PAGES * 8;
    if bytes > PEER_TABLES.1 {
        return Err(BenchError::Check("the floor's store target does not fit its region".into()));
    }
    let dst = fx.host_address(PEER_TABLES.0)?.cast::<u64>();
    let frames = fx.frames();
    let t = Instant::now();
    for (i, p) in frames.iter().enumerate() {
        // SAFETY: `dst` points at `PEER_TABLES.1` bytes of the fixture's
        // guest memory (one mmap region, 8-byte aligned), checked above to
        // hold `PAGES` u64s; `frames` has `PAGES` entries. Nothing else
        // reads or writes that region while the floor runs (the peers that
        // share it run strictly before or after, on this thread).
        unsafe { dst.add(i).write((p.0 << 12) | 0x867) };
    }
    std::hint::black_box(dst);
    Ok(t.elapsed())
}
