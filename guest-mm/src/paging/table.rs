//! A view of one 4 KiB page table in guest memory as 512 `AtomicU64`s.
//!
//! This is the only `unsafe` code of the paging module. A view is made
//! once per table visit from a [`vm_memory::VolatileSlice`] that
//! vm-memory validated (inside guest memory, one contiguous host
//! mapping); the view then checks the host pointer once (4 KiB long,
//! 8-byte aligned) and every entry access afterwards is a plain
//! bounds-free `Relaxed` 8-byte atomic load or store. Atomics, not
//! volatile copies, because a running vCPU's page walker reads (and sets
//! accessed/dirty bits in) the same words concurrently: each entry must
//! change in one aligned 8-byte store, never torn. The one exception is
//! [`Table::fill_unlinked`], for a new table no walker can reach yet: its
//! plain stores may be combined into vector stores.
//!
//! This module does not know what an entry means; see `entry.rs`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use vm_memory::bitmap::Bitmap;
use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};
use vm_memory::{GuestAddress, GuestMemory, Permissions};

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;

/// Entries per table.
pub(crate) const ENTRIES: usize = 512;

#[cfg(test)]
thread_local! {
    /// Test hook run at [`race_point`]: what a walker on another CPU does
    /// between a writer's read of an entry and its change.
    pub(crate) static RACE: std::cell::Cell<Option<fn(&AtomicU64)>> = const { std::cell::Cell::new(None) };
    /// Tables viewed on this thread (every walk and write goes through
    /// [`Table::new`]): what a test of a walk's cost counts.
    pub(crate) static VIEWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Tables viewed on this thread so far (tests only): a walk's work in
/// units that do not depend on the host's speed.
#[cfg(test)]
pub(crate) fn views() -> u64 {
    VIEWS.with(|v| v.get())
}

/// Where a writer has read entry `e` and is about to change it: a walker
/// on another CPU may set its Accessed bit just now, which the change must
/// not lose (see `flush.rs`). Nothing outside tests ([`RACE`]).
#[inline(always)]
pub(crate) fn race_point(e: &AtomicU64) {
    #[cfg(test)]
    RACE.with(|r| {
        if let Some(f) = r.get() {
            f(e)
        }
    });
    #[cfg(not(test))]
    let _ = e;
}

/// Keeps the host mapping behind a view alive (vm-memory backends that map
/// guest pages on demand unmap them when the guard drops).
#[derive(Debug)]
enum Guard {
    /// Read-only view (the walkers).
    Read(#[allow(dead_code)] PtrGuard),
    /// Read-write view (the writer).
    Write(#[allow(dead_code)] PtrGuardMut),
}

/// One page table in guest memory.
#[derive(Debug)]
pub(crate) struct Table<'a> {
    /// Start of the 512 entries in host memory; valid while `_guard`
    /// lives and the guest memory object is borrowed for `'a`.
    entries: *const [AtomicU64; ENTRIES],
    frame: Pfn,
    _guard: Guard,
    _mem: PhantomData<&'a ()>,
}

impl<'a> Table<'a> {
    /// A view of the table in `frame`. `write` asks for write access and
    /// marks the page dirty in the memory's bitmap (writes through the view
    /// bypass vm-memory's accounting). Fails when the frame is not one
    /// contiguous 4 KiB page of `mem`.
    pub(crate) fn new<M: GuestMemory + ?Sized>(mem: &'a M, frame: Pfn, write: bool) -> Result<Self, MmError> {
        #[cfg(test)]
        VIEWS.with(|v| v.set(v.get() + 1));
        let bad = |_| MmError::GuestMemory { addr: frame.0 << 12 };
        let addr: GuestAddress = frame.checked_addr().ok_or(MmError::GuestMemory { addr: frame.0 })?;
        let access = if write { Permissions::ReadWrite } else { Permissions::Read };
        let slice = mem
            .get_slices(addr, PAGE_SIZE as usize, access)
            .map_err(bad)?
            .next()
            .ok_or(MmError::GuestMemory { addr: addr.0 })?
            .map_err(bad)?;
        let (ptr, guard) = if write {
            slice.bitmap().mark_dirty(0, PAGE_SIZE as usize);
            let g = slice.ptr_guard_mut();
            (g.as_ptr() as *const u8, Guard::Write(g))
        } else {
            let g = slice.ptr_guard();
            (g.as_ptr(), Guard::Read(g))
        };
        if slice.len() != PAGE_SIZE as usize || ptr.is_null() || ptr.align_offset(align_of::<AtomicU64>()) != 0 {
            return Err(MmError::GuestMemory { addr: addr.0 });
        }
        Ok(Table { entries: ptr.cast(), frame, _guard: guard, _mem: PhantomData })
    }

    /// The frame this table lives in.
    #[inline]
    pub(crate) fn frame(&self) -> Pfn {
        self.frame
    }

    /// The 512 entries.
    #[inline]
    pub(crate) fn entries(&self) -> &[AtomicU64; ENTRIES] {
        // SAFETY: `entries` points at 4096 bytes (checked: the slice vm-memory
        // returned is exactly one page) that are 8-byte aligned (checked in
        // `new`), so it is a valid place for `[AtomicU64; 512]`, which has
        // the same size and alignment as `[u64; 512]`. The bytes stay mapped
        // while `self` lives: `_guard` keeps an on-demand host mapping alive
        // and `'a` keeps the guest memory object (which owns the mapping)
        // borrowed and its region list unchanged. Any bit pattern is a valid
        // `u64`. All other accessors of those bytes are either this module
        // (atomics only) or the guest's CPU, whose 8-byte aligned accesses
        // to page-table entries are themselves atomic, so creating a shared
        // reference to atomics aliases nothing non-atomically from Rust.
        unsafe { &*self.entries }
    }

    /// Entry `i` (`i & 511`).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.entries()[i % ENTRIES].load(Ordering::Relaxed)
    }

    /// Writes entry `i` (`i & 511`) in one aligned 8-byte store.
    #[inline]
    pub(crate) fn set(&self, i: usize, value: u64) {
        self.entries()[i % ENTRIES].store(value, Ordering::Relaxed);
    }

    /// Stores entry `i` with release ordering: every store before it (a
    /// new table's entries) is visible before it is (the link store).
    pub(crate) fn set_release(&self, i: usize, value: u64) {
        self.entries()[i % ENTRIES].store(value, Ordering::Release);
    }

    /// Replaces entry `i` (`i & 511`) with `new` if it still holds
    /// `current`, in one atomic compare-and-exchange; on a mismatch returns
    /// what it holds. Release ordering on success, so it can also link a
    /// table filled just before.
    #[inline]
    pub(crate) fn compare_exchange(&self, i: usize, current: u64, new: u64) -> Result<u64, u64> {
        let e = &self.entries()[i % ENTRIES];
        race_point(e);
        e.compare_exchange(current, new, Ordering::Release, Ordering::Relaxed)
    }

    /// Replaces entry `i` (`i & 511`) with `new` in one atomic exchange and
    /// returns the value it replaced: accessed bits a walker set up to that
    /// instant included (see `flush.rs`).
    #[inline]
    pub(crate) fn swap(&self, i: usize, new: u64) -> u64 {
        let e = &self.entries()[i % ENTRIES];
        race_point(e);
        e.swap(new, Ordering::Relaxed)
    }

    /// Writes entry `i` as `(pages[i] << 12) | bits` for all 512 entries of
    /// a table that no page walker and no other thread can reach yet (a
    /// new table, not linked into the tree), and returns the bitwise OR of
    /// the frame numbers written (every frame is at most that).
    ///
    /// The stores are plain, not atomic, so the compiler may combine them
    /// into vector stores: nothing can observe the table until the release
    /// store that links it, so no entry can be seen torn. Through a
    /// read-only view this falls back to atomic stores.
    ///
    /// Only for tables that are not linked: on a linked table a running
    /// vCPU's walker could read an entry mid-store.
    pub(crate) fn fill_unlinked(&self, pages: &[Pfn; ENTRIES], bits: u64) -> u64 {
        match self._guard {
            Guard::Write(_) => {
                // SAFETY: `entries` comes from a `PtrGuardMut` (a view made
                // for writing), points at 4096 bytes of guest memory that
                // stay mapped while `self` lives and are 8-byte aligned
                // (checked in `new`), so it is valid for 512 `u64` writes.
                // The caller guarantees the table is not linked: no vCPU
                // walker reaches it and no other view of it is in use, so
                // the plain stores race with nothing. `pages` is a separate
                // Rust allocation (never guest memory of a table).
                unsafe { fill_raw(self.entries as *mut u64, pages, bits) }
            }
            Guard::Read(_) => {
                let mut any = 0;
                for (e, p) in self.entries().iter().zip(pages) {
                    any |= p.0;
                    e.store((p.0 << PAGE_SHIFT) | bits, Ordering::Relaxed);
                }
                any
            }
        }
    }

    /// Zeroes all 512 entries.
    pub(crate) fn zero(&self) {
        for e in self.entries() {
            e.store(0, Ordering::Relaxed);
        }
    }

    /// True when no entry is in use (see [`super::entry::USED`]).
    pub(crate) fn is_unused(&self) -> bool {
        self.entries().iter().all(|e| e.load(Ordering::Relaxed) & super::entry::USED == 0)
    }
}

/// The loop of [`Table::fill_unlinked`], out of line so that `pages` is a
/// `noalias` argument and the loop vectorizes.
///
/// # Safety
/// `dst` must be valid for writes of 512 `u64`s that nothing else reads or
/// writes meanwhile, and must not overlap `pages`.
#[inline(never)]
unsafe fn fill_raw(dst: *mut u64, pages: &[Pfn; ENTRIES], bits: u64) -> u64 {
    let mut any = 0;
    for (i, p) in pages.iter().enumerate() {
        any |= p.0;
        // SAFETY: `i < 512` and the caller's contract.
        unsafe { dst.add(i).write((p.0 << PAGE_SHIFT) | bits) };
    }
    any
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vm_memory::{Bytes, GuestMemoryMmap};

    #[test]
    fn view_reads_and_writes_guest_memory() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        mem.write_obj(0x1122_3344_5566_7781u64, GuestAddress(0x3000 + 8 * 5)).unwrap();
        let t = Table::new(&mem, Pfn(3), true).unwrap();
        assert_eq!(t.frame(), Pfn(3));
        assert_eq!(t.get(5), 0x1122_3344_5566_7781);
        t.set(511, 42);
        assert_eq!(mem.read_obj::<u64>(GuestAddress(0x3000 + 8 * 511)).unwrap(), 42);
        assert!(!t.is_unused());
        t.zero();
        assert!(t.is_unused());
        let r = Table::new(&mem, Pfn(3), false).unwrap();
        assert_eq!(r.get(511), 0);
    }

    #[test]
    fn fill_unlinked_through_either_view() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let bits = 0x8000_0000_0000_0067;
        let mut pages = [Pfn(0); ENTRIES];
        for (i, p) in pages.iter_mut().enumerate() {
            *p = Pfn(0x100 + 3 * i as u64);
        }
        // The write view stores plainly, the read-only view atomically:
        // both write the same entries and report the OR of the frames.
        for (frame, write) in [(Pfn(3), true), (Pfn(4), false)] {
            let t = Table::new(&mem, frame, write).unwrap();
            let any = t.fill_unlinked(&pages, bits);
            assert_eq!(any, pages.iter().fold(0, |a, p| a | p.0), "write={write}");
            for (i, p) in pages.iter().enumerate() {
                let got = mem.read_obj::<u64>(GuestAddress((frame.0 << 12) + 8 * i as u64)).unwrap();
                assert_eq!(got, (p.0 << 12) | bits, "write={write} entry {i}");
            }
        }
        // All-zero frames report zero.
        let t = Table::new(&mem, Pfn(5), false).unwrap();
        assert_eq!(t.fill_unlinked(&[Pfn(0); ENTRIES], bits), 0);
    }

    #[test]
    fn frames_outside_memory_are_refused() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20), (GuestAddress(0x20_0800), 0x1000)])
            .unwrap();
        for frame in [Pfn(256), Pfn(1 << 40), Pfn(u64::MAX)] {
            assert!(Table::new(&mem, frame, false).is_err(), "{frame:?}");
        }
        // A page straddling the end of a region is not one 4 KiB table.
        assert!(Table::new(&mem, Pfn(0x201), true).is_err());
    }
}
