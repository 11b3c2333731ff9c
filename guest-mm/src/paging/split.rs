//! Splitting huge leaves that a partial unmap or protect cuts through.
//!
//! Splits are planned first (at most two range boundaries, each inside at
//! most one 1 GiB and one 2 MiB leaf), their table frames reserved all at
//! once, and only then performed, so running out of table pages changes
//! nothing. A split fills a new table with the 512 equivalent smaller
//! leaves and then replaces the huge entry with the table pointer in one
//! compare-and-exchange: translations never change, so a split needs no
//! TLB flush. The pieces inherit the leaf's Accessed bit as it was when the
//! table replaced it, so a later flush of any piece knows that the huge
//! translation may be cached (see `flush.rs`).

use vm_memory::GuestMemory;

use super::entry::{classify, split_child, table_entry, Entry};
use super::table::{Table, ENTRIES};
use super::walk::Writer;
use crate::addr::{GuestVirtAddr, PageSize};
use crate::error::MmError;

/// A huge leaf that an unmap split into a table of smaller leaves, so that
/// [`super::PageTables::restore`] can join it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitRecord {
    /// First address the leaf mapped.
    pub va: GuestVirtAddr,
    /// Its size (2 MiB or 1 GiB); the level it lived at.
    pub size: PageSize,
    /// The original entry.
    pub raw: u64,
}

/// A split to perform: the huge leaf of `size` mapping `va`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlannedSplit {
    va: u64,
    size: PageSize,
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    /// The huge leaves that `[va, end)` cuts, 1 GiB ones first. A leaf is
    /// only split when `needed(raw, size)` says so (protect skips leaves it
    /// would leave unchanged).
    pub(super) fn plan_splits(&self, va: u64, end: u64, needed: impl Fn(u64, PageSize) -> bool) -> Vec<PlannedSplit> {
        let mut plan: Vec<PlannedSplit> = Vec::new();
        // (boundary, an address inside the range next to it)
        for (edge, inside) in [(va, va), (end, end - 1)] {
            let Some((table, level, idx)) = self.find(inside, 1) else {
                continue;
            };
            let raw = table.get(idx);
            let Entry::Leaf(size) = classify(raw, level) else {
                continue;
            };
            if size == PageSize::Size4K || edge & (size.bytes() - 1) == 0 || !needed(raw, size) {
                continue;
            }
            let base = inside & !(size.bytes() - 1);
            plan.push(PlannedSplit { va: base, size });
            let m2 = PageSize::Size2M.bytes();
            if size == PageSize::Size1G && edge & (m2 - 1) != 0 {
                let child = split_child(raw, size, (inside - base) / m2);
                if needed(child, PageSize::Size2M) {
                    plan.push(PlannedSplit { va: inside & !(m2 - 1), size: PageSize::Size2M });
                }
            }
        }
        plan.sort_unstable_by_key(|p| (std::cmp::Reverse(p.size), p.va));
        plan.dedup();
        plan
    }

    /// Takes `n` table frames, all or none.
    pub(super) fn reserve(&mut self, n: usize) -> Result<Vec<Table<'a>>, MmError> {
        let mut taken: Vec<Table<'a>> = Vec::with_capacity(n);
        for _ in 0..n {
            let got = self.alloc_frame().and_then(|frame| match self.view(frame) {
                Ok(t) => Ok(t),
                Err(e) => {
                    self.alloc.free(frame);
                    Err(e)
                }
            });
            match got {
                Ok(t) => taken.push(t),
                Err(e) => {
                    for t in taken.into_iter().rev() {
                        self.alloc.free(t.frame());
                    }
                    return Err(e);
                }
            }
        }
        Ok(taken)
    }

    /// Performs `plan` with the frames from [`Writer::reserve`]; returns
    /// what it split. Frames left over (a planned leaf vanished, which only
    /// a guest scribbling on its tables can cause) are freed.
    pub(super) fn split_all(&mut self, plan: &[PlannedSplit], reserved: Vec<Table<'a>>) -> Vec<SplitRecord> {
        let mut done = Vec::with_capacity(plan.len());
        let mut frames = reserved.into_iter();
        for p in plan {
            let level = p.size.level();
            let Some((parent, at, idx)) = self.find(p.va, level) else {
                continue;
            };
            let mut raw = parent.get(idx);
            if at != level || classify(raw, level) != Entry::Leaf(p.size) {
                log::error!("planned split of {:#x} ({:?}) found {raw:#x}", p.va, p.size);
                continue;
            }
            let Some(table) = frames.next() else {
                break;
            };
            // Linked with a compare-and-exchange: when a walker set the
            // leaf's Accessed (or Dirty) bit since it was read, the pieces
            // are made again from the new value, so that they carry it
            // (an unmap or protect of a piece trusts it, see `flush.rs`).
            let linked = loop {
                for i in 0..ENTRIES {
                    table.set(i, split_child(raw, p.size, i as u64));
                }
                match parent.compare_exchange(idx, raw, table_entry(table.frame())) {
                    Ok(_) => break true,
                    Err(now) if super::entry::same_leaf(now, raw) => raw = now,
                    Err(now) => {
                        log::error!("huge leaf {raw:#x} at {:#x} changed to {now:#x} under a split", p.va);
                        break false;
                    }
                }
            };
            if !linked {
                self.alloc.free(table.frame());
                continue;
            }
            match GuestVirtAddr::try_new(p.va) {
                Ok(va) => done.push(SplitRecord { va, size: p.size, raw }),
                Err(e) => log::error!("split of a non-canonical leaf: {e}"),
            }
        }
        for t in frames {
            self.alloc.free(t.frame());
        }
        done
    }

    /// Plans, reserves and performs the splits `[va, end)` needs.
    pub(super) fn split_edges(
        &mut self,
        va: u64,
        end: u64,
        needed: impl Fn(u64, PageSize) -> bool,
    ) -> Result<Vec<SplitRecord>, MmError> {
        let plan = self.plan_splits(va, end, needed);
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let reserved = self.reserve(plan.len())?;
        Ok(self.split_all(&plan, reserved))
    }

    /// Joins the table `s` left back into its huge leaf when the table
    /// still holds exactly the 512 leaves the split produced (accessed and
    /// dirty bits aside). Returns whether it did.
    pub(super) fn rejoin(&mut self, s: &SplitRecord) -> bool {
        let level = s.size.level();
        let Some((parent, at, idx)) = self.find(s.va.raw(), level) else {
            return false;
        };
        let Entry::Table(frame) = classify(parent.get(idx), level) else {
            return false;
        };
        if at != level {
            return false;
        }
        let Ok(table) = self.view(frame) else {
            return false;
        };
        let intact = (0..ENTRIES).all(|i| super::entry::same_leaf(table.get(i), split_child(s.raw, s.size, i as u64)));
        if !intact {
            log::debug!("split table at {:#x} changed; not re-joined", s.va);
            return false;
        }
        parent.set(idx, s.raw);
        self.alloc.free(frame);
        true
    }
}

