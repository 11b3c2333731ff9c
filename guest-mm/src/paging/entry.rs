//! The bits of an x86-64 page-table entry and how a [`PageProt`] is
//! encoded into them and decoded back.
//!
//! Pure bit arithmetic: nothing here reads or writes memory. Entries are
//! plain `u64`s; [`classify`] says what an entry is at a given level, and
//! [`split_child`] computes the smaller leaves equivalent to a huge one.

use crate::addr::{PageSize, Pfn, PAGE_SHIFT};
use crate::flags::{CacheMode, PageProt};

/// Present.
pub(crate) const P: u64 = 1 << 0;
/// Writable.
pub(crate) const RW: u64 = 1 << 1;
/// User accessible (CPL 3).
pub(crate) const US: u64 = 1 << 2;
/// Page-level write-through (PAT index bit 0).
pub(crate) const PWT: u64 = 1 << 3;
/// Page-level cache disable (PAT index bit 1).
pub(crate) const PCD: u64 = 1 << 4;
/// Accessed (set by the CPU).
pub(crate) const A: u64 = 1 << 5;
/// Dirty (set by the CPU, leaves only).
pub(crate) const D: u64 = 1 << 6;
/// Page size: the PD/PDPT entry is a huge leaf.
pub(crate) const PS: u64 = 1 << 7;
/// PAT index bit 2 in a 4 KiB leaf (the same bit is `PS` higher up).
pub(crate) const PAT_4K: u64 = 1 << 7;
/// PAT index bit 2 in a 2 MiB / 1 GiB leaf.
pub(crate) const PAT_HUGE: u64 = 1 << 12;
/// Software bit: the 4 KiB leaf maps a page-array frame (pinned by the
/// array its VMA holds), not a raw frame.
pub(crate) const COUNTED: u64 = 1 << 9;
/// Software bit: a PROT_NONE leaf. `P` is clear so the CPU faults on any
/// access, but the entry still records its frame (like Linux's
/// `_PAGE_PROTNONE`), so protect can make it accessible again.
pub(crate) const PROT_NONE: u64 = 1 << 10;
/// Software bit: a copy-on-write 4 KiB leaf (the shared zero page in a
/// private writable mapping). `RW` stays clear on it whatever the
/// protection, until a write fault replaces the frame.
pub(crate) const COW: u64 = 1 << 11;
/// Software bit (one of the bits 52..=58 the CPU ignores in a leaf): with
/// [`COW`], the 4 KiB leaf's frame was shared by a fork and may be mapped
/// by another address space too. A write fault copies it into a fresh pool
/// page, or reuses it when this space holds the last reference
/// (`space/fork_fault.rs`); it never asks the VMA's provider.
pub(crate) const FORKED: u64 = 1 << 52;
/// Execute disable.
pub(crate) const NX: u64 = 1 << 63;

/// An entry the writer considers in use: present, or a PROT_NONE leaf.
pub(crate) const USED: u64 = P | PROT_NONE;

/// Frame address of a 4 KiB leaf or of a table pointer (bits 12..=51).
pub(crate) const ADDR_4K: u64 = 0x000f_ffff_ffff_f000;
/// Bits that are flags in every entry kind: 0..=11 and 52..=63.
const FLAG_BITS: u64 = !ADDR_4K;

/// Value of the `IA32_PAT` MSR the VMM programs on every vCPU. The index
/// of an entry is `PAT * 4 + PCD * 2 + PWT`:
///
/// | index | 0  | 1  | 2   | 3  | 4  | 5  | 6   | 7  |
/// |-------|----|----|-----|----|----|----|-----|----|
/// | type  | WB | WT | UC- | UC | WC | WT | UC- | UC |
///
/// so [`CacheMode::WriteBack`] sets no bit, [`CacheMode::WriteThrough`]
/// sets `PWT`, [`CacheMode::Uncached`] sets `PCD | PWT` and
/// [`CacheMode::WriteCombining`] sets the PAT bit (bit 7 in a 4 KiB leaf,
/// bit 12 in a huge one). Indices 0..=3 match the power-on default, so a
/// guest that never loads the MSR still gets WB/WT/UC right.
pub const PAT_MSR_VALUE: u64 = 0x0007_0401_0007_0406;

/// Bytes covered by one entry at `level` (1 = PT .. 4 = PML4).
#[inline]
pub(crate) const fn span(level: u32) -> u64 {
    1 << (PAGE_SHIFT + 9 * (level - 1))
}

