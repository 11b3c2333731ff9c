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
    /// an entry on the way is not present (PROT_NONE leaves included), a
    /// PML4 entry has the (reserved) PS bit set, or a table pointer leads
    /// outside guest memory.
    pub fn translate(&self, va: GuestVirtAddr) -> Option<Translation> {
        let va = va.raw();
        let mut frame = self.root;
        for level in (1..=4u32).rev() {
            let table = Table::new(&self.mem, frame, false).ok()?;
            let raw = table.get(index(va, level));
            if raw & P == 0 {
                return None;
            }
            if level == 1 || raw & PS != 0 {
                // PS in a PML4 entry is a reserved bit: the CPU faults
                // (there is no 512 GiB page), so `from_level(4)` is `None`.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use vm_memory::GuestAddress;

    use super::super::entry::PS;
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn ps_in_a_pml4_entry_faults_as_on_the_cpu() {
        let mut pt = tables(64 << 20);
        pt.map_range(gva(0), GuestAddress(M2), K4, rw(), PageSize::Size4K).unwrap();
        assert_eq!(pt.translate(gva(0x10)).unwrap().phys, GuestAddress(M2 + 0x10));
        // Bit 7 of a PML4 entry is reserved: the CPU raises a page fault
        // rather than following the pointer (a guest can write its tables).
        let root = Table::new(pt.memory(), Pfn::containing(pt.root()), false).unwrap();
        let pml4e = root.get(0);
        poke(&pt, 0, 4, pml4e | PS);
        assert_eq!(pt.translate(gva(0x10)), None);
        poke(&pt, 0, 4, pml4e);
        assert_eq!(pt.translate(gva(0x10)).unwrap().phys, GuestAddress(M2 + 0x10));
    }
}