impl<M: GuestMemory> super::PageTables<M> {
    /// Splits the 2 MiB leaf mapping `va`, if there is one, into a table of
    /// the 512 equivalent 4 KiB leaves (same frames, same bits: a
    /// transparent huge page becomes PTE-mapped). Translations do not
    /// change, so nothing needs a flush. `Ok(None)` when `va` is not in a
    /// 2 MiB leaf; `OutOfMemory` (nothing changed) when no table page is
    /// left.
    pub fn split_huge(&mut self, va: GuestVirtAddr) -> Result<Option<SplitRecord>, MmError> {
        let m2 = PageSize::Size2M.bytes();
        let base = va.raw() & !(m2 - 1);
        let mut w = self.writer(false, base);
        let Some((table, level, idx)) = w.find(base, 2) else { return Ok(None) };
        if level != 2 || classify(table.get(idx), 2) != Entry::Leaf(PageSize::Size2M) {
            return Ok(None);
        }
        let plan = [PlannedSplit { va: base, size: PageSize::Size2M }];
        let reserved = w.reserve(1)?;
        Ok(w.split_all(&plan, reserved).pop())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::cell::RefCell;

    use vm_memory::GuestAddress;

    use super::super::entry::leaf_addr;
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn a_cut_gigabyte_leaf_asks_about_the_two_megabyte_piece_at_the_edge() {
        let mut pt = tables(4 * G1);
        // The leaf at 1 GiB maps 2 GiB: its base is not zero.
        pt.map_range(gva(G1), GuestAddress(2 * G1), G1, rw(), PageSize::Size1G).unwrap();
        let asked = RefCell::new(Vec::new());
        let w = pt.writer(false, G1);
        // Cut inside the fourth 2 MiB piece: it maps 2 GiB + 3 * M2.
        let plan = w.plan_splits(G1 + 3 * M2 + K4, 2 * G1, |raw, size| {
            asked.borrow_mut().push((leaf_addr(raw, size), size));
            true
        });
        assert_eq!(
            asked.into_inner(),
            vec![(2 * G1, PageSize::Size1G), (2 * G1 + 3 * M2, PageSize::Size2M)],
            "the predicate sees the 1 GiB leaf, then the 2 MiB piece the edge falls in"
        );
        assert_eq!(
            plan,
            vec![
                PlannedSplit { va: G1, size: PageSize::Size1G },
                PlannedSplit { va: G1 + 3 * M2, size: PageSize::Size2M }
            ]
        );
    }

    #[test]
    fn a_planned_leaf_that_vanished_is_not_split() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0), GuestAddress(M2), M2, rw(), PageSize::Size2M).unwrap();
        let tables_before = pt.tables_in_use();
        let mut w = pt.writer(false, 0);
        let plan = w.plan_splits(K4, M2, |_, _| true);
        assert_eq!(plan, vec![PlannedSplit { va: 0, size: PageSize::Size2M }]);
        let reserved = w.reserve(plan.len()).unwrap();
        // The leaf goes away between planning and splitting (a guest
        // writing its own tables).
        let (parent, level, idx) = w.find(0, 2).unwrap();
        assert_eq!(level, 2);
        parent.set(idx, 0);
        assert!(w.split_all(&plan, reserved).is_empty());
        assert_eq!(parent.get(idx), 0, "nothing linked in place of the vanished leaf");
        drop(w);
        assert_eq!(pt.tables_in_use(), tables_before, "the reserved frame is freed");
        assert!(pt.leaves(gva(0), M2).is_empty());
    }
}
