//! Allocation of page-table pages: first from a guest-physical region the
//! VMM reserves for itself, then, once that is used up, from the kernel
//! page pool (as Linux allocates page tables from the page allocator).
//!
//! The allocator hands out frame numbers only; zeroing and linking a new
//! table is the page-table code's job. A pool frame it holds is lent by
//! [`Frames::take_table`] (unpinnable while lent) and goes back to the pool
//! when its table is freed, or when the allocator is dropped. It keeps
//! counters that tests read, and a failure-injection hook so tests can make
//! the Nth allocation fail.
//!
//! A *hold* ([`TableAllocator::hold_freed`]) keeps the pool frames of
//! tables freed meanwhile for this allocator (handed out again first)
//! instead of giving them back to the pool, until
//! [`TableAllocator::release_held`]: an operation that may have to put
//! back tables it freed (a fixed mapping's rollback) can then always find
//! the frames, whoever else takes pool pages in between. Region frames
//! need no hold: nobody else allocates from the region.

use vm_memory::GuestAddress;

use crate::addr::{Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::owned::OwnedSet;
use crate::frames::Frames;

/// Hands out 4 KiB frames for page tables from `[base, base + size)`, then
/// from the pool given by [`TableAllocator::with_pool`].
#[derive(Debug)]
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
    /// Where frames come from when the region is used up.
    pool: Option<Frames>,
    /// Pool frames holding a table of this allocator.
    pool_tables: OwnedSet,
    /// How many frames `pool_tables` holds.
    pool_in_use: usize,
    /// `Some` during a hold: pool frames of tables freed meanwhile, kept
    /// off the pool and handed out again first.
    held: Option<Vec<Pfn>>,
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
            pool: None,
            pool_tables: OwnedSet::default(),
            pool_in_use: 0,
            held: None,
        })
    }

    /// An allocator without a region of its own: every table comes from
    /// `frames`' pool (a forked child's tables, as Linux's come from the
    /// page allocator). The pool's frames must lie in the guest memory the
    /// tables are built in.
    pub fn pool_only(frames: Frames) -> Self {
        TableAllocator {
            first: Pfn(0),
            end: Pfn(0),
            free: Vec::new(),
            next: Pfn(0),
            in_use: 0,
            fail_after: None,
            peak: 0,
            pool: Some(frames),
            pool_tables: OwnedSet::default(),
            pool_in_use: 0,
            held: None,
        }
    }

    /// The same allocator, borrowing frames from `frames`' pool once its
    /// region is used up. The pool's frames must lie in the guest memory
    /// the tables are built in.
    pub fn with_pool(mut self, frames: Frames) -> Self {
        self.pool = Some(frames);
        self
    }

    /// Takes one frame. Fails with `ENOMEM` when the region and the pool
    /// are exhausted or when an injected failure is due.
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
    /// put back what an operation took away. In order: a frame held back
    /// by a hold, a freed region frame, a region frame never handed out, a
    /// pool frame.
    pub fn alloc_unchecked(&mut self) -> Result<Pfn, MmError> {
        let pfn = if let Some(p) = self.held.as_mut().and_then(Vec::pop) {
            self.lent(p)
        } else if let Some(p) = self.free.pop() {
            p
        } else if self.next < self.end {
            let p = self.next;
            self.next = Pfn(self.next.0 + 1);
            p
        } else if let Some(pool) = &self.pool {
            let p = pool.take_table()?;
            self.lent(p)
        } else {
            return Err(MmError::OutOfMemory("page-table pages"));
        };
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        Ok(pfn)
    }

    /// Records pool frame `p` as holding one of this allocator's tables.
    fn lent(&mut self, p: Pfn) -> Pfn {
        self.pool_tables.insert(p);
        self.pool_in_use += 1;
        p
    }

    /// Returns a frame: a region frame to the region's free list, a pool
    /// frame to the pool (or, during a hold, to the held frames). Frames
    /// that are neither are ignored (and logged): they cannot have come
    /// from here.
    pub fn free(&mut self, pfn: Pfn) {
        if self.in_region(pfn) {
            self.free.push(pfn);
        } else if self.pool_tables.remove(pfn) {
            self.pool_in_use -= 1;
            match (&mut self.held, &self.pool) {
                (Some(held), _) => held.push(pfn),
                (None, Some(pool)) => {
                    pool.give_table(pfn);
                }
                (None, None) => log::error!("pool table frame {pfn:#x} without a pool"),
            }
        } else {
            log::error!("freeing frame {pfn:#x} that is not a table frame");
            return;
        }
        self.in_use = self.in_use.saturating_sub(1);
    }

    /// Starts a hold (see the module docs); a hold already running goes
    /// on.
    pub fn hold_freed(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Ends a hold: the pool frames it kept go back to the pool.
    pub fn release_held(&mut self) {
        let Some(held) = self.held.take() else { return };
        if let Some(pool) = &self.pool {
            for p in held {
                pool.give_table(p);
            }
        }
    }

    /// Frames a hold keeps for this allocator right now.
    pub fn held_back(&self) -> usize {
        self.held.as_ref().map_or(0, Vec::len)
    }

    /// Is `pfn` a table frame: in the reserved region, or a pool frame
    /// holding one of this allocator's tables?
    #[inline]
    pub fn contains(&self, pfn: Pfn) -> bool {
        self.in_region(pfn) || (self.pool_in_use != 0 && self.pool_tables.contains(pfn))
    }

    /// Does `pfn` lie in the reserved table region?
    #[inline]
    pub fn in_region(&self, pfn: Pfn) -> bool {
        pfn >= self.first && pfn < self.end
    }

    /// The reserved region as `[first, end)` frame numbers.
    pub fn region(&self) -> (Pfn, Pfn) {
        (self.first, self.end)
    }

    /// Frames handed out and not freed (region and pool).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Pool frames handed out and not freed.
    pub fn pool_in_use(&self) -> usize {
        self.pool_in_use
    }

    /// The frames handed out and not freed, in frame order, region and
    /// pool: what the allocator believes is in use (the census of the
    /// tables must find exactly these). Also reports whether the free list
    /// names a frame twice or one never handed out (`false`: the allocator
    /// is corrupt).
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
        let mut held: Vec<Pfn> = (0..n).filter(|&i| !free[i]).map(|i| Pfn(self.first.0 + i as u64)).collect();
        held.extend(self.pool_tables.in_range(0..u64::MAX));
        held.sort_unstable();
        (held, sane)
    }

    /// Highest `in_use` seen.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Region frames still available (the pool's free pages come on top).
    pub fn available(&self) -> usize {
        self.free.len() + (self.end.0 - self.next.0) as usize
    }

    /// Test hook: after `n` more successful allocations the next one fails
    /// (and every one after it, until cleared with `None`).
    pub fn inject_failure_after(&mut self, n: Option<u64>) {
        self.fail_after = n;
    }
}

