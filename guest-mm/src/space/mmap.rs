//! The mmap pipeline: setup, provider prepare, action prepare, VMA,
//! complete, hooks, merge; with rollback on any failure.

use vm_memory::GuestMemoryBackend;

use super::{checked_len, checked_range, vma_life, AddressSpace, Mapped, MmapRequest, Placement, KERNEL_HALF};
use crate::action;
use crate::addr::{GuestVirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::{PageProt, VmFlags, VM_ACCESS_FLAGS, VM_LOCKED_MASK};
use crate::provider::{provider_id, MmapProvider};
use crate::vma::{Vma, VmaTree};

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Maps `req` through `provider`; see the module docs for the steps.
    pub fn mmap(&mut self, provider: &dyn MmapProvider, req: &MmapRequest) -> Result<Mapped, MmError> {
        // 1. Setup.
        let len = checked_len(req.len)?;
        if !(req.prot - VM_ACCESS_FLAGS).is_empty() {
            return Err(MmError::Invalid("unknown protection bits"));
        }
        req.pgoff.checked_add(len >> PAGE_SHIFT).ok_or(MmError::Overflow { addr: req.pgoff, len })?;
        let start = self.place(provider, req, len)?;
        let end = start.raw() + len;
        // A fixed mapping may not replace a sealed one (Linux meets it
        // when gathering the VMAs to unmap, before the file's hook).
        self.check_unsealed(start.raw(), end)?;
        self.check_map_count(start.raw(), end, Some(1))?;
        let kernel = start.raw() >= KERNEL_HALF;
        if kernel && req.prot.is_empty() {
            return Err(MmError::Invalid("PROT_NONE in the supervisor half"));
        }
        let mut flags = req.prot | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
        // `mlockall(MCL_FUTURE)` locks the guest process's new mappings.
        if !kernel {
            flags |= self.def_flags;
        }
        if req.shared {
            flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
        }
        if !(req.extra - VmFlags::DROPPABLE - VmFlags::LOCKED - VmFlags::GROWSDOWN).is_empty() {
            return Err(MmError::Invalid("a request may add only VM_DROPPABLE, VM_LOCKED and VM_GROWSDOWN"));
        }
        if req.shared && req.extra.contains(VmFlags::DROPPABLE) {
            return Err(MmError::Invalid("only private mappings may be droppable"));
        }
        // `MAP_LOCKED` in the supervisor half means nothing (it is the
        // guest process's lock, as `def_flags` is).
        flags |= if kernel { req.extra - VmFlags::LOCKED } else { req.extra };
        let pgoff = if req.pgoff_from_addr { start.raw() >> PAGE_SHIFT } else { req.pgoff };
        let mut desc = VmaDesc::new(start, end, pgoff, flags, user_prot(flags, kernel));

        // 2. Provider prepare; 3. action prepare. Nothing is touched yet.
        provider.mmap_prepare(&mut desc)?;
        check_bounds(&desc, start, end)?;
        check_may_bits(desc.flags)?;
        action::prepare(&mut desc, &self.layout)?;
        // mlock never flags these (`mmap_region` clears the lock bits once
        // the file's hook ran): after the action's prepare, which may make
        // the mapping special (`VM_MIXEDMAP` of a page array, as a shared
        // anonymous mapping under `mlockall(MCL_FUTURE)` is).
        if desc.flags.is_unlockable() {
            desc.flags -= VM_LOCKED_MASK;
        }
        // A provider may not lock on its own terms: on-fault needs locked.
        if desc.flags.contains(VmFlags::LOCKONFAULT) && !desc.flags.contains(VmFlags::LOCKED) {
            desc.flags -= VmFlags::LOCKONFAULT;
        }
        if kernel {
            desc.page_prot.user = false;
        }

        // A page array must be pinned in this space's frame state (its
        // frames were checked when it was pinned).
        action::check_pins(&desc.action().kind, &self.frames)?;
        action::check_table_frames(&desc.action().kind, &self.frames)?;

        // 4. A fixed mapping over existing ones detaches them (atomically).
        let replaces = self.vmas.intersects(start.raw(), end);
        let detached = if replaces { Some(self.detach(start, len)?) } else { None };

        // 5. The VMA, then complete.
        let (parts, mut act) = desc.into_parts();
        let mut vma = Vma::from_parts(start, end, parts, provider_id(provider), provider.name());
        // The VMA holds the pins of the arrays it maps before any entry
        // exists, and until it is gone.
        for pin in action::pins(&act.kind) {
            vma.hold(pin);
        }
        self.vmas.insert(vma.clone());
        if let Some(ops) = vma.ops() {
            ops.mapped(&vma);
        }
        let done = action::complete(&act.kind, &vma, &mut self.pt);
        // 6. The success hook sees the finished VMA.
        let done = done.and_then(|stats| match act.success_hook.take() {
            Some(hook) => hook(&vma).map(|private| (stats, private)),
            None => Ok((stats, None)),
        });
        match done {
            Ok((stats, private)) => {
                if let Some(p) = private {
                    if let Some(v) = self.vmas.starting_at_mut(start.raw()) {
                        v.private = Some(p);
                    }
                }
                let flush = detached.map(|d| self.commit(d, (start.raw(), end))).unwrap_or_default();
                self.merge_vmas(start.raw());
                // The action (and its arrays) is dropped here; the VMA
                // holds their pins.
                drop(act);
                let mut flush = flush;
                // A locked mapping (`mlockall(MCL_FUTURE)`) is populated
                // now, errors ignored (`mm_populate`).
                if self.vmas.find(start.raw()).is_some_and(|v| v.flags().contains(VmFlags::LOCKED)) {
                    let _ = self.populate_locked(start.raw(), end, true, &mut flush);
                }
                Ok(Mapped { addr: start, flush, stats })
            }
            Err(err) => {
                log::debug!("mmap at {:#x} failed after the VMA existed: {err}", start.raw());
                self.unmap_new(start, len);
                if let Some(d) = detached {
                    self.reattach(d);
                }
                Err(match act.error_hook.take() {
                    Some(hook) => hook(err),
                    None => err,
                })
            }
        }
    }

    /// Chooses the start address: fixed, hint, or top-down search.
    fn place(&self, provider: &dyn MmapProvider, req: &MmapRequest, len: u64) -> Result<GuestVirtAddr, MmError> {
        let align = provider.align();
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(MmError::Invalid("provider alignment is not a power of two"));
        }
        match req.placement {
            Placement::Fixed | Placement::FixedNoReplace => {
                let addr = req.addr.ok_or(MmError::Invalid("fixed mapping without an address"))?;
                let end = checked_range(addr, len)?;
                if req.placement == Placement::FixedNoReplace && self.vmas.intersects(addr.raw(), end) {
                    return Err(MmError::Exists { addr: addr.raw() });
                }
                Ok(addr)
            }
            Placement::Anywhere => {
                let (lo, hi) = self.window;
                if let Some(hint) = req.addr {
                    if let Ok(end) = checked_range(hint, len) {
                        // Nor inside the guard gap below a stack that
                        // grows down (Linux's `vm_start_gap`).
                        if hint.is_aligned(align)
                            && hint.raw() >= lo
                            && end <= hi
                            && !self.vmas.intersects(hint.raw(), end)
                            && self.vmas.next_from(hint.raw()).is_none_or(|n| end <= VmaTree::start_gap(n))
                        {
                            return Ok(hint);
                        }
                    }
                }
                self.vmas
                    .find_gap_top_down(len, align, lo, hi)
                    .and_then(|a| GuestVirtAddr::try_new(a).ok())
                    .ok_or(MmError::NoSpace { len })
            }
        }
    }

    /// Undoes a VMA whose complete or success hook failed: clears its
    /// entries (deferred flush), frees its tables and drops the VMA (and
    /// its pins).
    fn unmap_new(&mut self, start: GuestVirtAddr, len: u64) {
        match self.pt.unmap_range(start, len) {
            Ok(un) => self.deferred.merge(un.flush),
            // The new VMA's leaves lie inside it, so no split (and no
            // allocation) is ever needed here.
            Err(e) => log::error!("rolling back {:#x}+{len:#x} failed: {e}", start.raw()),
        }
        vma_life::close_all(self.vmas.remove_range(start.raw(), start.raw() + len));
    }
}

