//! [`PageTables::census`]: every table page reachable from the root, read
//! from guest memory the way the CPU's walker reads it, with the links
//! that point somewhere a table cannot be.
//!
//! The census only describes the tree; deciding what is wrong with it
//! (a leaked or freed table, an empty one) is
//! [`crate::AddressSpace::check_invariants`]'s job.

use vm_memory::GuestMemory;

use super::entry::{classify, Entry};
use super::page_tables::PageTables;
use super::table::{Table, ENTRIES};
use crate::addr::Pfn;

/// One table page found by the census.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Its frame.
    pub pfn: Pfn,
    /// Its level: 4 (the root) down to 1 (a page table of 4 KiB leaves).
    pub level: u32,
    /// The first virtual address it translates.
    pub va: u64,
    /// Entries in use (present, or PROT_NONE leaves).
    pub used: usize,
}

/// A link to a table that cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLink {
    /// The virtual address the entry translates.
    pub va: u64,
    /// The level of the table holding the entry.
    pub level: u32,
    /// The frame the entry names.
    pub pfn: Pfn,
    /// The frame is already part of the tree (shared table or cycle).
    pub seen_before: bool,
}

/// What a walk of the whole tree found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCensus {
    /// Reachable tables in walk order, the root first.
    pub tables: Vec<TableInfo>,
    /// Links not followed: to frames outside guest memory, or to tables
    /// already visited.
    pub bad_links: Vec<BadLink>,
}

/// Sign-extends a 48-bit address (the upper half).
fn canonical(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

impl<M: GuestMemory> PageTables<M> {
    /// Walks every table reachable from the root. Reads guest memory only;
    /// never follows a link twice, so a corrupted tree (a cycle, a shared
    /// table) cannot make it loop.
    pub fn census(&self) -> TableCensus {
        let mut c = TableCensus::default();
        let mut seen = std::collections::HashSet::new();
        seen.insert(self.root);
        let mut stack = vec![(self.root, 4u32, 0u64)];
        while let Some((pfn, level, base)) = stack.pop() {
            let Ok(table) = Table::new(&self.mem, pfn, false) else {
                // The root lies in guest memory (checked at creation);
                // children are checked before they are pushed.
                continue;
            };
            let mut used = 0;
            for i in 0..ENTRIES {
                let raw = table.get(i);
                let va = canonical(base + ((i as u64) << (12 + 9 * (level - 1))));
                match classify(raw, level) {
                    Entry::Empty => {}
                    Entry::Leaf(_) => used += 1,
                    Entry::Table(child) => {
                        used += 1;
                        let in_mem = Table::new(&self.mem, child, false).is_ok();
                        if !in_mem || !seen.insert(child) {
                            c.bad_links.push(BadLink { va, level, pfn: child, seen_before: in_mem });
                        } else {
                            stack.push((child, level - 1, va));
                        }
                    }
                }
            }
            c.tables.push(TableInfo { pfn, level, va: base, used });
        }
        c
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::addr::PageSize;
    use vm_memory::GuestAddress;

    #[test]
    fn counts_every_table_once_and_reports_bad_links() {
        let mut pt = tables(64 << 20);
        assert_eq!(pt.census().tables.len(), 1);
        pt.map_range(gva(0x1000), GuestAddress(0x5000), K4, rw(), PageSize::Size4K).unwrap();
        pt.map_range(gva(G1), GuestAddress(0), M2, rw(), PageSize::Size2M).unwrap();
        pt.map_range(gva(0xffff_ff80_0000_0000), GuestAddress(0), K4, rw(), PageSize::Size4K).unwrap();
        let c = pt.census();
        assert_eq!(c.tables.len(), pt.tables_in_use());
        assert!(c.bad_links.is_empty());
        assert_eq!(c.tables[0].level, 4);
        assert!(c.tables.iter().any(|t| t.level == 1 && t.va == 0xffff_ff80_0000_0000));
        // Every table of the upper half has a canonical (sign-extended) base.
        for level in 1..=3 {
            assert!(c.tables.iter().any(|t| t.level == level && t.va == 0xffff_ff80_0000_0000), "level {level}");
        }
        // The root links the lower half's and the upper half's level-3
        // tables; the 4 KiB and 2 MiB leaves are one entry each.
        assert_eq!(c.tables[0].used, 2);
        for va in [0, 0xffff_ff80_0000_0000] {
            let l1 = c.tables.iter().find(|t| t.level == 1 && t.va == va).unwrap();
            assert_eq!(l1.used, 1, "{va:#x}");
        }
        // Level-2 table of the upper half: link it a second time, below
        // the lower half's level-3 table (a shared table).
        let l1 = c.tables.iter().find(|t| t.level == 1 && t.va == 0).unwrap().pfn;
        poke(&pt, 0x2000_0000, 2, super::super::entry::table_entry(l1));
        let c = pt.census();
        assert_eq!(c.bad_links, vec![BadLink { va: 0x2000_0000, level: 2, pfn: l1, seen_before: true }]);
        // A link outside guest memory is reported, not followed.
        poke(&pt, 0x2000_0000, 2, super::super::entry::table_entry(Pfn(1 << 30)));
        let c = pt.census();
        assert_eq!(c.bad_links, vec![BadLink { va: 0x2000_0000, level: 2, pfn: Pfn(1 << 30), seen_before: false }]);
    }
}
