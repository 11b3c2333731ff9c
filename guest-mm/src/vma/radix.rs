//! The lookup index of [`super::VmaTree`]: a radix over the page number,
//! shaped like a page table, whose entries name the VMA (by slab handle)
//! that covers an address, so `find` costs the same few dependent loads
//! whatever the number of VMAs.
//!
//! # Design
//!
//! A canonical address's bits 47..12 (36 bits; bit 47 tells the halves
//! apart) index a root of 2^12 entries and then four levels of 64-entry
//! tables (256 bytes, four cache lines, each aligned to one). An entry is
//! [`EMPTY`] (nothing mapped below it), a VMA handle (the VMA covers its
//! whole block, like a huge-page entry) or a table. A lookup is at most five
//! loads, no key comparisons; a search tree needs one node per level and
//! a comparison per key (measured against `BTreeMap` and a binary search,
//! see docs/guest-mm.md, "VMA lookup").
//!
//! Every table is kept non-uniform: after an update, a table whose 64
//! entries are the same handle (or all [`EMPTY`]) is freed and replaced by
//! that value. A non-uniform table holds a VMA boundary (a page where the
//! handle changes), and each boundary lies inside at most one table per
//! level, so the tables are at most 4 per boundary (2 boundaries per VMA):
//! at most 2 KiB per VMA when every VMA is alone in its 256 KiB, a few
//! bytes per VMA when they are packed (measured by
//! `tests/mapper/mapper_vma_memory.rs`), never more because a range was split and
//! merged again.
//!
//! # Cost
//!
//! Setting a range writes at most 63 entries on each side per level plus
//! the root entries it covers (one per 64 GiB), and frees the tables under
//! entries it overwrites whole; a split, merge or removal rewrites the
//! range of the VMA that changed handle. Freed tables are kept for reuse.
//!
//! # What it does not do
//!
//! It does not order anything (the tree's `BTreeMap` does) and indexes
//! canonical pages only (VMAs never cover others): a non-canonical address
//! aliases a canonical page, so `VmaTree::find` checks the VMA it finds.

use crate::addr::PAGE_SHIFT;

/// Bits of page number per table level.
const LEVEL_BITS: u32 = 6;
/// Entries per table.
const FAN: usize = 1 << LEVEL_BITS;
/// Table levels below the root.
const LEVELS: u32 = 4;
/// Bits of page number indexed (bits 47..12 of the address).
const INDEX_BITS: u32 = 36;
/// Bits of page number one root entry spans.
const ROOT_SPAN: u32 = LEVELS * LEVEL_BITS;
/// Root entries.
const ROOT_LEN: usize = 1 << (INDEX_BITS - ROOT_SPAN);
/// Nothing mapped.
pub(crate) const EMPTY: u32 = 0x7fff_ffff;
/// The largest VMA handle an entry can hold.
pub(crate) const MAX_HANDLE: u32 = EMPTY - 1;
/// End of the lower canonical half.
const LOWER_END: u64 = 1 << 47;
/// Start of the upper canonical half.
const UPPER_START: u64 = 0xffff_8000_0000_0000;
/// Entries at or above this name a table (its index in the low bits).
const TABLE: u32 = 0x8000_0000;

/// One level's 64 entries, on cache-line boundaries.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Table([u32; FAN]);

/// The value every entry of `tab` holds, if they hold one and it is not
/// a table. The two ends decide most tables at once; the rest is compared
/// without early exits so that it vectorizes (a table that is about to
/// collapse is mostly one value, and an early exit would scan it anyway).
#[inline]
fn uniform(tab: &[u32; FAN]) -> Option<u32> {
    let t0 = tab[0];
    if t0 >= TABLE || tab[FAN - 1] != t0 {
        return None;
    }
    tab.iter().fold(true, |same, &x| same & (x == t0)).then_some(t0)
}

/// The page number a canonical address indexes.
#[inline]
fn page_index(addr: u64) -> u64 {
    (addr >> PAGE_SHIFT) & ((1 << INDEX_BITS) - 1)
}

