//! The three range helpers of the seeds: [`range_is_subset`],
//! [`range_in_vma`] and [`range_in_vma_desc`]. Ends are exclusive and the
//! latter two share the first, exactly as `mm.h` does after the seeds.

use crate::desc::VmaDesc;
use crate::vma::Vma;

/// True when `[inner_start, inner_end)` lies inside
/// `[outer_start, outer_end)`. Ends are exclusive.
///
/// An inverted inner range (`inner_end < inner_start`, e.g. after an
/// overflowing end computation) is never a subset.
///
/// ```
/// use guest_mm::range_is_subset;
/// assert!(range_is_subset(0x1000, 0x3000, 0x1000, 0x3000));
/// assert!(!range_is_subset(0x1000, 0x3000, 0x1000, 0x3001));
/// ```
#[inline]
pub const fn range_is_subset(outer_start: u64, outer_end: u64, inner_start: u64, inner_end: u64) -> bool {
    outer_start <= inner_start && inner_end <= outer_end && inner_start <= inner_end
}

/// Is `[start, end)` inside the VMA? `None` (no VMA) is never a match, as
/// the kernel's `range_in_vma(NULL, ...)`.
#[inline]
pub fn range_in_vma(vma: Option<&Vma>, start: u64, end: u64) -> bool {
    vma.is_some_and(|v| range_is_subset(v.start().raw(), v.end(), start, end))
}

/// Is `[start, end)` inside the range a descriptor describes?
#[inline]
pub fn range_in_vma_desc(desc: Option<&VmaDesc>, start: u64, end: u64) -> bool {
    desc.is_some_and(|d| range_is_subset(d.start().raw(), d.end(), start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_table() {
        // (outer_start, outer_end, inner_start, inner_end, expected)
        let cases: &[(u64, u64, u64, u64, bool)] = &[
            (0x1000, 0x3000, 0x1000, 0x3000, true),  // equal
            (0x1000, 0x3000, 0x2000, 0x3000, true),  // tail
            (0x1000, 0x3000, 0x1000, 0x2000, true),  // head
            (0x1000, 0x3000, 0x2000, 0x2000, true),  // empty inside
            (0x1000, 0x3000, 0x0fff, 0x2000, false), // starts before
            (0x1000, 0x3000, 0x2000, 0x3001, false), // exclusive end passed
            (0x1000, 0x3000, 0x3000, 0x4000, false), // adjacent after
            (0x1000, 0x3000, 0x0000, 0x1000, false), // adjacent before
            (0x1000, 0x3000, 0x2000, 0x1000, false), // inverted (wrapped end)
            (0, u64::MAX, 0, u64::MAX, true),
        ];
        for &(os, oe, is, ie, want) in cases {
            assert_eq!(range_is_subset(os, oe, is, ie), want, "outer [{os:#x},{oe:#x}) inner [{is:#x},{ie:#x})");
        }
    }

    #[test]
    fn range_in_vma_uses_the_vma_bounds() {
        use crate::flags::VmFlags;

        let vma = Vma::bare(0x10_000, 0x14_000, 0, VmFlags::READ);
        assert!(range_in_vma(Some(&vma), 0x10_000, 0x14_000));
        assert!(range_in_vma(Some(&vma), 0x11_000, 0x12_000));
        assert!(!range_in_vma(Some(&vma), 0xf_000, 0x11_000));
        assert!(!range_in_vma(Some(&vma), 0x13_000, 0x15_000));
    }

    #[test]
    fn none_is_never_a_match() {
        assert!(!range_in_vma(None, 0, 0));
        assert!(!range_in_vma_desc(None, 0, 0));
    }
}