/// The protection a new VMA starts with.
fn user_prot(flags: VmFlags, kernel: bool) -> PageProt {
    let mut p = PageProt::from_flags(flags);
    if kernel {
        p.user = false;
    }
    p
}

/// The descriptor must still describe the pipeline's range: a provider
/// cannot replace it from outside this crate (no constructor), and inside
/// it the pipeline refuses rather than trusts.
pub(super) fn check_bounds(desc: &VmaDesc, start: GuestVirtAddr, end: u64) -> Result<(), MmError> {
    if desc.has_bounds(start, end) {
        Ok(())
    } else {
        log::error!("a provider replaced the descriptor of {:#x}..{end:#x}", start.raw());
        Err(MmError::Invalid("provider replaced its descriptor"))
    }
}

/// Access bits need their `MAY*` bits (a provider may clear those).
fn check_may_bits(flags: VmFlags) -> Result<(), MmError> {
    let need = VmFlags::may_bits_for(flags & VM_ACCESS_FLAGS);
    if flags.contains(need) {
        Ok(())
    } else if need.contains(VmFlags::MAYWRITE) && !flags.contains(VmFlags::MAYWRITE) {
        Err(MmError::Access("write"))
    } else if need.contains(VmFlags::MAYEXEC) && !flags.contains(VmFlags::MAYEXEC) {
        Err(MmError::Access("exec"))
    } else {
        Err(MmError::Access("read"))
    }
}
