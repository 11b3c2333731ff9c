//! The physical floor of item 1: a plain loop storing one 8-byte entry per
//! frame, computed the way a leaf entry is, into the same guest memory the
//! page tables live in. No walk, no check, no count: nothing a mapper can
//! do with fewer stores.
//!
//! A second floor adds what the issue also requires in the same pass: a
//! map-count bump per (scattered) frame. Together they are the work no
//! implementation of map-kernel-pages with counts can skip.

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

/// Stores `PAGES` entries as [`store_entries`] does and bumps `counts[pfn]`
/// for each frame in the same loop; returns the time.
pub fn store_and_count(fx: &Fixture, counts: &mut [u32]) -> Result<Duration, BenchError> {
    let dst = fx.host_address(PEER_TABLES.0)?.cast::<u64>();
    let frames = fx.frames();
    if PAGES * 8 > PEER_TABLES.1 || frames.iter().any(|p| p.0 as usize >= counts.len()) {
        return Err(BenchError::Check("the count floor's frames or stores do not fit".into()));
    }
    let t = Instant::now();
    for (i, p) in frames.iter().enumerate() {
        // SAFETY: as in `store_entries`: `i < PAGES` entries fit the
        // region checked above, which nothing else uses meanwhile.
        unsafe { dst.add(i).write((p.0 << 12) | 0x867) };
        if let Some(c) = counts.get_mut(p.0 as usize) {
            *c = c.wrapping_add(1);
        }
    }
    std::hint::black_box((dst, &mut *counts));
    Ok(t.elapsed())
}
