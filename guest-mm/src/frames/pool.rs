//! The kernel page pool and the shared frame state.
//!
//! Guest pages handed out for page arrays (the zero provider, kernel page
//! buffers, lazily faulted anonymous pages) come from the pool's regions
//! of guest RAM. A pool frame is free only when nobody owns it and nothing
//! pins it, so a frame stays allocated while any mapping uses it, even
//! after its owner let go: the mapping's VMA holds the pinned array (see
//! [`crate::frames::Pinned`]).
//!
//! The pool may span all of a guest's free RAM in several regions: its
//! bookkeeping ([`FreeList`], [`OwnedSet`]) costs host memory for the
//! frames handed out, not for the frames it could hand out, and it never
//! touches a guest page until the page is handed out.
//!
//! Pin counts live here too, behind one lock, because freeing a frame needs
//! both. The lock is taken once per operation, never per page.
//!
//! When its own region is used up, the page-table allocator borrows pool
//! frames one at a time ([`Frames::take_table`], as Linux allocates page
//! tables from the page allocator). Such a frame is neither owned nor
//! pinned: its pin slot holds the table sentinel, so nothing can pin it
//! (`EPERM`, as a VMM-reserved frame) and the pool does not hand it out
//! until the allocator gives it back ([`Frames::give_table`]).

use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::free_list::{FreeList, FreeView};
use crate::frames::owned::OwnedSet;
use crate::frames::{PhysLayout, PinCounts};

/// Pin counts and pool state, guarded together.
#[derive(Debug)]
pub struct FrameState {
    pub(super) pins: PinCounts,
    pub(super) free: FreeList,
    pub(super) owned: OwnedSet,
    /// Pool frames lent to page-table allocators.
    pub(super) tables: u64,
}

impl FrameState {
    fn is_pool(&self, pfn: Pfn) -> bool {
        self.free.region_of(pfn).is_some()
    }

    /// Is `pfn` a pool frame that nobody owns, nothing pins and no page
    /// table uses?
    fn unused_pool_frame(&self, pfn: Pfn) -> bool {
        self.is_pool(pfn) && !self.owned.contains(pfn) && self.pins.get(pfn) == 0 && !self.pins.is_table(pfn)
    }

    /// Is `pfn` off the free list for a reason: owned, pinned, or lent
    /// to a page-table allocator?
    pub(super) fn in_use(&self, pfn: Pfn) -> bool {
        self.owned.contains(pfn) || self.pins.get(pfn) > 0 || self.pins.is_table(pfn)
    }

    /// Does exactly one pin, and no owner, hold `pfn`? The write fault on a
    /// fork-shared page asks this about a frame its own faulted run pins:
    /// then no other space (and no provider) can see the frame, and it may
    /// be made writable in place (`wp_page_reuse`).
    pub(crate) fn only_one_pin(&self, pfn: Pfn) -> bool {
        self.pins.get(pfn) == 1 && !self.owned.contains(pfn)
    }

    /// Returns `pfn` to the free list if it is a pool frame that no owner
    /// holds and nothing pins.
    fn release(&mut self, pfn: Pfn) {
        if self.unused_pool_frame(pfn) {
            self.free.give(pfn);
        }
    }

    /// Pins every frame of `pfns` or none (see [`PinCounts::pin_all`]).
    /// A pool frame must be owned or already pinned: one on the free list
    /// would go back on it a second time when unpinned.
    pub(crate) fn pin_all(&mut self, pfns: &[Pfn]) -> Result<(), MmError> {
        if pfns.iter().any(|&p| self.unused_pool_frame(p)) {
            return Err(MmError::Invalid("a free pool frame cannot be pinned"));
        }
        self.pins.pin_all(pfns)
    }

    /// Drops one pin of each frame of `pfns`; pool frames left without
    /// pin and owner return to the pool.
    pub(crate) fn unpin_all(&mut self, pfns: &[Pfn]) {
        for &p in pfns {
            if self.pins.unpin(p) {
                self.release(p);
            }
        }
    }

    /// Pool frames lent to page-table allocators ([`Frames::take_table`]).
    pub fn pool_tables(&self) -> u64 {
        self.tables
    }

    /// The pin counts.
    pub fn pins(&self) -> &PinCounts {
        &self.pins
    }

    /// Pool frames available.
    pub fn pool_free(&self) -> usize {
        usize::try_from(self.free.len()).unwrap_or(usize::MAX)
    }

