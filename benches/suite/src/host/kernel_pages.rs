//! Item 1, 3 and 4 workloads on our side: map-kernel-pages through the full
//! public pipeline (prepare, VMA, complete), in one call or in batches of
//! `n` pages per call, and the munmap of the mapped range, with or
//! without the TLB shootdown that follows it in the VMM.
//!
//! Each sample times only the measured part; the addresses are computed
//! before the clock starts, and setup and teardown (the munmap after a
//! map, the map before a munmap) run outside it. After the clock stops
//! every sample checks what the mapper reported (entries written, tables
//! balanced) and, by reading the tables with the independent walker of
//! `verify`, that a sample of pages maps the right frames (or, after a
//! munmap, nothing), so a figure can never come from a run that did the
//! wrong thing.

use std::time::{Duration, Instant};

use guest_mm::{FlushSet, MmError, MmapProvider, MmapRequest, PageArray, PageProt, VmFlags, VmaDesc, PAGE_SIZE};

use super::fixture::{addresses, va, Fixture, PAGES, WINDOW};
use super::verify;
use crate::error::BenchError;

/// A driver-style provider: maps the slice of its page array that the
/// VMA's page offset selects (`vm_map_pages` semantics). The array was
/// pinned once, when the fixture made it.
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

/// Checks, with the independent walker, that the fixture's frames are
/// mapped from `base()` (a sample of them).
fn check_mapped(fx: &Fixture, what: &str) -> Result<(), BenchError> {
    verify::mapped(fx.space.memory(), fx.space.cr3().0, base(), fx.frames(), what)
}

