//! [`PageTables::resident_pages`]: how many 4 KiB pages of a range some
//! leaf maps (smaps' `Rss`), counted by walking the tables that exist.
//!
//! Reads guest memory only, like `translate` and `leaves`; it allocates
//! nothing and descends only into tables that are there, so a huge sparse
//! range costs what is mapped in it, not its size.

use vm_memory::GuestMemory;

use super::entry::{classify, entry_end, index, span, Entry};
use super::page_tables::PageTables;
use super::table::Table;
use crate::addr::{GuestVirtAddr, PAGE_SHIFT};

/// First non-canonical address.
const HOLE: u64 = 1 << 47;

/// Pages of `[va, end)` mapped by leaves below `table` (at `level`).
fn count<M: GuestMemory>(mem: &M, table: &Table<'_>, level: u32, va: u64, end: u64) -> u64 {
    let mut n = 0;
    let mut cur = va;
    while cur < end {
        let idx = index(cur, level);
        let next = entry_end(cur, level, end);
        match classify(table.get(idx), level) {
            Entry::Empty => {}
            // The part of the leaf inside the range.
            Entry::Leaf(_) => n += (next - cur) >> PAGE_SHIFT,
            Entry::Table(frame) => {
                if let Ok(child) = Table::new(mem, frame, false) {
                    n += count(mem, &child, level - 1, cur, next);
                }
            }
        }
        debug_assert!(next > cur && next - cur <= span(level));
        cur = next;
    }
    n
}

impl<M: GuestMemory> PageTables<M> {
    /// The 4 KiB pages of `[va, va + len)` that a leaf maps (present or
    /// PROT_NONE: a PROT_NONE leaf still holds its frame, as Linux counts
    /// it resident); a huge leaf counts the pages it maps inside the range.
    /// Subtrees behind pointers that leave guest memory are skipped.
    pub fn resident_pages(&self, va: GuestVirtAddr, len: u64) -> u64 {
        let start = va.raw();
        let mut end = start.saturating_add(len);
        if start < HOLE {
            end = end.min(HOLE);
        }
        match Table::new(&self.mem, self.root, false) {
            Ok(root) => count(&self.mem, &root, 4, start, end),
            Err(_) => 0,
        }
    }
}
