//! Transparent huge pages (THP) for private anonymous memory, as Linux
//! 6.12 places them: the policy ([`ThpPolicy`]: the `enabled` mode and
//! the per-size modes of `/sys/kernel/mm/transparent_hugepage/`), which
//! VMAs it allows, and the write fault that places one.
//!
//! A write fault on an absent page of an eligible VMA takes, from the
//! largest allowed size down, the first aligned block that lies inside
//! the VMA and has nothing mapped yet: for 2 MiB (order 9) the whole 2 MiB
//! slot must be empty (`pmd_none`), and the block is mapped by one 2 MiB
//! leaf; for the smaller sizes (orders 2..=8, Linux's mTHP) no page of
//! the block may be mapped, and the block is mapped by 4 KiB leaves. The
//! frames are one aligned contiguous pool block
//! ([`crate::Frames::alloc_block`]), zeroed, pinned as one faulted run at
//! the block's address, so a partial munmap, `MADV_DONTNEED` or mremap
//! lets go of its pages page by page after the leaf is split
//! (PTE-mapped). When no block is free the fault falls back to a smaller
//! size, then to the usual 4 KiB page.
//!
//! A read fault in a slot where a 2 MiB THP is allowed maps the huge
//! zero page (one zeroed 2 MiB block the policy holds for every space of
//! the guest, mapped read-only and copy-on-write by one leaf) when
//! `use_zero_page` is on, as Linux does; a write to it splits the leaf
//! (512 copy-on-write zero pieces) and copies the one page written, as
//! Linux 6.12 falls back for a huge zero PMD. Elsewhere a read maps the
//! shared 4 KiB zero page. Not done: `khugepaged` and `MADV_COLLAPSE` (nothing ever
//! collapses PTE-mapped pages back into a 2 MiB leaf), shared anonymous
//! and file THPs, and the `defrag` setting (allocation never waits).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::action::PageArray;
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::frames::{Frames, PoolPages};
use crate::vma::Vma;

/// The order of a 2 MiB (PMD-mapped) THP.
pub const THP_PMD_ORDER: u32 = 9;
/// The smallest order offered (16 KiB, as Linux on x86-64: order 1 is
/// not allowed for anonymous memory).
pub const THP_MIN_ORDER: u32 = 2;

/// The top-level mode (`transparent_hugepage/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    /// Every eligible VMA (`always`).
    Always,
    /// Only VMAs with `VM_HUGEPAGE` (`madvise`).
    Madvise,
    /// None (`never`).
    Never,
}

/// The mode of one THP size (`hugepages-<size>kB/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpSizeMode {
    /// Every eligible VMA.
    Always,
    /// The top-level mode decides.
    Inherit,
    /// Only VMAs with `VM_HUGEPAGE`.
    Madvise,
    /// None.
    Never,
}

impl ThpMode {
    /// The sysfs word.
    pub fn name(self) -> &'static str {
        match self {
            ThpMode::Always => "always",
            ThpMode::Madvise => "madvise",
            ThpMode::Never => "never",
        }
    }

    /// From the sysfs word; `EINVAL` for another.
    pub fn parse(word: &str) -> Result<Self, MmError> {
        match word {
            "always" => Ok(ThpMode::Always),
            "madvise" => Ok(ThpMode::Madvise),
            "never" => Ok(ThpMode::Never),
            _ => Err(MmError::Invalid("THP mode is always, madvise or never")),
        }
    }

    fn code(self) -> u8 {
        match self {
            ThpMode::Always => 0,
            ThpMode::Madvise => 1,
            ThpMode::Never => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => ThpMode::Always,
            1 => ThpMode::Madvise,
            _ => ThpMode::Never,
        }
    }
}

impl ThpSizeMode {
    /// The sysfs word.
    pub fn name(self) -> &'static str {
        match self {
            ThpSizeMode::Always => "always",
            ThpSizeMode::Inherit => "inherit",
            ThpSizeMode::Madvise => "madvise",
            ThpSizeMode::Never => "never",
        }
    }

    /// From the sysfs word; `EINVAL` for another.
    pub fn parse(word: &str) -> Result<Self, MmError> {
        match word {
            "always" => Ok(ThpSizeMode::Always),
            "inherit" => Ok(ThpSizeMode::Inherit),
            "madvise" => Ok(ThpSizeMode::Madvise),
            "never" => Ok(ThpSizeMode::Never),
            _ => Err(MmError::Invalid("THP size mode is always, inherit, madvise or never")),
        }
    }

    fn code(self) -> u8 {
        match self {
            ThpSizeMode::Always => 0,
            ThpSizeMode::Inherit => 1,
            ThpSizeMode::Madvise => 2,
            ThpSizeMode::Never => 3,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => ThpSizeMode::Always,
            1 => ThpSizeMode::Inherit,
            2 => ThpSizeMode::Madvise,
            _ => ThpSizeMode::Never,
        }
    }
}

