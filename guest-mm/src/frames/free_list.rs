//! The pool's free frames: each pool region is a bump pointer over the
//! frames never handed out, and frames that come back go on one stack.
//!
//! Host memory is one small record per region plus one entry per frame on
//! the stack (frames handed out and returned), never one per pool frame:
//! a pool over all of a large guest's free RAM costs nothing up front, and
//! guest pages are neither touched nor zeroed here (the owner zeroes what
//! it is handed, see [`crate::frames::PoolPages::zero`]).
//!
//! Frames come off the stack first (the last returned first), then from
//! the regions in address order, ascending. This module does not know
//! about owners or pins: [`crate::frames::FrameState`] decides when a frame
//! goes back.

use crate::addr::Pfn;
use crate::error::MmError;

/// One pool region `[first, end)`; frames `[next, end)` were never handed
/// out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) first: u64,
    pub(crate) end: u64,
    pub(crate) next: u64,
}

/// The free frames of the pool's regions.
#[derive(Clone, Debug, Default)]
pub(crate) struct FreeList {
    /// Sorted, disjoint, none empty.
    regions: Vec<Region>,
    /// The first region whose bump part is not used up (regions before it
    /// are; bump frames never return to a region).
    cursor: usize,
    /// Frames in the regions' bump parts.
    untouched: u64,
    /// Frames returned, the next to hand out last.
    returned: Vec<Pfn>,
}

impl FreeList {
    /// A free list over `regions` (each `[first, end)` of frame numbers;
    /// empty ones are dropped). Overlapping regions are refused.
    pub(crate) fn new(regions: &[(Pfn, Pfn)]) -> Result<Self, MmError> {
        let mut rs: Vec<Region> = regions
            .iter()
            .filter(|(s, e)| e.0 > s.0)
            .map(|&(s, e)| Region { first: s.0, end: e.0, next: s.0 })
            .collect();
        rs.sort_by_key(|r| r.first);
        if rs.windows(2).any(|w| w[0].end > w[1].first) {
            return Err(MmError::Invalid("pool regions overlap"));
        }
        let untouched = rs.iter().map(|r| r.end - r.first).sum();
        Ok(FreeList { regions: rs, cursor: 0, untouched, returned: Vec::new() })
    }

    /// The regions.
    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region holding `pfn`, if any.
    pub(crate) fn region_of(&self, pfn: Pfn) -> Option<&Region> {
        let i = self.regions.partition_point(|r| r.end <= pfn.0);
        self.regions.get(i).filter(|r| r.first <= pfn.0)
    }

    /// Frames in all regions.
    pub(crate) fn total(&self) -> u64 {
        self.regions.iter().map(|r| r.end - r.first).sum()
    }

    /// Free frames.
    pub(crate) fn len(&self) -> u64 {
        self.untouched + self.returned.len() as u64
    }

    /// The returned frames (the stack; its top is last).
    pub(crate) fn returned(&self) -> &[Pfn] {
        &self.returned
    }

    /// Takes `n` frames, or none if fewer are free.
    pub(crate) fn take(&mut self, n: u64) -> Option<Vec<Pfn>> {
        if n > self.len() {
            return None;
        }
        let n = usize::try_from(n).ok()?;
        let from_stack = n.min(self.returned.len());
        let mut out = self.returned.split_off(self.returned.len() - from_stack);
        out.reverse();
        out.reserve(n - from_stack);
        while out.len() < n {
            let r = self.regions.get_mut(self.cursor)?;
            let k = (r.end - r.next).min((n - out.len()) as u64);
            out.extend((r.next..r.next + k).map(Pfn));
            r.next += k;
            self.untouched -= k;
            if r.next == r.end {
                self.cursor += 1;
            }
        }
        Some(out)
    }

    /// Takes `n` contiguous frames (`n` a power of two) starting at a
    /// multiple of `n`, or none. The frames never handed out are tried
    /// first (the free frames skipped to reach an aligned start go on the
    /// stack, still free); then the stack, for an aligned run of `n`
    /// returned frames (one sort of the stack). `None` when neither has
    /// such a block: the caller falls back to single frames.
    pub(crate) fn take_block(&mut self, n: u64) -> Option<Vec<Pfn>> {
        if n == 0 || !n.is_power_of_two() || n > self.len() {
            return None;
        }
        for i in self.cursor..self.regions.len() {
            let r = self.regions[i];
            let Some(start) = r.next.checked_add(n - 1).map(|v| v & !(n - 1)) else { continue };
            if start.checked_add(n).is_none_or(|e| e > r.end) {
                continue;
            }
            self.returned.extend((r.next..start).map(Pfn));
            self.regions[i].next = start + n;
            self.untouched -= start + n - r.next;
            while self.regions.get(self.cursor).is_some_and(|c| c.next == c.end) {
                self.cursor += 1;
            }
            return Some((start..start + n).map(Pfn).collect());
        }
        if (self.returned.len() as u64) < n {
            return None;
        }
        let mut sorted: Vec<u64> = self.returned.iter().map(|p| p.0).collect();
        sorted.sort_unstable();
        let want = usize::try_from(n).ok()?;
        let mut run_start = 0usize;
        let mut found = None;
        for k in 0..sorted.len() {
            if k > 0 && sorted[k] != sorted[k - 1] + 1 {
                run_start = k;
            }
            // An aligned frame starts a candidate run.
            if sorted[k] % n == 0 {
                run_start = k;
            }
            if sorted[run_start] % n == 0 && k + 1 - run_start == want {
                found = Some(sorted[run_start]);
                break;
            }
        }
        let first = found?;
        self.returned.retain(|p| p.0 < first || p.0 >= first + n);
        Some((first..first + n).map(Pfn).collect())
    }

