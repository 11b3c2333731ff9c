//! The pins of pages the fault path inserted, kept per faulted run and
//! keyed by guest-virtual address, so that whatever removes a range
//! (munmap, `MADV_DONTNEED`, mremap, a fixed replace) lets go of exactly
//! the runs of that range.
//!
//! A fault (with its fault-around), a populate and a fork's copy pin the
//! frames they insert as one array per batched run, inside one leaf
//! table, and record the run here at its address. The runs never overlap
//! and always lie inside mapped VMAs: a leaf the fault path wrote lies in
//! a run that pins its frame until the range is unmapped. The parts of a
//! cut run that stay are pinned again on their own (at most a leaf
//! table's 512 pins), so the pages cut out are unpinned at once, page by page as in
//! Linux, not when the last part of the run goes. Each operation costs
//! `O(log n + k)` for `k` runs touched, never a scan of all runs.

use std::collections::BTreeMap;

use crate::action::PageArray;
use crate::addr::PAGE_SHIFT;

/// Runs a fork's copy joins stay inside one span of `1 << SPAN_SHIFT`
/// bytes (a leaf table's 2 MiB), so that cutting one later repins at most
/// a table's worth of pages, as for a populate's run.
const SPAN_SHIFT: u32 = 21;

/// Faulted runs by start address; see the module docs.
#[derive(Default)]
pub(crate) struct PagePins {
    runs: BTreeMap<u64, PageArray>,
}

impl PagePins {
    fn end_of(start: u64, arr: &PageArray) -> u64 {
        start + ((arr.len() as u64) << PAGE_SHIFT)
    }

    /// Records `arr` as pinning the pages from `va` (any run of that range
    /// is released first).
    pub(crate) fn insert(&mut self, va: u64, arr: PageArray) {
        if arr.is_empty() {
            return;
        }
        drop(self.take(va, Self::end_of(va, &arr)));
        self.runs.insert(va, arr);
    }

