//! mremap: shrink a mapping, grow it in place, or move it (with its page
//! table entries, so the data follows) to a free range or a fixed one.
//!
//! The checks, in Linux's order: known flags (`MREMAP_FIXED` and
//! `MREMAP_DONTUNMAP` need `MREMAP_MAYMOVE`, `MREMAP_DONTUNMAP` needs
//! equal lengths), a page-aligned old address, a non-zero new length, a
//! fixed target that does not overlap the old range (all `EINVAL`); a VMA
//! at the old address (`EFAULT`) that is not sealed (`EPERM`); the old
//! range inside that VMA (`EFAULT`); an old size of 0 only for a shared
//! VMA (`EINVAL`); `MREMAP_DONTUNMAP` of a
//! `VM_DONTEXPAND` or `VM_PFNMAP` VMA (`EINVAL`; huge-page VMAs carry
//! `VM_DONTEXPAND`); growing such a VMA (`EFAULT`); the VMA's page size
//! (huge pages need aligned addresses and lengths, `EINVAL`); a fixed
//! target over a sealed VMA (`EPERM`); the VMA limit for the copy
//! `MREMAP_DONTUNMAP` adds (`ENOMEM`); then the provider's `ops.mremap`,
//! which may refuse. Growing in place needs the range after the VMA free
//! (`ENOMEM` without `MREMAP_MAYMOVE`).
//!
//! `MREMAP_DONTUNMAP` always moves (to the fixed target, or a free range
//! found as for a growing move) and leaves the old VMA where it was,
//! emptied: its pages refault as a new mapping's would (zero pages for
//! anonymous memory, the provider's pages otherwise; a VMA without a
//! fault handler stays empty). A locked VMA that grows is populated in its new part, as after
//! `mlock`; the old VMA of a `MREMAP_DONTUNMAP` move loses `VM_LOCKED`,
//! as in Linux.
//!
//! An old size of 0 makes a second mapping of a shared VMA's pages
//! (Linux's "duplicate shm area"): a copy of the VMA from the old
//! address's page offset, `new_len` long, at a free range
//! (`MREMAP_MAYMOVE`; without it `ENOMEM`) or the fixed target; the
//! source stays as it was, and the copy faults its pages in from the
//! shared object. A fixed target starting at the source is `EFAULT` before
//! anything changes (Linux unmaps the target first, source included, then
//! fails so). A VMA without a fault handler cannot be duplicated
//! (`EINVAL`).
//!
//! A move copies the leaves (the same frames, the same bits; a page-array
//! page stays pinned by the VMA and faulted run that move with it) to the new range, and only then
//! clears the old one: if the copy fails, the new range is cleared again
//! and nothing changed. The moved VMA is announced with `open` and the
//! old one closed, as `copy_vma` and the unmap do in Linux.

use vm_memory::GuestMemoryBackend;

