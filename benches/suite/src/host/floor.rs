//! The physical floor of item 1: a plain loop storing one 8-byte entry per
//! frame, computed the way a leaf entry is, into the same guest memory the
//! page tables live in. No walk, no check, no bookkeeping: nothing a mapper
//! can do with fewer stores. The compiler is free to vectorize it.

use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};

use super::fixture::{Fixture, PAGES, PEER_TABLES};
use super::verify;
use crate::error::BenchError;

/// The entry the floor stores for frame `pfn`.
fn entry(pfn: u64) -> u64 {
    (pfn << 12) | 0x867
}

/// Stores `PAGES` entries into the peer table region and returns the time;
/// then checks a sample of what was stored (untimed).
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
        unsafe { dst.add(i).write(entry(p.0)) };
    }
    std::hint::black_box(dst);
    let elapsed = t.elapsed();
    for i in verify::sample(frames.len()) {
        let at = GuestAddress(PEER_TABLES.0 + i as u64 * 8);
        let got: u64 = fx.space.memory().read_obj(at).map_err(|e| BenchError::Check(format!("floor: {e}")))?;
        if got != entry(frames[i].0) {
            return Err(BenchError::Check(format!("floor: entry {i} holds {got:#x}")));
        }
    }
    Ok(elapsed)
}