/// Maps all `PAGES` frames with `batch` pages per `mmap` call and returns
/// the time of the calls alone; checks and unmaps afterwards (untimed).
pub fn map_in_batches(fx: &mut Fixture, provider: &ArrayProvider, batch: u64) -> Result<Duration, BenchError> {
    if batch == 0 || PAGES % batch != 0 {
        return Err(BenchError::Check(format!("batch size {batch} does not divide {PAGES}")));
    }
    let tables_before = fx.space.stats().tables_in_use;
    let calls = PAGES / batch;
    let starts = addresses(base(), batch * PAGE_SIZE, calls)?;
    let prot = VmFlags::READ | VmFlags::WRITE;
    let mut written = 0u64;
    let mut failed = None;
    let t = Instant::now();
    for (i, &start) in starts.iter().enumerate() {
        let req = MmapRequest::shared(batch * PAGE_SIZE, prot).fixed_noreplace(start).pgoff(i as u64 * batch);
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
    let checked = if failed.is_none() { check_mapped(fx, &format!("{batch} pages per call")) } else { Ok(()) };
    // Teardown, untimed; done even after a failure so the next sample
    // starts from an empty space.
    fx.space.munmap(va(base())?, PAGES * PAGE_SIZE).map_err(BenchError::mm("unmap after the batched map"))?.ignore();
    if let Some(e) = failed {
        return Err(BenchError::Mm { context: format!("map-kernel-pages, {batch} pages per call"), source: e });
    }
    checked?;
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
    /// Time of the TLB shootdown that followed it, when one was asked for.
    pub shootdown: Option<Duration>,
    /// Page-table pages freed.
    pub tables_freed: u64,
    /// Pages in the flush set it returned.
    pub flush_pages: u64,
    /// Address ranges in the flush set.
    pub flush_ranges: u64,
}

/// Maps all frames in one call (untimed, checked), then times their
/// munmap and, with `shootdown`, the shootdown of the flush set it
/// returns (timed apart); checks afterwards that nothing is left mapped.
pub fn unmap_whole(
    fx: &mut Fixture,
    provider: &ArrayProvider,
    shootdown: Option<&dyn Fn(FlushSet) -> Result<(), BenchError>>,
) -> Result<UnmapSample, BenchError> {
    let tables_before = fx.space.stats().tables_in_use;
    let start = va(base())?;
    let req = MmapRequest::shared(PAGES * PAGE_SIZE, VmFlags::READ | VmFlags::WRITE).fixed_noreplace(start);
    fx.space.mmap(provider, &req).map_err(BenchError::mm("map before munmap"))?.flush.ignore();
    check_mapped(fx, "map before munmap")?;
    let tables_mapped = fx.space.stats().tables_in_use;
    let t = Instant::now();
    let flush = fx.space.munmap(start, PAGES * PAGE_SIZE).map_err(BenchError::mm("munmap"))?;
    let elapsed = t.elapsed();
    let mut sample = UnmapSample {
        elapsed,
        shootdown: None,
        tables_freed: (tables_mapped - fx.space.stats().tables_in_use) as u64,
        flush_pages: flush.pages(),
        flush_ranges: flush.ranges().len() as u64,
    };
    match shootdown {
        Some(shoot) => {
            let t = Instant::now();
            shoot(flush)?;
            sample.shootdown = Some(t.elapsed());
        }
        None => flush.ignore(),
    }
    verify::unmapped(fx.space.memory(), fx.space.cr3().0, base(), PAGES as usize, "munmap")?;
    if fx.space.stats().tables_in_use != tables_before {
        return Err(BenchError::Check("munmap left page tables behind".into()));
    }
    Ok(sample)
}

/// The `vm_insert_page` way inside one mapping: one `insert_pages` call
/// per page (a walk from the root each) into the range a single VMA would
/// cover, no batching. The one-page slices of the array and the addresses
/// are made before the clock starts. Returns the time of the calls;
/// checks and unmaps afterwards (untimed).
pub fn insert_page_by_page(fx: &mut Fixture) -> Result<Duration, BenchError> {
    let singles: Vec<PageArray> = (0..PAGES).filter_map(|i| fx.array.slice(i, 1)).collect();
    let vas = addresses(base(), PAGE_SIZE, PAGES)?;
    if singles.len() != vas.len() {
        return Err(BenchError::Check("one-page slices of the array".into()));
    }
    let prot = PageProt::from_flags(VmFlags::READ | VmFlags::WRITE);
    let tables_before = fx.space.stats().tables_in_use;
    let pt = fx.space.page_tables_mut();
    let mut failed = None;
    let t = Instant::now();
    for (&va, page) in vas.iter().zip(&singles) {
        if let Err(e) = pt.insert_pages(va, page, prot) {
            failed = Some(e);
            break;
        }
    }
    let elapsed = t.elapsed();
    let checked = if failed.is_none() { check_mapped(fx, "insert_pages one page per call") } else { Ok(()) };
    let u = fx
        .space
        .page_tables_mut()
        .unmap_range(va(base())?, PAGES * PAGE_SIZE)
        .map_err(BenchError::mm("unmap after page-by-page insert"))?;
    u.flush.ignore();
    if let Some(e) = failed {
        return Err(BenchError::Mm { context: "insert_pages, one page per call".into(), source: e });
    }
    checked?;
    if u.entries_cleared != PAGES || fx.space.stats().tables_in_use != tables_before {
        return Err(BenchError::Check(format!(
            "page-by-page insert: {} entries cleared (expected {PAGES}), tables not balanced",
            u.entries_cleared
        )));
    }
    Ok(elapsed)
}

/// Pins the fixture's 262,144 frames as a new array and drops it: what
/// making (and finally dropping) a page array costs, paid once per array
/// rather than per mapping. Returns (pin, unpin) times.
pub fn pin_and_unpin(fx: &Fixture) -> Result<(Duration, Duration), BenchError> {
    let pfns = fx.array.pinned().pfns().clone();
    let frames = fx.space.frames();
    let before = frames.lock().pins().total();
    let t = Instant::now();
    let array = PageArray::pin(frames, pfns).map_err(BenchError::mm("pinning the array"))?;
    let pin = t.elapsed();
    let pinned = frames.lock().pins().total();
    let t = Instant::now();
    drop(array);
    let unpin = t.elapsed();
    let after = frames.lock().pins().total();
    if pinned != before + PAGES || after != before {
        return Err(BenchError::Check(format!("pins: {before} before, {pinned} pinned, {after} after")));
    }
    Ok((pin, unpin))
}
