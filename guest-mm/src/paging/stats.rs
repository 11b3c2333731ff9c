//! [`MapStats`]: what a map or insert wrote, for tests and benchmarks.

use std::ops::{Add, AddAssign};

use crate::addr::PageSize;

/// Counters of one map or insert call (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Leaf entries written. Links to newly allocated tables are not
    /// counted: an aligned 1 GiB remap reports 1.
    pub entries_written: u64,
    /// Page-table pages allocated.
    pub tables_allocated: u64,
    /// Leaf entries written per size: `[4 KiB, 2 MiB, 1 GiB]`.
    pub leaves_by_size: [u64; 3],
}

impl MapStats {
    /// Leaves of `size` written.
    pub fn leaves(&self, size: PageSize) -> u64 {
        self.leaves_by_size[size.level() as usize - 1]
    }

    /// Counts `n` leaves of `size`.
    pub(crate) fn add_leaves(&mut self, size: PageSize, n: u64) {
        self.entries_written += n;
        self.leaves_by_size[size.level() as usize - 1] += n;
    }
}

impl Add for MapStats {
    type Output = MapStats;

    fn add(mut self, rhs: MapStats) -> MapStats {
        self += rhs;
        self
    }
}

impl AddAssign for MapStats {
    fn add_assign(&mut self, rhs: MapStats) {
        self.entries_written += rhs.entries_written;
        self.tables_allocated += rhs.tables_allocated;
        for (a, b) in self.leaves_by_size.iter_mut().zip(rhs.leaves_by_size) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        let mut a = MapStats::default();
        a.add_leaves(PageSize::Size2M, 3);
        a.tables_allocated = 1;
        let mut b = MapStats::default();
        b.add_leaves(PageSize::Size4K, 2);
        let s = a + b;
        assert_eq!(s.entries_written, 5);
        assert_eq!(s.tables_allocated, 1);
        assert_eq!(s.leaves_by_size, [2, 3, 0]);
        assert_eq!(s.leaves(PageSize::Size2M), 3);
        // Table counts add up too (not only when one side is zero).
        let mut c = MapStats { tables_allocated: 2, ..MapStats::default() };
        c += s;
        assert_eq!(c.tables_allocated, 3);
    }
}
