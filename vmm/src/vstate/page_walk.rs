//! Translating a guest linear address the way the guest's CPU would, by
//! walking the guest's own page tables in guest memory from CR3: for the
//! exception path, which must not need `KVM_TRANSLATE` (the vCPU
//! allow-list does not have it, issue 20 item 2).
//!
//! Every x86 paging mode a guest can be in is covered: paging off,
//! 32-bit paging (4 KiB and PSE 4 MiB pages, PSE-36), PAE (4 KiB and
//! 2 MiB pages) and 4- and 5-level long-mode paging (4 KiB, 2 MiB and
//! 1 GiB pages). A walk reads at most five entries through the caller's
//! reader, so a hostile table cannot make it loop.
//!
//! This module does not check permissions (user/supervisor, write,
//! NX, protection keys): it answers "which guest-physical byte would
//! this linear address name", for showing an instruction, not whether
//! the access was allowed. It does not touch KVM, so it is tested
//! without it.

use vm_memory::GuestAddress;

/// CR0.PG.
const CR0_PG: u64 = 1 << 31;
/// CR4.PSE.
const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE.
const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57.
const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA.
const EFER_LMA: u64 = 1 << 10;
/// Present.
const P: u64 = 1;
/// Page size (a leaf above the last level).
const PS: u64 = 1 << 7;
/// Bits 51:12 of a PAE or long-mode entry: the next table or the frame.
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The registers that say how the guest translates: from `kvm_sregs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG).
    pub cr0: u64,
    /// CR3 (the root table).
    pub cr3: u64,
    /// CR4 (PSE, PAE, LA57).
    pub cr4: u64,
    /// EFER (LMA).
    pub efer: u64,
}

impl PagingRegs {
    /// The paging registers of a vCPU's system registers.
    pub fn from_sregs(s: &kvm_bindings::kvm_sregs) -> Self {
        PagingRegs { cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer }
    }
}

/// Reads a little-endian table entry of `width` bytes (4 or 8) at a
/// guest-physical address; `None` if it is not guest RAM.
pub trait EntryReader {
    /// The entry at `pa`.
    fn entry(&self, pa: GuestAddress, width: usize) -> Option<u64>;
}

impl<M: vm_memory::Bytes<GuestAddress>> EntryReader for M {
    fn entry(&self, pa: GuestAddress, width: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_slice(b.get_mut(..width)?, pa).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

/// The guest-physical address `linear` names under `regs`, reading the
/// tables through `mem`; `None` when an entry on the way is not present
/// or not in guest RAM.
pub fn translate(regs: PagingRegs, linear: u64, mem: &impl EntryReader) -> Option<GuestAddress> {
    if regs.cr0 & CR0_PG == 0 {
        // Paging off: linear is physical (32 bits outside long mode,
        // which needs paging anyway).
        return Some(GuestAddress(linear & 0xffff_ffff));
    }
    if regs.cr4 & CR4_PAE == 0 {
        return walk_32bit(regs, linear & 0xffff_ffff, mem);
    }
    if regs.efer & EFER_LMA == 0 {
        // PAE: a 4-entry PDPT at CR3 bits 31:5, then two 512-entry levels.
        let linear = linear & 0xffff_ffff;
        let pdpte = mem.entry(GuestAddress((regs.cr3 & 0xffff_ffe0) + ((linear >> 30) & 3) * 8), 8)?;
        if pdpte & P == 0 {
            return None;
        }
        return walk_64bit(pdpte & ADDR, linear, 2, mem);
    }
    let levels = if regs.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
    walk_64bit(regs.cr3 & ADDR, linear, levels, mem)
}

/// 32-bit paging: a page directory of 1024 4-byte entries, 4 MiB pages
/// with CR4.PSE (bits 20:13 of the entry are physical bits 39:32).
fn walk_32bit(regs: PagingRegs, linear: u64, mem: &impl EntryReader) -> Option<GuestAddress> {
    let pde = mem.entry(GuestAddress((regs.cr3 & 0xffff_f000) + ((linear >> 22) & 0x3ff) * 4), 4)?;
    if pde & P == 0 {
        return None;
    }
    if pde & PS != 0 && regs.cr4 & CR4_PSE != 0 {
        let high = ((pde >> 13) & 0xff) << 32;
        return Some(GuestAddress(high | (pde & 0xffc0_0000) | (linear & 0x3f_ffff)));
    }
    let pte = mem.entry(GuestAddress((pde & 0xffff_f000) + ((linear >> 12) & 0x3ff) * 4), 4)?;
    if pte & P == 0 {
        return None;
    }
    Some(GuestAddress((pte & 0xffff_f000) | (linear & 0xfff)))
}

/// `levels` levels of 512 8-byte entries from the table at `table`, the
/// last one indexed by bits 20:12; a PS entry at the levels indexed by
/// bits 38:30 (1 GiB) or 29:21 (2 MiB) is a leaf.
fn walk_64bit(mut table: u64, linear: u64, levels: u32, mem: &impl EntryReader) -> Option<GuestAddress> {
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * (level - 1);
        let entry = mem.entry(GuestAddress(table + ((linear >> shift) & 0x1ff) * 8), 8)?;
        if entry & P == 0 {
            return None;
        }
        let page_mask = (1u64 << shift) - 1;
        if level == 1 || (level <= 3 && entry & PS != 0) {
            return Some(GuestAddress((entry & ADDR & !page_mask) | (linear & page_mask)));
        }
        table = entry & ADDR;
    }
    None
}

/// Up to `buf.len()` bytes at `linear`, page by page (an instruction may
/// straddle pages that are not contiguous in guest-physical memory);
/// returns how many were read before a page that does not translate or
/// is not guest RAM.
pub fn read_linear(
    regs: PagingRegs,
    linear: u64,
    buf: &mut [u8],
    mem: &(impl EntryReader + vm_memory::Bytes<GuestAddress>),
) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let at = linear.wrapping_add(done as u64);
        let in_page = (4096 - (at & 0xfff)) as usize;
        let Some(pa) = translate(regs, at, mem) else { break };
        let want = in_page.min(buf.len() - done);
        match mem.read(&mut buf[done..done + want], pa) {
            // A short read is the end of RAM.
            Ok(n) if n == want => done += n,
            Ok(n) => return done + n,
            Err(_) => break,
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Guest memory as sparse words (enough for tables).
    #[derive(Default)]
    struct Tables(BTreeMap<u64, u64>);

    impl Tables {
        fn set(&mut self, pa: u64, v: u64) {
            self.0.insert(pa, v);
        }
    }

    impl EntryReader for Tables {
        fn entry(&self, pa: GuestAddress, width: usize) -> Option<u64> {
            let v = *self.0.get(&pa.0)?;
            Some(if width == 4 { v & 0xffff_ffff } else { v })
        }
    }

    const LONG: PagingRegs = PagingRegs { cr0: CR0_PG | 1, cr3: 0x1000, cr4: CR4_PAE, efer: EFER_LMA | (1 << 8) };

    #[test]
    fn paging_off_is_identity_in_32_bits() {
        let r = PagingRegs { cr0: 1, ..Default::default() };
        assert_eq!(translate(r, 0xe000_0000, &Tables::default()), Some(GuestAddress(0xe000_0000)));
        assert_eq!(translate(r, 0x1_0000_0010, &Tables::default()), Some(GuestAddress(0x10)));
    }

    #[test]
    fn four_level_4k_2m_1g_and_not_present() {
        let mut t = Tables::default();
        // PML4[0] -> 0x2000; PDPT[0] -> PD 0x3000; PDPT[1] is a 1 GiB page
        // at 0x8000_0000; PD[0] -> PT 0x4000; PD[1] a 2 MiB page at
        // 0x60_0000; PT[5] -> frame 0x9000.
        t.set(0x1000, 0x2000 | 3);
        t.set(0x2000, 0x3000 | 3);
        t.set(0x2008, 0x8000_0000 | PS | 3);
        t.set(0x3000, 0x4000 | 3);
        t.set(0x3008, 0x60_0000 | PS | 3);
        t.set(0x4000 + 5 * 8, 0x8000_0000_0000_9000 | 3); // NX set: ignored
        assert_eq!(translate(LONG, 0x5123, &t), Some(GuestAddress(0x9123)));
        assert_eq!(translate(LONG, 0x20_1234, &t), Some(GuestAddress(0x60_1234)));
        assert_eq!(translate(LONG, 0x4123_4567, &t), Some(GuestAddress(0x8123_4567)));
        // PT[6] absent; PML4[1] absent.
        assert_eq!(translate(LONG, 0x6000, &t), None);
        assert_eq!(translate(LONG, 1 << 39, &t), None);
        // PS in a PML4 entry is not a leaf (reserved): the walk goes on
        // and finds no table there.
        let mut h = Tables::default();
        h.set(0x1000, 0x10_0000 | PS | 3);
        assert_eq!(translate(LONG, 0x1000, &h), None);
    }

    #[test]
    fn five_level_uses_bits_56_48() {
        let mut t = Tables::default();
        let r = PagingRegs { cr4: CR4_PAE | CR4_LA57, ..LONG };
        t.set(0x1000 + 8, 0x2000 | 3); // PML5[1]
        t.set(0x2000, 0x3000 | 3);
        t.set(0x3000, 0x4000 | 3);
        t.set(0x4000, 0x20_0000 | PS | 3); // 2 MiB at 0x20_0000
        assert_eq!(translate(r, (1 << 48) | 0x1234, &t), Some(GuestAddress(0x20_1234)));
        assert_eq!(translate(LONG, (1 << 48) | 0x1234, &t), None);
    }

    #[test]
    fn thirty_two_bit_paging_with_and_without_pse() {
        let mut t = Tables::default();
        let r = PagingRegs { cr0: CR0_PG | 1, cr3: 0x20_0000, cr4: CR4_PSE, efer: 0 };
        // PD[0x200] a 4 MiB page at 0xe000_0000 with PSE-36 bits 0x12.
        t.set(0x20_0000 + 0x200 * 4, 0xe000_0000 | (0x12 << 13) | PS | 3);
        // PD[1] -> PT 0x30_0000; PT[2] -> 0x7000.
        t.set(0x20_0004, 0x30_0000 | 3);
        t.set(0x30_0008, 0x7000 | 3);
        assert_eq!(translate(r, 0x8012_3456, &t), Some(GuestAddress(0x12_e012_3456)));
        assert_eq!(translate(r, 0x40_2abc, &t), Some(GuestAddress(0x7abc)));
        // Without CR4.PSE the PS bit is ignored: the entry is a table.
        let no_pse = PagingRegs { cr4: 0, ..r };
        assert_eq!(translate(no_pse, 0x8012_3456, &t), None);
        assert_eq!(translate(r, 0x0040_3000, &t), None);
    }

    #[test]
    fn pae_paging() {
        let mut t = Tables::default();
        let r = PagingRegs { cr0: CR0_PG | 1, cr3: 0x1020, cr4: CR4_PAE, efer: 0 };
        // PDPT at 0x1020: entry 2 -> PD 0x5000; PD[1] a 2 MiB page.
        t.set(0x1020 + 2 * 8, 0x5000 | 1);
        t.set(0x5008, 0x1_0040_0000 | PS | 3);
        assert_eq!(translate(r, 0x8020_0042, &t), Some(GuestAddress(0x1_0040_0042)));
        assert_eq!(translate(r, 0x0020_0042, &t), None);
    }

    #[test]
    fn reads_across_pages_that_are_not_contiguous() {
        use vm_memory::{Bytes, GuestMemoryMmap};
        let mem: GuestMemoryMmap<()> = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let w = |pa: u64, v: u64| mem.write_obj(v, GuestAddress(pa)).unwrap();
        // Long mode: 0x0000 -> 0x9000 and 0x1000 -> 0x7000 (PT at 0x4000).
        w(0x1000, 0x2000 | 3);
        w(0x2000, 0x3000 | 3);
        w(0x3000, 0x4000 | 3);
        w(0x4000, 0x9000 | 3);
        w(0x4008, 0x7000 | 3);
        mem.write_slice(&[1, 2, 3], GuestAddress(0x9ffd)).unwrap();
        mem.write_slice(&[4, 5], GuestAddress(0x7000)).unwrap();
        let mut b = [0u8; 5];
        assert_eq!(read_linear(LONG, 0xffd, &mut b, &mem), 5);
        assert_eq!(b, [1, 2, 3, 4, 5]);
        // The next page does not translate: what was read is kept.
        let mut b = [0u8; 15];
        assert_eq!(read_linear(LONG, 0x1ffe, &mut b, &mem), 2);
        // Paging off, outside RAM: nothing.
        let off = PagingRegs { cr0: 1, ..Default::default() };
        assert_eq!(read_linear(off, 0xe000_0000, &mut b, &mem), 0);
    }
}
