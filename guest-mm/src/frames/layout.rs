//! Which guest-physical frames exist (guest RAM) and which the VMM keeps
//! for itself (page tables and other reserved regions). Prepare consults
//! this before anything is mapped; the pin counts carry the same
//! knowledge to [`crate::Frames::pin`] (`PinCounts::block`).

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};

/// Frames beyond 52 physical address bits cannot be put in an entry.
pub const MAX_PFN: u64 = 1 << (52 - PAGE_SHIFT);

/// Guest RAM and VMM-reserved frame ranges, each `[first, end)`.
#[derive(Clone, Debug, Default)]
pub struct PhysLayout {
    ram: Vec<(Pfn, Pfn)>,
    reserved: Vec<(Pfn, Pfn)>,
}

impl PhysLayout {
    /// The RAM of `mem` (whole pages only) with no reserved ranges.
    pub fn from_memory<M: GuestMemoryBackend>(mem: &M) -> Self {
        let mut ram: Vec<(Pfn, Pfn)> = mem
            .iter()
            .filter_map(|r| {
                let start = r.start_addr().0.div_ceil(PAGE_SIZE);
                let end = r.start_addr().0.checked_add(r.len())? >> PAGE_SHIFT;
                (end > start).then_some((Pfn(start), Pfn(end)))
            })
            .collect();
        ram.sort();
        PhysLayout { ram, reserved: Vec::new() }
    }

    /// Marks `[base, base + size)` as the VMM's own: never mappable.
    pub fn reserve(&mut self, base: GuestAddress, size: u64) {
        let first = base.0 >> PAGE_SHIFT;
        let end = base.0.saturating_add(size).div_ceil(PAGE_SIZE);
        if end > first {
            self.reserved.push((Pfn(first), Pfn(end)));
        }
    }

    /// RAM ranges.
    pub fn ram(&self) -> &[(Pfn, Pfn)] {
        &self.ram
    }

    /// Reserved ranges.
    pub fn reserved(&self) -> &[(Pfn, Pfn)] {
        &self.reserved
    }

    /// One past the highest RAM frame.
    pub fn ram_end(&self) -> Pfn {
        self.ram.iter().map(|r| r.1).max().unwrap_or(Pfn(0))
    }

    /// Is every frame of `[pfn, pfn + n)` guest RAM?
    pub fn is_ram(&self, pfn: Pfn, n: u64) -> bool {
        let Some(end) = pfn.0.checked_add(n) else {
            return false;
        };
        self.ram.iter().any(|&(s, e)| s.0 <= pfn.0 && end <= e.0)
    }

    /// The first reserved frame in `[pfn, pfn + n)`, if any.
    pub fn reserved_in(&self, pfn: Pfn, n: u64) -> Option<Pfn> {
        let end = pfn.0.saturating_add(n);
        self.reserved.iter().filter(|&&(s, e)| s.0 < end && pfn.0 < e.0).map(|&(s, _)| Pfn(s.0.max(pfn.0))).min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vm_memory::GuestMemoryMmap;

    use super::*;

    fn layout() -> PhysLayout {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20), (GuestAddress(4 << 20), 1 << 20)])
            .unwrap();
        let mut l = PhysLayout::from_memory(&mem);
        l.reserve(GuestAddress(0x80000), 0x10000);
        l
    }

    #[test]
    fn ram_and_reserved() {
        let l = layout();
        assert_eq!(l.ram(), &[(Pfn(0), Pfn(256)), (Pfn(1024), Pfn(1280))]);
        assert!(l.is_ram(Pfn(0), 256));
        assert!(!l.is_ram(Pfn(0), 257));
        assert!(!l.is_ram(Pfn(255), 770)); // spans the hole
        assert!(!l.is_ram(Pfn(u64::MAX), 2));
        assert_eq!(l.reserved_in(Pfn(0x70), 0x20), Some(Pfn(0x80)));
        assert_eq!(l.reserved_in(Pfn(0x90), 1), None);
        assert_eq!(l.ram_end(), Pfn(1280));
    }

    #[test]
    fn edges_are_exclusive_and_empty_ranges_are_dropped() {
        let mut l = layout();
        // A range that ends where the reserved one starts does not touch it.
        assert_eq!(l.reserved_in(Pfn(0x70), 0x10), None);
        assert_eq!(l.reserved_in(Pfn(0x70), 0x11), Some(Pfn(0x80)));
        // Reserving nothing adds nothing.
        l.reserve(GuestAddress(0x5000), 0);
        assert_eq!(l.reserved(), &[(Pfn(0x80), Pfn(0x90))]);
        // A region with no whole page is not RAM at all.
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20), (GuestAddress(0x20_0800), 0x800)])
            .unwrap();
        assert_eq!(PhysLayout::from_memory(&mem).ram(), &[(Pfn(0), Pfn(256))]);
    }
}
