//! Several address spaces over one guest: a second, empty space over the
//! same guest memory, layout and page pool ([`AddressSpace::sibling`]);
//! the duplicate of a space for fork ([`AddressSpace::fork`], Linux's
//! `dup_mmap` + `copy_page_range`); and the teardown of a whole space
//! ([`AddressSpace::exit`], `exit_mmap`).
//!
//! Spaces share the pool through the [`crate::Frames`] handle, whose pin
//! counts are the per-frame reference counts: every space pins, in its own
//! faulted runs, each frame the fault path put into it, so a frame two
//! spaces map holds two pins. Page arrays a VMA pins (mmap's page arrays,
//! shared memory the provider holds) stay pinned once, by the VMA and its
//! copies together. Nothing of this is on the fault path of a space that
//! never forked.
//!
//! What the child gets, VMA by VMA:
//! - a `VM_DONTCOPY` VMA (`MADV_DONTFORK`): nothing;
//! - any other VMA: a copy with its flags but the lock bits (mlock is not
//!   inherited, and neither is `mlockall(MCL_FUTURE)`), its seal, its
//!   ops (announced with `open`; fresh ones where the ops' `dup_for_fork`
//!   says so), provider state and page-array pins;
//! - a `VM_WIPEONFORK` VMA: empty; its pages fault in fresh (zeroes);
//! - a copy-on-write mapping (private, `VM_MAYWRITE`): every 4 KiB leaf
//!   write-protected in both spaces and marked fork-shared (pool pages,
//!   the zero page and page-array pages alike); the first write in either
//!   space copies the page, or reuses it once the other let go
//!   (`fork_fault.rs`). A transparent huge page's 2 MiB leaf is shared
//!   whole, write-protected and marked the same way; the first write in
//!   either space splits it and copies (or reuses) the 4 KiB page written
//!   (`thp.rs`). Private huge pages (hugetlb) are copied at once
//!   into fresh huge pages of the VMA's provider, which Linux does only
//!   for a pinned huge page (`copy_hugetlb_page_range`; it shares the
//!   others write-protected, see "Not done");
//! - any other mapping (shared, read-only private, raw-frame `VM_PFNMAP` /
//!   `VM_IO`): the same leaves, the same frames.
//!
//! The supervisor half's leaves outside every VMA (the kernel side the
//! VMM maps straight into the tables) are copied as they are: every
//! process maps the same kernel frames. Supervisor-half VMAs are never
//! write-protected either: the kernel's half is shared, not copied on
//! write. Mappings made straight into a space's tables after the fork are
//! that space's alone.
//!
//! The child's page tables come from the pool. The parent's downgraded
//! entries must be flushed before the parent runs again: the caller
//! flushes [`Forked::flush`] through its usual flush path. A failed fork
//! leaves the parent's entries shared (a later write copies or reuses) with
//! their flush in the deferred set, and the partial child torn down.
//!
//! Not done: copy-on-write of huge raw leaves (a private writable remap of
//! guest RAM with 2 MiB leaves stays shared by both spaces, writable), and
//! of private hugetlb pages: Linux write-protects them in both spaces and
//! copies at the first write (`hugetlb_wp`, the copy from the free pages,
//! outside the reservation; with none free, the reservation's owner takes
//! the page back from its children). Here the child gets its copies at
//! fork, from the free pages, so a fork fails with `ENOMEM` where Linux's
//! would succeed and a later write would fail.

use vm_memory::{Bytes, GuestMemoryBackend};

use super::{vma_life, AddressSpace, KERNEL_HALF};
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{VmFlags, VM_LOCKED_MASK};
use crate::frames::TableAllocator;
use crate::paging::{FlushSet, PageTables};
use crate::vma::{FaultAccess, Vma, VmaTree};

/// The result of [`AddressSpace::fork`].
#[must_use = "the parent's write-protected entries must be flushed before it runs again"]
pub struct Forked<M: GuestMemoryBackend> {
    /// The new address space (its CR3 is [`AddressSpace::cr3`]).
    pub child: AddressSpace<M>,
    /// The parent's entries fork write-protected.
    pub flush: FlushSet,
}

