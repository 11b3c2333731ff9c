//! Single-entry operations of the fault path: marking a leaf (4 KiB, or a
//! hugetlb 2 MiB leaf) copy-on-write, replacing the frame of a present
//! 4 KiB leaf in one store (the copy of a copy-on-write fault), and
//! finding the leaf of an address whether it is present or a PROT_NONE
//! leaf (what a forced access reads through).
//!
//! A copy-on-write leaf carries the software bit `entry::COW` and no `RW`;
//! `protect_range` keeps `RW` clear on it, so mprotect cannot make a shared
//! page (the zero page) writable. Only the write fault's replacement, which
//! maps a private copy, drops the bit.

use vm_memory::GuestMemory;

use vm_memory::GuestAddress;

use super::entry::{classify, index, leaf_addr, leaf_bits, Entry, COUNTED, COW, P, RW, USED};
use super::flush::FlushSet;
use super::page_tables::PageTables;
use super::table::Table;
use crate::action::PageArray;
use crate::addr::{GuestVirtAddr, PageSize, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::PageProt;

/// The leaf mapping an address, present or PROT_NONE, as
/// [`PageTables::used_leaf`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsedLeaf {
    /// The guest-physical byte address the address leads to.
    pub phys: GuestAddress,
    /// The leaf's size.
    pub size: PageSize,
    /// Present (`false`: a PROT_NONE leaf the CPU faults on).
    pub present: bool,
    /// A 4 KiB leaf with the copy-on-write mark.
    pub copy_on_write: bool,
}

impl<M: GuestMemory> PageTables<M> {
    /// The leaf mapping `va`, present or PROT_NONE (which
    /// [`PageTables::translate`] does not follow, as the CPU does not);
    /// `None` when there is none or a table pointer leads outside guest
    /// memory.
    pub fn used_leaf(&self, va: GuestVirtAddr) -> Option<UsedLeaf> {
        let v = va.raw();
        let mut frame = self.root;
        for level in (1..=4u32).rev() {
            let raw = Table::new(&self.mem, frame, false).ok()?.get(index(v, level));
            match classify(raw, level) {
                Entry::Empty => return None,
                Entry::Table(f) => frame = f,
                Entry::Leaf(size) => {
                    let phys = leaf_addr(raw, size) | (v & (size.bytes() - 1));
                    return Some(UsedLeaf {
                        phys: GuestAddress(phys),
                        size,
                        present: raw & P != 0,
                        copy_on_write: size == PageSize::Size4K && raw & COW != 0,
                    });
                }
            }
        }
        None
    }

    /// The leaf table holding the 4 KiB leaf of `va` and its index, if the
    /// tables down to it exist (a huge leaf on the way gives `None`).
    pub(super) fn leaf_table(&self, va: u64, write: bool) -> Option<(Table<'_>, usize)> {
        let mut frame = self.root;
        for level in (2..=4u32).rev() {
            let t = Table::new(&self.mem, frame, false).ok()?;
            match classify(t.get(index(va, level)), level) {
                Entry::Table(f) => frame = f,
                _ => return None,
            }
        }
        Some((Table::new(&self.mem, frame, write).ok()?, index(va, 1)))
    }

    /// The table holding the leaf of `va`, whatever its size, and its
    /// index, if the tables down to it exist.
    pub(super) fn leaf_slot(&self, va: u64, write: bool) -> Option<(Table<'_>, usize)> {
        let mut frame = self.root;
        for level in (1..=4u32).rev() {
            let t = Table::new(&self.mem, frame, false).ok()?;
            match classify(t.get(index(va, level)), level) {
                Entry::Table(f) if level > 1 => frame = f,
                Entry::Leaf(_) => return Some((Table::new(&self.mem, frame, write).ok()?, index(va, level))),
                _ => return None,
            }
        }
        None
    }

    /// Is the leaf at `va` (of any size) present and copy-on-write?
    pub fn is_copy_on_write(&self, va: GuestVirtAddr) -> bool {
        self.leaf_slot(va.raw(), false).is_some_and(|(t, i)| {
            let raw = t.get(i);
            raw & P != 0 && raw & COW != 0
        })
    }

    /// Marks the present leaf at `va` copy-on-write (read-only until a
    /// write fault replaces it); a huge leaf is marked whole (a hugetlb
    /// private mapping of a file's page). A read-only entry needs no
    /// flush. `MmError::NotMapped` when there is no such leaf.
    pub fn set_copy_on_write(&mut self, va: GuestVirtAddr) -> Result<(), MmError> {
        let (t, i) = self.leaf_slot(va.raw(), true).ok_or(MmError::NotMapped { addr: va.raw() })?;
        let mut raw = t.get(i);
        loop {
            if raw & P == 0 {
                return Err(MmError::NotMapped { addr: va.raw() });
            }
            if raw & RW != 0 {
                return Err(MmError::Invalid("copy-on-write mark on a writable entry"));
            }
            // Compare-and-exchange: an Accessed bit a walker sets meanwhile
            // must not be lost (a later unmap trusts it, see `flush.rs`).
            match t.compare_exchange(i, raw, raw | COW) {
                Ok(_) => return Ok(()),
                Err(now) => raw = now,
            }
        }
    }