/// Address to VMA handle, by page.
#[derive(Clone)]
pub(crate) struct AddrRadix {
    root: Box<[u32]>,
    tables: Vec<Table>,
    /// Freed tables, reused first.
    spare: Vec<u32>,
}

impl std::fmt::Debug for AddrRadix {
    /// A summary: the entries themselves are the VMAs' ranges again.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddrRadix")
            .field("tables", &(self.tables.len() - self.spare.len()))
            .field("spare", &self.spare.len())
            .finish()
    }
}

impl Default for AddrRadix {
    fn default() -> Self {
        AddrRadix { root: vec![EMPTY; ROOT_LEN].into_boxed_slice(), tables: Vec::new(), spare: Vec::new() }
    }
}

impl AddrRadix {
    /// The handle stored for the page holding `addr`.
    #[inline]
    pub(crate) fn get(&self, addr: u64) -> Option<u32> {
        let i = page_index(addr);
        let mut shift = ROOT_SPAN;
        let mut e = self.root.get((i >> shift) as usize).copied().unwrap_or(EMPTY);
        while e >= TABLE {
            shift -= LEVEL_BITS;
            let t = self.tables.get((e - TABLE) as usize)?;
            e = t.0[((i >> shift) as usize) & (FAN - 1)];
        }
        (e != EMPTY).then_some(e)
    }

    /// Stores `val` (a handle, or [`EMPTY`] to clear) for every page of
    /// `[start, end)`; both page-aligned, `start < end`.
    /// Only the canonical parts of the range are stored: a range that
    /// crosses the non-canonical hole (a removal may) leaves the other
    /// half's pages as they are.
    pub(crate) fn set(&mut self, start: u64, end: u64, val: u32) {
        debug_assert!(val <= EMPTY);
        // Each part is empty when the range misses that half.
        self.set_within(start, end.min(LOWER_END), val);
        self.set_within(start.max(UPPER_START), end, val);
    }

    /// [`Self::set`] for a range inside one half.
    fn set_within(&mut self, start: u64, end: u64, val: u32) {
        if end <= start {
            return;
        }
        let (lo, hi) = (page_index(start), page_index(end - 1) + 1);
        for r in (lo >> ROOT_SPAN)..=((hi - 1) >> ROOT_SPAN) {
            let Some(&e) = self.root.get(r as usize) else {
                return;
            };
            let e = self.fill(e, r << ROOT_SPAN, ROOT_SPAN, lo, hi, val);
            self.root[r as usize] = e;
        }
    }

    /// The new value of an entry `e` spanning the `1 << span` pages from
    /// `base`, once the pages of `[lo, hi)` it spans hold `val`.
    fn fill(&mut self, e: u32, base: u64, span: u32, lo: u64, hi: u64, val: u32) -> u32 {
        let size = 1u64 << span;
        if lo <= base && base + size <= hi {
            self.free_tree(e);
            return val;
        }
        if e == val {
            return e;
        }
        // Partly covered: the entry becomes (or stays) a table.
        let t = if e >= TABLE { e - TABLE } else { self.alloc(e) };
        let sub = span - LEVEL_BITS;
        let (clo, chi) = (lo.max(base), hi.min(base + size));
        for c in ((clo - base) >> sub)..=((chi - 1 - base) >> sub) {
            let c = c as usize;
            let ce = self.tables[t as usize].0[c];
            let ne = self.fill(ce, base + ((c as u64) << sub), sub, lo, hi, val);
            self.tables[t as usize].0[c] = ne;
        }
        // Keep tables non-uniform (see the module docs).
        match uniform(&self.tables[t as usize].0) {
            Some(v) => {
                self.spare.push(t);
                v
            }
            None => TABLE + t,
        }
    }

    /// A table whose entries are all `e`.
    fn alloc(&mut self, e: u32) -> u32 {
        if let Some(t) = self.spare.pop() {
            self.tables[t as usize].0 = [e; FAN];
            return t;
        }
        self.tables.push(Table([e; FAN]));
        (self.tables.len() - 1) as u32
    }