impl Drop for TableAllocator {
    /// The pool frames still lent go back to the pool: the tables go with
    /// the allocator (region frames need nothing).
    fn drop(&mut self) {
        self.release_held();
        if let Some(pool) = &self.pool {
            for p in self.pool_tables.in_range(0..u64::MAX) {
                pool.give_table(p);
            }
        }
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

    #[test]
    fn the_pool_after_the_region_and_a_hold_keeps_freed_pool_frames() {
        let frames = Frames::new(64, Some((GuestAddress(32 * PAGE_SIZE), 4 * PAGE_SIZE))).unwrap();
        let mut a = TableAllocator::new(GuestAddress(0x10000), PAGE_SIZE).unwrap().with_pool(frames.clone());
        let r = a.alloc().unwrap();
        let p1 = a.alloc().unwrap();
        let p2 = a.alloc().unwrap();
        assert_eq!((r, p1, p2), (Pfn(0x10), Pfn(32), Pfn(33)));
        assert!(a.contains(p1) && !a.in_region(p1) && !a.contains(Pfn(34)));
        assert_eq!((a.in_use(), a.pool_in_use(), frames.pool_free()), (3, 2, 2));
        assert_eq!(a.held(), (vec![r, p1, p2], true));
        // A held frame stays off the pool and is handed out again first.
        a.hold_freed();
        a.free(p1);
        assert_eq!((a.in_use(), a.pool_in_use(), a.held_back(), frames.pool_free()), (2, 1, 1, 2));
        assert!(!a.contains(p1));
        assert_eq!(a.held(), (vec![r, p2], true));
        a.free(r);
        assert_eq!(a.alloc().unwrap(), p1);
        a.free(p1);
        a.release_held();
        assert_eq!((a.held_back(), frames.pool_free(), frames.lock().pool_tables()), (0, 3, 1));
        // Without a hold a freed pool frame goes straight back; dropping
        // the allocator gives back what it still holds.
        a.free(p2);
        assert_eq!(frames.pool_free(), 4);
        let _ = a.alloc().unwrap();
        let q = a.alloc().unwrap();
        assert_eq!((frames.pool_free(), frames.lock().pool_tables()), (3, 1));
        assert!(frames.pin(std::sync::Arc::from([q].as_slice())).is_err());
        drop(a);
        assert_eq!((frames.pool_free(), frames.lock().pool_tables()), (4, 0));
    }
}
