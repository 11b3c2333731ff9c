//! Per-frame map counts for guest RAM.
//!
//! Every leaf entry that maps a counted page (map-kernel-pages and the
//! pages behind it) holds one count on its frame; a frame with a non-zero
//! count must not be reused. Raw-frame mappings (remap, I/O remap) are not
//! counted, as `VM_PFNMAP` pages have no `struct page` in Linux.
//!
//! The slot of a frame that must never be mapped as a page holds a
//! sentinel instead of a count: [`MapCounts::block`] marks the VMM's
//! reserved frames and the holes between RAM regions. The batched insert
//! loop reads each frame's slot anyway to bump it, so the same load checks
//! the frame (as Linux's `vm_insert_pages` checks each page as it inserts
//! it) and no separate pass over a 262,144-entry page array is needed.
//! A count that reaches [`MAX_COUNT`] refuses further mappings rather than
//! wrapping or saturating into a sentinel.

use crate::addr::Pfn;
use crate::error::MmError;
use crate::frames::PhysLayout;

/// Slot of a VMM-reserved frame.
const RESERVED: u32 = u32::MAX;
/// Slot of a frame number inside the tracked span that is not RAM.
const NOT_RAM: u32 = u32::MAX - 1;
/// The highest count a frame can hold; slots above it are sentinels.
pub(crate) const MAX_COUNT: u32 = u32::MAX - 2;

/// Why the frame behind slot value `slot` (at or above [`MAX_COUNT`])
/// cannot be mapped.
#[cold]
pub(crate) fn refused(pfn: Pfn, slot: u32) -> MmError {
    match slot {
        RESERVED => MmError::FrameReserved { pfn: pfn.0 },
        NOT_RAM => MmError::FrameNotInGuest { pfn: pfn.0 },
        _ => MmError::Invalid("frame map count at its limit"),
    }
}

/// One `u32` count per guest-RAM frame, indexed by frame number.
#[derive(Debug, Clone, Default)]
pub struct MapCounts {
    counts: Vec<u32>,
    total: u64,
}

impl MapCounts {
    /// Counts for frames `0..nr_frames` (all start at zero).
    pub fn new(nr_frames: u64) -> Self {
        MapCounts { counts: vec![0; nr_frames as usize], total: 0 }
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
    /// count 0 and cannot be counted.
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

    /// `Ok` if `pfn` may be mapped as a counted page, else the error the
    /// insert loop would stop with.
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

    /// Sum of all counts: the number of counted leaf entries.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Is `pfn` tracked (inside guest RAM as sized at creation)?
    #[inline]
    pub fn tracks(&self, pfn: Pfn) -> bool {
        (pfn.0 as usize) < self.counts.len()
    }

    /// Increments one frame's count; an untracked, blocked or full frame
    /// is left alone (and logged): callers restore counts they took before.
    #[inline]
    pub fn inc(&mut self, pfn: Pfn) {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c < MAX_COUNT => {
                *c += 1;
                self.total += 1;
            }
            _ => log::error!("map count for unmappable frame {pfn:#x}"),
        }
    }

    /// Drops one count; returns true when it reached zero.
    #[inline]
    pub fn dec(&mut self, pfn: Pfn) -> bool {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c > 0 && *c <= MAX_COUNT => {
                *c -= 1;
                self.total -= 1;
                *c == 0
            }
            _ => {
                log::error!("map count underflow for frame {pfn:#x}");
                false
            }
        }
    }

    /// Raw access for the batched insert loop.
    #[inline]
    pub(crate) fn slots_mut(&mut self) -> &mut [u32] {
        &mut self.counts
    }

    /// Adjusts the running total after raw slot updates.
    #[inline]
    pub(crate) fn add_total(&mut self, n: u64) {
        self.total += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inc_dec() {
        let mut m = MapCounts::new(8);
        for p in [1, 1, 3] {
            m.inc(Pfn(p));
        }
        assert_eq!(m.get(Pfn(1)), 2);
        assert_eq!(m.total(), 3);
        assert!(!m.dec(Pfn(1)));
        assert!(m.dec(Pfn(1)));
        assert!(!m.dec(Pfn(1))); // underflow is refused, not wrapped
        assert_eq!(m.get(Pfn(1)), 0);
        assert!(m.dec(Pfn(3)));
        assert_eq!(m.total(), 0);
        assert!(!m.tracks(Pfn(8)));
        assert_eq!(m.get(Pfn(100)), 0);
    }

    #[test]
    fn blocked_frames_are_not_mappable_and_read_as_zero() {
        use vm_memory::{GuestAddress, GuestMemoryMmap};
        // RAM at frames 0..16 and 32..48 (a hole between), 40..42 reserved.
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 12), (GuestAddress(32 << 12), 16 << 12)])
                .unwrap();
        let mut layout = PhysLayout::from_memory(&mem);
        layout.reserve(GuestAddress(40 << 12), 2 << 12);
        let mut m = MapCounts::new(48);
        m.block(&layout);
        for p in 0..48u64 {
            let ok = p < 16 || (32..40).contains(&p) || (42..48).contains(&p);
            assert_eq!(m.check(Pfn(p)).is_ok(), ok, "frame {p}");
            assert_eq!(m.get(Pfn(p)), 0);
        }
        assert_eq!(refused(Pfn(20), m.counts[20]), MmError::FrameNotInGuest { pfn: 20 });
        assert_eq!(refused(Pfn(40), m.counts[40]), MmError::FrameReserved { pfn: 40 });
        // Counting a blocked frame is refused; dec never touches a sentinel.
        m.inc(Pfn(20));
        assert!(!m.dec(Pfn(40)));
        assert_eq!((m.total(), m.check(Pfn(20)).is_ok(), m.check(Pfn(40)).is_ok()), (0, false, false));
        // A count stops at the limit instead of becoming a sentinel.
        m.counts[5] = MAX_COUNT - 1;
        m.inc(Pfn(5));
        m.inc(Pfn(5));
        assert_eq!(m.get(Pfn(5)), MAX_COUNT);
        assert!(m.check(Pfn(5)).is_err());
        assert_eq!(refused(Pfn(5), MAX_COUNT), MmError::Invalid("frame map count at its limit"));
    }
}
