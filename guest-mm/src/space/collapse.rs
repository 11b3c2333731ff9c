//! `MADV_COLLAPSE`: turning the 4 KiB pages of private anonymous memory
//! back into transparent huge pages, as Linux 6.12's `madvise_collapse`
//! does synchronously (there is no `khugepaged` here).
//!
//! For one VMA's part `[s, e)` of the advised range, every 2 MiB slot
//! lying wholly inside it (`s` rounded up, `e` rounded down to 2 MiB) is
//! collapsed:
//!
//! - a slot already mapped by a 2 MiB leaf (a THP, or the huge zero
//!   page) counts as collapsed (`SCAN_PMD_MAPPED`);
//! - a slot with nothing mapped stops the walk (`SCAN_PMD_NONE`);
//! - otherwise its present pages are copied into a fresh, zeroed,
//!   aligned 2 MiB pool block (absent pages and zero-page mappings stay
//!   zero), the old entries are cleared (each old page is let go of; a
//!   page a fork shared stays with the other space), and the block is
//!   mapped by one 2 MiB leaf with the VMA's protection, pinned as one
//!   faulted run (as a THP the write fault placed).
//!
//! A slot whose pages are all zero-page mappings is refused
//! (`SCAN_PAGE_RO`: Linux needs a writable entry). Linux 6.12 also
//! refuses a slot whose entries are all write-protected, which a fork
//! leaves in the parent; the Linux the selftests' results come from
//! collapses such a slot (`cow`'s "collapsing after fork() (fully
//! shared)" passes there), so here a page a fork shared counts as
//! writable when the VMA is. A read-only VMA's slots are refused.
//!
//! The VMA must allow THPs at all ([`super::vma_may_hold_thp`]) and not
//! carry `VM_NOHUGEPAGE`, or the call fails with `EINVAL`; the sysfs
//! `enabled` mode is not consulted (Linux ignores it for
//! `MADV_COLLAPSE`). A part lying inside one slot without reaching its
//! start (the rounded start past the rounded end) is `EINVAL`, as the
//! unsigned count Linux compares makes it. The call succeeds when every
//! slot was collapsed;
//! otherwise it answers for the last failure: `ENOMEM` when no block was
//! free (the walk stops there), else `EINVAL`. Nothing collapses shared
//! anonymous or file memory here (`EINVAL`), where Linux collapses shmem
//! and read-only file pages.

use vm_memory::GuestMemoryBackend;

use super::thp::vma_may_hold_thp;
use super::AddressSpace;
use crate::action::PageArray;
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::FlushSet;

/// What one 2 MiB slot came to (Linux's `scan_result`, the ones that can
/// happen here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Collapsed now, or a 2 MiB leaf already.
    Huge,
    /// Nothing mapped: the walk stops.
    Empty,
    /// No page of its own (only zero-page mappings), or a read-only VMA.
    ReadOnly,
    /// No 2 MiB block free: the walk stops.
    NoBlock,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `MADV_COLLAPSE` over `[s, e)`, inside one VMA; see the module docs.
    pub(super) fn madvise_collapse(&mut self, s: u64, e: u64, flush: &mut FlushSet) -> Result<(), MmError> {
        let vma = self.vmas.find(s).cloned().ok_or(MmError::NotMapped { addr: s })?;
        if !vma_may_hold_thp(&vma) || vma.flags().contains(VmFlags::NOHUGEPAGE) {
            return Err(MmError::Invalid("MADV_COLLAPSE on memory that may not hold THPs"));
        }
        let m2 = PageSize::Size2M.bytes();
        let first = s.div_ceil(m2).saturating_mul(m2);
        let last = e & !(m2 - 1);
        // Linux compares the slot count with (last - first) / 2 MiB in
        // unsigned arithmetic: a part that starts and ends inside one slot
        // (first past last) fails, one ending on the boundary it starts
        // at does not.
        if first > last {
            return Err(MmError::Invalid("MADV_COLLAPSE of a range inside one slot"));
        }
        let mut failed = None;
        let mut at = first;
        while at < last {
            match self.collapse_slot(&vma, at, flush)? {
                Slot::Huge => {}
                Slot::ReadOnly => failed = Some(Slot::ReadOnly),
                stop @ (Slot::Empty | Slot::NoBlock) => {
                    failed = Some(stop);
                    break;
                }
            }
            at += m2;
        }
        match failed {
            None => Ok(()),
            Some(Slot::NoBlock) => Err(MmError::OutOfMemory("no 2 MiB block for MADV_COLLAPSE")),
            Some(_) => Err(MmError::Invalid("MADV_COLLAPSE found a slot it cannot collapse")),
        }
    }

    /// Collapses the 2 MiB slot at `base` of `vma` (see the module docs).
    fn collapse_slot(&mut self, vma: &crate::vma::Vma, base: u64, flush: &mut FlushSet) -> Result<Slot, MmError> {
        let m2 = PageSize::Size2M.bytes();
        let va = GuestVirtAddr::try_new(base)?;
        if self.pt.huge_slot_is_empty(va) {
            return Ok(Slot::Empty);
        }
        let leaves = self.pt.leaves(va, m2);
        if leaves.iter().any(|l| l.size != PageSize::Size4K) {
            return Ok(Slot::Huge);
        }
        // Zero-page mappings are copy-on-write without a fork's mark.
        let own: Vec<_> = leaves.iter().filter(|l| !l.is_copy_on_write() || l.is_fork_shared()).collect();
        if own.is_empty() || !vma.flags().contains(VmFlags::WRITE) {
            return Ok(Slot::ReadOnly);
        }
        let Ok(block) = self.frames.alloc_block(1 << super::thp::THP_PMD_ORDER) else {
            return Ok(Slot::NoBlock);
        };
        block.zero(self.pt.memory())?;
        let dst = block.pfns().first().copied().ok_or(MmError::OutOfMemory("contiguous pool pages"))?;
        for leaf in &own {
            let to = vm_memory::GuestAddress(dst.addr().0 + (leaf.va.raw() - base));
            super::fork::copy_frames(self.pt.memory(), leaf.frame().addr(), to, PAGE_SIZE)?;
        }
        // Pinned before its entry exists; the old pages go once the new
        // leaf is in. The tables the clear frees stay with the allocator
        // until then, so a failed map puts the old entries back exactly
        // (as a failed fixed mapping does, `rollback.rs`).
        let arr = PageArray::pin(&self.frames, block.pfns().clone())?;
        self.pt.allocator_mut().hold_freed();
        let un = match self.pt.unmap_range(va, m2) {
            Ok(un) => un,
            Err(e) => {
                self.pt.allocator_mut().release_held();
                return Err(e);
            }
        };
        let runs = self.page_pins.take(base, base + m2);
        let mapped = self.pt.map_range(va, dst.addr(), m2, vma.page_prot(), PageSize::Size2M);
        flush.merge(un.flush);
        if let Err(e) = mapped {
            if let Err(r) = self.pt.restore(&leaves, &un.splits) {
                log::error!("restoring the slot at {base:#x} after a failed collapse: {r}");
            }
            self.pt.allocator_mut().release_held();
            self.page_pins.put_back(runs, 0);
            flush.merge(self.pt.take_rollback_flush());
            return Err(e);
        }
        self.pt.allocator_mut().release_held();
        drop(runs);
        self.page_pins.insert(base, arr);
        Ok(Slot::Huge)
    }
}
