//! The kernel page pool and the shared frame state.
//!
//! Guest pages handed out for page arrays (the zero provider, kernel page
//! buffers) come from a pool region of guest RAM. A pool frame is free only
//! when nobody owns it and no mapping counts it, so a frame stays allocated
//! while any mapping uses it, even after its owner let go.
//!
//! Map counts live here too, behind one lock, because freeing a frame needs
//! both. The lock is taken once per operation, never per page.

use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::MapCounts;

/// Map counts and pool state, guarded together.
#[derive(Debug)]
pub struct FrameState {
    /// Per-frame map counts for all of guest RAM.
    pub counts: MapCounts,
    first: Pfn,
    end: Pfn,
    free: Vec<Pfn>,
    owned: Vec<bool>,
}

impl FrameState {
    fn is_pool(&self, pfn: Pfn) -> bool {
        pfn >= self.first && pfn < self.end
    }

    /// Takes back frames whose map count reached zero, if they are pool
    /// frames no owner holds.
    pub fn release(&mut self, released: &[Pfn]) {
        for &p in released {
            if self.is_pool(p) && !self.owned[(p.0 - self.first.0) as usize] && self.counts.get(p) == 0 {
                self.free.push(p);
            }
        }
    }

    /// Pool frames available.
    pub fn pool_free(&self) -> usize {
        self.free.len()
    }

    /// Accounts for every pool frame: free (on the free list), or used
    /// (owned by a [`PoolPages`] handle or counted by a mapping). See
    /// [`PoolCensus`].
    pub fn pool_census(&self) -> PoolCensus {
        let n = (self.end.0 - self.first.0) as usize;
        let mut on_list = vec![0u32; n];
        let mut c = PoolCensus { total: n, ..PoolCensus::default() };
        for p in &self.free {
            match p.0.checked_sub(self.first.0).map(|i| i as usize).filter(|&i| i < n) {
                Some(i) => on_list[i] += 1,
                None => c.foreign_free.push(*p),
            }
        }
        for (i, &times) in on_list.iter().enumerate() {
            let pfn = Pfn(self.first.0 + i as u64);
            let used = self.owned[i] || self.counts.get(pfn) > 0;
            match (times, used) {
                (0, true) => c.used += 1,
                (0, false) => c.leaked.push(pfn),
                (1, false) => c.free += 1,
                (1, true) => c.free_but_used.push(pfn),
                _ => c.free_twice.push(pfn),
            }
        }
        c
    }
}

/// Where every pool frame is, from [`FrameState::pool_census`]. In a
/// sound state `free + used == total` and every list is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolCensus {
    /// Frames in the pool.
    pub total: usize,
    /// On the free list once, with no owner and no mapping.
    pub free: usize,
    /// Off the free list, owned or mapped.
    pub used: usize,
    /// Off the free list, yet neither owned nor mapped: lost for good.
    pub leaked: Vec<Pfn>,
    /// On the free list while owned or mapped: would be handed out twice.
    pub free_but_used: Vec<Pfn>,
    /// On the free list more than once.
    pub free_twice: Vec<Pfn>,
    /// On the free list but not a pool frame.
    pub foreign_free: Vec<Pfn>,
}

/// A handle to the shared frame state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Frames(Arc<Mutex<FrameState>>);

impl Frames {
    /// Frame state for `ram_frames` frames of RAM and an optional pool
    /// region (page aligned, inside RAM).
    pub fn new(ram_frames: u64, pool: Option<(GuestAddress, u64)>) -> Result<Self, MmError> {
        let (first, end) = match pool {
            Some((base, size)) => {
                if base.0 % PAGE_SIZE != 0 || size % PAGE_SIZE != 0 {
                    return Err(MmError::Misaligned { what: "pool region", value: base.0 | size, align: PAGE_SIZE });
                }
                let end = base.0.checked_add(size).ok_or(MmError::Overflow { addr: base.0, len: size })? >> PAGE_SHIFT;
                if end > ram_frames {
                    return Err(MmError::Invalid("pool region outside guest RAM"));
                }
                (base.0 >> PAGE_SHIFT, end)
            }
            None => (0, 0),
        };
        // Reversed so that pops hand out ascending frames.
        let free: Vec<Pfn> = (first..end).rev().map(Pfn).collect();
        Ok(Frames(Arc::new(Mutex::new(FrameState {
            counts: MapCounts::new(ram_frames),
            first: Pfn(first),
            end: Pfn(end),
            owned: vec![false; (end - first) as usize],
            free,
        }))))
    }

