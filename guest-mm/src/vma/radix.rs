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
//! `tests/mapper_vma_memory.rs`), never more because a range was split and
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
//! It does not order anything (the tree's `BTreeMap` does) and does not
//! check that addresses are canonical: a non-canonical address aliases a
//! canonical one, so `VmaTree::find` checks the VMA it finds.

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
/// Entries at or above this name a table (its index in the low bits).
const TABLE: u32 = 0x8000_0000;

/// One level's 64 entries, on cache-line boundaries.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Table([u32; FAN]);

/// The page number a canonical address indexes.
#[inline]
fn page_index(addr: u64) -> u64 {
    (addr >> PAGE_SHIFT) & ((1 << INDEX_BITS) - 1)
}

/// Address to VMA handle, by page.
#[derive(Clone, Debug)]
pub(crate) struct AddrRadix {
    root: Box<[u32]>,
    tables: Vec<Table>,
    /// Freed tables, reused first.
    spare: Vec<u32>,
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
    pub(crate) fn set(&mut self, start: u64, end: u64, val: u32) {
        debug_assert!(val <= EMPTY);
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
        let t0 = self.tables[t as usize].0[0];
        if t0 < TABLE && self.tables[t as usize].0.iter().all(|&x| x == t0) {
            self.spare.push(t);
            return t0;
        }
        TABLE + t
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
                    if a & (1 << 47) != 0 && a < (1 << 48) { a | 0xffff_0000_0000_0000 } else { a }
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
