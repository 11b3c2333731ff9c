//! madvise: the advice values of Linux 6.12 this address space implements
//! ([`Advice`]), with Linux's errors.
//!
//! - `MADV_DONTNEED`, `MADV_DONTNEED_LOCKED`, `MADV_FREE`: drop the pages
//!   of the range (the VMAs stay; a lazy mapping refaults zero pages or
//!   the provider's pages). `MADV_FREE` may drop them at any time before
//!   the next write, so dropping them at once is one of its outcomes.
//!   In a hugetlb VMA (one that faults, not a `VM_PFNMAP` remap) only
//!   `DONTNEED` and `DONTNEED_LOCKED` are allowed, from a huge-page
//!   aligned start (`EINVAL`), the end rounded down to a huge page.
//!   `MADV_REMOVE` drops the pages of a shared writable mapping the same
//!   way, if it has a fault handler to refault them (a refault gives what
//!   the provider gives); an object that punches holes
//!   ([`crate::VmaOps::remove`], a hugetlbfs file, a shmem object) frees
//!   its pages, and every VMA of it loses them
//!   ([`AddressSpace::unmap_object_range`]; private copies as the object
//!   says, [`crate::Punched`]). Other address spaces mapping the object
//!   must lose them too: the caller takes what was punched with
//!   [`AddressSpace::take_punches`] and clears it there.
//! - `MADV_WILLNEED` populates a lazy range now, best effort, batched
//!   through the VMAs' `map_pages` (not `PROT_NONE` VMAs; a VMA is left
//!   at its first run that cannot be mapped); `MADV_POPULATE_(READ|WRITE)` fault
//!   every page in as a read or write would and report what failed.
//! - `MADV_NORMAL`/`RANDOM`/`SEQUENTIAL`, `DONTFORK`/`DOFORK`,
//!   `WIPEONFORK`/`KEEPONFORK`, `DONTDUMP`/`DODUMP`, `HUGEPAGE`/
//!   `NOHUGEPAGE` set or clear VMA flags (split and re-merged as mprotect
//!   does); a fork, a core dump and the transparent huge page policy
//!   (`thp.rs`) read them.
//! - `MADV_COLLAPSE` makes 2 MiB transparent huge pages of the range's
//!   private anonymous pages now (`collapse.rs`).
//! - `MADV_COLD` and `MADV_PAGEOUT` are accepted and do nothing (nothing
//!   is reclaimed in this mapper).
//!
//! A range with holes is handled as Linux's `madvise_walk_vmas` does: the
//! advice is applied to the mapped parts in address order, then the call
//! answers `ENOMEM`. An error from one VMA stops the walk there; the VMAs
//! before it keep the advice. Entries dropped before an error are not lost
//! to the caller: they go to the deferred flush
//! ([`AddressSpace::take_deferred_flush`]).

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{page_align_up, GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{VmFlags, VM_SPECIAL};
use crate::paging::FlushSet;

/// The advice values this address space implements (Linux numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_NORMAL` (0): clears `VM_SEQ_READ` and `VM_RAND_READ`.
    Normal,
    /// `MADV_RANDOM` (1): sets `VM_RAND_READ`.
    Random,
    /// `MADV_SEQUENTIAL` (2): sets `VM_SEQ_READ`.
    Sequential,
    /// `MADV_WILLNEED` (3): populate now.
    WillNeed,
    /// `MADV_DONTNEED` (4): drop the pages.
    DontNeed,
    /// `MADV_FREE` (8): drop the pages of private anonymous memory.
    Free,
    /// `MADV_REMOVE` (9): drop the pages of a shared writable mapping.
    Remove,
    /// `MADV_DONTFORK` (10): sets `VM_DONTCOPY`.
    DontFork,
    /// `MADV_DOFORK` (11): clears `VM_DONTCOPY`.
    DoFork,
    /// `MADV_HUGEPAGE` (14): sets `VM_HUGEPAGE`, clears `VM_NOHUGEPAGE`.
    HugePage,
    /// `MADV_NOHUGEPAGE` (15): sets `VM_NOHUGEPAGE`, clears `VM_HUGEPAGE`.
    NoHugePage,
    /// `MADV_DONTDUMP` (16): sets `VM_DONTDUMP`.
    DontDump,
    /// `MADV_DODUMP` (17): clears `VM_DONTDUMP`.
    DoDump,
    /// `MADV_WIPEONFORK` (18): sets `VM_WIPEONFORK` (private anonymous
    /// memory only).
    WipeOnFork,
    /// `MADV_KEEPONFORK` (19): clears `VM_WIPEONFORK`.
    KeepOnFork,
    /// `MADV_COLD` (20): accepted, nothing to deactivate.
    Cold,
    /// `MADV_PAGEOUT` (21): accepted, nothing is reclaimed.
    PageOut,
    /// `MADV_POPULATE_READ` (22): fault every page in for reading.
    PopulateRead,
    /// `MADV_POPULATE_WRITE` (23): fault every page in for writing.
    PopulateWrite,
    /// `MADV_DONTNEED_LOCKED` (24): `MADV_DONTNEED` that also drops the
    /// pages of locked VMAs.
    DontNeedLocked,
    /// `MADV_COLLAPSE` (25): make transparent huge pages of the range now
    /// (`collapse.rs`).
    Collapse,
}

