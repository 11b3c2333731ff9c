//! Forced access: reading and writing the address space on behalf of
//! something other than the guest's own instructions, with the rules of
//! Linux's `access_remote_vm` under `FOLL_FORCE` (what `/proc/PID/mem`
//! and `ptrace(PTRACE_POKEDATA)` use). The bytes move through guest
//! memory at the frames the leaves map, never through the guest's view
//! of the protection.
//!
//! The rules (Linux 6.12's `check_vma_flags` and the write-fault path):
//! - an address in no VMA, or in an `IO`/`PFNMAP` VMA, is refused;
//! - a read needs `READ`, or `MAYREAD` (a PROT_NONE VMA is read through
//!   its PROT_NONE leaves; an absent page there is read from the page
//!   the VMA's ops give, which is not mapped);
//! - a write in a VMA with `WRITE` is the guest's own write fault;
//! - a write in a VMA without `WRITE` needs a private VMA with
//!   `MAYWRITE` (a copy-on-write mapping) that is not hugetlb; a shared
//!   page there (the zero page, a shared object's page mapped
//!   copy-on-write) is first replaced by a private copy, an absent page
//!   is filled with a private page, and an already private page is
//!   written in place. The entry keeps the VMA's protection: still
//!   read-only (or PROT_NONE), so the guest's own write faults as
//!   before, while mprotect may later make the private page writable.
//!
//! A transfer crossing pages stops at the first page refused: it returns
//! the bytes moved before it, or that page's error when it is the first.
//!
//! Not done: forced access to the supervisor half; forced writes into a
//! hugetlb VMA without `WRITE` (Linux refuses them too); forced access to
//! an absent page of a PROT_NONE hugetlb VMA (Linux would fault the huge
//! page in); a dirty bit (there is no writeback to tell).

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{AddressSpace, KERNEL_HALF};
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;
use crate::vma::{FaultAccess, FaultInfo, Vma};

/// What a forced transfer moved.
#[derive(Debug)]
#[must_use = "a forced write may have replaced entries that must be flushed"]
pub struct Forced {
    /// Bytes moved (from the start of the buffer).
    pub bytes: usize,
    /// Entries replaced by private copies.
    pub flush: FlushSet,
}

/// Where one page's bytes are for a forced access.
enum Target {
    /// At this guest-physical address (the page's frame, offset 0).
    Mapped(GuestAddress),
    /// In a frame the VMA's ops gave for a read, not mapped; `_hold`
    /// keeps it alive while it is read.
    Unmapped { base: GuestAddress, _hold: crate::vma::FaultPage },
}