/// The shared settings.
#[derive(Debug)]
struct ThpSettings {
    enabled: AtomicU8,
    /// Per order `0..=THP_PMD_ORDER`; only `THP_MIN_ORDER..` are used.
    sizes: [AtomicU8; THP_PMD_ORDER as usize + 1],
    /// `use_zero_page`.
    use_zero_page: AtomicBool,
    /// The huge zero page, allocated on first use and kept while any
    /// space holds the policy.
    huge_zero: OnceLock<PoolPages>,
}

/// The THP policy: a handle every address space of one guest shares
/// (sibling and forked spaces get a clone), changed at run time through
/// any clone, as Linux's sysfs settings are global.
#[derive(Clone, Debug)]
pub struct ThpPolicy(Arc<ThpSettings>);

impl Default for ThpPolicy {
    /// `never`: no THP at all (what a space gets unless told otherwise).
    fn default() -> Self {
        ThpPolicy::new(ThpMode::Never)
    }
}

impl ThpPolicy {
    /// A policy with top-level `mode`, the 2 MiB size inheriting it and
    /// the smaller sizes `never` (Linux's defaults).
    pub fn new(mode: ThpMode) -> Self {
        let sizes = std::array::from_fn(|o| {
            let m = if o as u32 == THP_PMD_ORDER { ThpSizeMode::Inherit } else { ThpSizeMode::Never };
            AtomicU8::new(m.code())
        });
        ThpPolicy(Arc::new(ThpSettings {
            enabled: AtomicU8::new(mode.code()),
            sizes,
            use_zero_page: AtomicBool::new(true),
            huge_zero: OnceLock::new(),
        }))
    }

    /// Do read faults map the huge zero page (`use_zero_page`, on by
    /// default)?
    pub fn use_zero_page(&self) -> bool {
        self.0.use_zero_page.load(Ordering::Relaxed)
    }

    /// Sets `use_zero_page`.
    pub fn set_use_zero_page(&self, on: bool) {
        self.0.use_zero_page.store(on, Ordering::Relaxed);
    }

    /// The first frame of the huge zero page, allocating (and zeroing) it
    /// from `frames` on first use. Every space sharing this policy must
    /// share `frames`' pool (siblings and forks do).
    fn huge_zero<M: vm_memory::GuestMemory>(&self, frames: &Frames, mem: &M) -> Result<crate::addr::Pfn, MmError> {
        if let Some(z) = self.0.huge_zero.get() {
            return z.pfns().first().copied().ok_or(MmError::OutOfMemory("contiguous pool pages"));
        }
        let block = frames.alloc_block(1 << THP_PMD_ORDER)?;
        block.zero(mem)?;
        // A racing initialiser wins; this block then goes back.
        let z = self.0.huge_zero.get_or_init(|| block);
        z.pfns().first().copied().ok_or(MmError::OutOfMemory("contiguous pool pages"))
    }

    /// Is `pfn` a frame of the huge zero page?
    pub fn is_huge_zero(&self, pfn: crate::addr::Pfn) -> bool {
        self.0.huge_zero.get().and_then(|z| z.pfns().first()).is_some_and(|f| (f.0..f.0 + 512).contains(&pfn.0))
    }

    /// The top-level mode.
    pub fn mode(&self) -> ThpMode {
        ThpMode::from_code(self.0.enabled.load(Ordering::Relaxed))
    }

    /// Sets the top-level mode (for faults from now on; pages placed stay).
    pub fn set_mode(&self, mode: ThpMode) {
        self.0.enabled.store(mode.code(), Ordering::Relaxed);
    }

    /// The mode of size `order` (`THP_MIN_ORDER..=THP_PMD_ORDER`), if it
    /// is one.
    pub fn size_mode(&self, order: u32) -> Option<ThpSizeMode> {
        if !(THP_MIN_ORDER..=THP_PMD_ORDER).contains(&order) {
            return None;
        }
        self.0.sizes.get(order as usize).map(|a| ThpSizeMode::from_code(a.load(Ordering::Relaxed)))
    }