    /// Frees the tables under entry `e`.
    fn free_tree(&mut self, e: u32) {
        if e >= TABLE {
            let t = e - TABLE;
            for c in 0..FAN {
                let ce = self.tables[t as usize].0[c];
                self.free_tree(ce);
            }
            self.spare.push(t);
        }
    }

    /// Tables in use.
    #[cfg(test)]
    pub(crate) fn tables_in_use(&self) -> usize {
        self.tables.len() - self.spare.len()
    }

    /// The stored runs `(start, end, handle)` in address order, adjacent
    /// runs of one handle joined, by walking every table; and an error if
    /// a table is uniform, shared, or a freed one is still referenced.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> Result<Vec<(u64, u64, u32)>, String> {
        let mut out = Vec::new();
        let mut seen = vec![false; self.tables.len()];
        for &t in &self.spare {
            seen[t as usize] = true;
        }
        for (r, &e) in self.root.iter().enumerate() {
            self.walk(e, (r as u64) << ROOT_SPAN, ROOT_SPAN, &mut seen, &mut out)?;
        }
        if let Some(t) = seen.iter().position(|s| !s) {
            return Err(format!("table {t} neither used nor spare"));
        }
        Ok(out)
    }

    #[cfg(test)]
    fn walk(
        &self,
        e: u32,
        base: u64,
        span: u32,
        seen: &mut [bool],
        out: &mut Vec<(u64, u64, u32)>,
    ) -> Result<(), String> {
        if e < TABLE {
            if e != EMPTY {
                // Page numbers back to addresses (bit 47 set: upper half).
                let addr = |p: u64| {
                    let a = p << PAGE_SHIFT;
                    if a & (1 << 47) != 0 && a < (1 << 48) {
                        a | 0xffff_0000_0000_0000
                    } else {
                        a
                    }
                };
                let (s, end) = (addr(base), addr(base + (1 << span) - 1).wrapping_add(1 << PAGE_SHIFT));
                match out.last_mut() {
                    Some(last) if last.1 == s && last.2 == e => last.1 = end,
                    _ => out.push((s, end, e)),
                }
            }
            return Ok(());
        }
        if span == 0 {
            return Err(format!("table entry at page-level for page {base:#x}"));
        }
        let t = (e - TABLE) as usize;
        if std::mem::replace(&mut seen[t], true) {
            return Err(format!("table {t} reached twice or freed"));
        }
        let tab = &self.tables[t].0;
        // Recomputed here, not with `uniform`.
        if tab[0] < TABLE && tab.iter().all(|&x| x == tab[0]) {
            return Err(format!("table {t} is uniform ({:#x})", tab[0]));
        }
        let sub = span - LEVEL_BITS;
        for (c, &ce) in tab.iter().enumerate() {
            self.walk(ce, base + ((c as u64) << sub), sub, seen, out)?;
        }
        Ok(())
    }
}

