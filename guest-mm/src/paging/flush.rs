//! [`FlushSet`]: what a TLB shootdown after an unmap or protect must cover,
//! and whether anything it covers can be cached at all.
//!
//! This module only records; performing the flush (INVLPG on every vCPU,
//! or a full flush) is the caller's job, and so is skipping it when
//! [`FlushSet::may_be_cached`] is false.
//!
//! # Nothing cached without an Accessed bit
//!
//! By the x86 rules (Intel SDM vol. 3A §4.8 and §4.10.2–4.10.3; AMD APM
//! vol. 2 §5.4.2 and §5.5), a processor sets the Accessed bit (A, bit 5)
//! of every paging-structure entry a walk uses, with an atomic
//! read-modify-write of the entry, and creates a TLB entry or a
//! paging-structure-cache entry only from entries whose A bit is 1. KVM's
//! shadow MMU (the backend here, `kvm_pvm`, shadows the guest's tables)
//! follows the same rule in software: its walker (`FNAME(walk_addr)`) sets
//! A top-down with a compare-and-exchange on each guest entry and starts
//! over when an entry changed under it, and it installs a shadow entry
//! only after that (rechecking the guest entries, `FNAME(gpte_changed)`);
//! its prefetch and unsync paths refuse guest entries with A = 0
//! (`FNAME(prefetch_invalid_gpte)`). guest-mm never clears an A bit on a
//! live entry (protect keeps it, a split copies it into every piece), and
//! it writes new entries with A = 0, except where it puts back a value it
//! captured from the tables (restore, re-join), which can only over-report.
//!
//! So each writer that drops or downgrades a present entry takes the old
//! value **atomically with the change** (swap or compare-and-exchange,
//! never a load then a store: a walk between the two could set A, cache
//! the translation, and have its A bit overwritten). The value it gets is
//! the entry's whole history up to the instant it stopped being reachable
//! through that slot: A = 0 there means no walk ever used it, and no walk
//! can use it afterwards (its A update would hit the new value, or fail).
//! The set records whether any dropped entry had A = 1
//! ([`FlushSet::add_entry`]).
//!
//! A table freed with its parent entry cleared (`unmap`): the children are
//! cleared (each swapped and reported) or, for a whole leaf table that is
//! unlinked without clearing its entries, read, and then the parent entry
//! is swapped ([`FlushSet::table_unlinked`]); the set counts the parent's
//! A and every child's. A child read with A = 0 can gain A before the
//! parent's swap only through a walk through the parent, which sets the
//! parent's A first (walks go top-down; KVM's compare-and-exchange on the
//! parent fails once it is swapped): then the parent reports it. A child
//! with A = 1 under a parent with A = 0 is a split's piece of a huge leaf
//! that was used: it is reported from the child.
//!
//! Paths that do not take old values this way ([`FlushSet::add`],
//! [`FlushSet::set_tables_freed`]: the rollback of a failed operation, a
//! re-join, a corrupted pointer) count as cached: never skipped.

use super::entry::{A, P};
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
    /// An entry dropped or downgraded had its Accessed bit set, or the
    /// change was recorded without its old value.
    cached: bool,
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

    /// False when no entry this set covers can be cached anywhere: every
    /// present entry dropped or downgraded, and every parent entry of a
    /// freed table, had its Accessed bit clear at the instant it changed
    /// (see the module docs), so no TLB, paging-structure cache or shadow
    /// MMU holds a translation through it, and the shootdown may be
    /// skipped. True when any had it set or a path did not record it.
    pub fn may_be_cached(&self) -> bool {
        self.cached
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
        self.cached |= other.cached;
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

    /// Records that `[va, va + len)` changed, without the old entries: it
    /// may be cached.
    pub(crate) fn add(&mut self, va: u64, len: u64) {
        self.cached = true;
        self.add_range(va, len);
    }

    /// Records that the present entry `old` mapping `[va, va + len)` was
    /// dropped or downgraded; `old` is the value the change replaced,
    /// taken atomically with it (swap or compare-and-exchange).
    pub(crate) fn add_entry(&mut self, va: u64, len: u64, old: u64) {
        self.note_cached(old & P != 0 && old & A != 0);
        self.add_range(va, len);
    }

    /// Records whether entries reported with [`FlushSet::add_range`] (or
    /// read under a table about to be unlinked) had an Accessed bit set.
    pub(crate) fn note_cached(&mut self, cached: bool) {
        self.cached |= cached;
    }

    /// Records that `[va, va + len)` changed; the caller reports the old
    /// entries' Accessed bits with [`FlushSet::note_cached`]. Addresses
    /// arrive in increasing order from one walk; anything else goes
    /// through `merge`.
    pub(crate) fn add_range(&mut self, va: u64, len: u64) {
        if let Some((last, llen)) = self.ranges.last_mut() {
            if last.raw() + *llen == va {
                *llen += len;
                return;
            }
            if va < last.raw() + *llen {
                let mut one = FlushSet::new();
                one.add_range(va, len);
                self.merge(one);
                return;
            }
        }
        match GuestVirtAddr::try_new(va) {
            Ok(a) => self.ranges.push((a, len)),
            Err(e) => log::error!("flush of a non-canonical range: {e}"),
        }
    }

    /// Records that page-table pages were freed, without the old parent
    /// entries: paging-structure caches may point at them.
    pub(crate) fn set_tables_freed(&mut self) {
        self.cached = true;
        self.tables_freed = true;
    }

    /// Records that a table was freed after its parent entry was cleared;
    /// `parent` is the value the clearing swap returned.
    pub(crate) fn table_unlinked(&mut self, parent: u64) {
        self.tables_freed = true;
        self.note_cached(parent & A != 0);
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
