//! `mbind`: a memory policy for a range (Linux 6.12's `do_mbind`), with
//! the page migration `MPOL_MF_MOVE` asks for, on a machine with one
//! memory node (see [`crate::mempolicy`]).
//!
//! The order is Linux's: the range is checked first (holes are `EFAULT`
//! unless the policy is the default; nothing changes on that error), then
//! the policy is set on every VMA of the range (split at the range's ends
//! where the policy differs, merged with neighbours of the same policy),
//! then the pages found "misplaced" are moved.
//!
//! Misplaced (`MPOL_MF_INVERT` in Linux) means: on a node the *user's*
//! mask does not name. With one node that is every page when the mask
//! lacks node 0 (`MPOL_LOCAL`, a `RELATIVE` mask, `MPOL_DEFAULT`), none
//! otherwise. For each present, normal (not the zero page, not
//! copy-on-write) page of a misplaced range:
//! - without `MPOL_MF_MOVE`/`MOVE_ALL`, `MPOL_MF_STRICT` counts it as not
//!   moved and stops the walk (Linux's `strictly_unmovable`);
//! - a page of this space's own anonymous memory that nothing else holds
//!   is moved: copied into a fresh pool page, which replaces it in one
//!   store with the same protection, and the old frame goes back to the
//!   pool (`migrate_pages`, node 0 to node 0);
//! - a page still marked copy-on-write (the zero page, a page a fork
//!   shares) is skipped: Linux skips the zero page and a shared folio
//!   without `MOVE_ALL`; with `MOVE_ALL` it is left in place too (its other
//!   mappings are not this space's to change), which on one node is where
//!   it already is;
//! - a page held by more than its mapping (a pipe's `vmsplice`, a pin)
//!   counts as not moved, as Linux's migration fails on the extra
//!   reference;
//! - a page of a shared-memory object stays in place (it already lives on
//!   the only node);
//! - a page-array page (a provider's kernel page, not on an LRU list in
//!   Linux) cannot be isolated: counted as not moved.
//!
//! The caller returns `EIO` when `MPOL_MF_STRICT` was given and
//! [`Mbound::not_moved`] is not zero, after the policy was set, as Linux
//! does.

