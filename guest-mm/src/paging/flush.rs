//! [`FlushSet`]: what a TLB shootdown after an unmap or protect must cover.
//!
//! This module only records; performing the flush (INVLPG on every vCPU,
//! or a full flush) is the caller's job.

use crate::addr::{GuestVirtAddr, PAGE_SIZE};

/// Coalesced virtual ranges whose translations changed, plus whether
/// paging-structure pages were freed. Going from not-present to present
/// never needs a flush, so only unmap and protect produce one.
///
/// It must be flushed (or explicitly [ignored](FlushSet::ignore)) before
/// the changed frames or freed tables are reused.
#[must_use = "stale TLB entries remain until the set is flushed on every vCPU"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushSet {
    /// Sorted, non-overlapping, non-adjacent `(start, len)` ranges.
    ranges: Vec<(GuestVirtAddr, u64)>,
    tables_freed: bool,
}

impl FlushSet {
    /// An empty set.
    pub fn new() -> Self {
        FlushSet::default()
    }

    /// The changed ranges, sorted and coalesced.
    pub fn ranges(&self) -> &[(GuestVirtAddr, u64)] {
        &self.ranges
    }

    /// True when page-table pages were freed: paging-structure caches may
    /// hold pointers to them, so the caller must flush the whole address
    /// space (e.g. reload CR3), not just [`FlushSet::ranges`].
    pub fn tables_freed(&self) -> bool {
        self.tables_freed
    }

    /// Nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && !self.tables_freed
    }

    /// Number of 4 KiB pages the ranges cover (a huge leaf counts as all
    /// its 4 KiB pages).
    pub fn pages(&self) -> u64 {
        self.ranges.iter().map(|&(_, len)| len / PAGE_SIZE).sum()
    }

    /// Adds everything `other` covers.
    pub fn merge(&mut self, other: FlushSet) {
        self.tables_freed |= other.tables_freed;
        if other.ranges.is_empty() {
            return;
        }
        self.ranges.extend(other.ranges);
        self.ranges.sort_unstable_by_key(|&(va, _)| va);
        let mut out: Vec<(GuestVirtAddr, u64)> = Vec::with_capacity(self.ranges.len());
        for (va, len) in self.ranges.drain(..) {
            match out.last_mut() {
                Some((lva, llen)) if va.raw() <= lva.raw().saturating_add(*llen) => {
                    let end = (va.raw() + len).max(lva.raw() + *llen);
                    *llen = end - lva.raw();
                }
                _ => out.push((va, len)),
            }
        }
        self.ranges = out;
    }

    /// Declares that no flush is needed (e.g. the vCPUs never ran).
    pub fn ignore(self) {}

    /// Records that `[va, va + len)` changed. Addresses arrive in
    /// increasing order from one walk; anything else goes through `merge`.
    pub(crate) fn add(&mut self, va: u64, len: u64) {
        if let Some((last, llen)) = self.ranges.last_mut() {
            if last.raw() + *llen == va {
                *llen += len;
                return;
            }
            if va < last.raw() + *llen {
                let mut one = FlushSet::new();
                one.add(va, len);
                self.merge(one);
                return;
            }
        }
        match GuestVirtAddr::try_new(va) {
            Ok(a) => self.ranges.push((a, len)),
            Err(e) => log::error!("flush of a non-canonical range: {e}"),
        }
    }

    /// Records that page-table pages were freed.
    pub(crate) fn set_tables_freed(&mut self) {
        self.tables_freed = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(ranges: &[(u64, u64)]) -> FlushSet {
        let mut f = FlushSet::new();
        for &(va, len) in ranges {
            f.add(va, len);
        }
        f
    }

    fn raw(f: &FlushSet) -> Vec<(u64, u64)> {
        f.ranges().iter().map(|&(va, len)| (va.raw(), len)).collect()
    }

    /// `(start, len)` pairs.
    type Ranges = &'static [(u64, u64)];

    #[test]
    fn adjacent_ranges_coalesce() {
        let cases: &[(Ranges, Ranges)] = &[
            (&[], &[]),
            (&[(0x1000, 0x1000), (0x2000, 0x1000)], &[(0x1000, 0x2000)]),
            (&[(0x1000, 0x1000), (0x3000, 0x1000)], &[(0x1000, 0x1000), (0x3000, 0x1000)]),
            (&[(0x3000, 0x1000), (0x1000, 0x1000), (0x2000, 0x1000)], &[(0x1000, 0x3000)]),
            (&[(0, 0x20_0000), (0x20_0000, 0x1000)], &[(0, 0x20_1000)]),
        ];
        for (input, want) in cases {
            let f = set(input);
            assert_eq!(raw(&f), *want, "{input:?}");
            assert_eq!(f.pages(), want.iter().map(|r| r.1 / 4096).sum::<u64>());
            assert_eq!(f.is_empty(), want.is_empty());
        }
    }

    #[test]
    fn merge_sorts_and_keeps_tables_freed() {
        let mut a = set(&[(0x5000, 0x1000)]);
        let mut b = set(&[(0x1000, 0x1000), (0x4000, 0x1000)]);
        b.set_tables_freed();
        a.merge(b);
        assert_eq!(raw(&a), vec![(0x1000, 0x1000), (0x4000, 0x2000)]);
        assert!(a.tables_freed());
        let mut e = FlushSet::new();
        e.set_tables_freed();
        assert!(!e.is_empty());
        e.ignore();
    }
}