impl<M: GuestMemoryBackend> std::fmt::Debug for Forked<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forked").field("child_cr3", &self.child.cr3()).field("flush", &self.flush).finish()
    }
}

impl<M: GuestMemoryBackend + Clone> AddressSpace<M> {
    /// An empty address space over the same guest memory, layout, page
    /// pool and mmap window as this one, with the same VMA limit and
    /// fault-around window; its tables come from the pool (`ENOMEM` when
    /// the pool cannot give the root).
    pub fn sibling(&self) -> Result<Self, MmError> {
        let alloc = TableAllocator::pool_only(self.frames.clone());
        let pt = PageTables::new(self.pt.memory().clone(), alloc)?;
        Ok(AddressSpace {
            pt,
            vmas: self.vmas.budget().cloned().map_or_else(VmaTree::new, VmaTree::with_budget),
            frames: self.frames.clone(),
            layout: self.layout.clone(),
            window: self.window,
            deferred: FlushSet::default(),
            punches: Vec::new(),
            max_map_count: self.max_map_count,
            fault_around: self.fault_around,
            page_pins: super::page_pins::PagePins::default(),
            def_flags: VmFlags::empty(),
            heap: None,
            stack_limit: self.stack_limit,
            thp: self.thp.clone(),
        })
    }

    /// Duplicates this space for fork; see the module docs. `ENOMEM` when
    /// the pool cannot give the child's tables (or a private huge page's
    /// copy); then the child is gone and the parent's shared entries'
    /// flush is deferred ([`AddressSpace::take_deferred_flush`]).
    pub fn fork(&mut self) -> Result<Forked<M>, MmError> {
        let vmas: Vec<Vma> = self.vmas.iter().filter(|v| !v.flags().contains(VmFlags::DONTCOPY)).cloned().collect();
        // The child's VMAs count in the budget all the spaces share: past
        // it, ENOMEM (as a failed dup_mmap) before anything is made.
        self.check_vma_budget(vmas.len())?;
        let mut child = self.sibling()?;
        child.heap = self.heap.clone();
        let mut flush = FlushSet::default();
        let mut copied = Ok(());
        for vma in vmas {
            copied = self.copy_vma(&mut child, vma, &mut flush);
            if copied.is_err() {
                break;
            }
        }
        if let Err(e) = copied.and_then(|()| child.pt.copy_leaves(&self.kernel_leaves())) {
            self.deferred.merge(flush);
            // The child never ran: nothing of it can be cached.
            child.exit().ignore();
            return Err(e);
        }
        Ok(Forked { child, flush })
    }

    /// The supervisor-half leaves outside every VMA (the kernel side a VMM
    /// maps straight into the tables): a child gets them as they are, the
    /// same frames, as every Linux process shares the kernel's half.
    fn kernel_leaves(&self) -> Vec<crate::paging::Leaf> {
        let Ok(k) = GuestVirtAddr::try_new(KERNEL_HALF) else { return Vec::new() };
        let mut leaves = self.pt.leaves_for_child(k, 0u64.wrapping_sub(KERNEL_HALF));
        leaves.retain(|l| !self.vmas.intersects(l.va.raw(), l.va.raw().saturating_add(l.size.bytes())));
        leaves
    }

