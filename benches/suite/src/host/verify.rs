//! The independent check run after every timed sample: it reads the page
//! tables a run built straight from guest memory with plain loads
//! (vm-memory's `read_obj`), sharing no code with guest-mm, and compares a
//! sample of pages with the frames the run was asked to map.
//!
//! A sample is 256 pages spread over the range by a stride prime to its
//! length, plus the first and the last page: spread over the whole range
//! (about half of item 1's 512 leaf tables), at scattered offsets inside
//! them, so a run that mapped pages wrong in any regular pattern (an
//! off-by-one, a shifted or missing table) does not pass.

use guest_mm::Pfn;
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::error::BenchError;

/// Present.
const P: u64 = 1;
/// Writable.
const RW: u64 = 1 << 1;
/// User.
const US: u64 = 1 << 2;
/// Page size (a huge leaf, at levels 2 and 3).
const PS: u64 = 1 << 7;
/// Address bits of a table pointer or 4 KiB leaf.
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Indices of the pages to check among `n`.
pub fn sample(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut v: Vec<usize> = (0..256usize).map(|k| (k * 1021 + 7) % n).collect();
    v.extend([0, n - 1]);
    v.sort_unstable();
    v.dedup();
    v
}

/// The 4 KiB leaf entry that maps `va` under `root`, read the way the CPU
/// walks; `None` when some level is not present or a huge leaf is met.
pub fn leaf<M: GuestMemory>(mem: &M, root: u64, va: u64) -> Result<Option<u64>, BenchError> {
    let mut table = root;
    for level in (1..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        let at = GuestAddress(table + idx * 8);
        let e: u64 =
            mem.read_obj(at).map_err(|e| BenchError::Check(format!("reading the entry at {:#x}: {e}", at.0)))?;
        if e & P == 0 || (level > 1 && e & PS != 0) {
            return Ok(None);
        }
        if level == 1 {
            return Ok(Some(e));
        }
        table = e & ADDR;
    }
    Ok(None)
}

/// Checks that page `i` of `[base, ..)` maps `frames[i]`, present,
/// writable and user, for a sample of `i`.
pub fn mapped<M: GuestMemory>(mem: &M, root: u64, base: u64, frames: &[Pfn], what: &str) -> Result<(), BenchError> {
    for i in sample(frames.len()) {
        let va = base + i as u64 * 4096;
        let want = frames[i].0;
        match leaf(mem, root, va)? {
            Some(e) if (e & ADDR) >> 12 == want && e & (P | RW | US) == P | RW | US => {}
            got => {
                return Err(BenchError::Check(format!(
                    "{what}: page {i} ({va:#x}) should map frame {want:#x} present, writable, user; the tables \
                     hold {got:#x?}"
                )))
            }
        }
    }
    Ok(())
}

/// Checks that no sampled page of the `n` pages from `base` is mapped.
pub fn unmapped<M: GuestMemory>(mem: &M, root: u64, base: u64, n: usize, what: &str) -> Result<(), BenchError> {
    for i in sample(n) {
        let va = base + i as u64 * 4096;
        if let Some(e) = leaf(mem, root, va)? {
            return Err(BenchError::Check(format!("{what}: page {i} ({va:#x}) still mapped ({e:#x})")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_covers_both_ends_and_spreads() {
        let s = sample(262_144);
        assert!(s.len() >= 250 && s[0] == 0 && s[s.len() - 1] == 262_143);
        // Spread: 256 samples land in well over 200 of the 512 leaf tables.
        let tables: std::collections::BTreeSet<usize> = s.iter().map(|i| i / 512).collect();
        assert!(tables.len() > 200, "{}", tables.len());
        assert_eq!(sample(1), vec![0]);
        assert!(sample(0).is_empty());
    }
}
