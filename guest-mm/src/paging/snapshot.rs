//! Capturing the leaves of a range ([`PageTables::leaves`]) and putting
//! them back after an unmap ([`PageTables::restore`]): the rollback path
//! of a failed replace; and writing captured leaves into an empty range
//! ([`PageTables::copy_leaves`]), the forward path of an mremap move.
//!
//! `leaves` reads guest memory only, like `translate`. `restore` writes
//! through the writer, with allocations that bypass failure injection;
//! `copy_leaves` honours it and stops at the first failure.

use vm_memory::GuestMemory;

use super::entry::{classify, entry_end, index, same_leaf, span, split_child, Entry, USED};
use super::page_tables::PageTables;
use super::split::SplitRecord;
use super::table::{Table, ENTRIES};
use super::walk::{Filler, Stopped, Writer};
use crate::addr::{GuestVirtAddr, PageSize};
use crate::error::MmError;

/// First non-canonical address.
const HOLE: u64 = 1 << 47;

/// One leaf entry as found in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// First address the leaf maps.
    pub va: GuestVirtAddr,
    /// Its size.
    pub size: PageSize,
    /// The raw entry (present, or a PROT_NONE leaf).
    pub raw: u64,
}

impl Leaf {
    /// The frame of a page-array leaf (a 4 KiB leaf with the software
    /// `COUNTED` bit: its frame must be pinned).
    pub fn counted_frame(&self) -> Option<crate::addr::Pfn> {
        if self.size == PageSize::Size4K && self.raw & super::entry::COUNTED != 0 {
            Some(crate::addr::Pfn((self.raw & super::entry::ADDR_4K) >> crate::addr::PAGE_SHIFT))
        } else {
            None
        }
    }

    /// Present (not a PROT_NONE leaf).
    pub fn is_present(&self) -> bool {
        self.raw & super::entry::P != 0
    }

    /// The CPU has set the leaf's Accessed bit (Linux's `pte_young`).
    pub fn is_accessed(&self) -> bool {
        self.raw & super::entry::A != 0
    }

    /// The CPU has set the leaf's Dirty bit (Linux's `pte_dirty`).
    pub fn is_dirty(&self) -> bool {
        self.raw & super::entry::D != 0
    }

    /// A copy-on-write leaf (the shared zero page in private memory):
    /// not a page of the mapping's own, as Linux's `vm_normal_page`
    /// refuses the zero page.
    pub fn is_copy_on_write(&self) -> bool {
        self.raw & super::entry::COW != 0
    }

    /// Writes through the leaf are allowed.
    pub fn is_writable(&self) -> bool {
        self.raw & super::entry::RW != 0
    }

    /// A leaf a fork shared (copy-on-write in both spaces).
    pub fn is_fork_shared(&self) -> bool {
        self.raw & super::entry::FORKED != 0
    }

    /// The first frame the leaf maps.
    pub fn frame(&self) -> crate::addr::Pfn {
        crate::addr::Pfn(super::entry::leaf_addr(self.raw, self.size) >> crate::addr::PAGE_SHIFT)
    }
}

/// Collects the leaves of `[va, end)` below `table` (at `level`).
fn collect<M: GuestMemory>(mem: &M, table: &Table<'_>, level: u32, va: u64, end: u64, out: &mut Vec<Leaf>) {
    let mut cur = va;
    while cur < end {
        let idx = index(cur, level);
        let next = entry_end(cur, level, end);
        let raw = table.get(idx);
        match classify(raw, level) {
            Entry::Empty => {}
            Entry::Leaf(size) => match GuestVirtAddr::try_new(cur & !(span(level) - 1)) {
                Ok(va) => out.push(Leaf { va, size, raw }),
                Err(e) => log::error!("leaf at a non-canonical address: {e}"),
            },
            Entry::Table(frame) => {
                if let Ok(child) = Table::new(mem, frame, false) {
                    collect(mem, &child, level - 1, cur, next, out);
                }
            }
        }
        cur = next;
    }
}