    /// Sets the mode of size `order`; `EINVAL` for an order that is not a
    /// THP size.
    pub fn set_size_mode(&self, order: u32, mode: ThpSizeMode) -> Result<(), MmError> {
        if !(THP_MIN_ORDER..=THP_PMD_ORDER).contains(&order) {
            return Err(MmError::Invalid("not a THP size"));
        }
        let slot = self.0.sizes.get(order as usize).ok_or(MmError::Invalid("not a THP size"))?;
        slot.store(mode.code(), Ordering::Relaxed);
        Ok(())
    }

    /// The orders (bit `o` for order `o`) a VMA with `flags` may get,
    /// the VMA's own eligibility aside (Linux's
    /// `thp_vma_allowable_orders` for an anonymous VMA): `VM_NOHUGEPAGE`
    /// allows none; `VM_HUGEPAGE` adds the `madvise` sizes, and the
    /// `inherit` ones under a `madvise` top level.
    pub fn allowed_orders(&self, flags: VmFlags) -> u32 {
        if flags.contains(VmFlags::NOHUGEPAGE) {
            return 0;
        }
        let advised = flags.contains(VmFlags::HUGEPAGE);
        let top = self.mode();
        let mut orders = 0;
        for order in THP_MIN_ORDER..=THP_PMD_ORDER {
            let on = match self.size_mode(order) {
                Some(ThpSizeMode::Always) => true,
                Some(ThpSizeMode::Madvise) => advised,
                Some(ThpSizeMode::Inherit) => top == ThpMode::Always || (top == ThpMode::Madvise && advised),
                _ => false,
            };
            if on {
                orders |= 1 << order;
            }
        }
        orders
    }
}