impl Advice {
    /// Linux's number (as [`Advice::to_linux`]).
    pub fn linux(self) -> u64 {
        self.to_linux()
    }

    /// From Linux's number; `EINVAL` for advice not implemented.
    pub fn from_linux(advice: u64) -> Result<Advice, MmError> {
        Ok(match advice {
            0 => Advice::Normal,
            1 => Advice::Random,
            2 => Advice::Sequential,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            8 => Advice::Free,
            9 => Advice::Remove,
            10 => Advice::DontFork,
            11 => Advice::DoFork,
            14 => Advice::HugePage,
            15 => Advice::NoHugePage,
            16 => Advice::DontDump,
            17 => Advice::DoDump,
            18 => Advice::WipeOnFork,
            19 => Advice::KeepOnFork,
            20 => Advice::Cold,
            21 => Advice::PageOut,
            22 => Advice::PopulateRead,
            23 => Advice::PopulateWrite,
            24 => Advice::DontNeedLocked,
            25 => Advice::Collapse,
            _ => return Err(MmError::Invalid("unknown or unsupported madvise advice")),
        })
    }

    /// Linux's number.
    pub fn to_linux(self) -> u64 {
        match self {
            Advice::Normal => 0,
            Advice::Random => 1,
            Advice::Sequential => 2,
            Advice::WillNeed => 3,
            Advice::DontNeed => 4,
            Advice::Free => 8,
            Advice::Remove => 9,
            Advice::DontFork => 10,
            Advice::DoFork => 11,
            Advice::HugePage => 14,
            Advice::NoHugePage => 15,
            Advice::DontDump => 16,
            Advice::DoDump => 17,
            Advice::WipeOnFork => 18,
            Advice::KeepOnFork => 19,
            Advice::Cold => 20,
            Advice::PageOut => 21,
            Advice::PopulateRead => 22,
            Advice::PopulateWrite => 23,
            Advice::DontNeedLocked => 24,
            Advice::Collapse => 25,
        }
    }
}

