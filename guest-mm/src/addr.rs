//! Address newtypes: guest-virtual addresses (canonical x86-64, 48-bit),
//! page-frame numbers, and page sizes.
//!
//! Guest-physical addresses reuse [`vm_memory::GuestAddress`]. This module
//! does not know about mappings or page tables; it only makes sure an
//! address is well formed and that arithmetic on it cannot silently wrap.

use std::fmt;

use vm_memory::GuestAddress;

use crate::error::MmError;

/// log2 of the base page size.
pub const PAGE_SHIFT: u32 = 12;
/// The base page size, 4 KiB.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Mask that clears the offset inside a base page.
pub const PAGE_MASK: u64 = !(PAGE_SIZE - 1);

/// Lowest non-canonical address (start of the hole in 48-bit addressing).
const CANONICAL_HOLE_START: u64 = 1 << 47;
/// First canonical address above the hole.
const CANONICAL_HOLE_END: u64 = 0xffff_8000_0000_0000;

/// A canonical x86-64 guest-virtual address (4-level paging, 48 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct GuestVirtAddr(u64);

impl GuestVirtAddr {
    /// The zero address.
    pub const ZERO: GuestVirtAddr = GuestVirtAddr(0);

    /// Makes an address, failing with [`MmError::NonCanonical`] when `addr`
    /// lies in the non-canonical hole.
    ///
    /// ```
    /// use guest_mm::{GuestVirtAddr, MmError};
    /// assert!(GuestVirtAddr::try_new(0x7fff_ffff_f000).is_ok());
    /// assert_eq!(
    ///     GuestVirtAddr::try_new(0x8000_0000_0000),
    ///     Err(MmError::NonCanonical { addr: 0x8000_0000_0000 })
    /// );
    /// ```
    pub const fn try_new(addr: u64) -> Result<Self, MmError> {
        if addr >= CANONICAL_HOLE_START && addr < CANONICAL_HOLE_END {
            Err(MmError::NonCanonical { addr })
        } else {
            Ok(GuestVirtAddr(addr))
        }
    }

    /// The raw value.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// True when the address is a multiple of `align` (a power of two).
    #[inline]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }

    /// Adds `len` bytes; fails when the sum overflows or is non-canonical.
    /// A result exactly at the top of the lower half (`1 << 47`) is allowed
    /// only as an exclusive end, see [`GuestVirtAddr::checked_end`].
    pub fn checked_add(self, len: u64) -> Result<Self, MmError> {
        let sum = self.0.checked_add(len).ok_or(MmError::Overflow { addr: self.0, len })?;
        GuestVirtAddr::try_new(sum)
    }

    /// Exclusive end of `[self, self + len)`. The end may equal the first
    /// non-canonical address (`1 << 47`), because nothing at it is touched.
    pub fn checked_end(self, len: u64) -> Result<u64, MmError> {
        let end = self.0.checked_add(len).ok_or(MmError::Overflow { addr: self.0, len })?;
        // The last byte must be canonical and in the same half.
        if len > 0 {
            let last = end - 1;
            GuestVirtAddr::try_new(last)?;
            if (self.0 < CANONICAL_HOLE_START) != (last < CANONICAL_HOLE_START) {
                return Err(MmError::NonCanonical { addr: last });
            }
        }
        Ok(end)
    }

    /// Index into the page table at `level` (4 = PML4 .. 1 = PT).
    #[inline]
    pub const fn table_index(self, level: u32) -> usize {
        ((self.0 >> (PAGE_SHIFT + 9 * (level - 1))) & 0x1ff) as usize
    }
}

impl fmt::Debug for GuestVirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestVirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for GuestVirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A guest-physical page-frame number (physical address >> 12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The frame containing `addr`.
    #[inline]
    pub const fn containing(addr: GuestAddress) -> Pfn {
        Pfn(addr.0 >> PAGE_SHIFT)
    }

    /// The guest-physical address of the frame's first byte, or `None`
    /// when it does not fit in 64 bits.
    #[inline]
    pub const fn checked_addr(self) -> Option<GuestAddress> {
        if self.0 > (u64::MAX >> PAGE_SHIFT) {
            None
        } else {
            Some(GuestAddress(self.0 << PAGE_SHIFT))
        }
    }

    /// The guest-physical address of the frame's first byte. Frame numbers
    /// that come from a [`GuestAddress`] always fit; see
    /// [`Pfn::checked_addr`] for untrusted ones.
    #[inline]
    pub const fn addr(self) -> GuestAddress {
        GuestAddress(self.0.wrapping_shl(PAGE_SHIFT))
    }

    /// `self + n`, failing on overflow.
    pub fn checked_add(self, n: u64) -> Option<Pfn> {
        self.0.checked_add(n).map(Pfn)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

impl fmt::LowerHex for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// The leaf sizes of x86-64 4-level paging.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PageSize {
    /// 4 KiB, a PT entry.
    Size4K,
    /// 2 MiB, a PD entry with PS set.
    Size2M,
    /// 1 GiB, a PDPT entry with PS set.
    Size1G,
}

impl PageSize {
    /// Size in bytes.
    #[inline]
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }

    /// The page-table level whose entries map pages of this size
    /// (1 = PT, 2 = PD, 3 = PDPT).
    #[inline]
    pub const fn level(self) -> u32 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }

    /// The page size mapped by a leaf at `level`, if a leaf may live there.
    pub const fn from_level(level: u32) -> Option<PageSize> {
        match level {
            1 => Some(PageSize::Size4K),
            2 => Some(PageSize::Size2M),
            3 => Some(PageSize::Size1G),
            _ => None,
        }
    }
}