    /// The pool's regions, `[first, end)` each, ascending.
    pub fn pool_regions(&self) -> Vec<(Pfn, Pfn)> {
        self.free.regions().iter().map(|r| (Pfn(r.first), Pfn(r.end))).collect()
    }

    /// Frames in the pool's regions.
    pub fn pool_total(&self) -> u64 {
        self.free.total()
    }

    /// The free pool frames (the ones [`Frames::alloc`] may hand out next,
    /// in that order). As many as are free: for small pools and tests;
    /// [`FrameState::free_view`] answers membership.
    pub fn free_frames(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.free.iter()
    }

    /// A snapshot of the free frames that answers "is this frame free?"
    /// in logarithmic time (costs one sort of the returned frames).
    pub fn free_view(&self) -> FreeView {
        self.free.view()
    }

    /// Host bytes the pool's bookkeeping holds (free list and owner set;
    /// not the pin counts). Grows with the frames handed out, not with the
    /// size of the pool.
    pub fn pool_host_bytes(&self) -> usize {
        self.free.host_bytes() + self.owned.host_bytes()
    }
}

/// The shared state and what never changes after creation.
#[derive(Debug)]
struct Shared {
    state: Mutex<FrameState>,
    /// Frames tracked (`0..nr_frames`): guest RAM's end.
    nr_frames: u64,
}

/// A handle to the shared frame state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Frames(Arc<Shared>);

impl Frames {
    /// Frame state for `ram_frames` frames of RAM and an optional pool
    /// region (page aligned, inside RAM). Every frame is pinnable until
    /// [`Frames::block`] says otherwise.
    pub fn new(ram_frames: u64, pool: Option<(GuestAddress, u64)>) -> Result<Self, MmError> {
        Self::with_pool_regions(ram_frames, pool.as_slice())
    }

    /// Frame state for `ram_frames` frames of RAM and a pool over
    /// `regions` (each page aligned, below `ram_frames`, none overlapping
    /// another; empty ones are ignored). Costs host memory per region, not
    /// per frame: see [`FrameState::pool_host_bytes`].
    pub fn with_pool_regions(ram_frames: u64, regions: &[(GuestAddress, u64)]) -> Result<Self, MmError> {
        let mut frames = Vec::with_capacity(regions.len());
        for &(base, size) in regions {
            if base.0 % PAGE_SIZE != 0 || size % PAGE_SIZE != 0 {
                return Err(MmError::Misaligned { what: "pool region", value: base.0 | size, align: PAGE_SIZE });
            }
            let end = base.0.checked_add(size).ok_or(MmError::Overflow { addr: base.0, len: size })? >> PAGE_SHIFT;
            if end > ram_frames {
                return Err(MmError::Invalid("pool region outside guest RAM"));
            }
            frames.push((Pfn(base.0 >> PAGE_SHIFT), Pfn(end)));
        }
        let state = FrameState {
            pins: PinCounts::new(ram_frames),
            free: FreeList::new(&frames)?,
            owned: OwnedSet::default(),
            tables: 0,
        };
        Ok(Frames(Arc::new(Shared { state: Mutex::new(state), nr_frames: ram_frames })))
    }

    /// Makes the holes and reserved ranges of `layout` unpinnable.
    pub fn block(&self, layout: &PhysLayout) {
        self.lock().pins.block(layout);
    }

    /// Locks the state. A poisoned lock is taken over: the state is plain
    /// data that every operation leaves consistent before it can panic.
    pub fn lock(&self) -> MutexGuard<'_, FrameState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames tracked: every pinned frame is below this.
    pub fn nr_frames(&self) -> u64 {
        self.0.nr_frames
    }

    /// Is `other` a handle to the same frame state?
    pub fn same(&self, other: &Frames) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Takes `n` pool pages, owned by the returned handle. `ENOMEM` when
    /// the pool has fewer free pages. The pages hold whatever they last
    /// held: the new owner zeroes them ([`PoolPages::zero`]) or overwrites
    /// them.
    pub fn alloc(&self, n: u64) -> Result<PoolPages, MmError> {
        let mut st = self.lock();
        let pfns = st.free.take(n).ok_or(MmError::OutOfMemory("pool pages"))?;
        for &p in &pfns {
            st.owned.insert(p);
        }
        drop(st);
        Ok(PoolPages { frames: self.clone(), pfns: pfns.into() })
    }

