//! An independent census of a page-table tree: it reads the tables from
//! guest memory with plain loads and counts what it finds.

use vm_memory::{GuestAddress, GuestMemory};

const P: u64 = 1;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Software bit of a 4 KiB leaf that maps a page-array (pinned) frame.
const PAGE_ARRAY: u64 = 1 << 9;

/// What a walk of the whole tree found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Table pages reachable from the root, the root included.
    pub tables: usize,
    /// Non-root tables with no entry at all (must never persist).
    pub empty_tables: usize,
    /// Present leaves by size: 4 KiB, 2 MiB, 1 GiB.
    pub leaves: [u64; 3],
}

/// Walks every table reachable from `root`.
pub fn census<M: GuestMemory>(mem: &M, root: GuestAddress) -> Census {
    let mut c = Census::default();
    walk(mem, root, 4, &mut c);
    c
}

fn walk<M: GuestMemory>(mem: &M, table: GuestAddress, level: u32, c: &mut Census) {
    c.tables += 1;
    let mut used = 0;
    for e in crate::walk::read_table(mem, table) {
        if e == 0 {
            continue;
        }
        used += 1;
        if e & P == 0 {
            continue;
        }
        if level == 1 {
            c.leaves[0] += 1;
        } else if e & PS != 0 && level <= 3 {
            c.leaves[level as usize - 1] += 1;
        } else {
            walk(mem, GuestAddress(e & ADDR), level - 1, c);
        }
    }
    if used == 0 && level != 4 {
        c.empty_tables += 1;
    }
}

/// A 4 KiB leaf found by [`leaf_frames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafFrame {
    /// The frame it maps.
    pub pfn: u64,
    /// Present (a PROT_NONE leaf is not, but still holds its frame).
    pub present: bool,
    /// Marked as a page-array frame (software bit 9).
    pub page_array: bool,
}

/// Every 4 KiB leaf reachable from `root` (present or PROT_NONE: any
/// non-zero level-1 entry under a present table pointer).
pub fn leaf_frames<M: GuestMemory>(mem: &M, root: GuestAddress) -> Vec<LeafFrame> {
    let mut out = Vec::new();
    collect(mem, root, 4, &mut out);
    out
}

fn collect<M: GuestMemory>(mem: &M, table: GuestAddress, level: u32, out: &mut Vec<LeafFrame>) {
    for e in crate::walk::read_table(mem, table) {
        if e == 0 {
            continue;
        }
        if level == 1 {
            out.push(LeafFrame { pfn: (e & ADDR) >> 12, present: e & P != 0, page_array: e & PAGE_ARRAY != 0 });
        } else if e & P != 0 && !(e & PS != 0 && level <= 3) {
            collect(mem, GuestAddress(e & ADDR), level - 1, out);
        }
    }
}