/// Can `vma` hold transparent huge pages at all: private anonymous
/// memory, not hugetlb, not a special mapping (Linux's
/// `__thp_vma_allowable_orders` for anonymous VMAs)?
pub fn vma_may_hold_thp(vma: &Vma) -> bool {
    vma.is_private_anon() && !vma.flags().intersects(VmFlags::HUGETLB | crate::flags::VM_SPECIAL)
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// The THP policy this space follows (a shared handle: see
    /// [`ThpPolicy`]).
    pub fn thp_policy(&self) -> &ThpPolicy {
        &self.thp
    }

    /// Makes this space follow `policy` (typically one handle for every
    /// space of a guest).
    pub fn set_thp_policy(&mut self, policy: ThpPolicy) {
        self.thp = policy;
    }

    /// Does `vma` hold a THP mapped by one 2 MiB leaf at `va` (what
    /// `/proc/self/smaps` counts as `AnonHugePages`)? Only a 2 MiB leaf
    /// over a faulted run counts: hugetlb leaves and raw remaps do not.
    pub fn is_pmd_thp(&self, vma: &Vma, va: GuestVirtAddr) -> bool {
        vma_may_hold_thp(vma)
            && self.pt.translate(va).is_some_and(|t| t.size == PageSize::Size2M)
            && self.page_pins.frame_at(va.raw() & !(PageSize::Size2M.bytes() - 1)).is_some()
    }

    /// The write fault's THP (see the module docs): places a huge page
    /// around the absent `page` of `vma` with the VMA's protection when
    /// the policy allows one and a block is free. `Ok(false)`: nothing
    /// placed, the caller maps a 4 KiB page. Errors only for guest memory
    /// that cannot be written (the block is freed).
    pub(super) fn fault_thp(&mut self, vma: &Vma, page: u64) -> Result<bool, MmError> {
        if !vma_may_hold_thp(vma) {
            return Ok(false);
        }
        let orders = self.thp.allowed_orders(vma.flags());
        for order in (THP_MIN_ORDER..=THP_PMD_ORDER).rev() {
            if orders & (1 << order) == 0 {
                continue;
            }
            let size = PAGE_SIZE << order;
            let base = page & !(size - 1);
            if base < vma.start().raw() || base.saturating_add(size) > vma.end() {
                continue;
            }
            let va = GuestVirtAddr::try_new(base)?;
            let free = if order == THP_PMD_ORDER {
                self.pt.huge_slot_is_empty(va)
            } else {
                self.pt.leaves(va, size).is_empty()
            };
            if !free {
                continue;
            }
            let Ok(block) = self.frames.alloc_block(1 << order) else {
                log::debug!("no free block of order {order} for a THP at {base:#x}");
                continue;
            };
            block.zero(self.pt.memory())?;
            // Pinned before any entry exists; the owner lets go below, the
            // run's pin keeps the frames until the pages are unmapped.
            let arr = PageArray::pin(&self.frames, block.pfns().clone())?;
            let mapped = match (order == THP_PMD_ORDER, block.pfns().first()) {
                (true, Some(first)) => self.pt.map_range(va, first.addr(), size, vma.page_prot(), PageSize::Size2M),
                (false, _) => self.pt.insert_pages(va, &arr, vma.page_prot()),
                (true, None) => Err(MmError::OutOfMemory("contiguous pool pages")),
            };
            if let Err(e) = mapped {
                log::debug!("mapping a THP of order {order} at {base:#x}: {e}");
                continue;
            }
            self.page_pins.insert(base, arr);
            return Ok(true);
        }
        Ok(false)
    }

    /// The read fault's huge zero page: maps it read-only and
    /// copy-on-write by one 2 MiB leaf over the empty slot holding `page`
    /// when the policy allows a 2 MiB THP there and `use_zero_page` is
    /// on. `Ok(false)`: nothing mapped, the caller maps the 4 KiB zero
    /// page.
    pub(super) fn fault_huge_zero(&mut self, vma: &Vma, page: u64) -> Result<bool, MmError> {
        if !vma_may_hold_thp(vma) || !self.thp.use_zero_page() {
            return Ok(false);
        }
        if self.thp.allowed_orders(vma.flags()) & (1 << THP_PMD_ORDER) == 0 {
            return Ok(false);
        }
        let m2 = PageSize::Size2M.bytes();
        let base = page & !(m2 - 1);
        if base < vma.start().raw() || base.saturating_add(m2) > vma.end() {
            return Ok(false);
        }
        let va = GuestVirtAddr::try_new(base)?;
        if !self.pt.huge_slot_is_empty(va) {
            return Ok(false);
        }
        let Ok(zero) = self.thp.huge_zero(&self.frames, self.pt.memory()) else { return Ok(false) };
        let mut prot = vma.page_prot();
        prot.writable = false;
        self.pt.map_range(va, zero.addr(), m2, prot, PageSize::Size2M)?;
        if let Err(e) = self.pt.set_copy_on_write(va) {
            // Read-only and never written: nothing to flush.
            self.pt.unmap_range(va, m2)?.flush.ignore();
            return Err(e);
        }
        Ok(true)
    }

    /// A write to a 2 MiB leaf of a THP-capable VMA that is not writable
    /// because it is shared: a THP a fork shared, or the huge zero page.
    /// Splits it (PTE-maps it; the pieces keep the fork-shared or
    /// copy-on-write mark), so the write fault copies or reuses the one
    /// 4 KiB page written, as Linux does since 5.8. `true` when it split
    /// a leaf.
    pub(super) fn unshare_huge(&mut self, va: GuestVirtAddr) -> Result<bool, MmError> {
        if !self.vmas.find(va.raw()).is_some_and(vma_may_hold_thp) {
            return Ok(false);
        }
        let shared = self.pt.is_fork_shared_huge(va)
            || (self.pt.is_copy_on_write(va) && self.pt.translate(va).is_some_and(|t| t.size == PageSize::Size2M));
        if !shared {
            return Ok(false);
        }
        Ok(self.pt.split_huge(va)?.is_some())
    }

    /// Splits the THP (or huge zero) leaf a VMA boundary at `addr` cuts (Linux's
    /// `vma_adjust_trans_huge`), so no 2 MiB leaf spans two VMAs. Best
    /// effort: without a table page the leaf stays (fork splits such a
    /// leaf again before sharing anything).
    pub(super) fn split_thp_at(&mut self, addr: u64) {
        let m2 = PageSize::Size2M.bytes();
        if addr % m2 == 0 {
            return;
        }
        let Ok(va) = GuestVirtAddr::try_new(addr) else { return };
        if !self.vmas.find(addr).is_some_and(vma_may_hold_thp) {
            return;
        }
        let Some(t) = self.pt.translate(va).filter(|t| t.size == PageSize::Size2M) else { return };
        if self.page_pins.frame_at(addr & !(m2 - 1)).is_none() && !self.thp.is_huge_zero(t.pfn) {
            return;
        }
        if let Err(e) = self.pt.split_huge(va) {
            log::debug!("splitting the THP at {addr:#x} for a VMA boundary: {e}");
        }
    }
}