    /// Takes `n` contiguous pool pages (`n` a power of two) whose first
    /// frame is a multiple of `n`, owned by the returned handle, in
    /// ascending order: the frames of a transparent huge page. `ENOMEM`
    /// when no such block is free (fragmentation included); the caller
    /// falls back to single pages. The pages hold whatever they held.
    pub fn alloc_block(&self, n: u64) -> Result<PoolPages, MmError> {
        let mut st = self.lock();
        let pfns = st.free.take_block(n).ok_or(MmError::OutOfMemory("contiguous pool pages"))?;
        for &p in &pfns {
            st.owned.insert(p);
        }
        drop(st);
        Ok(PoolPages { frames: self.clone(), pfns: pfns.into() })
    }

    /// Pool pages free.
    pub fn pool_free(&self) -> usize {
        self.lock().pool_free()
    }

    /// Lends one free pool frame to a page-table allocator: until
    /// [`Frames::give_table`] it is off the free list and cannot be pinned
    /// (so no page array, and no mapping built on one, can ever name it).
    /// The frame holds whatever it last held: the page-table code zeroes or
    /// overwrites a table before linking it. `ENOMEM` when the pool is
    /// empty.
    pub fn take_table(&self) -> Result<Pfn, MmError> {
        let mut st = self.lock();
        let pfn = st.free.take(1).and_then(|v| v.first().copied()).ok_or(MmError::OutOfMemory("page-table pages"))?;
        if !st.pins.mark_table(pfn) {
            // A free frame is unpinned; anything else is a corrupt free
            // list. The frame stays off it (leaked, which the census
            // reports) rather than become a table something pins.
            log::error!("free pool frame {pfn:#x} is pinned or blocked");
            return Err(MmError::OutOfMemory("page-table pages"));
        }
        st.tables += 1;
        Ok(pfn)
    }

    /// Takes back a frame lent by [`Frames::take_table`]; it returns to
    /// the free list. False (nothing changed, logged) if `pfn` is not a
    /// lent pool frame.
    pub fn give_table(&self, pfn: Pfn) -> bool {
        let mut st = self.lock();
        if !st.is_pool(pfn) || !st.pins.unmark_table(pfn) {
            log::error!("frame {pfn:#x} given back as a page table was not lent as one");
            return false;
        }
        st.tables = st.tables.saturating_sub(1);
        st.release(pfn);
        true
    }

    /// The pin count of `pfn`.
    pub fn pin_count(&self, pfn: Pfn) -> u32 {
        self.lock().pins.get(pfn)
    }
}