    /// Locks the state. A poisoned lock is taken over: the state is plain
    /// data that every operation leaves consistent before it can panic.
    pub fn lock(&self) -> MutexGuard<'_, FrameState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `n` pool pages, owned by the returned handle. `ENOMEM` when
    /// the pool has fewer free pages.
    pub fn alloc(&self, n: u64) -> Result<PoolPages, MmError> {
        let mut st = self.lock();
        let n = usize::try_from(n).map_err(|_| MmError::OutOfMemory("pool pages"))?;
        if st.free.len() < n {
            return Err(MmError::OutOfMemory("pool pages"));
        }
        let at = st.free.len() - n;
        let mut pfns = st.free.split_off(at);
        pfns.reverse();
        let first = st.first.0;
        for p in &pfns {
            st.owned[(p.0 - first) as usize] = true;
        }
        drop(st);
        Ok(PoolPages { frames: self.clone(), pfns: pfns.into() })
    }

    /// Pool pages free.
    pub fn pool_free(&self) -> usize {
        self.lock().free.len()
    }
}

/// Pool pages owned by their holder; dropping it gives up ownership (the
/// pages stay allocated while mappings count them).
#[derive(Debug)]
pub struct PoolPages {
    frames: Frames,
    pfns: Arc<[Pfn]>,
}

impl PoolPages {
    /// The frames, in allocation order.
    pub fn pfns(&self) -> &Arc<[Pfn]> {
        &self.pfns
    }

    /// Zeroes every page.
    pub fn zero<M: GuestMemory>(&self, mem: &M) -> Result<(), MmError> {
        static ZERO: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];
        for p in self.pfns.iter() {
            mem.write_slice(&ZERO, p.addr()).map_err(|_| MmError::GuestMemory { addr: p.addr().0 })?;
        }
        Ok(())
    }
}

impl Drop for PoolPages {
    fn drop(&mut self) {
        let mut st = self.frames.lock();
        let first = st.first.0;
        for &p in self.pfns.iter() {
            st.owned[(p.0 - first) as usize] = false;
            if st.counts.get(p) == 0 {
                st.free.push(p);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_map_counts_keep_frames() {
        let f = Frames::new(64, Some((GuestAddress(16 * PAGE_SIZE), 8 * PAGE_SIZE))).unwrap();
        assert_eq!(f.pool_free(), 8);
        let pages = f.alloc(3).unwrap();
        assert_eq!(pages.pfns().as_ref(), &[Pfn(16), Pfn(17), Pfn(18)]);
        assert_eq!(f.pool_free(), 5);
        assert!(f.alloc(6).is_err());
        // A mapping counts frame 17; the owner lets go.
        f.lock().counts.inc(Pfn(17));
        drop(pages);
        assert_eq!(f.pool_free(), 7);
        // Unmapped: frame 17 comes back.
        {
            let mut st = f.lock();
            assert!(st.counts.dec(Pfn(17)));
            st.release(&[Pfn(17)]);
        }
        assert_eq!(f.pool_free(), 8);
        let c = f.lock().pool_census();
        assert_eq!((c.total, c.free, c.used, c.leaked.len()), (8, 8, 0, 0));
    }

    #[test]
    fn census_finds_each_kind_of_bad_frame() {
        let f = Frames::new(64, Some((GuestAddress(16 * PAGE_SIZE), 8 * PAGE_SIZE))).unwrap();
        let pages = f.alloc(3).unwrap();
        let c = f.lock().pool_census();
        assert_eq!((c.total, c.free, c.used), (8, 5, 3));
        let mut st = f.lock();
        // Counted, owner gone, count dropped without a release: leaked.
        st.counts.inc(Pfn(16));
        st.owned[0] = false;
        assert!(st.counts.dec(Pfn(16)));
        // A used frame put on the free list; a free one released twice.
        st.free.push(Pfn(17));
        st.release(&[Pfn(23)]);
        st.free.push(Pfn(3));
        let c = st.pool_census();
        assert_eq!(c.leaked, vec![Pfn(16)]);
        assert_eq!(c.free_but_used, vec![Pfn(17)]);
        assert_eq!(c.free_twice, vec![Pfn(23)]);
        assert_eq!(c.foreign_free, vec![Pfn(3)]);
        assert_eq!((c.free, c.used), (4, 1));
        drop(st);
        std::mem::forget(pages);
    }

    #[test]
    fn bad_pool_regions() {
        assert!(Frames::new(8, Some((GuestAddress(0), 16 * PAGE_SIZE))).is_err());
        assert!(Frames::new(8, Some((GuestAddress(1), PAGE_SIZE))).is_err());
        assert!(Frames::new(8, None).unwrap().alloc(1).is_err());
    }
}
