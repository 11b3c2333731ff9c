//! Per-frame pin counts for guest RAM.
//!
//! A frame's count is the number of live pins on it ([`crate::frames::Pinned`]):
//! each page array pins its frames once, when it is made, however many
//! mappings of it exist. A pool frame with a non-zero count is never handed
//! out again or returned to the pool. Raw-frame mappings (remap, I/O remap)
//! pin nothing, as `VM_PFNMAP` pages have no `struct page` in Linux.
//!
//! The slot of a frame that must never be mapped as a page holds a
//! sentinel instead of a count: [`PinCounts::block`] marks the VMM's
//! reserved frames and the holes between RAM regions, so one load both
//! checks a frame and finds its count. A pool frame lent to the page-table
//! allocator carries a third sentinel while it holds a table
//! ([`PinCounts::mark_table`]): it is refused like a reserved frame. A
//! count that reaches [`MAX_COUNT`] refuses further pins rather than
//! wrapping or saturating into a sentinel.

use crate::addr::Pfn;
use crate::error::MmError;
use crate::frames::PhysLayout;

/// Slot of a VMM-reserved frame.
const RESERVED: u32 = u32::MAX;
/// Slot of a frame number inside the tracked span that is not RAM.
const NOT_RAM: u32 = u32::MAX - 1;
/// Slot of a pool frame that currently holds a page table.
const TABLE: u32 = u32::MAX - 2;
/// The highest count a frame can hold; slots above it are sentinels.
pub(crate) const MAX_COUNT: u32 = u32::MAX - 3;

/// Why the frame behind slot value `slot` (at or above [`MAX_COUNT`])
/// cannot be pinned.
#[cold]
fn refused(pfn: Pfn, slot: u32) -> MmError {
    match slot {
        RESERVED | TABLE => MmError::FrameReserved { pfn: pfn.0 },
        NOT_RAM => MmError::FrameNotInGuest { pfn: pfn.0 },
        _ => MmError::Invalid("frame pin count at its limit"),
    }
}

/// One `u32` pin count per guest-RAM frame, indexed by frame number.
#[derive(Debug, Clone, Default)]
pub struct PinCounts {
    counts: Vec<u32>,
    total: u64,
}

impl PinCounts {
    /// Counts for frames `0..nr_frames` (all start at zero).
    pub fn new(nr_frames: u64) -> Self {
        PinCounts { counts: vec![0; nr_frames as usize], total: 0 }
    }

    /// Number of frames tracked.
    pub fn len(&self) -> u64 {
        self.counts.len() as u64
    }

    /// True when no frame is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Marks the frames `layout` does not allow as pages: holes between
    /// its RAM regions and its reserved ranges. Blocked frames read as
    /// count 0 and cannot be pinned.
    pub fn block(&mut self, layout: &PhysLayout) {
        let mut prev_end = 0u64;
        for &(s, e) in layout.ram() {
            self.fill(prev_end, s.0, NOT_RAM);
            prev_end = prev_end.max(e.0);
        }
        for &(s, e) in layout.reserved() {
            self.fill(s.0, e.0, RESERVED);
        }
    }

    fn fill(&mut self, from: u64, to: u64, v: u32) {
        let len = self.counts.len();
        let (from, to) = ((from as usize).min(len), (to as usize).min(len));
        if from < to {
            self.counts[from..to].fill(v);
        }
    }

    /// `Ok` if `pfn` may be pinned, else why not: beyond the tracked
    /// frames or in a hole (`FrameNotInGuest`), reserved (`FrameReserved`),
    /// or its count at the limit.
    pub fn check(&self, pfn: Pfn) -> Result<(), MmError> {
        match self.counts.get(pfn.0 as usize) {
            None => Err(MmError::FrameNotInGuest { pfn: pfn.0 }),
            Some(&c) if c >= MAX_COUNT => Err(refused(pfn, c)),
            Some(_) => Ok(()),
        }
    }

    /// The count of `pfn` (0 for untracked or blocked frames).
    pub fn get(&self, pfn: Pfn) -> u32 {
        self.counts.get(pfn.0 as usize).copied().filter(|&c| c <= MAX_COUNT).unwrap_or(0)
    }