/// Pool pages owned by their holder; dropping it gives up ownership (the
/// pages stay allocated while anything pins them).
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
        for &p in self.pfns.iter() {
            st.owned.remove(p);
            st.release(p);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_pins_keep_frames() {
        let f = Frames::new(64, Some((GuestAddress(16 * PAGE_SIZE), 8 * PAGE_SIZE))).unwrap();
        assert_eq!(f.pool_free(), 8);
        let pages = f.alloc(3).unwrap();
        assert_eq!(pages.pfns().as_ref(), &[Pfn(16), Pfn(17), Pfn(18)]);
        assert_eq!(f.pool_free(), 5);
        assert!(f.alloc(6).is_err());
        // Something pins frame 17 (twice); the owner lets go.
        let pin = f.pin(Arc::from([Pfn(17), Pfn(17)].as_slice())).unwrap();
        assert_eq!(f.pin_count(Pfn(17)), 2);
        drop(pages);
        assert_eq!(f.pool_free(), 7);
        assert!(!f.lock().free_frames().any(|p| p == Pfn(17)));
        {
            // Pinned, not owned: used, not leaked; the lock's view agrees.
            let st = f.lock();
            let c = st.pool_census();
            assert_eq!((c.total, c.free, c.used, c.leaked.len()), (8, 7, 1, 0));
            assert_eq!((st.pool_free(), st.free_frames().count(), st.pins().get(Pfn(17))), (7, 7, 2));
        }
        // A clone keeps the pin; the last one gives frame 17 back.
        let again = pin.clone();
        drop(pin);
        assert_eq!((f.pool_free(), f.pin_count(Pfn(17))), (7, 2));
        drop(again);
        assert_eq!((f.pool_free(), f.pin_count(Pfn(17))), (8, 0));
        let c = f.lock().pool_census();
        assert_eq!((c.total, c.free, c.used, c.leaked.len()), (8, 8, 0, 0));
    }

    #[test]
    fn zero_clears_every_page_it_owns_and_no_other() {
        use vm_memory::{Bytes, GuestMemoryMmap};
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 32 * PAGE_SIZE as usize)]).unwrap();
        let f = Frames::new(32, Some((GuestAddress(16 * PAGE_SIZE), 4 * PAGE_SIZE))).unwrap();
        for p in 15..21u64 {
            mem.write_slice(&[0xa5; PAGE_SIZE as usize], GuestAddress(p * PAGE_SIZE)).unwrap();
        }
        let pages = f.alloc(2).unwrap();
        pages.zero(&mem).unwrap();
        let mut page = [0u8; PAGE_SIZE as usize];
        for p in 15..21u64 {
            mem.read_slice(&mut page, GuestAddress(p * PAGE_SIZE)).unwrap();
            let owned = pages.pfns().contains(&Pfn(p));
            assert!(page.iter().all(|&b| b == if owned { 0 } else { 0xa5 }), "frame {p}");
        }
    }

    #[test]
    fn census_finds_each_kind_of_bad_frame() {
        let f = Frames::new(64, Some((GuestAddress(16 * PAGE_SIZE), 8 * PAGE_SIZE))).unwrap();
        let pages = f.alloc(3).unwrap();
        let c = f.lock().pool_census();
        assert_eq!((c.total, c.free, c.used), (8, 5, 3));
        let mut st = f.lock();
        // Owner gone without a release: leaked.
        st.owned.remove(Pfn(16));
        // A used frame put on the free list; a free one released twice.
        st.free.push_for_test(Pfn(17));
        st.release(Pfn(23));
        st.free.push_for_test(Pfn(3));
        // One past the pool's last frame is outside it too.
        st.free.push_for_test(Pfn(24));
        let c = st.pool_census();
        assert_eq!(c.leaked, vec![Pfn(16)]);
        assert_eq!(c.free_but_used, vec![Pfn(17)]);
        assert_eq!(c.free_twice, vec![Pfn(23)]);
        assert_eq!(c.foreign_free, vec![Pfn(3), Pfn(24)]);
        assert_eq!((c.free, c.used), (4, 1));
        drop(st);
        std::mem::forget(pages);
    }

    #[test]
    fn a_pinned_frame_is_not_freed_by_its_owner_until_unpinned() {
        let f = Frames::new(64, Some((GuestAddress(0), 4 * PAGE_SIZE))).unwrap();
        let pages = f.alloc(4).unwrap();
        let pin = f.pin(pages.pfns().clone()).unwrap();
        drop(pages);
        assert_eq!(f.pool_free(), 0);
        assert!(f.alloc(1).is_err(), "a pinned frame was handed out again");
        drop(pin);
        assert_eq!(f.pool_free(), 4);
    }

    #[test]
    fn a_free_pool_frame_cannot_be_pinned() {
        // Pinned while free, it would go back on the free list a second
        // time when unpinned and be handed out twice.
        let f = Frames::new(64, Some((GuestAddress(16 * PAGE_SIZE), 4 * PAGE_SIZE))).unwrap();
        assert!(f.pin(Arc::from([Pfn(17)].as_slice())).is_err());
        assert_eq!((f.pool_free(), f.pin_count(Pfn(17))), (4, 0));
        let c = f.lock().pool_census();
        assert!(c.free_twice.is_empty() && c.free == 4, "{c:?}");
        // Owned, it can; a pinned frame whose owner left can be pinned again.
        let pages = f.alloc(1).unwrap();
        let p = pages.pfns()[0];
        let pin = f.pin(Arc::from([p].as_slice())).unwrap();
        drop(pages);
        let again = f.pin(Arc::from([p].as_slice())).unwrap();
        drop((pin, again));
        let c = f.lock().pool_census();
        assert_eq!((c.free, c.used, c.free_twice.len()), (4, 0, 0), "{c:?}");
    }

    #[test]
    fn bad_pool_regions() {
        assert!(Frames::new(8, Some((GuestAddress(0), 16 * PAGE_SIZE))).is_err());
        assert!(Frames::new(8, Some((GuestAddress(1), PAGE_SIZE))).is_err());
        assert!(Frames::new(8, None).unwrap().alloc(1).is_err());
    }
}