    /// Replaces the 4 KiB leaf at `va` (present, or PROT_NONE for a
    /// forced write) by a page-array leaf for
    /// the one frame of `page` (pinned: the caller keeps the pin for as
    /// long as the entry may map it) with `prot`, in one 8-byte store. On
    /// error (`page` is not one frame, no 4 KiB leaf) nothing
    /// changed. Returns the old frame and the flush the old translation
    /// needs; the old frame's pin is the caller's to drop.
    pub fn replace_page(
        &mut self,
        va: GuestVirtAddr,
        page: &PageArray,
        prot: PageProt,
    ) -> Result<(Pfn, FlushSet), MmError> {
        let &[pfn] = page.as_slice() else {
            return Err(MmError::Invalid("a replaced entry takes exactly one page"));
        };
        let (t, i) = self.leaf_table(va.raw(), true).ok_or(MmError::NotMapped { addr: va.raw() })?;
        let new = (pfn.0 << crate::addr::PAGE_SHIFT) | leaf_bits(prot, PageSize::Size4K) | COUNTED;
        let mut raw = t.get(i);
        // Compare-and-exchange: the value replaced, with the Accessed bit a
        // walker may have set up to that instant, decides the flush.
        let raw = loop {
            if raw & USED == 0 {
                return Err(MmError::NotMapped { addr: va.raw() });
            }
            match t.compare_exchange(i, raw, new) {
                Ok(old) => break old,
                Err(now) => raw = now,
            }
        };
        let old = Pfn((raw & super::entry::ADDR_4K) >> crate::addr::PAGE_SHIFT);
        let mut flush = FlushSet::default();
        flush.add_entry(va.raw(), PAGE_SIZE, raw);
        Ok((old, flush))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::test_util::*;
    use super::*;
    use crate::flags::VmFlags;

    #[test]
    fn cow_leaf_stays_read_only_through_protect_and_replace_swaps_the_frame() {
        let mut pt = tables(64 << 20);
        let ro = PageProt::from_flags(VmFlags::READ);
        pt.insert_pages(gva(0x1000), &arr(&[Pfn(7), Pfn(8)]), ro).unwrap();
        pt.set_copy_on_write(gva(0x1000)).unwrap();
        assert!(pt.is_copy_on_write(gva(0x1000)));
        assert!(!pt.is_copy_on_write(gva(0x2000)));
        // Marking again keeps the mark.
        pt.set_copy_on_write(gva(0x1000)).unwrap();
        assert!(pt.is_copy_on_write(gva(0x1000)));
        // A PROT_NONE copy-on-write leaf keeps its mark for later, but it
        // is not present, so no write fault can be one to copy.
        let none = PageProt::from_flags(VmFlags::empty());
        pt.protect_range(gva(0x1000), K4, none).unwrap().ignore();
        assert!(!pt.is_copy_on_write(gva(0x1000)));
        pt.protect_range(gva(0x1000), K4, ro).unwrap().ignore();
        assert!(pt.is_copy_on_write(gva(0x1000)));
        // mprotect to read-write: the COW page stays read-only, the other not.
        pt.protect_range(gva(0x1000), 2 * K4, rw()).unwrap().ignore();
        assert!(!pt.translate(gva(0x1000)).unwrap().prot.writable);
        assert!(pt.translate(gva(0x2000)).unwrap().prot.writable);
        // A writable entry cannot be marked; an absent one is not mapped.
        assert!(pt.set_copy_on_write(gva(0x2000)).is_err());
        assert_eq!(pt.set_copy_on_write(gva(0x5000)), Err(MmError::NotMapped { addr: 0x5000 }));
        // The write fault's copy.
        let (old, fl) = pt.replace_page(gva(0x1000), &arr(&[Pfn(9)]), rw()).unwrap();
        assert_eq!(old, Pfn(7));
        assert_eq!(fl.ranges(), &[(gva(0x1000), K4)]);
        let t = pt.translate(gva(0x1000)).unwrap();
        assert_eq!((t.pfn, t.prot.writable, t.counted), (Pfn(9), true, true));
        assert!(!pt.is_copy_on_write(gva(0x1000)));
        // Anything but one page, or an absent entry, changes nothing.
        let before = snapshot(&pt, 0, 1 << 20);
        assert!(pt.replace_page(gva(0x1000), &arr(&[Pfn(10), Pfn(11)]), rw()).is_err());
        assert!(pt.replace_page(gva(0x5000), &arr(&[Pfn(10)]), rw()).is_err());
        assert_eq!(snapshot(&pt, 0, 1 << 20), before);
    }
}
