//! The fault path (`handle_mm_fault`): a guest touched a page of a VMA
//! whose entry is absent, or wrote a copy-on-write page. The VMA's
//! [`VmaOps::fault`] gives the frame; [`VmaOps::map_pages`] fills absent
//! neighbours in the same leaf table (fault-around) with the batched
//! insert path.
//!
//! What is refused, with nothing changed: an address in no VMA
//! (`NotMapped`, the guest's `SIGSEGV`), an access the VMA does not allow
//! (`Access`), a VMA without a fault handler or a handler that refuses
//! (its error, the guest's `SIGBUS`). A fault on an entry that is already
//! present and allows the access (another vCPU filled it first, or a stale
//! TLB entry) is *spurious*: nothing to do but retry the instruction.
//!
//! Fault-around is best effort: a neighbour the provider cannot give, or
//! a failed insert of neighbours, leaves them absent; the faulting page
//! alone decides success.
//!
//! A write to a page a fork shared goes to `fork_fault.rs` instead of the
//! provider: Linux copies such a page itself (`wp_page_copy`). A write to
//! an absent page of a VMA the THP policy allows first tries a
//! transparent huge page (`thp.rs`); a write to a THP a fork shared splits
//! it first.

use vm_memory::GuestMemoryBackend;

use super::{AddressSpace, KERNEL_HALF};
use crate::action::PageArray;
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SHIFT, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::{PageProt, VmFlags};
use crate::paging::FlushSet;
use crate::vma::{FaultAccess, FaultInfo, FaultPage, Vma, VmaOps};

/// Fault-around window, in pages, by default: 256 KiB. Linux's
/// `fault_around_bytes` is 64 KiB, sized for hardware where a fault costs
/// about a microsecond; here a fault is an exit to the VMM (about 200 µs
/// on the software-assisted backend this is developed on, see
/// `docs/benchmarks.md`), so a window maps more per fault.
pub const FAULT_AROUND_PAGES: u64 = 64;

/// The window of a write fault is at most this many pages: its
/// neighbours are fresh pages (anonymous memory), so a larger window
/// would spend memory a sparse writer never uses. Reads map pages that
/// exist anyway (the zero page, a page buffer).
pub const WRITE_FAULT_AROUND_PAGES: u64 = 16;

/// What a handled fault did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The entry already allowed the access: retry the instruction.
    Spurious,
    /// An absent page was filled.
    Mapped,
    /// A copy-on-write page was replaced by a private copy.
    CopiedOnWrite,
    /// A page a fork shared, which no other space maps any more, was made
    /// writable in place (Linux's `wp_page_reuse`); nothing to flush.
    Reused,
}