/// Rounds `len` up to a whole number of base pages, failing on overflow.
pub fn page_align_up(len: u64) -> Option<u64> {
    len.checked_add(PAGE_SIZE - 1).map(|v| v & PAGE_MASK)
}

/// `nr_pages * PAGE_SIZE`, failing on overflow (the check the kernel's
/// `vm_insert_pages()` lacked before the seeds).
pub fn pages_to_bytes(nr_pages: u64) -> Option<u64> {
    nr_pages.checked_mul(PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_edges() {
        let cases: &[(u64, bool)] = &[
            (0, true),
            (0x7fff_ffff_ffff, true),
            (0x8000_0000_0000, false),
            (0xffff_7fff_ffff_ffff, false),
            (0xffff_8000_0000_0000, true),
            (u64::MAX, true),
        ];
        for &(addr, ok) in cases {
            assert_eq!(GuestVirtAddr::try_new(addr).is_ok(), ok, "{addr:#x}");
        }
    }

    #[test]
    fn checked_end_allows_top_of_lower_half_only_as_end() {
        let a = GuestVirtAddr::try_new(0x7fff_ffff_f000).unwrap();
        assert_eq!(a.checked_end(PAGE_SIZE), Ok(1 << 47));
        assert!(a.checked_end(2 * PAGE_SIZE).is_err());
        assert!(a.checked_add(PAGE_SIZE).is_err());
        let hi = GuestVirtAddr::try_new(PAGE_MASK).unwrap();
        assert!(matches!(hi.checked_end(2 * PAGE_SIZE), Err(MmError::Overflow { .. })));
        assert_eq!(a.checked_end(0), Ok(a.raw()));
    }

    #[test]
    fn table_indices() {
        let a = GuestVirtAddr::try_new(0x0000_7f80_4020_1000).unwrap();
        assert_eq!(a.table_index(4), 0xff);
        assert_eq!(a.table_index(3), 1);
        assert_eq!(a.table_index(2), 1);
        assert_eq!(a.table_index(1), 1);
    }

    #[test]
    fn page_math_overflows_are_caught() {
        assert_eq!(page_align_up(1), Some(PAGE_SIZE));
        assert_eq!(page_align_up(PAGE_SIZE), Some(PAGE_SIZE));
        assert_eq!(page_align_up(u64::MAX), None);
        assert_eq!(pages_to_bytes(1 << 52), None);
        assert_eq!(pages_to_bytes((1 << 52) - 1), Some(PAGE_MASK));
        assert_eq!(Pfn(u64::MAX).checked_addr(), None);
        assert_eq!(Pfn(5).checked_addr(), Some(GuestAddress(5 << 12)));
        // The last frame whose address fits, and the first that does not.
        assert_eq!(Pfn((1 << 52) - 1).checked_addr(), Some(GuestAddress(PAGE_MASK)));
        assert_eq!(Pfn(1 << 52).checked_addr(), None);
    }

    #[test]
    fn addresses_and_frames_format_as_hex() {
        // Error messages and logs print these.
        let a = GuestVirtAddr::try_new(0x7f00_1000).unwrap();
        assert_eq!(format!("{a:?}"), "GuestVirtAddr(0x7f001000)");
        assert_eq!(format!("{a:x}"), "7f001000");
        assert_eq!(format!("{a:#x}"), "0x7f001000");
        assert_eq!(format!("{:?}", Pfn(0x42)), "Pfn(0x42)");
        assert_eq!(format!("{:#x}", Pfn(0x42)), "0x42");
    }

    #[test]
    fn page_sizes_and_levels_round_trip() {
        for s in [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G] {
            assert_eq!(PageSize::from_level(s.level()), Some(s));
        }
        assert_eq!(PageSize::from_level(4), None);
        assert_eq!(PageSize::Size2M.bytes(), 2 << 20);
    }
}