use super::{checked_range, vma_life, AddressSpace, MremapFlags, USER_END};
use crate::addr::{page_align_up, GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::{FlushSet, Leaf};
use crate::vma::Vma;

/// The result of [`AddressSpace::mremap`].
#[derive(Debug)]
#[must_use = "a shrink or move cleared entries that must be flushed"]
pub struct Remapped {
    /// Where the mapping is now.
    pub addr: GuestVirtAddr,
    /// Entries cleared (the old range of a move, a shrunk tail, a fixed
    /// target's old mappings).
    pub flush: FlushSet,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `mremap(old, old_len, new_len, flags, new)`: `may_move` is
    /// `MREMAP_MAYMOVE`, `fixed` is `MREMAP_FIXED` with its address. The
    /// same as [`AddressSpace::mremap_with`] without `MREMAP_DONTUNMAP`.
    pub fn mremap(
        &mut self,
        old: GuestVirtAddr,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<GuestVirtAddr>,
    ) -> Result<Remapped, MmError> {
        self.mremap_with(old, old_len, new_len, MremapFlags { may_move, fixed, dont_unmap: false })
    }

    /// `mremap(old, old_len, new_len, flags, new)` with all of Linux's
    /// flags; see the module docs for the checks and their order.
    pub fn mremap_with(
        &mut self,
        old: GuestVirtAddr,
        old_len: u64,
        new_len: u64,
        flags: MremapFlags,
    ) -> Result<Remapped, MmError> {
        flags.check(old_len, new_len)?;
        let MremapFlags { may_move, fixed, dont_unmap } = flags;
        if !old.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: old.raw(), align: PAGE_SIZE });
        }
        let old_len = page_align_up(old_len).ok_or(MmError::Overflow { addr: old.raw(), len: old_len })?;
        let new_len = page_align_up(new_len).ok_or(MmError::Overflow { addr: old.raw(), len: new_len })?;
        if new_len == 0 {
            return Err(MmError::Invalid("zero length"));
        }
        // An old size of 0 asks for a second mapping of a shared
        // mapping's pages (Linux's "duplicate shm area"); the source stays.
        let duplicate = old_len == 0;
        let old_end = checked_range(old, old_len)?;
        if let Some(f) = fixed {
            let f_end = checked_range(f, new_len)?;
            if f.raw() < old_end && old.raw() < f_end {
                return Err(MmError::Invalid("MREMAP_FIXED target overlaps the old range"));
            }
            // A target starting at the source (no overlap for Linux with an
            // old size of 0): Linux (6.18 checked) unmaps it, source
            // included, then finds no VMA to copy (`EFAULT`); refused here
            // with the same error before anything goes (the source stays:
            // a known difference).
            if duplicate && f == old {
                return Err(MmError::OutsideVma { start: old.raw(), end: old.raw(), vma_start: 0, vma_end: 0 });
            }
        }
        let outside = || MmError::OutsideVma { start: old.raw(), end: old_end, vma_start: 0, vma_end: 0 };
        let vma = self.vmas.find(old.raw()).cloned().ok_or_else(outside)?;
        // A sealed source is refused before its extent is looked at.
        if vma.is_sealed() {
            return Err(MmError::Sealed { addr: vma.start().raw() });
        }
        if old_end > vma.end() {
            return Err(outside());
        }
        if duplicate && !vma.flags().contains(VmFlags::MAYSHARE) {
            return Err(MmError::Invalid("mremap of a private mapping with an old size of 0"));
        }
        // A duplicate faults its pages in from the VMA's object: a VMA
        // without a fault handler (a page array) has none to give.
        if duplicate && vma.ops().is_none() {
            return Err(MmError::Invalid("mremap with an old size of 0 of a mapping without a fault handler"));
        }
        if dont_unmap && vma.flags().intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP) {
            return Err(MmError::Invalid("MREMAP_DONTUNMAP of a VM_DONTEXPAND or VM_PFNMAP mapping"));
        }
        if new_len > old_len && vma.flags().intersects(VmFlags::DONTEXPAND | VmFlags::PFNMAP) {
            return Err(MmError::OutsideVma {
                start: old.raw(),
                end: old.raw().saturating_add(new_len),
                vma_start: vma.start().raw(),
                vma_end: vma.end(),
            });
        }
        let page = vma.ops().map_or(PAGE_SIZE, |o| o.pagesize(&vma));
        if page > PAGE_SIZE {
            let bad = old.raw() | old_len | new_len | fixed.map_or(0, |f| f.raw());
            if bad % page != 0 {
                return Err(MmError::Misaligned { what: "huge-page mremap", value: bad, align: page });
            }
        }
        if let Some(f) = fixed {
            self.check_unsealed(f.raw(), f.raw() + new_len)?;
        }
        let user = old.raw() < USER_END;
        // Where it goes.
        let target = match fixed {
            Some(f) => Some(f),
            None if dont_unmap || (duplicate && may_move) => Some(self.move_target(new_len, page)?),
            None if duplicate => return Err(MmError::NoSpace { len: new_len }),
            None if new_len <= old_len => None,
            None if old_end == vma.end() && self.can_expand(&vma, new_len - old_len, user) => None,
            None if may_move => Some(self.move_target(new_len, page)?),
            None => return Err(MmError::NoSpace { len: new_len }),
        };
        if let Some(to) = target.filter(|_| dont_unmap || duplicate) {
            // The copy is one VMA more (the old one stays), besides what
            // a fixed target's unmap cuts.
            self.check_map_count(to.raw(), to.raw() + new_len, Some(1))?;
        }
        if let Some(ops) = vma.ops() {
            ops.mremap(&vma, target.unwrap_or(old), new_len)?;
        }
        let mut flush = FlushSet::default();
        let Some(to) = target else {
            if new_len < old_len {
                let tail = GuestVirtAddr::try_new(old.raw() + new_len)?;
                flush.merge(self.munmap(tail, old_len - new_len)?);
            } else if new_len > old_len {
                self.expand(&vma, new_len - old_len);
                self.populate_grown(&vma, old.raw() + old_len, new_len - old_len, &mut flush);
            }
            return Ok(Remapped { addr: old, flush });
        };
        // A move. A fixed target's old mappings go first, then a shrinking
        // move drops its tail, then the rest moves.
        if fixed.is_some() {
            flush.merge(self.munmap(to, new_len)?);
        }
        if dont_unmap {
            flush.merge(self.move_range(old, old_len, to, new_len, Keep::OldVma)?);
            return Ok(Remapped { addr: to, flush });
        }
        if duplicate {
            // A move of nothing that keeps the old VMA: a copy of it at
            // `to`, `new_len` long, from `old`'s page offset (its pages
            // fault in from the shared object); locked, it is populated.
            flush.merge(self.move_range(old, 0, to, new_len, Keep::OldVma)?);
            self.populate_grown(&vma, to.raw(), new_len, &mut flush);
            return Ok(Remapped { addr: to, flush });
        }
        let moved = old_len.min(new_len);
        if new_len < old_len {
            let tail = GuestVirtAddr::try_new(old.raw() + new_len)?;
            flush.merge(self.munmap(tail, old_len - new_len)?);
        }
        flush.merge(self.move_range(old, moved, to, new_len, Keep::Nothing)?);
        if new_len > old_len {
            self.populate_grown(&vma, to.raw() + old_len, new_len - old_len, &mut flush);
        }
        Ok(Remapped { addr: to, flush })
    }

    /// A locked mapping that grew is populated in its new part, errors
    /// ignored (`mm_populate` after `mremap`).
    fn populate_grown(&mut self, vma: &Vma, at: u64, grow: u64, flush: &mut FlushSet) {
        if vma.flags().contains(VmFlags::LOCKED) {
            if let Err(e) = self.populate_locked(at, at + grow, true, flush) {
                log::debug!("populating the grown part at {at:#x} stopped: {e}");
            }
        }
    }

    /// Is `[vma.end, vma.end + grow)` free and inside its half?
    fn can_expand(&self, vma: &Vma, grow: u64, user: bool) -> bool {
        let Some(end) = vma.end().checked_add(grow) else { return false };
        let limit = if user { USER_END } else { u64::MAX };
        end <= limit && GuestVirtAddr::try_new(end - 1).is_ok() && !self.vmas.intersects(vma.end(), end)
    }

    /// Grows `vma` by `grow` bytes in place (`vma_expand`: no open/close).
    fn expand(&mut self, vma: &Vma, grow: u64) {
        let mut v = vma.clone();
        drop(self.vmas.remove_range(vma.start().raw(), vma.end()));
        v.end += grow;
        let start = v.start().raw();
        self.vmas.insert(v);
        self.merge_vmas(start);
    }

    /// A free range for a move of `new_len` bytes, aligned to the VMA's
    /// page size. Only a growing move searches (a shrinking one stays put
    /// or goes where `MREMAP_FIXED` says), and only VMAs without
    /// `VM_DONTEXPAND`/`VM_PFNMAP` grow: remaps, the only mappings with
    /// leaves larger than their page size, carry both, so every leaf of a
    /// searching move keeps its size at this alignment.
    fn move_target(&self, new_len: u64, page: u64) -> Result<GuestVirtAddr, MmError> {
        let (lo, hi) = self.window;
        self.vmas
            .find_gap_top_down(new_len, page, lo, hi)
            .and_then(|a| GuestVirtAddr::try_new(a).ok())
            .ok_or(MmError::NoSpace { len: new_len })
    }

    /// Moves the leaves and the VMA of `[old, old + moved)` to `to`; the
    /// new VMA is `new_len` long. With [`Keep::OldVma`] the old range keeps
    /// its VMA (`MREMAP_DONTUNMAP`): only its entries go, and the new VMA
    /// is a copy (announced with `open`). On error nothing changed.
    fn move_range(
        &mut self,
        old: GuestVirtAddr,
        moved: u64,
        to: GuestVirtAddr,
        new_len: u64,
        keep: Keep,
    ) -> Result<FlushSet, MmError> {
        let delta = to.raw().wrapping_sub(old.raw());
        let old_end = old.raw() + moved;
        let mut copies = Vec::new();
        for l in self.pt.leaves(old, moved) {
            relocate(&l, old.raw(), old_end, delta, &mut copies);
        }
        // The old range's VMAs and runs pin every frame of the copies.
        // The copy stops at its first failure; what it wrote is cleared.
        if let Err(e) = self.pt.copy_leaves(&copies) {
            match self.pt.unmap_range(to, moved) {
                Ok(un) => self.deferred.merge(un.flush),
                Err(e2) => log::error!("undoing a failed move at {:#x}: {e2}", to.raw()),
            }
            // The target was cleared first, so only running out of table
            // pages can stop the copy.
            log::debug!("moving {:#x}+{moved:#x} to {:#x}: {e}", old.raw(), to.raw());
            return Err(MmError::OutOfMemory("page-table pages"));
        }
        // The faulted runs follow their pages.
        let runs = self.page_pins.take(old.raw(), old_end);
        self.page_pins.put_back(runs, delta as i64);
        // The VMA: the moved piece is closed, its copy opened; with
        // `Keep::OldVma` the old VMA stays whole and only the copy is new.
        let pieces = match keep {
            Keep::Nothing => self.take_vmas(old.raw(), old_end),
            Keep::OldVma => self.vmas.find(old.raw()).map(|v| piece(v, old.raw())).into_iter().collect(),
        };
        let mut flush = FlushSet::default();
        match self.pt.unmap_range(old, moved) {
            Ok(un) => flush.merge(un.flush),
            Err(e) => log::error!("clearing the old range of a move at {:#x}: {e}", old.raw()),
        }
        if let Some(first) = pieces.first() {
            let mut v = first.clone();
            v.start = to;
            v.end = to.raw() + new_len;
            if let Some(ops) = v.ops() {
                ops.open(&v);
            }
            self.vmas.insert(v);
            self.merge_vmas(to.raw());
        }
        if keep == Keep::Nothing {
            vma_life::close_all(pieces);
        }
        Ok(flush)
    }
}

