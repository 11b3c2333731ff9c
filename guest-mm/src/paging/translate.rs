//! `translate`: walks the tables in guest memory the way the CPU does.
//!
//! Independent from the writer: it trusts neither the allocator nor any
//! bookkeeping, only what is in guest memory, and validates every table
//! frame it follows (a pointer outside guest memory ends the walk).

use vm_memory::{GuestAddress, GuestMemory};

use super::entry::{decode_prot, index, leaf_addr, ADDR_4K, COUNTED, P, PS};
use super::page_tables::PageTables;
use super::table::Table;
use crate::addr::{GuestVirtAddr, PageSize, Pfn, PAGE_SHIFT};
use crate::flags::PageProt;

/// Where a virtual address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The exact guest-physical byte address (frame base + offset).
    pub phys: GuestAddress,
    /// The 4 KiB frame containing `phys`.
    pub pfn: Pfn,
    /// Size of the leaf that maps it.
    pub size: PageSize,
    /// Its protection.
    pub prot: PageProt,
    /// A page-array leaf (its frame is pinned by the array), not a raw frame.
    pub counted: bool,
}

impl<M: GuestMemory> PageTables<M> {
    /// The translation of `va`, or `None` when the CPU would fault because
    /// an entry on the way is not present (PROT_NONE leaves included) or a
    /// table pointer leads outside guest memory.
    pub fn translate(&self, va: GuestVirtAddr) -> Option<Translation> {
        let va = va.raw();
        let mut frame = self.root;
        for level in (1..=4u32).rev() {
            let table = Table::new(&self.mem, frame, false).ok()?;
            let raw = table.get(index(va, level));
            if raw & P == 0 {
                return None;
            }
            if level == 1 || (level < 4 && raw & PS != 0) {
                let size = PageSize::from_level(level)?;
                let phys = leaf_addr(raw, size) | (va & (size.bytes() - 1));
                return Some(Translation {
                    phys: GuestAddress(phys),
                    pfn: Pfn(phys >> PAGE_SHIFT),
                    size,
                    prot: decode_prot(raw, size),
                    counted: size == PageSize::Size4K && raw & COUNTED != 0,
                });
            }
            frame = Pfn((raw & ADDR_4K) >> PAGE_SHIFT);
        }
        None
    }
}
