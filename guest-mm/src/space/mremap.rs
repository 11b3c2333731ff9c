//! mremap: shrink a mapping, grow it in place, or move it (with its page
//! table entries, so the data follows) to a free range or a fixed one.
//!
//! The checks, in Linux's order: a page-aligned old address, known flags
//! (`MREMAP_FIXED` needs `MREMAP_MAYMOVE`), a non-zero new length, a fixed
//! target that does not overlap the old range (all `EINVAL`); the old
//! range inside one VMA (`EFAULT`); growing a `VM_DONTEXPAND` or
//! `VM_PFNMAP` VMA (`EFAULT`); the VMA's page size (huge pages need
//! aligned addresses and lengths, `EINVAL`); then the provider's
//! `ops.mremap`, which may refuse. Growing in place needs the range after
//! the VMA free (`ENOMEM` without `MREMAP_MAYMOVE`). A locked VMA that
//! grows is populated in its new part, as after `mlock`.
//!
//! A move copies the leaves (the same frames, the same bits; a page-array
//! page stays pinned by the VMA and faulted run that move with it) to the new range, and only then
//! clears the old one: if the copy fails, the new range is cleared again
//! and nothing changed. The moved VMA is announced with `open` and the
//! old one closed, as `copy_vma` and the unmap do in Linux.

use vm_memory::GuestMemoryBackend;

use super::{checked_range, vma_life, AddressSpace, USER_END};
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
    /// `MREMAP_MAYMOVE`, `fixed` is `MREMAP_FIXED` with its address.
    pub fn mremap(
        &mut self,
        old: GuestVirtAddr,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<GuestVirtAddr>,
    ) -> Result<Remapped, MmError> {
        if !old.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: old.raw(), align: PAGE_SIZE });
        }
        if fixed.is_some() && !may_move {
            return Err(MmError::Invalid("MREMAP_FIXED without MREMAP_MAYMOVE"));
        }
        let old_len = page_align_up(old_len).ok_or(MmError::Overflow { addr: old.raw(), len: old_len })?;
        let new_len = page_align_up(new_len).ok_or(MmError::Overflow { addr: old.raw(), len: new_len })?;
        if old_len == 0 || new_len == 0 {
            return Err(MmError::Invalid("zero length"));
        }
        let old_end = checked_range(old, old_len)?;
        if let Some(f) = fixed {
            let f_end = checked_range(f, new_len)?;
            if f.raw() < old_end && old.raw() < f_end {
                return Err(MmError::Invalid("MREMAP_FIXED target overlaps the old range"));
            }
        }
        let vma = match self.vmas.find(old.raw()) {
            Some(v) if old_end <= v.end() => v.clone(),
            _ => return Err(MmError::OutsideVma { start: old.raw(), end: old_end, vma_start: 0, vma_end: 0 }),
        };
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
        let user = old.raw() < USER_END;
        // Where it goes.
        let target = match fixed {
            Some(f) => Some(f),
            None if new_len <= old_len => None,
            None if old_end == vma.end() && self.can_expand(&vma, new_len - old_len, user) => None,
            None if may_move => Some(self.move_target(new_len, page)?),
            None => return Err(MmError::NoSpace { len: new_len }),
        };
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
        let moved = old_len.min(new_len);
        if new_len < old_len {
            let tail = GuestVirtAddr::try_new(old.raw() + new_len)?;
            flush.merge(self.munmap(tail, old_len - new_len)?);
        }
        flush.merge(self.move_range(old, moved, to, new_len)?);
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
    /// new VMA is `new_len` long. On error nothing changed.
    fn move_range(
        &mut self,
        old: GuestVirtAddr,
        moved: u64,
        to: GuestVirtAddr,
        new_len: u64,
    ) -> Result<FlushSet, MmError> {
        let delta = to.raw().wrapping_sub(old.raw());
        let old_end = old.raw() + moved;
        let mut copies = Vec::new();
        for l in self.pt.leaves(old, moved) {
            relocate(&l, old.raw(), old_end, delta, &mut copies);
        }
        // The old range's VMAs and runs pin every frame of the copies.
        if let Err(e) = self.pt.restore(&copies, &[]) {
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
        // The VMA: the moved piece is closed, its copy opened.
        let pieces = self.take_vmas(old.raw(), old_end);
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
        vma_life::close_all(pieces);
        Ok(flush)
    }
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