/// Writes one captured leaf where the walk finds its (empty) slot.
struct RawFiller {
    raw: u64,
    level: u32,
}

impl Filler for RawFiller {
    fn leaf_here(&self, level: u32, _va: u64, _end: u64) -> bool {
        level == self.level
    }

    fn fill(&mut self, table: &Table<'_>, _level: u32, first: usize, _va: u64, n: usize) -> Result<(), Stopped> {
        if n != 1 || table.get(first) & USED != 0 {
            return Err(Stopped::used(0));
        }
        table.set(first, self.raw);
        Ok(())
    }
}

/// How many leaves from the start of `leaves` are 4 KiB leaves one after
/// the other inside one leaf table (0 when the first is not a 4 KiB leaf).
fn small_run(leaves: &[Leaf]) -> usize {
    let Some(first) = leaves.first() else { return 0 };
    let base = first.va.raw();
    let table = base >> 21;
    leaves
        .iter()
        .enumerate()
        .take_while(|(i, l)| {
            let va = l.va.raw();
            l.size == PageSize::Size4K
                && va & (PageSize::Size4K.bytes() - 1) == 0
                && classify(l.raw, 1) == Entry::Leaf(PageSize::Size4K)
                && va >> 21 == table
                && va == base + ((*i as u64) << crate::addr::PAGE_SHIFT)
        })
        .count()
}

/// Writes a run of 4 KiB leaves (see [`small_run`]) into their empty
/// slots of one leaf table.
struct RunFiller<'l> {
    leaves: &'l [Leaf],
    base: u64,
}

impl Filler for RunFiller<'_> {
    fn leaf_here(&self, _level: u32, _va: u64, _end: u64) -> bool {
        false
    }

    fn fill(&mut self, table: &Table<'_>, _level: u32, first: usize, va: u64, n: usize) -> Result<(), Stopped> {
        let from = ((va - self.base) >> crate::addr::PAGE_SHIFT) as usize;
        let Some(src) = self.leaves.get(from..from + n) else { return Err(Stopped::used(0)) };
        for (j, leaf) in src.iter().enumerate() {
            if table.get(first + j) & USED != 0 {
                return Err(Stopped::used(j));
            }
            table.set(first + j, leaf.raw);
        }
        Ok(())
    }
}

impl<'a, M: GuestMemory> Writer<'a, M> {
    /// Fills the empty entries of `table`, which replaced the huge leaf
    /// `raw` of `size`, with the leaves the split made (recursing into a
    /// second-level split). Returns false when an entry holds something
    /// else.
    fn fill_holes(&mut self, table: &Table<'a>, raw: u64, size: PageSize) -> bool {
        let child_level = size.level() - 1;
        let mut clean = true;
        for i in 0..ENTRIES {
            let want = split_child(raw, size, i as u64);
            let cur = table.get(i);
            match classify(cur, child_level) {
                Entry::Empty => table.set(i, want),
                Entry::Leaf(_) if same_leaf(cur, want) => {}
                Entry::Table(frame) if size == PageSize::Size1G => match self.view(frame) {
                    Ok(t) => clean &= self.fill_holes(&t, want, PageSize::Size2M),
                    Err(_) => clean = false,
                },
                _ => clean = false,
            }
        }
        clean
    }