    /// Puts `pfn` back (the caller checked it is a pool frame now free).
    pub(crate) fn give(&mut self, pfn: Pfn) {
        self.returned.push(pfn);
    }

    /// A snapshot that answers "is this frame free?" in logarithmic time.
    pub(crate) fn view(&self) -> FreeView {
        let mut returned = self.returned.clone();
        returned.sort_unstable();
        FreeView { tails: self.regions.iter().map(|r| (r.next, r.end)).collect(), returned }
    }

    /// Every free frame: the stack, top first, then the bump parts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.returned.iter().rev().copied().chain(self.regions.iter().flat_map(|r| (r.next..r.end).map(Pfn)))
    }

    /// Host bytes held (the record, the regions' and the stack's capacity).
    pub(crate) fn host_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.regions.capacity() * std::mem::size_of::<Region>()
            + self.returned.capacity() * std::mem::size_of::<Pfn>()
    }

    /// Test hook: puts `pfn` on the stack whatever it is.
    #[cfg(test)]
    pub(crate) fn push_for_test(&mut self, pfn: Pfn) {
        self.returned.push(pfn);
    }
}

/// The free frames at one moment, for membership questions.
#[derive(Clone, Debug)]
pub struct FreeView {
    /// Each region's `[next, end)`, sorted.
    tails: Vec<(u64, u64)>,
    /// The stack, sorted.
    returned: Vec<Pfn>,
}

impl FreeView {
    /// Was `pfn` free when the view was taken?
    pub fn contains(&self, pfn: Pfn) -> bool {
        let i = self.tails.partition_point(|t| t.1 <= pfn.0);
        self.tails.get(i).is_some_and(|t| t.0 <= pfn.0) || self.returned.binary_search(&pfn).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn list(rs: &[(u64, u64)]) -> FreeList {
        FreeList::new(&rs.iter().map(|&(s, e)| (Pfn(s), Pfn(e))).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn hands_out_regions_in_order_then_reuses_the_last_returned_first() {
        let mut f = list(&[(20, 22), (10, 13), (30, 30)]);
        assert_eq!((f.total(), f.len(), f.regions().len()), (5, 5, 2));
        assert_eq!(f.take(4).unwrap(), vec![Pfn(10), Pfn(11), Pfn(12), Pfn(20)]);
        assert!(f.take(2).is_none(), "more than is free");
        assert_eq!(f.len(), 1);
        f.give(Pfn(11));
        f.give(Pfn(20));
        let v = f.view();
        assert!(v.contains(Pfn(11)) && v.contains(Pfn(21)) && !v.contains(Pfn(10)) && !v.contains(Pfn(22)));
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![Pfn(20), Pfn(11), Pfn(21)]);
        assert_eq!(f.take(3).unwrap(), vec![Pfn(20), Pfn(11), Pfn(21)]);
        assert_eq!((f.len(), f.take(0)), (0, Some(vec![])));
        assert!(f.take(1).is_none());
    }

    #[test]
    fn blocks_are_aligned_and_contiguous_from_the_untouched_part_then_the_stack() {
        let mut f = list(&[(3, 20), (24, 40)]);
        // 3..8 skipped (to the stack), 8..16 handed out.
        assert_eq!(f.take_block(8).unwrap(), (8..16).map(Pfn).collect::<Vec<_>>());
        assert_eq!(f.len(), 33 - 8, "skipped frames stay free");
        assert_eq!(f.returned(), &[Pfn(3), Pfn(4), Pfn(5), Pfn(6), Pfn(7)]);
        // 16..20 cannot hold 8 aligned frames: the next region gives 24..32.
        assert_eq!(f.take_block(8).unwrap()[0], Pfn(32 - 8));
        assert!(f.take_block(16).is_none(), "no aligned 16 anywhere");
        assert!(f.take_block(3).is_none() && f.take_block(0).is_none(), "not a power of two");
        // Returned frames that form an aligned run are found on the stack.
        assert_eq!(f.take(f.len()).map(|v| v.len()), Some(17));
        for p in [33, 13, 9, 8, 17, 15, 11, 10, 34, 35, 12, 14, 36, 37, 38, 39] {
            f.give(Pfn(p));
        }
        assert!(f.take_block(16).is_none(), "no aligned run of 16 on the stack");
        let got = f.take_block(8);
        assert_eq!(got, Some((8..16).map(Pfn).collect::<Vec<_>>()), "from the stack, {:?}", f.returned());
        assert_eq!(f.len(), 8);
        assert_eq!(f.returned(), &[Pfn(33), Pfn(17), Pfn(34), Pfn(35), Pfn(36), Pfn(37), Pfn(38), Pfn(39)]);
        assert!(f.take_block(8).is_none(), "33..40 is not aligned");
    }

    #[test]
    fn overlapping_regions_are_refused_and_lookup_finds_each() {
        assert!(FreeList::new(&[(Pfn(0), Pfn(10)), (Pfn(9), Pfn(12))]).is_err());
        let f = list(&[(0, 10), (10, 12), (100, 200)]);
        for (p, first) in [(0, Some(0)), (9, Some(0)), (10, Some(10)), (11, Some(10)), (12, None), (150, Some(100))] {
            assert_eq!(f.region_of(Pfn(p)).map(|r| r.first), first, "frame {p}");
        }
        assert!(f.region_of(Pfn(200)).is_none());
    }
}