/// Index of `va` in the table at `level`.
#[inline]
pub(crate) const fn index(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + 9 * (level - 1))) & 0x1ff) as usize
}

/// End (exclusive) of the entry at `level` containing `va`, clipped to
/// `end`. Never overflows: the top entry of the address space ends at
/// 2^64, which is clipped to `end`.
#[inline]
pub(crate) const fn entry_end(va: u64, level: u32, end: u64) -> u64 {
    match (va | (span(level) - 1)).checked_add(1) {
        Some(e) if e < end => e,
        _ => end,
    }
}

/// The PAT bit for a leaf of `size`.
#[inline]
const fn pat_bit(size: PageSize) -> u64 {
    match size {
        PageSize::Size4K => PAT_4K,
        PageSize::Size2M | PageSize::Size1G => PAT_HUGE,
    }
}

/// Physical-address bits of a leaf of `size`.
#[inline]
pub(crate) const fn leaf_addr_mask(size: PageSize) -> u64 {
    ADDR_4K & !(size.bytes() - 1)
}

/// The bits [`protect_bits`] replaces in a leaf of `size`.
#[inline]
pub(crate) const fn prot_mask(size: PageSize) -> u64 {
    P | PROT_NONE | RW | US | PWT | PCD | NX | pat_bit(size)
}

/// Permission, cache and size bits of a leaf of `size` with `prot` (no
/// address, no software bits other than [`PROT_NONE`]).
pub(crate) const fn leaf_bits(prot: PageProt, size: PageSize) -> u64 {
    let mut bits = if prot.present { P } else { PROT_NONE };
    if prot.writable {
        bits |= RW;
    }
    if prot.user {
        bits |= US;
    }
    if prot.no_execute {
        bits |= NX;
    }
    bits |= match prot.cache {
        CacheMode::WriteBack => 0,
        CacheMode::WriteThrough => PWT,
        CacheMode::Uncached => PCD | PWT,
        CacheMode::WriteCombining => pat_bit(size),
    };
    if !matches!(size, PageSize::Size4K) {
        bits |= PS;
    }
    bits
}

/// `raw` (a leaf of `size`) with its permission and cache bits replaced by
/// those of `prot`; address, accessed/dirty and software bits are kept.
#[inline]
pub(crate) const fn protect_bits(raw: u64, prot: PageProt, size: PageSize) -> u64 {
    let bits = (raw & !prot_mask(size)) | leaf_bits(prot, size);
    if raw & COW != 0 {
        bits & !RW
    } else {
        bits
    }
}

/// Decodes the protection of a leaf of `size` (the inverse of
/// [`leaf_bits`] for every value it produces; PAT indices this VMM never
/// writes decode to the closest [`CacheMode`]).
pub(crate) fn decode_prot(raw: u64, size: PageSize) -> PageProt {
    let index = (raw & PWT != 0) as u8 | ((raw & PCD != 0) as u8) << 1 | ((raw & pat_bit(size) != 0) as u8) << 2;
    let cache = match index {
        0 => CacheMode::WriteBack,
        1 | 5 => CacheMode::WriteThrough,
        4 => CacheMode::WriteCombining,
        _ => CacheMode::Uncached,
    };
    PageProt { present: raw & P != 0, writable: raw & RW != 0, user: raw & US != 0, no_execute: raw & NX != 0, cache }
}

/// An intermediate entry pointing at the table in frame `table`: present,
/// writable, user, executable, so that the leaf alone decides access.
#[inline]
pub(crate) const fn table_entry(table: Pfn) -> u64 {
    ((table.0 << PAGE_SHIFT) & ADDR_4K) | P | RW | US
}

/// What an entry is, as the writer and the walkers interpret it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Neither present nor a PROT_NONE leaf.
    Empty,
    /// Points at the next-level table in this frame.
    Table(Pfn),
    /// A leaf of this size (present or PROT_NONE).
    Leaf(PageSize),
}

/// Classifies `raw` found in a table at `level` (1 = PT .. 4 = PML4).
#[inline]
pub(crate) const fn classify(raw: u64, level: u32) -> Entry {
    if raw & USED == 0 {
        return Entry::Empty;
    }
    match level {
        1 => Entry::Leaf(PageSize::Size4K),
        2 | 3 if raw & PS != 0 || raw & P == 0 => {
            Entry::Leaf(if level == 2 { PageSize::Size2M } else { PageSize::Size1G })
        }
        _ if raw & P != 0 => Entry::Table(Pfn((raw & ADDR_4K) >> PAGE_SHIFT)),
        // A PROT_NONE bit alone in a PML4 entry: nothing we wrote.
        _ => Entry::Empty,
    }
}