/// What a move leaves at the old range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// Nothing: the old VMA goes (a plain move).
    Nothing,
    /// The old VMA, emptied of its entries (`MREMAP_DONTUNMAP`).
    OldVma,
}

/// A copy of `v` starting at `at` (inside it), with its page offset; the
/// caller sets the end. The copy shares `v`'s ops, state and pins.
fn piece(v: &Vma, at: u64) -> Vma {
    let mut p = v.clone();
    p.pgoff = v.pgoff.wrapping_add((at - v.start().raw()) >> crate::addr::PAGE_SHIFT);
    if let Ok(a) = GuestVirtAddr::try_new(at) {
        p.start = a;
    }
    p
}

/// The copy of leaf `l` shifted by `delta`, limited to `[lo, hi)`: whole
/// when it lies inside and its new address keeps its alignment, otherwise
/// as smaller leaves.
fn relocate(l: &Leaf, lo: u64, hi: u64, delta: u64, out: &mut Vec<Leaf>) {
    let (s, size) = (l.va.raw(), l.size);
    let e = s + size.bytes();
    let new = s.wrapping_add(delta);
    if s >= lo && e <= hi && new % size.bytes() == 0 {
        if let Ok(va) = GuestVirtAddr::try_new(new) {
            out.push(Leaf { va, size, raw: l.raw });
        }
        return;
    }
    let child = match size {
        PageSize::Size1G => PageSize::Size2M,
        PageSize::Size2M => PageSize::Size4K,
        PageSize::Size4K => return,
    };
    for i in 0..512u64 {
        let cs = s + i * child.bytes();
        if cs + child.bytes() <= lo || cs >= hi {
            continue;
        }
        let Ok(va) = GuestVirtAddr::try_new(cs) else { continue };
        let raw = crate::paging::split_leaf_child(l.raw, size, i);
        relocate(&Leaf { va, size: child, raw }, lo, hi, delta, out);
    }
}
