//! The VMA count limits: `vm.max_map_count` of this space and the budget
//! all the guest's spaces share (`crate::vma::VmaBudget`), checked before
//! an operation changes anything, from the VMAs it would cut.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::error::MmError;
use crate::vma::VmaBudget;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Refuses with `ENOMEM` an operation that cuts `[start, end)` out of
    /// the VMAs and then puts `inside` VMAs into it, if the count before
    /// any merging would exceed the limit. `inside` is `None` when the
    /// overlapped VMAs keep their in-range parts (mprotect).
    pub(super) fn check_map_count(&self, start: u64, end: u64, inside: Option<usize>) -> Result<(), MmError> {
        let mut n = self.vmas.len();
        for v in self.vmas.overlapping(start, end) {
            // The parts left outside the range; the part inside goes
            // unless it is kept.
            n += usize::from(v.start().raw() < start) + usize::from(v.end() > end);
            n -= 1;
            if inside.is_none() {
                n += 1;
            }
        }
        n += inside.unwrap_or(0);
        if n > self.max_map_count {
            return Err(MmError::TooManyMappings { limit: self.max_map_count });
        }
        self.check_vma_budget(n.saturating_sub(self.vmas.len()))
    }

    /// `ENOMEM` unless `more` VMAs than now fit in the budget this space
    /// shares with the spaces made from it.
    pub(super) fn check_vma_budget(&self, more: usize) -> Result<(), MmError> {
        match self.vmas.budget() {
            Some(b) if more > 0 && !b.fits(more) => {
                Err(MmError::OutOfMemory("VMAs: the guest's address spaces hold as many as its RAM allows"))
            }
            _ => Ok(()),
        }
    }

    /// The budget of VMAs this space shares with the spaces made from it
    /// (fork, sibling).
    pub fn vma_budget(&self) -> Option<&VmaBudget> {
        self.vmas.budget()
    }

    /// The most VMAs this address space may hold.
    pub fn max_map_count(&self) -> usize {
        self.max_map_count
    }

    /// The `[lo, hi)` window mappings placed by the mapper go in.
    pub fn mmap_window(&self) -> (u64, u64) {
        self.window
    }

    /// Moves the placement window to `[lo, hi)` (a personality's layout:
    /// Linux places mappings top-down from below the stack down to
    /// `mmap_min_addr`). Existing mappings stay where they are; `EINVAL`
    /// for an empty, misaligned or non-user window.
    pub fn set_mmap_window(&mut self, lo: u64, hi: u64) -> Result<(), MmError> {
        if lo >= hi || lo % crate::addr::PAGE_SIZE != 0 || hi % crate::addr::PAGE_SIZE != 0 || hi > super::USER_END {
            return Err(MmError::Invalid("empty or misaligned mmap window"));
        }
        self.window = (lo, hi);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod window_tests {
    use super::super::test_util::pooled_space;
    use crate::{MmapRequest, VmFlags};

    #[test]
    fn mappings_are_placed_top_down_in_the_window_set() {
        let mut s = pooled_space();
        assert!(s.set_mmap_window(0x2000, 0x1000).is_err());
        assert!(s.set_mmap_window(0x1001, 0x8000).is_err());
        assert!(s.set_mmap_window(0x1000, (1 << 47) + 0x1000).is_err());
        s.set_mmap_window(0x10_0000, 0x20_0000).unwrap();
        assert_eq!(s.mmap_window(), (0x10_0000, 0x20_0000));
        let z = crate::providers::ZeroProvider::new(s.frames().clone(), s.memory().clone());
        let m = s.mmap(&z, &MmapRequest::private(0x1000, VmFlags::READ)).unwrap();
        assert_eq!(m.addr.raw(), 0x1f_f000, "top-down from the window's end");
        m.flush.ignore();
        // A window too small for the request: ENOMEM.
        assert_eq!(s.mmap(&z, &MmapRequest::private(0x20_0000, VmFlags::READ)).unwrap_err().errno(), 12);
    }

    #[test]
    fn anonymous_neighbours_merge_when_their_offset_follows_the_address() {
        let mut s = pooled_space();
        let z = crate::providers::ZeroProvider::new(s.frames().clone(), s.memory().clone());
        let rw = VmFlags::READ | VmFlags::WRITE;
        // Placed top-down: the second lands right below the first.
        let a = s.mmap(&z, &MmapRequest::private(0x2000, rw).anonymous()).unwrap();
        let b = s.mmap(&z, &MmapRequest::private(0x1000, rw).anonymous()).unwrap();
        assert_eq!(b.addr.raw() + 0x1000, a.addr.raw());
        let (a, b) = (a.addr.raw(), b.addr.raw());
        assert_eq!(s.vmas().count(), 1, "one VMA, as Linux merges them");
        let v = s.find_vma(crate::GuestVirtAddr::try_new(b).unwrap()).unwrap();
        assert_eq!((v.start().raw(), v.end(), v.pgoff()), (b, a + 0x2000, b >> 12));
        // Without it, each starts at offset 0 and they stay apart.
        let c = s.mmap(&z, &MmapRequest::private(0x1000, rw)).unwrap();
        assert_eq!(c.addr.raw() + 0x1000, b);
        assert_eq!(s.vmas().count(), 2);
        let (_, bad) = s.check_invariants();
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn pageout_drops_droppable_pages_and_keeps_others() {
        use crate::vma::FaultAccess;
        use crate::Advice;
        let mut s = pooled_space();
        let z = crate::providers::ZeroProvider::new(s.frames().clone(), s.memory().clone());
        let rw = VmFlags::READ | VmFlags::WRITE;
        let d = s.mmap(&z, &MmapRequest::private(0x4000, rw).droppable()).unwrap();
        let k = s.mmap(&z, &MmapRequest::private(0x4000, rw)).unwrap();
        let (d, k) = (d.addr, k.addr);
        for a in [d, k] {
            for i in 0..4 {
                let p = a.checked_add(i * 0x1000).unwrap();
                s.fault(p, FaultAccess { write: true, exec: false }).unwrap().flush.ignore();
            }
        }
        assert!(s.find_vma(d).unwrap().flags().contains(VmFlags::DROPPABLE));
        s.madvise(d, 0x4000, Advice::PageOut).unwrap().ignore();
        s.madvise(k, 0x4000, Advice::PageOut).unwrap().ignore();
        assert_eq!(s.resident_pages(d, 0x4000), 0, "droppable pages are freed");
        assert_eq!(s.resident_pages(k, 0x4000), 4, "other pages stay (no swap)");
        // Only private mappings may be droppable.
        assert!(s.mmap(&z, &MmapRequest::shared(0x1000, rw).droppable()).is_err());
        let (_, bad) = s.check_invariants();
        assert!(bad.is_empty(), "{bad:?}");
    }
}