use std::sync::Arc;

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::addr::{page_align_up, GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::mempolicy::{MemPolicy, NodeMask};
use crate::paging::FlushSet;

/// `MPOL_MF_STRICT`: fail (`EIO`) if a page is not where the policy wants.
pub const MPOL_MF_STRICT: u64 = 1;
/// `MPOL_MF_MOVE`: move the misplaced pages only this process maps.
pub const MPOL_MF_MOVE: u64 = 2;
/// `MPOL_MF_MOVE_ALL`: move shared pages too (needs `CAP_SYS_NICE`).
pub const MPOL_MF_MOVE_ALL: u64 = 4;
const MPOL_MF_VALID: u64 = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL;

/// What [`AddressSpace::mbind`] did.
#[derive(Debug, Default)]
#[must_use = "the flush must reach the TLBs before the old frames are reused"]
pub struct Mbound {
    /// Pages moved to a fresh frame.
    pub moved: u64,
    /// Misplaced pages that could not be moved (see the module docs).
    pub not_moved: u64,
    /// The TLB flush the moved pages' old translations need.
    pub flush: FlushSet,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// `mbind(addr, len, policy, flags)` with `user_nodes`, the mask as
    /// the user gave it (it decides which pages are misplaced); `policy`
    /// from [`MemPolicy::new`] (`None` for `MPOL_DEFAULT`). `EINVAL` for
    /// unknown flags or a misaligned `addr` or a length that overflows;
    /// a zero length does nothing. `EFAULT` (`MmError::Hole`) when no VMA
    /// covers part of the range and the policy is not the default, or
    /// none covers any of it; `ENOMEM` past the VMA limit, `EINVAL` for a
    /// cut of a huge-page VMA off its pages: on these errors nothing
    /// changed. The `CAP_SYS_NICE` check of `MOVE_ALL` is the caller's.
    pub fn mbind(
        &mut self,
        addr: GuestVirtAddr,
        len: u64,
        policy: Option<MemPolicy>,
        user_nodes: &NodeMask,
        flags: u64,
    ) -> Result<Mbound, MmError> {
        if flags & !MPOL_MF_VALID != 0 {
            return Err(MmError::Invalid("unknown mbind flags"));
        }
        if !addr.is_aligned(PAGE_SIZE) {
            return Err(MmError::Misaligned { what: "address", value: addr.raw(), align: PAGE_SIZE });
        }
        let flags = if policy.is_none() { flags & !MPOL_MF_STRICT } else { flags };
        let len = page_align_up(len).ok_or(MmError::Overflow { addr: addr.raw(), len })?;
        if len == 0 {
            return Ok(Mbound::default());
        }
        let (start, end) = (addr.raw(), addr.checked_end(len)?);
        let (parts, hole) = self.mapped_parts(start, end);
        match (parts.first(), hole) {
            (None, _) => return Err(MmError::Hole { addr: start }),
            (Some(_), Some(h)) if policy.is_some() => return Err(MmError::Hole { addr: h }),
            _ => {}
        }
        self.set_policy(start, end, policy)?;
        let mut done = Mbound::default();
        if flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 && !user_nodes.contains(0) {
            self.move_misplaced(&parts, flags, &mut done);
        }
        Ok(done)
    }

    /// The policy of the VMA holding `addr` (`get_mempolicy(MPOL_F_ADDR)`),
    /// `None` for the default; `EFAULT` (`MmError::Hole`) when no VMA
    /// holds it.
    pub fn policy_at(&self, addr: GuestVirtAddr) -> Result<Option<MemPolicy>, MmError> {
        let v = self.vmas.find(addr.raw()).ok_or(MmError::Hole { addr: addr.raw() })?;
        Ok(v.policy().copied())
    }

    /// `mbind_range`: every VMA of `[start, end)` gets `policy`; a VMA
    /// that has it already is not cut.
    fn set_policy(&mut self, start: u64, end: u64, policy: Option<MemPolicy>) -> Result<(), MmError> {
        let differs = |v: &crate::vma::Vma| v.policy() != policy.as_ref();
        let cuts: Vec<u64> = self
            .vmas
            .overlapping(start, end)
            .filter(|v| differs(v))
            .flat_map(|v| [v.start().raw().max(start), v.end().min(end)])
            .filter(|&a| self.vmas.find(a).is_some_and(|v| v.start().raw() != a))
            .collect();
        if !self.vmas.overlapping(start, end).any(differs) {
            return Ok(());
        }
        if let (Some(&lo), Some(&hi)) = (cuts.iter().min(), cuts.iter().max()) {
            self.check_huge_split(lo, hi)?;
            if self.vmas.len() + cuts.len() > self.max_map_count {
                return Err(MmError::TooManyMappings { limit: self.max_map_count });
            }
            self.check_vma_budget(cuts.len())?;
        }
        for c in cuts {
            self.split_vma(c);
        }
        let shared = policy.map(Arc::new);
        self.vmas.update_range(start, end, |v| v.policy = shared.clone());
        let starts: Vec<u64> = self.vmas.overlapping(start, end).map(|v| v.start().raw()).collect();
        for s in starts.into_iter().rev() {
            self.merge_vmas(s);
        }
        Ok(())
    }

    /// `queue_pages_range` + `migrate_pages` over the mapped `parts`, all
    /// misplaced (see the module docs).
    fn move_misplaced(&mut self, parts: &[(u64, u64)], flags: u64, done: &mut Mbound) {
        let moving = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0;
        for &(s, e) in parts {
            let Some(vma) = self.vmas.find(s).cloned() else { continue };
            // A VM_IO or VM_PFNMAP VMA has no normal page to find.
            if vma.flags().intersects(VmFlags::IO | VmFlags::PFNMAP) {
                continue;
            }
            let Ok(va) = GuestVirtAddr::try_new(s) else { continue };
            for leaf in self.pt.leaves(va, e - s) {
                if !leaf.is_present() || leaf.is_copy_on_write() {
                    continue;
                }
                let Some(pfn) = leaf.counted_frame() else {
                    // A raw leaf: a device page (not normal) or a huge
                    // page, which stays where it is on the only node.
                    continue;
                };
                if !moving {
                    done.not_moved += 1;
                    return;
                }
                if self.page_pins.frame_at(leaf.va.raw()) != Some(pfn) {
                    // A page-array page: not on an LRU list, not isolated.
                    done.not_moved += 1;
                    continue;
                }
                if !vma.is_private_anon() {
                    // A shared-memory object's page: already on the node.
                    continue;
                }
                if !self.frames.lock().only_one_pin(pfn) {
                    // Held by more than its mapping (a pipe, a pin):
                    // migration fails on the extra reference.
                    done.not_moved += 1;
                    continue;
                }
                match self.move_page(leaf.va, pfn, &vma) {
                    Ok(flush) => {
                        done.flush.merge(flush);
                        done.moved += 1;
                    }
                    // No page to move it to: it stays, not moved.
                    Err(_) => done.not_moved += 1,
                }
            }
        }
    }

    /// Moves the page at `va` (this space's only reference to `old`) to a
    /// fresh pool page with the same contents and protection.
    fn move_page(
        &mut self,
        va: GuestVirtAddr,
        old: crate::addr::Pfn,
        vma: &crate::vma::Vma,
    ) -> Result<FlushSet, MmError> {
        debug_assert_eq!(self.pt.used_leaf(va).map(|l| l.size), Some(PageSize::Size4K));
        self.copy_to_fresh_page(va, old, vma.page_prot())
    }
}