/// `MADV_DONTNEED` refuses these (and `VM_LOCKED` unless `_LOCKED`).
const DONTNEED_REFUSED: VmFlags = VmFlags::PFNMAP.union(VmFlags::IO).union(VmFlags::HUGETLB);

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Applies `advice` to `[addr, addr + len)` (`len` rounded up to whole
    /// pages; zero does nothing). `EINVAL` for a misaligned address or a
    /// length that wraps; per advice, `EINVAL`, `EACCES` or `EFAULT` as
    /// Linux answers for a VMA it refuses; `ENOMEM` for a hole after the
    /// mapped parts were advised (see the module docs); `EPERM`, before
    /// anything changes, for discarding advice on sealed read-only
    /// anonymous memory ([`AddressSpace::check_madvise_seal`]). Returns the
    /// entries that were dropped or replaced, to be flushed.
    pub fn madvise(&mut self, addr: GuestVirtAddr, len: u64, advice: Advice) -> Result<FlushSet, MmError> {
        if !addr.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
        }
        if len == 0 {
            return Ok(FlushSet::default());
        }
        let len = page_align_up(len).ok_or(MmError::Overflow { addr: addr.raw(), len })?;
        let end = addr.checked_end(len)?;
        self.check_madvise_seal(addr, len, advice.to_linux())?;
        let mut flush = FlushSet::default();
        let done = match advice {
            Advice::PopulateRead | Advice::PopulateWrite => {
                self.madvise_populate(addr.raw(), end, advice == Advice::PopulateWrite, &mut flush)
            }
            _ => self.madvise_walk(addr.raw(), end, advice, &mut flush),
        };
        match done {
            Ok(()) => Ok(flush),
            Err(e) => {
                self.deferred.merge(flush);
                Err(e)
            }
        }
    }

    /// `madvise_walk_vmas`: each mapped part in order, then `ENOMEM` for a
    /// hole.
    fn madvise_walk(&mut self, start: u64, end: u64, advice: Advice, flush: &mut FlushSet) -> Result<(), MmError> {
        let (parts, hole) = self.mapped_parts(start, end);
        for (s, e) in parts {
            self.madvise_part(s, e, advice, flush)?;
        }
        match hole {
            Some(addr) => Err(MmError::NotMapped { addr }),
            None => Ok(()),
        }
    }

    /// Applies `advice` to `[s, e)`, inside one VMA.
    fn madvise_part(&mut self, s: u64, e: u64, advice: Advice, flush: &mut FlushSet) -> Result<(), MmError> {
        let Some(vma) = self.vmas.find(s) else {
            return Err(MmError::NotMapped { addr: s });
        };
        let flags = vma.flags();
        let anon = vma.is_private_anon();
        let lru_refused = VmFlags::LOCKED | VmFlags::PFNMAP | VmFlags::HUGETLB;
        match advice {
            Advice::WillNeed => {
                self.populate(s, e);
                Ok(())
            }
            Advice::DontNeed | Advice::DontNeedLocked
                if flags.contains(VmFlags::HUGETLB) && !flags.intersects(VmFlags::PFNMAP | VmFlags::IO) =>
            {
                // madvise_dontneed_free_valid_vma: a hugetlb VMA needs a
                // start on a huge page; the end is rounded down to one.
                let size = vma.ops().map_or(PAGE_SIZE, |o| o.pagesize(vma));
                if s % size != 0 {
                    return Err(MmError::Misaligned { what: "huge-page MADV_DONTNEED", value: s, align: size });
                }
                let e = e & !(size - 1);
                if e <= s {
                    return Ok(());
                }
                self.drop_pages(s, e, flush)
            }
            Advice::DontNeed | Advice::DontNeedLocked | Advice::Free => {
                let mut refused = DONTNEED_REFUSED;
                if advice != Advice::DontNeedLocked {
                    refused |= VmFlags::LOCKED;
                }
                if flags.intersects(refused) {
                    return Err(MmError::Invalid("MADV_DONTNEED on a PFNMAP, I/O, huge-page or locked mapping"));
                }
                if advice == Advice::Free && !anon {
                    return Err(MmError::Invalid("MADV_FREE on memory that is not private anonymous"));
                }
                self.drop_pages(s, e, flush)
            }
            Advice::Remove => {
                if flags.contains(VmFlags::LOCKED) || anon {
                    return Err(MmError::Invalid("MADV_REMOVE on a locked or anonymous mapping"));
                }
                if !flags.contains(VmFlags::SHARED | VmFlags::MAYWRITE) {
                    return Err(MmError::Access("MADV_REMOVE on a mapping that is not shared writable"));
                }
                // An object that punches holes (a hugetlbfs file) frees
                // its pages, and every mapping of it loses them.
                if let (Some(ops), Some(key)) = (vma.ops().cloned(), vma.ops().and_then(|o| o.object_key())) {
                    let offset = (vma.pgoff() << crate::addr::PAGE_SHIFT) + (s - vma.start().raw());
                    let vma = vma.clone();
                    if let Some(punched) = ops.remove(&vma, offset, e - s)? {
                        // Recorded before the clearing, which may fail:
                        // the object has punched, so every other space
                        // must lose the pages whatever happens here.
                        self.punches.push((key, punched.clone()));
                        let f = self.unmap_object_range(key, punched.pages.clone(), punched.cows())?;
                        flush.merge(f);
                        return Ok(());
                    }
                }
                // Punching a hole needs an object that refaults: a VMA
                // without a fault handler (a page array, a remap) would
                // lose its pages for good (the file system's
                // `EOPNOTSUPP`).
                if flags.intersects(DONTNEED_REFUSED) || vma.ops().is_none() {
                    return Err(MmError::NotSupported("MADV_REMOVE on a mapping that cannot refault"));
                }
                self.drop_pages(s, e, flush)
            }
            Advice::Cold | Advice::PageOut => {
                if flags.intersects(lru_refused) {
                    return Err(MmError::Invalid("MADV_COLD/PAGEOUT on a locked, PFNMAP or huge-page mapping"));
                }
                // Nothing is swapped here; droppable memory is dropped
                // instead (as Linux frees its pages rather than swap them).
                if advice == Advice::PageOut && flags.contains(VmFlags::DROPPABLE) {
                    return self.drop_pages(s, e, flush);
                }
                Ok(())
            }
            Advice::DoFork if flags.contains(VmFlags::IO) => Err(MmError::Invalid("MADV_DOFORK on an I/O mapping")),
            Advice::WipeOnFork if !anon => {
                Err(MmError::Invalid("MADV_WIPEONFORK on memory that is not private anonymous"))
            }
            Advice::DoDump if !flags.contains(VmFlags::HUGETLB) && flags.intersects(VM_SPECIAL) => {
                Err(MmError::Invalid("MADV_DODUMP on a special mapping"))
            }
            Advice::Normal => self.modify_flags(s, e, |f| f - VmFlags::SEQ_READ - VmFlags::RAND_READ),
            Advice::Random => self.modify_flags(s, e, |f| (f - VmFlags::SEQ_READ) | VmFlags::RAND_READ),
            Advice::Sequential => self.modify_flags(s, e, |f| (f - VmFlags::RAND_READ) | VmFlags::SEQ_READ),
            Advice::DontFork => self.modify_flags(s, e, |f| f | VmFlags::DONTCOPY),
            Advice::DoFork => self.modify_flags(s, e, |f| f - VmFlags::DONTCOPY),
            Advice::WipeOnFork => self.modify_flags(s, e, |f| f | VmFlags::WIPEONFORK),
            Advice::KeepOnFork => self.modify_flags(s, e, |f| f - VmFlags::WIPEONFORK),
            Advice::HugePage => self.modify_flags(s, e, |f| (f - VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE),
            Advice::NoHugePage => self.modify_flags(s, e, |f| (f - VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE),
            Advice::DontDump => self.modify_flags(s, e, |f| f | VmFlags::DONTDUMP),
            Advice::DoDump => self.modify_flags(s, e, |f| f - VmFlags::DONTDUMP),
            Advice::Collapse => self.madvise_collapse(s, e, flush),
            Advice::PopulateRead | Advice::PopulateWrite => {
                Err(MmError::Invalid("MADV_POPULATE_* is not a per-VMA advice"))
            }
        }
    }

    /// Clears the entries of `[s, e)`; the faulted runs of the range let
    /// go of their pages (a page-array mapping's frames stay pinned by its
    /// VMA, which stays).
    pub(super) fn drop_pages(&mut self, s: u64, e: u64, flush: &mut FlushSet) -> Result<(), MmError> {
        let un = self.pt.unmap_range(GuestVirtAddr::try_new(s)?, e - s)?;
        flush.merge(un.flush);
        drop(self.page_pins.take(s, e));
        Ok(())
    }

    /// `madvise_populate`: faults in `[start, end)` VMA by VMA; a hole is
    /// `ENOMEM` where it starts, a VMA a fault may not populate (`VM_IO`,
    /// `VM_PFNMAP`, no read access, or no write access for a write) is
    /// `EINVAL`, a page the provider cannot give `EFAULT`. What was
    /// populated before stays.
    fn madvise_populate(&mut self, start: u64, end: u64, write: bool, flush: &mut FlushSet) -> Result<(), MmError> {
        let mut at = start;
        while at < end {
            let Some(vma) = self.vmas.find(at) else {
                return Err(MmError::NotMapped { addr: at });
            };
            let flags = vma.flags();
            let e = vma.end().min(end);
            let need = if write { VmFlags::WRITE } else { VmFlags::READ };
            if flags.intersects(VmFlags::IO | VmFlags::PFNMAP) || !flags.contains(need) {
                return Err(MmError::Invalid("MADV_POPULATE on a mapping that does not allow the access"));
            }
            self.fault_in(at, e, write, flush)?;
            at = e;
        }
        Ok(())
    }
}