    /// Takes the runs of `[start, end)` out, cutting runs that cross its
    /// ends (the outside parts stay); the caller drops them (unpinning the
    /// frames no other run pins) once the entries are gone.
    pub(crate) fn take(&mut self, start: u64, end: u64) -> Vec<(u64, PageArray)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut keys: Vec<u64> = Vec::new();
        if let Some((&k, a)) = self.runs.range(..start).next_back() {
            if Self::end_of(k, a) > start {
                keys.push(k);
            }
        }
        keys.extend(self.runs.range(start..end).map(|(&k, _)| k));
        for k in keys {
            let Some(arr) = self.runs.remove(&k) else { continue };
            let e = Self::end_of(k, &arr);
            let (cs, ce) = (k.max(start), e.min(end));
            let page = |a: u64| (a - k) >> PAGE_SHIFT;
            if k < cs {
                if let Some(lo) = arr.slice(0, page(cs)) {
                    self.runs.insert(k, repin(lo));
                }
            }
            if ce < e {
                if let Some(hi) = arr.slice(page(ce), page(e) - page(ce)) {
                    self.runs.insert(ce, repin(hi));
                }
            }
            if let Some(mid) = arr.slice(page(cs), page(ce) - page(cs)) {
                out.push((cs, mid));
            }
        }
        out
    }

    /// Puts runs taken by [`PagePins::take`] back at `delta` bytes from
    /// where they were (a move, or 0 for a rollback).
    pub(crate) fn put_back(&mut self, runs: Vec<(u64, PageArray)>, delta: i64) {
        for (va, arr) in runs {
            self.insert(va.wrapping_add_signed(delta), arr);
        }
    }

    /// The frame the run covering `va` pinned for that page, if a run
    /// covers it.
    pub(crate) fn frame_at(&self, va: u64) -> Option<crate::addr::Pfn> {
        let (&k, arr) = self.runs.range(..=va).next_back()?;
        let i = usize::try_from((va - k) >> PAGE_SHIFT).ok()?;
        arr.as_slice().get(i).copied()
    }

    /// Copies of the runs of `[start, end)` (cut at its ends) for a fork's
    /// child, pinned on their own: the child holds its own reference to
    /// every frame it maps, so a frame's pin count tells how many spaces
    /// map it. Runs that follow each other without a gap inside one 2 MiB
    /// span (one leaf table) become one run of the copy, pinned with one
    /// lock, as a populate's run is; so a process whose pages were
    /// faulted in one by one forks in `O(tables)` runs, not `O(pages)`.
    /// On error (a count at its limit) nothing is pinned.
    pub(crate) fn copy_range(&self, start: u64, end: u64) -> Result<Vec<(u64, PageArray)>, crate::error::MmError> {
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        // (start, frames, their pool) of each run of the copy.
        let mut groups: Vec<(u64, Vec<crate::addr::Pfn>, crate::frames::Frames)> = Vec::new();
        let first = self.runs.range(..start).next_back().filter(|(&k, a)| Self::end_of(k, a) > start);
        for (&k, arr) in first.into_iter().chain(self.runs.range(start..end)) {
            let (cs, ce) = (k.max(start), Self::end_of(k, arr).min(end));
            let Some(part) = arr.slice((cs - k) >> PAGE_SHIFT, (ce - cs) >> PAGE_SHIFT) else { continue };
            let frames = part.pinned().frames();
            match groups.last_mut() {
                Some((gs, pfns, f))
                    if *gs + ((pfns.len() as u64) << PAGE_SHIFT) == cs
                        && *gs >> SPAN_SHIFT == (ce - 1) >> SPAN_SHIFT
                        && f.same(frames) =>
                {
                    pfns.extend_from_slice(part.as_slice());
                }
                _ => groups.push((cs, part.as_slice().to_vec(), frames.clone())),
            }
        }
        for (at, pfns, frames) in groups {
            // Dropping what was pinned so far unpins it: all or nothing.
            out.push((at, PageArray::pin(&frames, pfns.into())?));
        }
        Ok(out)
    }

    /// Records runs of a fresh space (a fork's child), which holds none
    /// yet: each goes in without the search [`PagePins::insert`] makes
    /// for the runs it replaces. Runs that would overlap one recorded
    /// already fall back to `insert`.
    pub(crate) fn insert_fresh(&mut self, runs: Vec<(u64, PageArray)>) {
        for (va, arr) in runs {
            let clear =
                self.runs.range(..Self::end_of(va, &arr)).next_back().is_none_or(|(&k, a)| Self::end_of(k, a) <= va);
            if clear && !arr.is_empty() {
                self.runs.insert(va, arr);
            } else {
                self.insert(va, arr);
            }
        }
    }

    /// Runs recorded.
    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    /// Pages pinned by the runs.
    pub(crate) fn pages(&self) -> u64 {
        self.runs.values().map(|a| a.len() as u64).sum()
    }
}

