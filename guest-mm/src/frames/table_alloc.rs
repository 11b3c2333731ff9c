//! Allocation of page-table pages from a guest-physical region the VMM
//! reserves for itself.
//!
//! The allocator hands out frame numbers only; zeroing and linking a new
//! table is the page-table code's job. It keeps counters that tests read,
//! and a failure-injection hook so tests can make the Nth allocation fail.

use vm_memory::GuestAddress;

use crate::addr::{Pfn, PAGE_SIZE};
use crate::error::MmError;

/// Hands out 4 KiB frames for page tables from `[base, base + size)`.
#[derive(Debug, Clone)]
pub struct TableAllocator {
    first: Pfn,
    end: Pfn,
    /// Frames never handed out yet are `next..end`; freed ones go here.
    free: Vec<Pfn>,
    next: Pfn,
    in_use: usize,
    /// Allocations left before the injected failure (`None`: never fail).
    fail_after: Option<u64>,
    peak: usize,
}

impl TableAllocator {
    /// An allocator over `[base, base + size)`; both must be page aligned.
    pub fn new(base: GuestAddress, size: u64) -> Result<Self, MmError> {
        if base.0 % PAGE_SIZE != 0 {
            return Err(MmError::Misaligned { what: "table region base", value: base.0, align: PAGE_SIZE });
        }
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(MmError::Misaligned { what: "table region size", value: size, align: PAGE_SIZE });
        }
        let end = base.0.checked_add(size).ok_or(MmError::Overflow { addr: base.0, len: size })?;
        let first = Pfn::containing(base);
        Ok(TableAllocator {
            first,
            end: Pfn::containing(GuestAddress(end)),
            free: Vec::new(),
            next: first,
            in_use: 0,
            fail_after: None,
            peak: 0,
        })
    }

    /// Takes one frame. Fails with `ENOMEM` when the region is exhausted or
    /// when an injected failure is due.
    pub fn alloc(&mut self) -> Result<Pfn, MmError> {
        if let Some(left) = self.fail_after.as_mut() {
            if *left == 0 {
                return Err(MmError::OutOfMemory("page-table pages (injected)"));
            }
            *left -= 1;
        }
        self.alloc_unchecked()
    }

    /// Takes one frame ignoring failure injection: for rollback paths that
    /// put back what an operation took away.
    pub fn alloc_unchecked(&mut self) -> Result<Pfn, MmError> {
        let pfn = if let Some(p) = self.free.pop() {
            p
        } else if self.next < self.end {
            let p = self.next;
            self.next = Pfn(self.next.0 + 1);
            p
        } else {
            return Err(MmError::OutOfMemory("page-table pages"));
        };
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        Ok(pfn)
    }

    /// Returns a frame. Frames outside the region are ignored (and logged):
    /// they cannot have come from here.
    pub fn free(&mut self, pfn: Pfn) {
        if !self.contains(pfn) {
            log::error!("freeing frame {pfn:#x} that is not a table frame");
            return;
        }
        self.free.push(pfn);
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// Does `pfn` lie in the reserved table region?
    #[inline]
    pub fn contains(&self, pfn: Pfn) -> bool {
        pfn >= self.first && pfn < self.end
    }

    /// The reserved region as `[first, end)` frame numbers.
    pub fn region(&self) -> (Pfn, Pfn) {
        (self.first, self.end)
    }

    /// Frames handed out and not freed.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// The frames handed out and not freed, in frame order: what the
    /// allocator believes is in use (the census of the tables must find
    /// exactly these). Also reports whether the free list names a frame
    /// twice or one never handed out (`false`: the allocator is corrupt).
    pub fn held(&self) -> (Vec<Pfn>, bool) {
        let n = (self.next.0 - self.first.0) as usize;
        let mut free = vec![false; n];
        let mut sane = true;
        for p in &self.free {
            match p.0.checked_sub(self.first.0).map(|i| i as usize).filter(|&i| i < n) {
                Some(i) if !free[i] => free[i] = true,
                _ => sane = false,
            }
        }
        let held = (0..n).filter(|&i| !free[i]).map(|i| Pfn(self.first.0 + i as u64)).collect();
        (held, sane)
    }

    /// Highest `in_use` seen.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Frames still available.
    pub fn available(&self) -> usize {
        self.free.len() + (self.end.0 - self.next.0) as usize
    }

    /// Test hook: after `n` more successful allocations the next one fails
    /// (and every one after it, until cleared with `None`).
    pub fn inject_failure_after(&mut self, n: Option<u64>) {
        self.fail_after = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_counters() {
        let mut a = TableAllocator::new(GuestAddress(0x10000), 3 * PAGE_SIZE).unwrap();
        assert_eq!(a.available(), 3);
        let x = a.alloc().unwrap();
        let y = a.alloc().unwrap();
        assert_ne!(x, y);
        assert!(a.contains(x) && a.contains(y));
        assert_eq!(a.in_use(), 2);
        a.free(x);
        assert_eq!(a.in_use(), 1);
        assert_eq!(a.alloc().unwrap(), x);
        a.alloc().unwrap();
        assert_eq!(a.alloc(), Err(MmError::OutOfMemory("page-table pages")));
        assert_eq!(a.peak(), 3);
        a.free(Pfn(0)); // foreign frame: ignored
        assert_eq!(a.in_use(), 3);
        a.free(y);
        assert_eq!(a.held(), (vec![x, Pfn(0x12)], true));
        a.free(y); // a double free shows in `held`
        assert!(!a.held().1);
    }

    #[test]
    fn region_edges_and_frames_never_handed_out() {
        let mut a = TableAllocator::new(GuestAddress(0x10000), 4 * PAGE_SIZE).unwrap();
        assert_eq!(a.region(), (Pfn(0x10), Pfn(0x14)));
        assert!(a.contains(Pfn(0x10)) && a.contains(Pfn(0x13)));
        assert!(!a.contains(Pfn(0x14)) && !a.contains(Pfn(0xf)));
        let x = a.alloc().unwrap();
        assert_eq!(a.held(), (vec![x], true));
        // Freeing the next frame, never handed out, corrupts the free list.
        a.free(Pfn(x.0 + 1));
        assert!(!a.held().1);
    }

    #[test]
    fn injected_failure() {
        let mut a = TableAllocator::new(GuestAddress(0), 16 * PAGE_SIZE).unwrap();
        a.inject_failure_after(Some(2));
        assert!(a.alloc().is_ok());
        assert!(a.alloc().is_ok());
        assert!(a.alloc().is_err());
        assert!(a.alloc_unchecked().is_ok());
        a.inject_failure_after(None);
        assert!(a.alloc().is_ok());
    }

    #[test]
    fn bad_regions() {
        assert!(TableAllocator::new(GuestAddress(1), PAGE_SIZE).is_err());
        assert!(TableAllocator::new(GuestAddress(0), 0).is_err());
        assert!(TableAllocator::new(GuestAddress(0), 100).is_err());
        assert!(TableAllocator::new(GuestAddress(!0xfff), 2 * PAGE_SIZE).is_err());
    }
}
