//! The ranges a shootdown invalidates and the list the guest's NMI
//! handler reads from a vCPU's scratch page.

use guest_mm::FlushSet;

use crate::layout::PAGE_SIZE;

/// A range of virtual addresses to invalidate: start and length in bytes.
pub type Range = (u64, u64);

/// Ranges one NMI's list can hold: `(4096 - 8) / 16`.
pub const MAX_RANGES: usize = 255;

/// The range that stands for "flush everything" in a shootdown request:
/// page-table pages were freed (paging-structure caches may point at them)
/// while no present entry changed, so there is no page to `invlpg`.
pub const EVERYTHING: Range = (0, u64::MAX);

/// Ranges a vCPU's pending list may hold (after coalescing) before they
/// are replaced by one "flush everything": a vCPU that stays out of the
/// guest while others unmap must not make the VMM grow without bound.
pub const MAX_PENDING: usize = 4 * MAX_RANGES;

/// Pages a range may cover and still be flushed page by page; a longer
/// one makes the list flush everything (Linux's default
/// `tlb_single_page_flush_ceiling`). After a fork write-protected 64 MiB,
/// 16384 `invlpg`s took the handler about 200 ms on the
/// software-assisted backend, which emulates CPL 0 instruction by
/// instruction; one CR3 reload takes none of that, and the memslot zap
/// before every shootdown drops what a reload alone would not there.
pub const FULL_FLUSH_CEILING: u64 = 33;

/// Whether `r` is longer than [`FULL_FLUSH_CEILING`] pages.
pub fn too_long(r: Range) -> bool {
    r.1 > FULL_FLUSH_CEILING * PAGE_SIZE
}

/// What the NMI handler reads from a vCPU's scratch page: a count, then
/// `count` pairs of (page-aligned start, number of pages). A count of
/// `u64::MAX` means "everything" (reload CR3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushList(pub(super) Vec<u64>);

impl FlushList {
    /// The list for `ranges` (at most [`MAX_RANGES`]).
    pub fn new(ranges: &[Range]) -> Self {
        let mut w = Vec::with_capacity(1 + 2 * ranges.len());
        w.push(ranges.len() as u64);
        for &(start, len) in ranges {
            let first = start & !(PAGE_SIZE - 1);
            let end = start.saturating_add(len).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
            w.push(first);
            w.push((end - first) / PAGE_SIZE);
        }
        FlushList(w)
    }

    /// The list that flushes everything (the handler reloads CR3; the
    /// memslot zap that precedes every shootdown covers a backend on which
    /// that alone would not drop user translations, see `hosted/stub/code.rs`).
    pub fn everything() -> Self {
        FlushList(vec![u64::MAX])
    }

    /// The bytes to write at the start of the scratch page.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

/// Sorts and merges overlapping or adjacent ranges.
pub fn coalesce(ranges: &mut Vec<Range>) {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for &(s, l) in ranges.iter() {
        if let Some(last) = out.last_mut() {
            let last_end = last.0.saturating_add(last.1);
            if s <= last_end {
                last.1 = last_end.max(s.saturating_add(l)) - last.0;
                continue;
            }
        }
        out.push((s, l));
    }
    *ranges = out;
}

/// The ranges to shoot down for a flush set from guest-mm (consumed).
/// Freed page-table pages with no present entry changed become
/// [`EVERYTHING`]: there is no page to `invlpg`, yet paging-structure
/// caches may point at the freed tables. (With ranges, their `invlpg`s
/// also drop paging-structure caches.)
///
/// None at all when no entry the set covers can be cached
/// ([`FlushSet::may_be_cached`]: no dropped or downgraded entry, and no
/// parent entry of a freed table, had its Accessed bit set): neither the
/// vCPUs' TLBs nor KVM's shadow MMU can hold a translation through them,
/// so the whole shootdown (memslot zap and NMIs) is skipped (see the
/// module docs).
pub fn shootdown_ranges(fs: FlushSet) -> Vec<Range> {
    if !fs.may_be_cached() {
        fs.ignore();
        return Vec::new();
    }
    let mut r: Vec<Range> = fs.ranges().iter().map(|&(va, len)| (va.raw(), len)).collect();
    if r.is_empty() && fs.tables_freed() {
        r.push(EVERYTHING);
    }
    fs.ignore();
    r
}