/// The part of a cut run that stays, pinned on its own (taken while the
/// run's pin still holds every frame), so that the run's pin, and with it
/// the pages cut out, go as soon as the removed part is dropped. A run
/// lies inside one leaf table, so this costs at most 512 pins. If
/// the pin cannot be taken (a count at its limit), the part keeps sharing
/// the run's pin: the cut-out pages then stay pinned until it goes.
fn repin(part: PageArray) -> PageArray {
    match part.pinned().frames().pin(part.as_slice().into()) {
        Ok(p) => PageArray::from_pinned(p),
        Err(e) => {
            log::debug!("keeping a cut run's pin: {e}");
            part
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::addr::Pfn;
    use crate::frames::Frames;

    fn arr(f: &Frames, first: u64, n: u64) -> PageArray {
        PageArray::pin(f, (first..first + n).map(Pfn).collect::<Vec<_>>().into()).unwrap()
    }

    #[test]
    fn take_cuts_runs_and_unpins_only_what_no_part_keeps() {
        let f = Frames::new(64, None).unwrap();
        let mut p = PagePins::default();
        p.insert(0x10000, arr(&f, 10, 4)); // pages 0x10000..0x14000
        p.insert(0x20000, arr(&f, 20, 2));
        assert_eq!((p.len(), p.pages()), (2, 6));
        // Cut the middle of the first run: two parts stay, sharing the pin.
        let gone = p.take(0x11000, 0x13000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, 0x11000);
        assert_eq!(gone[0].1.as_slice(), &[Pfn(11), Pfn(12)]);
        assert_eq!(f.pin_count(Pfn(11)), 1, "the removed part pins until dropped");
        assert_eq!(f.pin_count(Pfn(10)), 2, "the staying part is pinned on its own");
        drop(gone);
        assert_eq!((p.len(), p.pages()), (3, 4));
        assert_eq!((f.pin_count(Pfn(10)), f.pin_count(Pfn(11)), f.pin_count(Pfn(12))), (1, 0, 0));
        assert_eq!(f.pin_count(Pfn(13)), 1);
        // The rest of the run goes: its frames are unpinned.
        drop(p.take(0x10000, 0x14000));
        assert_eq!((f.pin_count(Pfn(10)), f.pin_count(Pfn(11)), f.pin_count(Pfn(13))), (0, 0, 0));
        assert_eq!(f.pin_count(Pfn(20)), 1);
        // A move puts runs back shifted; inserting over a run replaces it.
        let moved = p.take(0x20000, 0x22000);
        p.put_back(moved, 0x1000_0000);
        assert_eq!(p.take(0x20000, 0x22000).len(), 0);
        assert_eq!(f.pin_count(Pfn(20)), 1);
        p.insert(0x1002_0000, arr(&f, 30, 1));
        assert_eq!((p.len(), p.pages()), (2, 2));
        assert_eq!((f.pin_count(Pfn(20)), f.pin_count(Pfn(21)), f.pin_count(Pfn(30))), (0, 1, 1));
        drop(p);
        assert_eq!(f.lock().pins().total(), 0);
    }

    #[test]
    fn a_forks_copy_joins_runs_inside_a_leaf_table_only() {
        let f = Frames::new(64, None).unwrap();
        let mut p = PagePins::default();
        const T: u64 = 1 << 21;
        // One-page runs: two ending at a leaf table's end, two after it,
        // then a gap and one more.
        for (i, va) in [T - 0x2000, T - 0x1000, T, T + 0x1000, T + 0x3000].into_iter().enumerate() {
            p.insert(va, arr(&f, 10 + i as u64, 1));
        }
        let copy = p.copy_range(0, 2 * T).unwrap();
        let got: Vec<(u64, Vec<Pfn>)> = copy.iter().map(|(a, r)| (*a, r.as_slice().to_vec())).collect();
        assert_eq!(
            got,
            vec![(T - 0x2000, vec![Pfn(10), Pfn(11)]), (T, vec![Pfn(12), Pfn(13)]), (T + 0x3000, vec![Pfn(14)]),]
        );
        assert!((10..15).all(|n| f.pin_count(Pfn(n)) == 2), "each frame pinned once more");
        // Cut at the range's ends: only what lies inside is copied.
        let part = p.copy_range(T - 0x1000, T + 0x1000).unwrap();
        let got: Vec<(u64, Vec<Pfn>)> = part.iter().map(|(a, r)| (*a, r.as_slice().to_vec())).collect();
        assert_eq!(got, vec![(T - 0x1000, vec![Pfn(11)]), (T, vec![Pfn(12)])]);
        drop(part);
        // The child's joined runs go in as they are, and a cut of one
        // unpins exactly the page cut out.
        let mut child = PagePins::default();
        child.insert_fresh(copy);
        assert_eq!((child.len(), child.pages()), (3, 5));
        drop(child.take(T + 0x1000, T + 0x2000));
        assert_eq!((f.pin_count(Pfn(12)), f.pin_count(Pfn(13))), (2, 1));
        assert_eq!(child.frame_at(T), Some(Pfn(12)));
        // insert_fresh over a recorded run replaces it, as insert does.
        child.insert_fresh(vec![(T, arr(&f, 20, 1))]);
        assert_eq!((f.pin_count(Pfn(12)), child.frame_at(T)), (1, Some(Pfn(20))));
        drop(child);
        drop(p);
        assert_eq!(f.lock().pins().total(), 0);
    }
}
