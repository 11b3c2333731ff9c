//! The pool census: where every pool frame is, checked from the free
//! list, the owner set and the pin counts.
//!
//! It costs the frames ever handed out plus a sort of the returned ones,
//! not the size of the pool: a region's never-handed-out part is counted
//! in one step and checked only against the owner set (sparse). Pins
//! there are not searched for, because the one way to pin
//! ([`FrameState::pin_all`]) refuses a free pool frame; the census would
//! otherwise have to read one pin count per frame of the pool.

use crate::addr::Pfn;
use crate::frames::FrameState;

/// Where every pool frame is, from [`FrameState::pool_census`]. In a
/// sound state `free + used == total` and every list is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolCensus {
    /// Frames in the pool.
    pub total: usize,
    /// On the free list once, with no owner and no pin.
    pub free: usize,
    /// Off the free list, owned, pinned or lent as a page table.
    pub used: usize,
    /// Off the free list, yet neither owned nor pinned: lost for good.
    pub leaked: Vec<Pfn>,
    /// On the free list while owned or pinned: would be handed out twice.
    pub free_but_used: Vec<Pfn>,
    /// On the free list more than once (returned twice, or returned while
    /// never handed out).
    pub free_twice: Vec<Pfn>,
    /// On the free list but not a pool frame.
    pub foreign_free: Vec<Pfn>,
}

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl FrameState {
    /// Accounts for every pool frame: free (on the free list), or used
    /// (owned by a [`crate::frames::PoolPages`] handle, pinned, or lent to a
    /// page-table allocator). See
    /// [`PoolCensus`].
    pub fn pool_census(&self) -> PoolCensus {
        let mut c = PoolCensus { total: count(self.free.total()), ..PoolCensus::default() };
        let used = |p: Pfn| self.in_use(p);
        let mut listed: Vec<Pfn> = self.free.returned().to_vec();
        listed.sort_unstable();
        // The returned frames, each distinct frame once, with how often
        // it is on the stack. Those of a region's handed-out part are
        // kept (sorted) for the walk below.
        let mut handed_back: Vec<Pfn> = Vec::new();
        // Never-handed-out frames that are on the stack as well: counted
        // there (free twice), not again with their region's free part.
        let mut tail_twice: Vec<Pfn> = Vec::new();
        let mut i = 0;
        while let Some(&p) = listed.get(i) {
            let times = listed[i..].iter().take_while(|&&q| q == p).count();
            i += times;
            match self.free.region_of(p) {
                None => c.foreign_free.extend(std::iter::repeat_n(p, times)),
                Some(r) if p.0 >= r.next => {
                    c.free_twice.push(p);
                    tail_twice.push(p);
                }
                Some(_) => {
                    handed_back.push(p);
                    match (times, used(p)) {
                        (1, false) => c.free += 1,
                        (1, true) => c.free_but_used.push(p),
                        _ => c.free_twice.push(p),
                    }
                }
            }
        }
        let mut back = handed_back.iter().peekable();
        for r in self.free.regions() {
            for p in (r.first..r.next).map(Pfn) {
                if back.next_if_eq(&&p).is_some() {
                    continue;
                }
                if used(p) {
                    c.used += 1;
                } else {
                    c.leaked.push(p);
                }
            }
            let owned_free = self.owned.in_range(r.next..r.end);
            let twice = tail_twice.iter().filter(|p| (r.next..r.end).contains(&p.0)).count();
            c.free += count(r.end - r.next).saturating_sub(owned_free.len() + twice);
            c.free_but_used.extend(owned_free);
        }
        c.free_but_used.sort_unstable();
        c.free_twice.sort_unstable();
        c
    }
}