/// The result of [`AddressSpace::fault`].
#[derive(Debug)]
#[must_use = "a copy-on-write fault replaced an entry that must be flushed"]
pub struct Faulted {
    /// What happened.
    pub kind: FaultKind,
    /// Neighbours fault-around mapped besides the faulting page.
    pub around: u64,
    /// Entries replaced (copy-on-write); empty otherwise.
    pub flush: FlushSet,
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Sets the fault-around window (pages; a power of two up to 512,
    /// 1 disables it). `EINVAL` otherwise.
    pub fn set_fault_around(&mut self, pages: u64) -> Result<(), MmError> {
        if !pages.is_power_of_two() || pages > 512 {
            return Err(MmError::Invalid("fault-around window must be a power of two up to 512 pages"));
        }
        self.fault_around = pages;
        Ok(())
    }

    /// The fault-around window in pages.
    pub fn fault_around(&self) -> u64 {
        self.fault_around
    }

    /// Handles a fault at `addr` with `access`; see the module docs.
    pub fn fault(&mut self, addr: GuestVirtAddr, access: FaultAccess) -> Result<Faulted, MmError> {
        let page = addr.raw() & !(PAGE_SIZE - 1);
        let va = GuestVirtAddr::try_new(page)?;
        let vma = match self.vmas.find(page).cloned() {
            Some(v) => v,
            // Below a stack that grows down, the stack grows (`stack_grow.rs`).
            None if page < KERNEL_HALF => {
                self.grow_stack_to(page).map_err(|_| MmError::NotMapped { addr: addr.raw() })?
            }
            None => return Err(MmError::NotMapped { addr: addr.raw() }),
        };
        if page >= KERNEL_HALF {
            return Err(MmError::Access("fault in the supervisor half"));
        }
        check_access(vma.flags(), access)?;
        let pgoff = vma.pgoff() + ((page - vma.start().raw()) >> PAGE_SHIFT);
        let present = self.pt.translate(va);
        if present.is_some_and(|t| !access.write || t.prot.writable) {
            return Ok(Faulted { kind: FaultKind::Spurious, around: 0, flush: FlushSet::default() });
        }
        if access.write && present.is_some_and(|t| t.size == PageSize::Size2M) && self.unshare_huge(va)? {
            // A THP a fork shared (or the huge zero page), now PTE-mapped:
            // the 4 KiB page written is copied or reused below.
            log::trace!("split a shared THP for a write at {page:#x}");
        }
        if let Some(t) = present.filter(|_| self.pt.is_fork_shared(va)) {
            return self.fault_fork_shared(&vma, va, t.pfn);
        }
        let ops = vma.ops().cloned().ok_or(MmError::NotSupported("no fault handler"))?;
        let huge = ops.pagesize(&vma);
        if vma.flags().contains(VmFlags::HUGETLB) && huge > PAGE_SIZE {
            if present.is_some() {
                if !access.write || !self.pt.is_copy_on_write(va) {
                    return Err(MmError::Access("write to a read-only huge page"));
                }
                let flush = self.cow_huge(&vma, ops.as_ref(), page, huge, access)?;
                return Ok(Faulted { kind: FaultKind::CopiedOnWrite, around: 0, flush });
            }
            self.fault_huge(&vma, ops.as_ref(), page, huge, access)?;
            return Ok(Faulted { kind: FaultKind::Mapped, around: 0, flush: FlushSet::default() });
        }
        if let Some(t) = present {
            if !self.pt.is_copy_on_write(va) {
                return Err(MmError::Access("write to a read-only entry"));
            }
            let flush = self.copy_on_write(&vma, ops.as_ref(), va, pgoff, t.pfn)?;
            return Ok(Faulted { kind: FaultKind::CopiedOnWrite, around: 0, flush });
        }
        let placed = if access.write { self.fault_thp(&vma, page)? } else { self.fault_huge_zero(&vma, page)? };
        if placed {
            return Ok(Faulted { kind: FaultKind::Mapped, around: 0, flush: FlushSet::default() });
        }
        let info = FaultInfo { addr: va, pgoff, access, cow_from: None };
        let fp = ops.fault(&vma, &info)?;
        self.map_run(&vma, page, std::slice::from_ref(&fp))?;
        drop(fp);
        let around = self.map_around(&vma, ops.as_ref(), page, access);
        Ok(Faulted { kind: FaultKind::Mapped, around, flush: FlushSet::default() })
    }

    /// Replaces the copy-on-write leaf at `va` (offset `pgoff` in `vma`,
    /// mapping `from`) by the private copy `ops` gives for a write, with
    /// the VMA's protection (read-only in a VMA without `WRITE`: a forced
    /// write leaves it so). Returns the flush of the old entry.
    pub(super) fn copy_on_write(
        &mut self,
        vma: &Vma,
        ops: &dyn VmaOps,
        va: GuestVirtAddr,
        pgoff: u64,
        from: crate::addr::Pfn,
    ) -> Result<FlushSet, MmError> {
        let info = FaultInfo { addr: va, pgoff, access: FaultAccess::WRITE, cow_from: Some(from) };
        let fp = ops.fault(vma, &info)?;
        if fp.copy_on_write {
            return Err(MmError::Invalid("a copy-on-write fault must give a private page"));
        }
        // The copy is pinned before its entry exists; the run that
        // pinned the old frame lets go of this page after the store.
        let page_arr = PageArray::pin(&self.frames, std::sync::Arc::from([fp.pfn].as_slice()))?;
        let (_, flush) = self.pt.replace_page(va, &page_arr, vma.page_prot())?;
        self.page_pins.insert(va.raw(), page_arr);
        drop(fp);
        Ok(flush)
    }

    /// A fault in a hugetlb VMA (`hugetlb_fault`): the ops give the huge
    /// page holding `page` (its first frame, aligned to `size`), mapped by
    /// one leaf of `size`. Its frames are pinned as one faulted run at the
    /// huge page's address (so munmap, `MADV_DONTNEED` and mremap let go
    /// of it as of any run); the leaf itself is a raw one. A page the ops
    /// give copy-on-write (a file's page in a private mapping) is mapped
    /// read-only with the `COW` bit, so a write comes back to
    /// [`Self::cow_huge`]. No fault-around.
    pub(super) fn fault_huge(
        &mut self,
        vma: &Vma,
        ops: &dyn VmaOps,
        page: u64,
        size: u64,
        access: FaultAccess,
    ) -> Result<(), MmError> {
        let leaf = match size {
            s if s == PageSize::Size2M.bytes() => PageSize::Size2M,
            s if s == PageSize::Size1G.bytes() => PageSize::Size1G,
            _ => return Err(MmError::Invalid("huge-page size is not a leaf size")),
        };
        let hpage = page & !(size - 1);
        if hpage < vma.start().raw() || hpage + size > vma.end() {
            return Err(MmError::Misaligned { what: "huge-page VMA", value: vma.start().raw(), align: size });
        }
        let va = GuestVirtAddr::try_new(hpage)?;
        let pgoff = vma.pgoff() + ((hpage - vma.start().raw()) >> PAGE_SHIFT);
        let fp = ops.fault(vma, &FaultInfo { addr: va, pgoff, access, cow_from: None })?;
        if fp.pfn.addr().0 % size != 0 {
            return Err(MmError::Misaligned { what: "huge-page frame", value: fp.pfn.addr().0, align: size });
        }
        let frames: std::sync::Arc<[crate::addr::Pfn]> =
            (0..size >> PAGE_SHIFT).map(|i| crate::addr::Pfn(fp.pfn.0 + i)).collect();
        // Pinned before the entry exists, kept by address until removed.
        let arr = PageArray::pin(&self.frames, frames)?;
        let mut prot = vma.page_prot();
        if fp.copy_on_write {
            prot.writable = false;
        }
        self.pt.map_range(va, fp.pfn.addr(), size, prot, leaf)?;
        if fp.copy_on_write {
            if let Err(e) = self.pt.set_copy_on_write(va) {
                // Read-only and never written: no walker cached it writable.
                let un = self.pt.unmap_range(va, size)?;
                self.deferred.merge(un.flush);
                return Err(e);
            }
        }
        self.page_pins.insert(hpage, arr);
        drop(fp);
        Ok(())
    }

    /// A write to a copy-on-write huge leaf (`hugetlb_wp`): the ops give a
    /// private copy of the huge page (`cow_from` is its first frame); the
    /// old leaf is cleared and its run let go, then the copy is mapped
    /// writable by one leaf (break before make, as Linux's
    /// `huge_ptep_clear_flush` + `set_huge_pte_at`). Returns the old
    /// leaf's flush. The copy is pinned before anything changes, so a
    /// refused copy leaves the old leaf; a failed map after the clear
    /// leaves the page absent (it refaults) with the flush deferred.
    fn cow_huge(
        &mut self,
        vma: &Vma,
        ops: &dyn VmaOps,
        page: u64,
        size: u64,
        access: FaultAccess,
    ) -> Result<FlushSet, MmError> {
        let leaf = match size {
            s if s == PageSize::Size2M.bytes() => PageSize::Size2M,
            _ => return Err(MmError::Invalid("copy-on-write of a huge page that is not 2 MiB")),
        };
        let hpage = page & !(size - 1);
        let va = GuestVirtAddr::try_new(hpage)?;
        let old = self.pt.translate(va).ok_or(MmError::NotMapped { addr: hpage })?;
        let pgoff = vma.pgoff() + ((hpage - vma.start().raw()) >> PAGE_SHIFT);
        let fp = ops.fault(vma, &FaultInfo { addr: va, pgoff, access, cow_from: Some(old.pfn) })?;
        if fp.pfn.addr().0 % size != 0 || fp.copy_on_write {
            return Err(MmError::Misaligned { what: "huge-page copy", value: fp.pfn.addr().0, align: size });
        }
        let frames: std::sync::Arc<[crate::addr::Pfn]> =
            (0..size >> PAGE_SHIFT).map(|i| crate::addr::Pfn(fp.pfn.0 + i)).collect();
        let arr = PageArray::pin(&self.frames, frames)?;
        let un = self.pt.unmap_range(va, size)?;
        drop(self.page_pins.take(hpage, hpage + size));
        if let Err(e) = self.pt.map_range(va, fp.pfn.addr(), size, vma.page_prot(), leaf) {
            self.deferred.merge(un.flush);
            return Err(e);
        }
        self.page_pins.insert(hpage, arr);
        drop(fp);
        Ok(un.flush)
    }

    /// Maps `pages` at consecutive pages from `start` inside `vma` (all
    /// absent), batched, and marks the copy-on-write ones. The run is
    /// pinned as one array, recorded at `start` in the faulted runs. On
    /// error nothing of this call remains.
    pub(crate) fn map_run(&mut self, vma: &Vma, start: u64, pages: &[FaultPage]) -> Result<u64, MmError> {
        let va = GuestVirtAddr::try_new(start)?;
        let pfns: Vec<_> = pages.iter().map(|p| p.pfn).collect();
        let cow = pages.iter().any(|p| p.copy_on_write);
        let mut prot: PageProt = vma.page_prot();
        if cow {
            prot.writable = false;
        }
        // One pin for the run, taken before any entry exists and kept
        // (by address) until the range is unmapped, dropped or moved.
        let arr = PageArray::pin(&self.frames, pfns.into())?;
        self.pt.insert_pages(va, &arr, prot)?;
        self.page_pins.insert(start, arr);
        if cow {
            for i in 0..pages.len() as u64 {
                let at = GuestVirtAddr::try_new(start + (i << PAGE_SHIFT))?;
                self.pt.set_copy_on_write(at)?;
            }
        }
        Ok(pages.len() as u64)
    }

    /// Fault-around: asks `ops.map_pages` for the absent pages of the
    /// aligned window around `page` (inside the VMA and its leaf table;
    /// never in a `VM_LOCKONFAULT` VMA)
    /// and maps what it gives, one batched insert per run. Returns how
    /// many pages it mapped.
    fn map_around(&mut self, vma: &Vma, ops: &dyn VmaOps, page: u64, access: FaultAccess) -> u64 {
        let n = if access.write { self.fault_around.min(WRITE_FAULT_AROUND_PAGES) } else { self.fault_around };
        // A lock-on-fault VMA locks exactly the pages touched
        // (`MLOCK_ONFAULT`): its residency is what the program faulted.
        if n <= 1 || vma.flags().contains(VmFlags::LOCKONFAULT) {
            return 0;
        }
        let win = n << PAGE_SHIFT;
        let ws = (page & !(win - 1)).max(vma.start().raw());
        let we = (page & !(win - 1)).saturating_add(win).min(vma.end());
        let Ok(wva) = GuestVirtAddr::try_new(ws) else { return 0 };
        let present: Vec<u64> = self.pt.leaves(wva, we - ws).iter().map(|l| l.va.raw()).collect();
        // Runs of absent pages other than the faulting one.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut at = ws;
        while at < we {
            if at == page || present.contains(&at) {
                at += PAGE_SIZE;
                continue;
            }
            match runs.last_mut() {
                Some((s, e)) if *e == at => *e = at + PAGE_SIZE,
                _ => runs.push((at, at + PAGE_SIZE)),
            }
            at += PAGE_SIZE;
        }
        let mut mapped = 0;
        for (s, e) in runs {
            let first = vma.pgoff() + ((s - vma.start().raw()) >> PAGE_SHIFT);
            let got = ops.map_pages(vma, first, (e - s) >> PAGE_SHIFT, access);
            mapped += self.map_offered(vma, s, &got);
        }
        mapped
    }

    /// Maps what `map_pages` offered for consecutive pages from `start`:
    /// one batched insert per stretch of offered pages with the same
    /// copy-on-write setting. Best effort: a stretch that cannot be mapped
    /// stays absent. Returns the pages mapped.
    pub(crate) fn map_offered(&mut self, vma: &Vma, start: u64, got: &[Option<FaultPage>]) -> u64 {
        let mut mapped = 0;
        let mut i = 0;
        while i < got.len() {
            let Some(p0) = &got[i] else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < got.len() && got[j].as_ref().is_some_and(|p| p.copy_on_write == p0.copy_on_write) {
                j += 1;
            }
            let run: Vec<FaultPage> = got[i..j].iter().flatten().cloned().collect();
            let at = start + ((i as u64) << PAGE_SHIFT);
            match self.map_run(vma, at, &run) {
                Ok(k) => mapped += k,
                Err(e) => log::debug!("mapping offered pages at {at:#x} stopped: {e}"),
            }
            i = j;
        }
        mapped
    }
}

/// The VMA must allow the access (x86: write implies read).
fn check_access(flags: VmFlags, access: FaultAccess) -> Result<(), MmError> {
    if access.write && !flags.contains(VmFlags::WRITE) {
        return Err(MmError::Access("write"));
    }
    if access.exec && !flags.contains(VmFlags::EXEC) {
        return Err(MmError::Access("exec"));
    }
    if !flags.intersects(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC) {
        return Err(MmError::Access("read"));
    }
    Ok(())
}