    /// Re-installs one leaf; see [`PageTables::restore`].
    fn restore_leaf(&mut self, leaf: &Leaf) -> Result<(), MmError> {
        let va = leaf.va.raw();
        let level = leaf.size.level();
        let end = va.checked_add(leaf.size.bytes()).ok_or(MmError::Overflow { addr: va, len: leaf.size.bytes() })?;
        if classify(leaf.raw, level) != Entry::Leaf(leaf.size) || va & (leaf.size.bytes() - 1) != 0 {
            return Err(MmError::Invalid("not a leaf entry"));
        }
        self.start = va;
        if let Some((table, at, idx)) = self.find(va, level) {
            let cur = table.get(idx);
            match classify(cur, at) {
                // Still split: put back the pieces that were unmapped.
                Entry::Table(frame) if at == level => {
                    let child = self.view(frame)?;
                    return if self.fill_holes(&child, leaf.raw, leaf.size) { Ok(()) } else { Err(self.exists()) };
                }
                Entry::Leaf(_) if at == level && same_leaf(cur, leaf.raw) => return Ok(()),
                _ => {}
            }
        }
        let root = self.root()?;
        let mut filler = RawFiller { raw: leaf.raw, level };
        match self.populate(&root, 4, va, end, &mut filler) {
            Ok(()) => {
                self.commit();
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Every leaf that maps part of `[va, va + len)`, in address order. A
    /// huge leaf is reported whole even when the range covers part of it.
    /// PROT_NONE leaves are included (they still hold their frame). Reads
    /// guest memory only; subtrees behind pointers that leave guest memory
    /// are skipped.
    pub fn leaves(&self, va: GuestVirtAddr, len: u64) -> Vec<Leaf> {
        let start = va.raw();
        let mut end = start.saturating_add(len);
        if start < HOLE {
            end = end.min(HOLE);
        }
        let mut out = Vec::new();
        if let Ok(root) = Table::new(&self.mem, self.root, false) {
            collect(&self.mem, &root, 4, start, end, &mut out);
        }
        out
    }

    /// Puts back `leaves` captured by [`PageTables::leaves`] before an
    /// unmap: each goes into its (empty) slot, creating tables as needed
    /// (a page-array leaf's frame is still pinned by whoever held it). A huge
    /// leaf whose slot now holds the table its split left gets the missing
    /// pieces instead. Then every split in `splits` whose table holds
    /// exactly the leaves the split made is joined back into the original
    /// huge entry and its table freed (recorded for
    /// [`PageTables::take_rollback_flush`]: the table was reachable). After
    /// `unmap_range(r)` and `restore(leaves(r), splits)` the tables and the
    /// table count are exactly as before.
    ///
    /// Table allocations bypass failure injection (this is the rollback
    /// path) and take frames a hold kept first
    /// ([`crate::TableAllocator::hold_freed`]). Everything possible is restored; the first error (a slot
    /// holding something else: `MmError::Exists`) is returned at the end.
    pub fn restore(&mut self, leaves: &[Leaf], splits: &[SplitRecord]) -> Result<(), MmError> {
        let mut first_err = None;
        let mut w = self.writer(true, 0);
        for leaf in leaves {
            if let Err(e) = w.restore_leaf(leaf) {
                log::warn!("restore of {:?} leaf at {:#x}: {e}", leaf.size, leaf.va);
                first_err.get_or_insert(e);
            }
        }
        // Smaller splits first: a 2 MiB split inside a split 1 GiB leaf
        // must be joined before the 1 GiB one can be.
        let mut order: Vec<&SplitRecord> = splits.iter().collect();
        order.sort_by_key(|s| (s.size, s.va));
        for s in order {
            // The split table was linked (a vCPU's paging-structure caches
            // may point at it) and is freed now: flush its range.
            if w.rejoin(s) {
                w.freed_linked_table(s.va.raw(), s.size.bytes());
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes `leaves` (captured by [`PageTables::leaves`], possibly
    /// relocated) into their slots, which must be empty, creating tables
    /// as needed; stops at the first failure (`ENOMEM` when no table page
    /// is left, `MmError::Exists` for a used slot) and returns it, with
    /// the leaves before it written (the caller unmaps them) and the
    /// failing leaf's own tables undone. Allocations honour failure
    /// injection: this is a forward operation, not a rollback.
    ///
    /// 4 KiB leaves that follow each other in one leaf table are written
    /// in one pass down the tables (a fork copies a process's pages this
    /// way); a run that meets a used slot is undone and redone leaf by
    /// leaf, so the outcome is the same as writing each leaf on its own.
    pub fn copy_leaves(&mut self, leaves: &[Leaf]) -> Result<(), MmError> {
        let mut w = self.writer(false, 0);
        let mut rest = leaves;
        while let Some(first) = rest.first() {
            let n = small_run(rest);
            if n > 1 {
                let va = first.va.raw();
                let end = va + ((n as u64) << crate::addr::PAGE_SHIFT);
                w.start = va;
                let root = w.root()?;
                match w.populate(&root, 4, va, end, &mut RunFiller { leaves: &rest[..n], base: va }) {
                    Ok(()) => {
                        w.commit();
                        rest = &rest[n..];
                        continue;
                    }
                    Err(_) => w.rollback(),
                }
            }
            for leaf in &rest[..n.max(1)] {
                w.restore_leaf(leaf)?;
            }
            rest = &rest[n.max(1)..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::Pfn;
    use crate::flags::{CacheMode, PageProt, VmFlags};
    use vm_memory::GuestAddress;

    /// A mixed tree: 1 GiB, 2 MiB and 4 KiB leaves, counted pages, a
    /// PROT_NONE page and a write-combining huge leaf.
    fn mixed(pt: &mut Tables) {
        let wc = rw().with_cache(CacheMode::WriteCombining);
        pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
        pt.map_range(gva(2 * G1), GuestAddress(4 * M2), 3 * M2, wc, PageSize::Size2M).unwrap();
        pt.map_range(gva(2 * G1 + 3 * M2), GuestAddress(K4), 5 * K4, rw(), PageSize::Size2M).unwrap();
        let pages: Vec<Pfn> = (0..700).map(|i| Pfn((i * 37 + 5) % FRAMES)).collect();
        pt.insert_pages(gva(3 * G1 - 300 * K4), &arr(&pages), rw()).unwrap();
        pt.protect_range(
            gva(3 * G1 - 2 * K4),
            K4,
            PageProt::from_flags(VmFlags::empty()).with_cache(CacheMode::WriteBack),
        )
        .unwrap()
        .ignore();
    }

    #[test]
    fn unmap_then_restore_is_exact() {
        let ranges: &[(u64, u64)] = &[
            (G1, G1),
            (G1 + K4, K4),
            (G1 + M2 - K4, 3 * M2),
            (2 * G1 - K4, 2 * K4 + 3 * M2),
            (2 * G1 + M2 + 3 * K4, 5 * M2),
            (3 * G1 - 301 * K4, 5 * K4),
            (3 * G1 - 3 * K4, 3 * K4 + 400 * K4),
            (0, 4 * G1),
            (G1 + 7 * M2 + K4, 100 * M2),
        ];
        for &(va, len) in ranges {
            let mut pt = tables(4 * G1);
            mixed(&mut pt);
            let before = snapshot(&pt, 0, 8 * G1);
            let tables = pt.tables_in_use();
            let saved = pt.leaves(gva(va), len);
            let u = pt.unmap_range(gva(va), len).unwrap();
            u.flush.ignore();
            assert!(pt.leaves(gva(va), len).iter().all(|l| l.va.raw() < va || l.va.raw() + l.size.bytes() > va + len));
            pt.restore(&saved, &u.splits).unwrap();
            assert_eq!(snapshot(&pt, 0, 8 * G1), before, "{va:#x}+{len:#x}");
            assert_eq!(pt.tables_in_use(), tables, "{va:#x}+{len:#x}");
            // Page by page too, through the hardware-style walk.
            for page in (va..va + len.min(4 * M2)).step_by(K4 as usize) {
                let t = pt.translate(gva(page));
                assert_eq!(t.map(|t| t.phys), translate_before(&before, page), "{page:#x}");
            }
        }
    }

    /// The translation the snapshot `leaves` implies for `va`.
    fn translate_before(leaves: &[Leaf], va: u64) -> Option<GuestAddress> {
        let l = leaves.iter().find(|l| l.va.raw() <= va && va < l.va.raw() + l.size.bytes() && l.raw & 1 != 0)?;
        Some(GuestAddress(super::super::entry::leaf_addr(l.raw, l.size) + (va - l.va.raw())))
    }

    #[test]
    fn leaves_in_order_with_huge_leaves_whole() {
        let mut pt = tables(4 * G1);
        mixed(&mut pt);
        let l = pt.leaves(gva(G1 + G1 / 2), G1 / 2 + M2);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].va, l[0].size), (gva(G1), PageSize::Size1G));
        assert_eq!((l[1].va, l[1].size), (gva(2 * G1), PageSize::Size2M));
        let all = pt.leaves(gva(0), 1 << 47);
        assert!(all.windows(2).all(|w| w[0].va < w[1].va));
        assert_eq!(all.len(), 1 + 3 + 5 + 700);
    }

    #[test]
    fn copy_leaves_writes_runs_as_leaf_by_leaf_would() {
        // A whole mixed tree into empty tables: the same leaves, the same
        // table count (runs of 4 KiB leaves cross a leaf table's end).
        let mut from = tables(4 * G1);
        mixed(&mut from);
        let all = from.leaves(gva(0), 4 * G1);
        let mut to = tables(4 * G1);
        to.copy_leaves(&all).unwrap();
        assert_eq!(snapshot(&to, 0, 8 * G1), snapshot(&from, 0, 8 * G1));
        assert_eq!(to.tables_in_use(), from.tables_in_use());
        // A run meeting a used slot with another leaf: the leaves before
        // it written, the error at it, nothing after it.
        let run = from.leaves(gva(3 * G1 - 300 * K4), 300 * K4);
        assert_eq!(run.len(), 300);
        let clash = 3 * G1 - 200 * K4;
        let mut to = tables(4 * G1);
        to.map_range(gva(clash), GuestAddress(0x7000), K4, rw(), PageSize::Size4K).unwrap();
        assert_eq!(to.copy_leaves(&run), Err(MmError::Exists { addr: clash }));
        let written = to.leaves(gva(3 * G1 - 300 * K4), 300 * K4);
        assert_eq!(written.len(), 101);
        assert_eq!(&written[..100], &run[..100]);
        assert_eq!(written[100].va, gva(clash));
        // The same leaf already there is no clash: the run goes in whole.
        let mut to = tables(4 * G1);
        to.copy_leaves(&run[100..101]).unwrap();
        to.copy_leaves(&run).unwrap();
        assert_eq!(to.leaves(gva(3 * G1 - 300 * K4), 300 * K4), run);
    }

    #[test]
    fn restore_into_a_mapped_slot_reports_exists() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0x1000), GuestAddress(0x5000), K4, rw(), PageSize::Size4K).unwrap();
        let saved = pt.leaves(gva(0), M2);
        // Identical leaf already there: nothing to do.
        assert_eq!(pt.restore(&saved, &[]), Ok(()));
        pt.protect_range(gva(0x1000), K4, rw().with_cache(CacheMode::Uncached)).unwrap().ignore();
        assert_eq!(pt.restore(&saved, &[]), Err(MmError::Exists { addr: 0x1000 }));
        assert_eq!(pt.tables_in_use(), 4);
        let bogus = Leaf { raw: 0, ..saved[0] };
        assert!(pt.restore(&[bogus], &[]).is_err());
    }

    #[test]
    fn counted_frame_is_the_frame_of_a_page_array_leaf_only() {
        use super::super::entry::{leaf_bits, COUNTED};
        let bits = leaf_bits(rw(), PageSize::Size4K);
        let leaf = |raw, size| Leaf { va: gva(0x20_0000), size, raw };
        assert_eq!(leaf(0x1234_5000 | bits | COUNTED, PageSize::Size4K).counted_frame(), Some(Pfn(0x12345)));
        assert_eq!(leaf(0x1234_5000 | bits, PageSize::Size4K).counted_frame(), None);
        let huge = 0x20_0000 | leaf_bits(rw(), PageSize::Size2M) | COUNTED;
        assert_eq!(leaf(huge, PageSize::Size2M).counted_frame(), None);
        // The frame number is bits 12..=51 only.
        let high = (1 << 63) | (0xf_ffff_ffff << 12) | bits | COUNTED;
        assert_eq!(leaf(high, PageSize::Size4K).counted_frame(), Some(Pfn(0xf_ffff_ffff)));
    }

    #[test]
    fn restore_refuses_a_misaligned_leaf_and_a_different_piece_in_a_split() {
        let mut pt = tables(4 * G1);
        pt.map_range(gva(0), GuestAddress(0), M2, rw(), PageSize::Size2M).unwrap();
        let saved = pt.leaves(gva(0), M2);
        let misaligned = Leaf { va: gva(K4), ..saved[0] };
        assert_eq!(pt.restore(&[misaligned], &[]), Err(MmError::Invalid("not a leaf entry")));
        // Unmap one page (the huge leaf splits), then put another frame in
        // that hole: restoring the huge leaf must not take the pieces as
        // its own.
        let u = pt.unmap_range(gva(5 * K4), K4).unwrap();
        u.flush.ignore();
        pt.map_range(gva(5 * K4), GuestAddress(0x80_0000), K4, rw(), PageSize::Size4K).unwrap();
        assert_eq!(pt.restore(&saved, &u.splits), Err(MmError::Exists { addr: 0 }));
    }

    #[test]
    fn restore_of_a_gigabyte_leaf_refuses_a_different_piece_two_levels_down() {
        let mut pt = tables(4 * G1);
        pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
        let saved = pt.leaves(gva(G1), G1);
        // One page out: the 1 GiB leaf splits into 2 MiB leaves and one of
        // those into 4 KiB leaves. Another frame goes into the hole.
        let hole = G1 + 3 * M2 + 5 * K4;
        let u = pt.unmap_range(gva(hole), K4).unwrap();
        u.flush.ignore();
        assert_eq!(u.splits.len(), 2);
        pt.map_range(gva(hole), GuestAddress(0x80_0000), K4, rw(), PageSize::Size4K).unwrap();
        // The conflict sits in the second-level split: the restore must
        // still see it and keep the foreign page.
        assert_eq!(pt.restore(&saved, &u.splits), Err(MmError::Exists { addr: G1 }));
        assert_eq!(pt.translate(gva(hole)).unwrap().phys, GuestAddress(0x80_0000));
        // Without the foreign page the same restore is exact.
        let mut pt = tables(4 * G1);
        pt.map_range(gva(G1), GuestAddress(0), G1, rw(), PageSize::Size1G).unwrap();
        let before = snapshot(&pt, 0, 4 * G1);
        let u = pt.unmap_range(gva(hole), K4).unwrap();
        u.flush.ignore();
        assert_eq!(pt.restore(&saved, &u.splits), Ok(()));
        assert_eq!(snapshot(&pt, 0, 4 * G1), before);
    }

    #[test]
    fn restore_ignores_failure_injection() {
        let mut pt = tables(4 * G1);
        mixed(&mut pt);
        let before = snapshot(&pt, 0, 8 * G1);
        let saved = pt.leaves(gva(0), 4 * G1);
        let u = pt.unmap_range(gva(0), 4 * G1).unwrap();
        u.flush.ignore();
        assert_eq!(pt.tables_in_use(), 1);
        pt.allocator_mut().inject_failure_after(Some(0));
        pt.restore(&saved, &u.splits).unwrap();
        assert_eq!(snapshot(&pt, 0, 8 * G1), before);
    }
}
