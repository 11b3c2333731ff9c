//! Item 1, 3 and 4 workloads on our side: map-kernel-pages through the full
//! public pipeline (prepare, VMA, complete), in one call or in batches of
//! `n` pages per call, and the munmap of the mapped range.
//!
//! Each `sample` times only the measured part; setup and teardown (the
//! munmap after a map, the map before a munmap) run outside the clock.
//! Every sample also checks what the mapper reports (entries written,
//! tables balanced), so a figure can never come from a run that did the
//! wrong thing.

use std::time::{Duration, Instant};

use guest_mm::{MmError, MmapProvider, MmapRequest, PageArray, VmFlags, VmaDesc, PAGE_SIZE};

use super::fixture::{va, Fixture, PAGES, WINDOW};
use crate::bench::error::BenchError;

/// A driver-style provider: maps the slice of its page array that the
/// VMA's page offset selects (`vm_map_pages` semantics).
pub struct ArrayProvider(pub PageArray);

impl MmapProvider for ArrayProvider {
    fn name(&self) -> &str {
        "bench-page-array"
    }

    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        let chunk = self.0.slice(d.pgoff, d.pages()).ok_or(MmError::Invalid("page offset beyond the array"))?;
        d.mmap_action_map_kernel_pages_full(chunk);
        Ok(())
    }
}

/// Where the benchmark maps: the bottom of the window (1 GiB aligned).
fn base() -> u64 {
    WINDOW.0
}

/// Maps all `PAGES` frames with `batch` pages per `mmap` call and returns
/// the time of the calls alone; unmaps afterwards (untimed).
pub fn map_in_batches(fx: &mut Fixture, provider: &ArrayProvider, batch: u64) -> Result<Duration, BenchError> {
    if batch == 0 || PAGES % batch != 0 {
        return Err(BenchError::Check(format!("batch size {batch} does not divide {PAGES}")));
    }
    let tables_before = fx.space.stats().tables_in_use;
    let calls = PAGES / batch;
    let mut written = 0u64;
    let mut failed = None;
    let t = Instant::now();
    for i in 0..calls {
        let off = i * batch;
        let req = MmapRequest::shared(batch * PAGE_SIZE, VmFlags::READ | VmFlags::WRITE)
            .fixed_noreplace(va(base() + off * PAGE_SIZE)?)
            .pgoff(off);
        match fx.space.mmap(provider, &req) {
            Ok(m) => {
                written += m.stats.entries_written;
                m.flush.ignore();
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let elapsed = t.elapsed();
    // Teardown, untimed; done even after a failure so the next sample
    // starts from an empty space.
    fx.space.munmap(va(base())?, PAGES * PAGE_SIZE).map_err(BenchError::mm("unmap after the batched map"))?.ignore();
    if let Some(e) = failed {
        return Err(BenchError::Mm { context: format!("map-kernel-pages, {batch} pages per call"), source: e });
    }
    if written != PAGES {
        return Err(BenchError::Check(format!("{batch} pages per call wrote {written} entries, expected {PAGES}")));
    }
    let tables_after = fx.space.stats().tables_in_use;
    if tables_after != tables_before {
        return Err(BenchError::Check(format!(
            "page tables not balanced after map+unmap: {tables_before} before, {tables_after} after"
        )));
    }
    Ok(elapsed)
}

/// What one munmap of the whole range did.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnmapSample {
    /// Time of the munmap call alone.
    pub elapsed: Duration,
    /// Page-table pages freed.
    pub tables_freed: u64,
    /// Pages in the flush set it returned.
    pub flush_pages: u64,
    /// Address ranges in the flush set.
    pub flush_ranges: u64,
}

/// Maps all frames in one call (untimed), then times their munmap.
pub fn unmap_whole(fx: &mut Fixture, provider: &ArrayProvider) -> Result<UnmapSample, BenchError> {
    let tables_before = fx.space.stats().tables_in_use;
    let req = MmapRequest::shared(PAGES * PAGE_SIZE, VmFlags::READ | VmFlags::WRITE).fixed_noreplace(va(base())?);
    fx.space.mmap(provider, &req).map_err(BenchError::mm("map before munmap"))?.flush.ignore();
    let tables_mapped = fx.space.stats().tables_in_use;
    let t = Instant::now();
    let flush = fx.space.munmap(va(base())?, PAGES * PAGE_SIZE).map_err(BenchError::mm("munmap"))?;
    let elapsed = t.elapsed();
    let sample = UnmapSample {
        elapsed,
        tables_freed: (tables_mapped - fx.space.stats().tables_in_use) as u64,
        flush_pages: flush.pages(),
        flush_ranges: flush.ranges().len() as u64,
    };
    flush.ignore();
    if fx.space.stats().tables_in_use != tables_before {
        return Err(BenchError::Check("munmap left page tables behind".into()));
    }
    Ok(sample)
}

/// The `vm_insert_page` way inside one mapping: one `insert_pages` call
/// per page (a walk from the root, the frame-state lock and one counted
/// store each) into the range a single VMA would cover, no batching.
/// Returns the time of the calls; unmaps afterwards (untimed).
pub fn insert_page_by_page(fx: &mut Fixture) -> Result<Duration, BenchError> {
    let frames = fx.space.frames().clone();
    let pages: Vec<guest_mm::Pfn> = fx.frames().to_vec();
    let prot = guest_mm::PageProt::from_flags(VmFlags::READ | VmFlags::WRITE);
    let tables_before = fx.space.stats().tables_in_use;
    let pt = fx.space.page_tables_mut();
    let mut failed = None;
    let t = Instant::now();
    for (i, p) in pages.iter().enumerate() {
        let va = va(base() + i as u64 * PAGE_SIZE)?;
        let mut st = frames.lock();
        if let Err(e) = pt.insert_pages(va, std::slice::from_ref(p), prot, &mut st.counts) {
            failed = Some(e);
            break;
        }
    }
    let elapsed = t.elapsed();
    let mut released = Vec::new();
    let u = {
        let mut st = frames.lock();
        pt.unmap_range(va(base())?, PAGES * PAGE_SIZE, &mut st.counts, &mut released)
            .map_err(BenchError::mm("unmap after page-by-page insert"))?
    };
    u.flush.ignore();
    if let Some(e) = failed {
        return Err(BenchError::Mm { context: "insert_pages, one page per call".into(), source: e });
    }
    if u.entries_cleared != PAGES || fx.space.stats().tables_in_use != tables_before {
        return Err(BenchError::Check(format!(
            "page-by-page insert: {} entries cleared (expected {PAGES}), tables not balanced",
            u.entries_cleared
        )));
    }
    Ok(elapsed)
}