impl Target {
    fn base(&self) -> GuestAddress {
        match self {
            Target::Mapped(a) | Target::Unmapped { base: a, .. } => *a,
        }
    }
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Reads `out.len()` bytes at `addr` as a forced access; see the
    /// module docs.
    pub fn read_forced(&mut self, addr: GuestVirtAddr, out: &mut [u8]) -> Result<Forced, MmError> {
        let mut done = 0;
        let mut flush = FlushSet::default();
        while done < out.len() {
            let at = addr.raw().checked_add(done as u64).ok_or(MmError::NotMapped { addr: u64::MAX })?;
            let n = chunk(at, out.len() - done);
            let step = GuestVirtAddr::try_new(at).and_then(|va| self.force_page(va, false));
            let target = match step {
                Ok((t, f)) => {
                    flush.merge(f);
                    t
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            let from = GuestAddress(target.base().0 + (at & (PAGE_SIZE - 1)));
            self.memory()
                .read_slice(&mut out[done..done + n], from)
                .map_err(|_| MmError::GuestMemory { addr: from.0 })?;
            done += n;
        }
        Ok(Forced { bytes: done, flush })
    }

    /// Writes `data` at `addr` as a forced access; see the module docs.
    pub fn write_forced(&mut self, addr: GuestVirtAddr, data: &[u8]) -> Result<Forced, MmError> {
        let mut done = 0;
        let mut flush = FlushSet::default();
        while done < data.len() {
            let at = addr.raw().checked_add(done as u64).ok_or(MmError::NotMapped { addr: u64::MAX })?;
            let n = chunk(at, data.len() - done);
            let step = GuestVirtAddr::try_new(at).and_then(|va| self.force_page(va, true));
            let target = match step {
                Ok((t, f)) => {
                    flush.merge(f);
                    t
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            let to = GuestAddress(target.base().0 + (at & (PAGE_SIZE - 1)));
            self.memory().write_slice(&data[done..done + n], to).map_err(|_| MmError::GuestMemory { addr: to.0 })?;
            done += n;
        }
        Ok(Forced { bytes: done, flush })
    }

    /// Makes the page holding `addr` ready for a forced read or write and
    /// says where its bytes are (the frame's base).
    fn force_page(&mut self, addr: GuestVirtAddr, write: bool) -> Result<(Target, FlushSet), MmError> {
        let page = addr.raw() & !(PAGE_SIZE - 1);
        if page >= KERNEL_HALF {
            return Err(MmError::Access("forced access to the supervisor half"));
        }
        let va = GuestVirtAddr::try_new(page)?;
        let vma = self.vmas.find(page).cloned().ok_or(MmError::NotMapped { addr: addr.raw() })?;
        let flags = vma.flags();
        check_forced(flags, write)?;
        if write && flags.contains(VmFlags::WRITE) {
            // The guest's own write, through the fault path.
            let f = self.fault(va, FaultAccess::WRITE)?;
            let t = self.pt.translate(va).ok_or(MmError::FaultFailed { addr: page })?;
            return Ok((Target::Mapped(frame_base(t.phys)), f.flush));
        }
        if write {
            // A THP a fork shared is split first: the page written is then
            // copied like any fork-shared page, never written in place.
            self.unshare_huge(va)?;
        }
        if let Some(leaf) = self.pt.used_leaf(va) {
            if write && leaf.copy_on_write {
                let ops = vma.ops().cloned().ok_or(MmError::NotSupported("no fault handler"))?;
                let from = Pfn(leaf.phys.0 >> PAGE_SHIFT);
                let flush = self.copy_on_write(&vma, ops.as_ref(), va, pgoff_of(&vma, page), from)?;
                let now = self.pt.used_leaf(va).ok_or(MmError::FaultFailed { addr: page })?;
                return Ok((Target::Mapped(frame_base(now.phys)), flush));
            }
            // Readable as it is; a private page written in place.
            return Ok((Target::Mapped(frame_base(leaf.phys)), FlushSet::default()));
        }
        if !write && flags.intersects(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC) {
            // The guest's own read, through the fault path.
            let f = self.fault(va, FaultAccess::READ)?;
            let t = self.pt.translate(va).ok_or(MmError::FaultFailed { addr: page })?;
            return Ok((Target::Mapped(frame_base(t.phys)), f.flush));
        }
        if flags.contains(VmFlags::HUGETLB) {
            return Err(MmError::Access("forced access to an absent page of an inaccessible hugetlb mapping"));
        }
        // A forced write may place a THP, with the VMA's own protection
        // (Linux's FOLL_FORCE write fault in a read-only private VMA).
        if write && self.fault_thp(&vma, page)? {
            let now = self.pt.used_leaf(va).ok_or(MmError::FaultFailed { addr: page })?;
            return Ok((Target::Mapped(frame_base(now.phys)), FlushSet::default()));
        }
        let ops = vma.ops().cloned().ok_or(MmError::NotSupported("no fault handler"))?;
        let access = if write { FaultAccess::WRITE } else { FaultAccess::READ };
        let info = FaultInfo { addr: va, pgoff: pgoff_of(&vma, page), access, cow_from: None };
        let fp = ops.fault(&vma, &info)?;
        if !write {
            // A PROT_NONE VMA: read the page the ops give, map nothing.
            return Ok((Target::Unmapped { base: fp.pfn.addr(), _hold: fp }, FlushSet::default()));
        }
        if fp.copy_on_write {
            return Err(MmError::Invalid("a write fault must give a private page"));
        }
        // A fresh private page, mapped with the VMA's own protection.
        self.map_run(&vma, page, std::slice::from_ref(&fp))?;
        drop(fp);
        let now = self.pt.used_leaf(va).ok_or(MmError::FaultFailed { addr: page })?;
        Ok((Target::Mapped(frame_base(now.phys)), FlushSet::default()))
    }
}

/// Bytes from `at` to the end of its page, at most `left`.
fn chunk(at: u64, left: usize) -> usize {
    let room = PAGE_SIZE - (at & (PAGE_SIZE - 1));
    left.min(room as usize)
}

/// The 4 KiB frame holding `phys`.
fn frame_base(phys: GuestAddress) -> GuestAddress {
    GuestAddress(phys.0 & !(PAGE_SIZE - 1))
}

/// The page offset of `page` in what `vma` maps.
fn pgoff_of(vma: &Vma, page: u64) -> u64 {
    vma.pgoff() + ((page - vma.start().raw()) >> PAGE_SHIFT)
}

/// May a forced access of this kind touch a VMA with `flags`?
/// (`check_vma_flags` with `FOLL_FORCE`.)
pub(crate) fn check_forced(flags: VmFlags, write: bool) -> Result<(), MmError> {
    if flags.intersects(VmFlags::IO | VmFlags::PFNMAP) {
        return Err(MmError::Access("forced access to an I/O mapping"));
    }
    if write {
        if !flags.contains(VmFlags::WRITE) && (flags.contains(VmFlags::HUGETLB) || !flags.is_cow_mapping()) {
            return Err(MmError::Access("forced write outside a private writable-capable mapping"));
        }
    } else if !flags.intersects(VmFlags::READ | VmFlags::MAYREAD) {
        return Err(MmError::Access("forced read of a mapping that may never be read"));
    }
    Ok(())
}