    /// Gives `child` its copy of `vma` and of its pages.
    fn copy_vma(&mut self, child: &mut AddressSpace<M>, vma: Vma, flush: &mut FlushSet) -> Result<(), MmError> {
        let mut copy = vma.clone();
        copy.flags.remove(VM_LOCKED_MASK);
        if let Some(ops) = vma.ops().and_then(|o| o.dup_for_fork(&vma)) {
            copy.ops = Some(ops);
        }
        child.vmas.insert(copy.clone());
        if let Some(ops) = copy.ops() {
            ops.open(&copy);
        }
        if vma.flags().contains(VmFlags::WIPEONFORK) {
            return Ok(());
        }
        let (start, end) = (vma.start(), vma.end());
        let len = end - start.raw();
        let page = vma.ops().map_or(PAGE_SIZE, |o| o.pagesize(&vma));
        let cow = vma.flags().is_cow_mapping() && start.raw() < KERNEL_HALF;
        if cow && vma.flags().contains(VmFlags::HUGETLB) && page > PAGE_SIZE {
            return self.copy_huge_pages(child, &copy, page);
        }
        if cow {
            if super::thp::vma_may_hold_thp(&vma) {
                // A THP leaf crossing the VMA's ends is split first (the
                // child gets only the part inside); the ones inside are
                // shared whole, write-protected in both spaces.
                for edge in [start.raw(), end] {
                    if edge % crate::addr::PageSize::Size2M.bytes() != 0 {
                        self.pt.split_huge(GuestVirtAddr::try_new(edge)?)?;
                    }
                }
                let pins = &self.page_pins;
                flush.merge(self.pt.share_huge_for_fork(start, len, |s| pins.frame_at(s).is_some()));
            }
            flush.merge(self.pt.share_for_fork(start, len));
        }
        let runs = self.page_pins.copy_range(start.raw(), end)?;
        child.pt.copy_leaves(&self.pt.leaves_for_child(start, len))?;
        child.page_pins.insert_fresh(runs);
        Ok(())
    }

    /// A private hugetlb VMA: each huge page mapped here is copied into a
    /// fresh one the child's VMA faults in (a write fault of the child).
    fn copy_huge_pages(&self, child: &mut AddressSpace<M>, vma: &Vma, size: u64) -> Result<(), MmError> {
        let ops = vma.ops().cloned().ok_or(MmError::NotSupported("no fault handler"))?;
        for leaf in self.pt.leaves(vma.start(), vma.size()) {
            let Some(from) = self.pt.translate(leaf.va) else { continue };
            child.fault_huge(vma, ops.as_ref(), leaf.va.raw(), size, FaultAccess::WRITE)?;
            let to = child.pt.translate(leaf.va).ok_or(MmError::NotMapped { addr: leaf.va.raw() })?;
            copy_frames(self.pt.memory(), from.phys, to.phys, size)?;
        }
        Ok(())
    }
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Tears the whole space down (`exit_mmap`): every entry cleared, every
    /// VMA closed (seals do not hold here), every faulted run and table
    /// page let go; frames another space still maps stay pinned by it.
    /// Its table pages go back to their region or the pool, so no vCPU
    /// may still run on its CR3 (switch every vCPU away first). Returns
    /// the flush of the cleared entries, for a caller whose vCPUs may
    /// still cache this space's translations (one that flushed the
    /// space's PCID may ignore it).
    pub fn exit(mut self) -> FlushSet {
        let mut flush = self.take_deferred_flush();
        // Adjacent VMAs as one range: a huge leaf across their boundary
        // goes whole, without a split.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for v in self.vmas.iter() {
            match ranges.last_mut() {
                Some((_, e)) if *e == v.start().raw() => *e = v.end(),
                _ => ranges.push((v.start().raw(), v.end())),
            }
        }
        for (s, e) in ranges {
            let cleared = GuestVirtAddr::try_new(s).and_then(|va| self.pt.unmap_range(va, e - s));
            match cleared {
                Ok(u) => flush.merge(u.flush),
                Err(err) => log::error!("exit: clearing {s:#x}..{e:#x} failed: {err}"),
            }
            drop(self.page_pins.take(s, e));
            vma_life::close_all(self.vmas.remove_range(s, e));
        }
        flush.merge(self.pt.take_rollback_flush());
        flush
    }
}

/// Copies `len` bytes (whole pages) of guest memory from `from` to `to`.
pub(super) fn copy_frames<M: GuestMemoryBackend>(
    mem: &M,
    from: vm_memory::GuestAddress,
    to: vm_memory::GuestAddress,
    len: u64,
) -> Result<(), MmError> {
    let mut buf = [0u8; PAGE_SIZE as usize];
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        let (src, dst) = (vm_memory::GuestAddress(from.0 + off), vm_memory::GuestAddress(to.0 + off));
        mem.read_slice(&mut buf, src).map_err(|_| MmError::GuestMemory { addr: src.0 })?;
        mem.write_slice(&buf, dst).map_err(|_| MmError::GuestMemory { addr: dst.0 })?;
    }
    Ok(())
}