    /// Marks `pfn`, an unpinned frame, as holding a page table: it cannot
    /// be pinned (`FrameReserved`, EPERM) until [`PinCounts::unmark_table`].
    /// False (nothing changed) if the frame is untracked, pinned or
    /// blocked.
    pub(crate) fn mark_table(&mut self, pfn: Pfn) -> bool {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c == 0 => {
                *c = TABLE;
                true
            }
            _ => false,
        }
    }

    /// Ends [`PinCounts::mark_table`]: the frame reads as unpinned again.
    /// False (nothing changed) if it was not marked.
    pub(crate) fn unmark_table(&mut self, pfn: Pfn) -> bool {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c == TABLE => {
                *c = 0;
                true
            }
            _ => false,
        }
    }

    /// Does `pfn` hold a page table (see [`PinCounts::mark_table`])?
    pub fn is_table(&self, pfn: Pfn) -> bool {
        self.counts.get(pfn.0 as usize) == Some(&TABLE)
    }

    /// Sum of all counts: the number of pins held.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Pins every frame of `pfns` once (a frame listed twice twice), or
    /// none of them: on error (see [`PinCounts::check`]) nothing changed.
    pub fn pin_all(&mut self, pfns: &[Pfn]) -> Result<(), MmError> {
        for (i, p) in pfns.iter().enumerate() {
            let slot = self.counts.get_mut(p.0 as usize);
            match slot {
                Some(c) if *c < MAX_COUNT => *c += 1,
                other => {
                    let err = match other {
                        None => MmError::FrameNotInGuest { pfn: p.0 },
                        Some(c) => refused(*p, *c),
                    };
                    for q in &pfns[..i] {
                        if let Some(c) = self.counts.get_mut(q.0 as usize) {
                            *c -= 1;
                        }
                    }
                    return Err(err);
                }
            }
        }
        self.total += pfns.len() as u64;
        Ok(())
    }

    /// Drops one pin of `pfn`; returns true when its count reached zero.
    /// Unpinning a frame with no pin is refused (and logged), not wrapped.
    #[inline]
    pub fn unpin(&mut self, pfn: Pfn) -> bool {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c > 0 && *c <= MAX_COUNT => {
                *c -= 1;
                self.total -= 1;
                *c == 0
            }
            _ => {
                log::error!("pin count underflow for frame {pfn:#x}");
                false
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pin_unpin() {
        let mut m = PinCounts::new(8);
        m.pin_all(&[Pfn(1), Pfn(1), Pfn(3)]).unwrap();
        assert_eq!(m.get(Pfn(1)), 2);
        assert_eq!(m.total(), 3);
        assert!(!m.unpin(Pfn(1)));
        assert!(m.unpin(Pfn(1)));
        assert!(!m.unpin(Pfn(1))); // underflow is refused, not wrapped
        assert_eq!(m.get(Pfn(1)), 0);
        assert!(m.unpin(Pfn(3)));
        assert_eq!(m.total(), 0);
        assert_eq!(m.get(Pfn(100)), 0);
        assert_eq!((m.len(), m.is_empty()), (8, false));
        assert!(PinCounts::new(0).is_empty());
    }

    #[test]
    fn every_value_below_the_sentinels_is_a_count() {
        // The limit sits right under the three sentinels: a count of
        // u32::MAX - 4 can take one more pin, u32::MAX - 3 none.
        let mut m = PinCounts::new(4);
        m.counts[1] = u32::MAX - 4;
        m.pin_all(&[Pfn(1)]).unwrap();
        assert_eq!(m.get(Pfn(1)), u32::MAX - 3);
        assert!(m.check(Pfn(1)).is_err());
        assert!(!m.unpin(Pfn(1)));
        assert_eq!(m.get(Pfn(1)), u32::MAX - 4);
    }

    #[test]
    fn blocked_frames_cannot_be_pinned_and_a_refused_pin_changes_nothing() {
        use vm_memory::{GuestAddress, GuestMemoryMmap};
        // RAM at frames 0..16 and 32..48 (a hole between), 40..42 reserved.
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 12), (GuestAddress(32 << 12), 16 << 12)])
                .unwrap();
        let mut layout = PhysLayout::from_memory(&mem);
        layout.reserve(GuestAddress(40 << 12), 2 << 12);
        let mut m = PinCounts::new(48);
        m.block(&layout);
        for p in 0..48u64 {
            let ok = p < 16 || (32..40).contains(&p) || (42..48).contains(&p);
            assert_eq!(m.check(Pfn(p)).is_ok(), ok, "frame {p}");
            assert_eq!(m.get(Pfn(p)), 0);
        }
        for (bad, err) in [
            (20, MmError::FrameNotInGuest { pfn: 20 }),
            (40, MmError::FrameReserved { pfn: 40 }),
            (48, MmError::FrameNotInGuest { pfn: 48 }),
        ] {
            assert_eq!(m.pin_all(&[Pfn(1), Pfn(2), Pfn(bad), Pfn(3)]), Err(err));
            assert_eq!((m.total(), m.get(Pfn(1)), m.get(Pfn(2)), m.get(Pfn(3))), (0, 0, 0, 0));
        }
        // Unpinning never touches a sentinel.
        assert!(!m.unpin(Pfn(40)));
        assert!(m.check(Pfn(40)).is_err());
        // A count stops at the limit instead of becoming a sentinel.
        m.counts[5] = MAX_COUNT - 1;
        m.pin_all(&[Pfn(5)]).unwrap();
        assert_eq!(m.get(Pfn(5)), MAX_COUNT);
        assert_eq!(m.pin_all(&[Pfn(5)]), Err(MmError::Invalid("frame pin count at its limit")));
        assert_eq!(m.get(Pfn(5)), MAX_COUNT);
    }

    #[test]
    fn a_table_frame_is_refused_like_a_reserved_one_until_unmarked() {
        let mut m = PinCounts::new(8);
        m.pin_all(&[Pfn(2)]).unwrap();
        // Only an unpinned, unblocked, tracked frame can become a table.
        assert!(!m.mark_table(Pfn(2)) && !m.mark_table(Pfn(8)));
        assert!(m.mark_table(Pfn(3)));
        assert!(!m.mark_table(Pfn(3)), "marked twice");
        assert!(m.is_table(Pfn(3)) && !m.is_table(Pfn(2)));
        assert_eq!(m.pin_all(&[Pfn(2), Pfn(3)]), Err(MmError::FrameReserved { pfn: 3 }));
        assert_eq!((m.get(Pfn(2)), m.get(Pfn(3)), m.total()), (1, 0, 1));
        assert!(!m.unpin(Pfn(3)), "unpinning a table frame");
        assert!(m.is_table(Pfn(3)));
        assert!(m.unmark_table(Pfn(3)) && !m.unmark_table(Pfn(3)) && !m.unmark_table(Pfn(2)));
        m.pin_all(&[Pfn(3)]).unwrap();
        assert_eq!(m.get(Pfn(3)), 1);
    }
}