/// The physical address a leaf of `size` maps.
#[inline]
pub(crate) const fn leaf_addr(raw: u64, size: PageSize) -> u64 {
    raw & leaf_addr_mask(size)
}

/// Entry `i` (0..512) of the table that replaces the huge leaf `raw` of
/// `size` (2 MiB or 1 GiB): the same flags, one size smaller, mapping the
/// i-th piece. The PAT bit moves from bit 12 to bit 7 when the children
/// are 4 KiB leaves, and `PS` is dropped for them. The software
/// [`COUNTED`] bit is never inherited: huge leaves are raw frames.
pub(crate) const fn split_child(raw: u64, size: PageSize, i: u64) -> u64 {
    let flags = raw & FLAG_BITS & !COUNTED;
    let pat = raw & PAT_HUGE != 0;
    let base = leaf_addr(raw, size);
    match size {
        PageSize::Size1G => {
            let addr = base + i * PageSize::Size2M.bytes();
            flags | addr | if pat { PAT_HUGE } else { 0 }
        }
        _ => {
            let addr = base + i * PageSize::Size4K.bytes();
            (flags & !PS) | addr | if pat { PAT_4K } else { 0 }
        }
    }
}

/// Compares two leaves ignoring the accessed and dirty bits the CPU sets.
#[inline]
pub(crate) const fn same_leaf(a: u64, b: u64) -> bool {
    (a ^ b) & !(A | D) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [PageSize; 3] = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G];
    const CACHES: [CacheMode; 4] =
        [CacheMode::WriteBack, CacheMode::WriteThrough, CacheMode::Uncached, CacheMode::WriteCombining];

    fn all_prots() -> Vec<PageProt> {
        let mut v = Vec::new();
        for bits in 0..16u8 {
            for cache in CACHES {
                v.push(PageProt {
                    present: bits & 1 != 0,
                    writable: bits & 2 != 0,
                    user: bits & 4 != 0,
                    no_execute: bits & 8 != 0,
                    cache,
                });
            }
        }
        v
    }

    #[test]
    fn prot_round_trips_for_every_size() {
        for size in SIZES {
            for prot in all_prots() {
                let bits = leaf_bits(prot, size);
                assert_eq!(decode_prot(bits, size), prot, "{size:?} {prot:?}");
                assert_eq!(bits & PS != 0, size != PageSize::Size4K || prot.cache == CacheMode::WriteCombining);
                assert_eq!(bits & leaf_addr_mask(size) & !PAT_HUGE, 0);
            }
        }
    }

    #[test]
    fn cache_modes_select_the_pat_entries() {
        // (mode, 4K bits, huge bits, PAT MSR byte)
        let table: &[(CacheMode, u64, u64, u8)] = &[
            (CacheMode::WriteBack, 0, 0, 0x06),
            (CacheMode::WriteThrough, PWT, PWT, 0x04),
            (CacheMode::Uncached, PCD | PWT, PCD | PWT, 0x00),
            (CacheMode::WriteCombining, PAT_4K, PAT_HUGE, 0x01),
        ];
        let mask4 = PWT | PCD | PAT_4K;
        let mask_huge = PWT | PCD | PAT_HUGE;
        for &(mode, b4, bh, memtype) in table {
            let prot = PageProt::NONE.with_cache(mode);
            assert_eq!(leaf_bits(prot, PageSize::Size4K) & mask4, b4);
            assert_eq!(leaf_bits(prot, PageSize::Size2M) & mask_huge, bh);
            let idx = (b4 & PWT != 0) as u64 | ((b4 & PCD != 0) as u64) << 1 | ((b4 & PAT_4K != 0) as u64) << 2;
            assert_eq!((PAT_MSR_VALUE >> (idx * 8)) as u8, memtype, "{mode:?}");
        }
    }

    #[test]
    fn classify_by_level() {
        let t = table_entry(Pfn(0x1234));
        let table: &[(u64, u32, Entry)] = &[
            (0, 1, Entry::Empty),
            (0xdead_0000 & !USED, 3, Entry::Empty),
            (t, 4, Entry::Table(Pfn(0x1234))),
            (t, 3, Entry::Table(Pfn(0x1234))),
            (t | NX, 2, Entry::Table(Pfn(0x1234))),
            (t, 1, Entry::Leaf(PageSize::Size4K)),
            (t | PS, 2, Entry::Leaf(PageSize::Size2M)),
            (t | PS, 3, Entry::Leaf(PageSize::Size1G)),
            (PROT_NONE | PS, 2, Entry::Leaf(PageSize::Size2M)),
            // Not present and PROT_NONE is a leaf whatever PS says.
            (PROT_NONE, 2, Entry::Leaf(PageSize::Size2M)),
            (PROT_NONE, 3, Entry::Leaf(PageSize::Size1G)),
            (PROT_NONE, 1, Entry::Leaf(PageSize::Size4K)),
            (PROT_NONE, 4, Entry::Empty),
        ];
        for &(raw, level, want) in table {
            assert_eq!(classify(raw, level), want, "{raw:#x} at {level}");
        }
    }

    #[test]
    fn a_table_entry_grants_everything_so_the_leaf_decides() {
        // Present, writable, user; executable (no NX); nothing else.
        assert_eq!(table_entry(Pfn(0x1234)), 0x123_4000 | 0b111);
        assert_eq!(table_entry(Pfn(0x1234)) & NX, 0);
    }

    #[test]
    fn same_leaf_ignores_only_what_the_cpu_sets() {
        let leaf = 0x5000 | leaf_bits(PageProt::from_flags(crate::flags::VmFlags::READ), PageSize::Size4K);
        assert_eq!((A, D), (1 << 5, 1 << 6));
        assert!(same_leaf(leaf, leaf | A));
        assert!(same_leaf(leaf, leaf | D));
        assert!(same_leaf(leaf | A | D, leaf));
        assert!(!same_leaf(leaf, leaf | RW));
        assert!(!same_leaf(leaf, leaf + 0x1000));
    }

    #[test]
    fn split_children_move_the_pat_bit() {
        let wc = PageProt::from_flags(crate::flags::VmFlags::READ).with_cache(CacheMode::WriteCombining);
        let huge = 0x4020_0000 | leaf_bits(wc, PageSize::Size2M) | A | D;
        for i in [0u64, 1, 511] {
            let c = split_child(huge, PageSize::Size2M, i);
            assert_eq!(c & PS, c & PAT_4K);
            assert_eq!(decode_prot(c, PageSize::Size4K), wc);
            assert_eq!(leaf_addr(c, PageSize::Size4K), 0x4020_0000 + i * 4096);
            assert_eq!(c & (A | D), A | D);
        }
        let giant = (3 << 30) | leaf_bits(wc, PageSize::Size1G) | COUNTED;
        let c = split_child(giant, PageSize::Size1G, 7);
        assert_eq!(classify(c, 2), Entry::Leaf(PageSize::Size2M));
        assert_eq!(decode_prot(c, PageSize::Size2M), wc);
        assert_eq!(leaf_addr(c, PageSize::Size2M), (3 << 30) + 7 * (2 << 20));
        assert_eq!(c & COUNTED, 0);
    }

    #[test]
    fn protect_keeps_address_and_software_bits() {
        let rw = PageProt::from_flags(crate::flags::VmFlags::READ | crate::flags::VmFlags::WRITE);
        let ro = PageProt::from_flags(crate::flags::VmFlags::READ);
        let raw = 0x5000 | leaf_bits(rw, PageSize::Size4K) | COUNTED | D;
        let p = protect_bits(raw, ro, PageSize::Size4K);
        assert_eq!(p & (ADDR_4K | COUNTED | D), 0x5000 | COUNTED | D);
        assert_eq!(decode_prot(p, PageSize::Size4K), ro);
        let none = protect_bits(raw, PageProt::NONE, PageSize::Size4K);
        assert_eq!(none & USED, PROT_NONE);
        assert_eq!(protect_bits(none, rw, PageSize::Size4K), raw);
    }

    #[test]
    fn entry_end_clips_and_never_overflows() {
        assert_eq!(entry_end(0x1000, 1, u64::MAX), 0x2000);
        assert_eq!(entry_end(0x1000, 2, 0x3000), 0x3000);
        assert_eq!(entry_end(0xffff_ff80_0000_0000, 4, 0xffff_ff80_0000_1000), 0xffff_ff80_0000_1000);
        assert_eq!(entry_end(0xffff_ffff_ffff_f000, 4, u64::MAX), u64::MAX);
        assert_eq!(index(0xffff_ff80_0000_0000, 4), 511);
    }
}