// Handles, EMPTY and table tags never collide.
const _: () = assert!(MAX_HANDLE < EMPTY && EMPTY < TABLE);

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 1 << PAGE_SHIFT;

    #[test]
    fn handles_tables_and_empty_never_collide() {
        // Every handle the slab may give is below EMPTY, and table tags
        // are above both (also checked at compile time, above these tests).
        assert_eq!((MAX_HANDLE, EMPTY, TABLE), (0x7fff_fffe, 0x7fff_ffff, 0x8000_0000));
        let mut r = AddrRadix::default();
        r.set(0, P, MAX_HANDLE);
        assert_eq!(r.get(0), Some(MAX_HANDLE));
    }

    #[test]
    fn empty_and_set_and_clear() {
        let mut r = AddrRadix::default();
        assert_eq!(format!("{r:?}"), "AddrRadix { tables: 0, spare: 0 }");
        assert_eq!(r.get(0), None);
        assert_eq!(r.get(u64::MAX), None);
        r.set(3 * P, 5 * P, 7);
        assert_eq!((r.get(3 * P - 1), r.get(3 * P), r.get(5 * P - 1), r.get(5 * P)), (None, Some(7), Some(7), None));
        // The four table levels down to the leaf, nothing more.
        assert_eq!(r.tables_in_use(), 4);
        r.set(3 * P, 5 * P, EMPTY);
        assert_eq!(r.get(3 * P), None);
        assert_eq!(r.tables_in_use(), 0);
        assert_eq!(r.runs().unwrap(), vec![]);
        assert_eq!(format!("{r:?}"), "AddrRadix { tables: 0, spare: 4 }");
    }

    #[test]
    fn whole_blocks_take_one_entry() {
        let mut r = AddrRadix::default();
        // One root entry's 64 GiB, exactly: no table at all.
        let span = P << ROOT_SPAN;
        r.set(span, 2 * span, 3);
        assert_eq!(r.tables_in_use(), 0);
        assert_eq!(
            (r.get(span - 1), r.get(span), r.get(2 * span - 1), r.get(2 * span)),
            (None, Some(3), Some(3), None)
        );
        // A 2 MiB-aligned, 4 MiB range: one table per level above 256 KiB.
        r.set(2 << 20, 6 << 20, 4);
        assert_eq!(r.tables_in_use(), 3);
        assert_eq!(r.runs().unwrap(), vec![(2 << 20, 6 << 20, 4), (span, 2 * span, 3)]);
    }

    #[test]
    fn split_and_merge_again_leave_no_table() {
        // A range split and merged back (one handle again) collapses to the
        // entry it had, however many times: no growth.
        let mut r = AddrRadix::default();
        let (s, e) = (1u64 << 30, 5u64 << 30);
        r.set(s, e, 1);
        let base = r.tables_in_use();
        for k in 1..200u64 {
            let at = s + k * 77 * P;
            r.set(at, e, 2);
            assert_eq!(r.get(at - 1), Some(1));
            assert_eq!(r.get(at), Some(2));
            r.set(at, e, 1);
            assert_eq!(r.tables_in_use(), base, "after split and merge at {at:#x}");
        }
        assert_eq!(r.runs().unwrap(), vec![(s, e, 1)]);
    }

    #[test]
    fn tables_are_bounded_by_boundaries() {
        // Lone one-page ranges, 1 GiB apart: each is two boundaries, and
        // needs at most the four levels' tables of its own.
        let mut r = AddrRadix::default();
        for i in 0..100u64 {
            r.set((i << 30) + 5 * P, (i << 30) + 6 * P, i as u32);
        }
        assert!(r.tables_in_use() <= 4 * 100, "{}", r.tables_in_use());
        // Packed one-page ranges: a few tables for thousands of pages.
        let mut r = AddrRadix::default();
        for i in 0..4096u64 {
            r.set(i * P, (i + 1) * P, i as u32);
        }
        assert_eq!(r.tables_in_use(), 64 + 1 + 1 + 1);
        // Freed tables are reused, not grown.
        r.set(0, 4096 * P, EMPTY);
        assert_eq!(r.tables_in_use(), 0);
        r.set(P, 2 * P, 9);
        assert_eq!(r.tables.len(), 67);
    }

    #[test]
    fn the_halves_and_the_hole() {
        let mut r = AddrRadix::default();
        let top = LOWER_END - P;
        r.set(top, LOWER_END, 1);
        r.set(UPPER_START, UPPER_START + P, 2);
        // The last page below the highest page-aligned address.
        let last = !(P - 1);
        r.set(last - P, last, 3);
        assert_eq!((r.get(top), r.get(UPPER_START), r.get(u64::MAX - 2 * P + 1)), (Some(1), Some(2), Some(3)));
        assert_eq!(r.get(UPPER_START - 1), Some(1), "a non-canonical address aliases a canonical page");
        // Clearing a range across the hole clears both canonical ends only.
        r.set(top, UPPER_START + P, EMPTY);
        assert_eq!((r.get(top), r.get(UPPER_START)), (None, None));
        assert_eq!(r.get(u64::MAX - 2 * P + 1), Some(3));
        // A range entirely inside the hole stores nothing.
        r.set(LOWER_END, UPPER_START, 4);
        assert_eq!(r.runs().unwrap(), vec![(last - P, last, 3)]);
    }
}
