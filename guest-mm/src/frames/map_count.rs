//! Per-frame map counts for guest RAM.
//!
//! Every leaf entry that maps a counted page (map-kernel-pages and the
//! pages behind it) holds one count on its frame; a frame with a non-zero
//! count must not be reused. Raw-frame mappings (remap, I/O remap) are not
//! counted, as `VM_PFNMAP` pages have no `struct page` in Linux.

use crate::addr::Pfn;

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

    /// The count of `pfn` (0 for untracked frames).
    pub fn get(&self, pfn: Pfn) -> u32 {
        self.counts.get(pfn.0 as usize).copied().unwrap_or(0)
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

    /// Adds one count for each frame. Frames must be tracked (prepare
    /// checked them); an untracked one is skipped and logged.
    #[inline]
    pub fn inc_all(&mut self, pages: &[Pfn]) {
        for p in pages {
            match self.counts.get_mut(p.0 as usize) {
                Some(c) => *c = c.saturating_add(1),
                None => log::error!("map count for untracked frame {p:#x}"),
            }
        }
        self.total += pages.len() as u64;
    }

    /// Increments one frame's count.
    #[inline]
    pub fn inc(&mut self, pfn: Pfn) {
        if let Some(c) = self.counts.get_mut(pfn.0 as usize) {
            *c = c.saturating_add(1);
            self.total += 1;
        }
    }

    /// Drops one count; returns true when it reached zero.
    #[inline]
    pub fn dec(&mut self, pfn: Pfn) -> bool {
        match self.counts.get_mut(pfn.0 as usize) {
            Some(c) if *c > 0 => {
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
        m.inc_all(&[Pfn(1), Pfn(1), Pfn(3)]);
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
}
