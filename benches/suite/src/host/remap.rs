//! Item 2: remapping a contiguous physical range (`io_remap_pfn_range`),
//! 2 MiB-aligned and not, up to 1 GiB, against the fewest entries and
//! tables any x86-64 mapper could use for it.
//!
//! The minimum is computed here independently of the mapper: a greedy
//! choice of the largest page size both addresses are aligned to at each
//! step (optimal for a single contiguous range), then the set of distinct
//! tables those leaves need below an empty root.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use guest_mm::{MmError, MmapProvider, MmapRequest, Pfn, VmFlags, VmaDesc, PAGE_SIZE};

use super::fixture::{va, Fixture, WINDOW};
use crate::error::BenchError;

/// One remap case.
#[derive(Clone, Copy, Debug)]
pub struct RemapCase {
    /// Stable key.
    pub id: &'static str,
    /// For people.
    pub title: &'static str,
    /// Virtual start.
    pub va: u64,
    /// Physical start.
    pub pa: u64,
    /// Length.
    pub len: u64,
}

/// Physical base of the remapped window: 4 GiB, above the fixture's RAM
/// (device memory, as a BAR would be).
const PA: u64 = 4 << 30;

/// The cases of item 2.
pub fn cases() -> Vec<RemapCase> {
    let v = WINDOW.0;
    vec![
        RemapCase { id: "aligned_2m", title: "2 MiB, 2 MiB-aligned", va: v, pa: PA, len: 2 << 20 },
        RemapCase { id: "aligned_64m", title: "64 MiB, 2 MiB-aligned", va: v, pa: PA, len: 64 << 20 },
        RemapCase { id: "aligned_1g", title: "1 GiB, 1 GiB-aligned", va: v, pa: PA, len: 1 << 30 },
        RemapCase { id: "offset_2m", title: "2 MiB, both +4 KiB", va: v + 4096, pa: PA + 4096, len: 2 << 20 },
        RemapCase { id: "offset_64m", title: "64 MiB, both +4 KiB", va: v + 4096, pa: PA + 4096, len: 64 << 20 },
        RemapCase { id: "offset_1g", title: "1 GiB, both +4 KiB", va: v + 4096, pa: PA + 4096, len: 1 << 30 },
        RemapCase { id: "skewed_1g", title: "1 GiB, only PA +4 KiB (4 KiB only)", va: v, pa: PA + 4096, len: 1 << 30 },
    ]
}

/// The fewest leaf entries and tables a mapping of `case` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minimum {
    /// Leaf entries.
    pub entries: u64,
    /// Table pages below the root (PDPTs, PDs, PTs).
    pub tables: u64,
}

/// Computes the minimum for a range in an otherwise empty address space.
pub fn minimum(va: u64, pa: u64, len: u64) -> Minimum {
    const SIZES: [(u64, u32); 3] = [(1 << 30, 3), (2 << 20, 2), (4 << 10, 1)];
    let (mut v, mut p, end) = (va, pa, va + len);
    let mut entries = 0;
    // Tables by (level, index of the region they cover).
    let mut tables: BTreeSet<(u32, u64)> = BTreeSet::new();
    while v < end {
        let Some(&(size, level)) = SIZES.iter().find(|(s, _)| v % s == 0 && p % s == 0 && end - v >= *s) else {
            break; // not page aligned: nothing more can map
        };
        entries += 1;
        // A leaf at `level` lives in a table of that level; it and every
        // table above it up to the PDPT must exist.
        for l in level..=3 {
            let covers = 1u64 << (12 + 9 * l);
            tables.insert((l, v / covers));
        }
        v += size;
        p += size;
    }
    Minimum { entries, tables: tables.len() as u64 }
}

/// Remaps its physical window with `io_remap_pfn_range` semantics.
struct IoWindow(Pfn);

impl MmapProvider for IoWindow {
    fn name(&self) -> &str {
        "bench-io-window"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_ioremap_full(self.0);
        Ok(())
    }
}

/// One sample of a case.
#[derive(Clone, Copy, Debug)]
pub struct RemapSample {
    /// Mean time of one `mmap` call.
    pub per_call: Duration,
    /// Leaf entries written (the same in every call).
    pub entries: u64,
    /// Table pages allocated.
    pub tables: u64,
}

/// Maps `case` `calls` times (each unmapped, untimed) and returns the mean
/// time of the `mmap` call with the counts it reported.
pub fn sample(fx: &mut Fixture, case: &RemapCase, calls: u32) -> Result<RemapSample, BenchError> {
    let provider = IoWindow(Pfn(case.pa / PAGE_SIZE));
    let req = MmapRequest::shared(case.len, VmFlags::READ | VmFlags::WRITE).fixed_noreplace(va(case.va)?);
    let mut total = Duration::ZERO;
    let mut seen: Option<(u64, u64)> = None;
    for _ in 0..calls.max(1) {
        let t = Instant::now();
        let m = fx.space.mmap(&provider, &req).map_err(BenchError::mm(format!("remap {}", case.title)))?;
        total += t.elapsed();
        let got = (m.stats.entries_written, m.stats.tables_allocated);
        m.flush.ignore();
        fx.space.munmap(va(case.va)?, case.len).map_err(BenchError::mm("unmap after remap"))?.ignore();
        if seen.is_some_and(|s| s != got) {
            return Err(BenchError::Check(format!("remap {}: counts changed between calls", case.title)));
        }
        seen = Some(got);
    }
    let (entries, tables) = seen.unwrap_or_default();
    Ok(RemapSample { per_call: total / calls.max(1), entries, tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_uses_the_largest_pages_alignment_allows() {
        let g = 1u64 << 30;
        assert_eq!(minimum(g, 4 * g, g), Minimum { entries: 1, tables: 1 });
        assert_eq!(minimum(g, 4 * g, 2 << 20), Minimum { entries: 1, tables: 2 });
        // +4 KiB on both: 511 small pages, 511 huge ones, 1 small page.
        let m = minimum(g + 4096, 4 * g + 4096, g);
        assert_eq!(m.entries, 511 + 511 + 1);
        // PDPT, two PDs (the range crosses a 1 GiB line), two PTs.
        assert_eq!(m.tables, 5);
        // Skewed: nothing but 4 KiB pages.
        assert_eq!(minimum(g, 4 * g + 4096, 2 << 20).entries, 512);
    }
}
