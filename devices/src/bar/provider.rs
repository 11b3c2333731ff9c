//! Mapping providers for BAR windows (the `mmap_prepare` of a device
//! driver, after iommufd's and resctrl's).
//!
//! - [`BarProvider`] maps a whole window and answers as iommufd's
//!   `iommufd_fops_mmap` does: the request must be shared (`EINVAL`), not
//!   executable (`EPERM`; `VM_MAYEXEC` is dropped, so `mprotect` cannot
//!   add it later) and cover the window exactly, from page offset 0
//!   (`ENXIO`, as is a window the VMM does not have,
//!   [`BarProvider::unknown`]). The action is an I/O remap of the window.
//! - [`BarRegionProvider`] maps part of a window through the guard-railed
//!   `simple_ioremap` action: the region may start mid-page and `pgoff`
//!   picks the first page of it to map. Shared and not executable, too.
//!
//! The entries get the window's cache mode ([`BarWindow::cache`]):
//! uncached, or write-combining where a driver's `mmap_prepare` would set
//! `pgprot_writecombine` (framebuffers, doorbell pages).
//!
//! Whether the window is trapped or passed through does not matter here:
//! the page tables point at the same guest-physical range either way.
//!
//! Like iommufd, [`BarProvider`] counts the VMAs that map its window
//! (`mapped` and `open` add one, `close` drops one), and a window may be
//! removed ([`BarProvider::remove`]) only when none is left (`EBUSY`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use guest_mm::{CacheMode, MmError, MmapProvider, Pfn, VmFlags, Vma, VmaDesc, VmaOps, PAGE_SIZE};
use vm_memory::GuestAddress;

/// A BAR window as the mapper sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarWindow {
    /// Guest-physical base (page aligned).
    pub base: GuestAddress,
    /// Size in bytes (whole pages).
    pub size: u64,
    /// Cache mode of the entries that map it: [`CacheMode::Uncached`] or
    /// [`CacheMode::WriteCombining`] (anything else is taken as uncached:
    /// device memory is never cached).
    pub cache: CacheMode,
}

impl BarWindow {
    /// An uncached window.
    pub const fn uncached(base: GuestAddress, size: u64) -> Self {
        BarWindow { base, size, cache: CacheMode::Uncached }
    }

    /// The cache mode its entries get.
    fn entry_cache(&self) -> CacheMode {
        match self.cache {
            CacheMode::WriteCombining => CacheMode::WriteCombining,
            _ => CacheMode::Uncached,
        }
    }
}

/// Maps one whole BAR window.
#[derive(Clone, Debug)]
pub struct BarProvider {
    name: String,
    window: Option<BarWindow>,
    ops: Arc<BarOps>,
}

/// The VMA operations of a BAR window's mappings: they count the VMAs.
#[derive(Debug, Default)]
pub struct BarOps {
    vmas: AtomicUsize,
    removed: AtomicBool,
}

impl VmaOps for BarOps {
    fn name(&self) -> &str {
        "bar"
    }
    fn mapped(&self, _vma: &Vma) {
        self.vmas.fetch_add(1, Ordering::Relaxed);
    }
    fn open(&self, _vma: &Vma) {
        self.vmas.fetch_add(1, Ordering::Relaxed);
    }
    fn close(&self, _vma: &Vma) {
        self.vmas.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BarProvider {
    /// The provider of BAR `index` at `window`.
    pub fn new(index: usize, window: BarWindow) -> Self {
        BarProvider { name: format!("bar{index}"), window: Some(window), ops: Arc::default() }
    }

    /// A provider for a BAR that does not exist: every mapping fails with
    /// `ENXIO`.
    pub fn unknown(index: u64) -> Self {
        BarProvider { name: format!("bar{index} (absent)"), window: None, ops: Arc::default() }
    }

    /// VMAs that map the window now.
    pub fn mapped_vmas(&self) -> usize {
        self.ops.vmas.load(Ordering::Relaxed)
    }

    /// Removes the window: later mappings fail with `ENXIO`. `EBUSY` while
    /// any VMA maps it. The caller holds the address-space lock (as every
    /// mmap does), so no mapping can be in flight.
    pub fn remove(&self) -> Result<(), MmError> {
        if self.mapped_vmas() > 0 {
            return Err(MmError::Busy("BAR window"));
        }
        self.ops.removed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// What iommufd checks first: shared (`EINVAL`), then not executable
/// (`EPERM`); executable rights are dropped for good.
fn require_shared_no_exec(desc: &mut VmaDesc) -> Result<(), MmError> {
    if !desc.test_flags(VmFlags::SHARED) {
        return Err(MmError::Invalid("device memory can only be mapped shared"));
    }
    if desc.test_flags(VmFlags::EXEC) {
        return Err(MmError::NoExec("device memory"));
    }
    desc.clear_flags(VmFlags::MAYEXEC);
    Ok(())
}

impl MmapProvider for BarProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        require_shared_no_exec(desc)?;
        let no_window = MmError::NoDevice { addr: desc.pgoff.saturating_mul(PAGE_SIZE) };
        let w = self.window.filter(|_| !self.ops.removed.load(Ordering::Relaxed)).ok_or(no_window.clone())?;
        // iommufd: no mapping at this offset, or not its length: ENXIO.
        if desc.pgoff != 0 || desc.size() != w.size {
            return Err(no_window);
        }
        desc.set_ops(self.ops.clone());
        desc.page_prot = desc.page_prot.with_cache(w.entry_cache());
        desc.mmap_action_ioremap_full(Pfn::containing(w.base));
        Ok(())
    }
}

/// Maps part of a BAR window with `simple_ioremap`.
#[derive(Clone, Debug)]
pub struct BarRegionProvider {
    name: String,
    phys: GuestAddress,
    size: u64,
    cache: CacheMode,
}

impl BarRegionProvider {
    /// A region of `size` bytes at `offset` (any alignment) into `window`.
    /// Fails when the region does not lie inside the window.
    pub fn new(index: usize, window: BarWindow, offset: u64, size: u64) -> Result<Self, MmError> {
        let end = offset.checked_add(size).ok_or(MmError::Overflow { addr: offset, len: size })?;
        if end > window.size || size == 0 {
            return Err(MmError::Invalid("BAR region outside its window"));
        }
        Ok(BarRegionProvider {
            name: format!("bar{index}-region"),
            phys: GuestAddress(window.base.0 + offset),
            size,
            cache: window.entry_cache(),
        })
    }

    /// The region's first guest-physical byte.
    pub fn phys(&self) -> GuestAddress {
        self.phys
    }
}

impl MmapProvider for BarRegionProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        require_shared_no_exec(desc)?;
        desc.page_prot = desc.page_prot.with_cache(self.cache);
        desc.mmap_action_simple_ioremap(self.phys, self.size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use guest_mm::{probe_mmap_prepare, ActionKind, GuestVirtAddr, PreparedDesc};

    use super::*;

    const W: BarWindow = BarWindow::uncached(GuestAddress(0xe000_0000), 0x1_0000);

    /// What `p`'s prepare chooses for a VMA of `size` bytes.
    fn prepare(p: &dyn MmapProvider, size: u64, pgoff: u64, shared: bool) -> Result<PreparedDesc, MmError> {
        let start = GuestVirtAddr::try_new(0x1_0000_0000).unwrap();
        let mut flags = VmFlags::READ | VmFlags::WRITE | VmFlags::MAYREAD | VmFlags::MAYWRITE;
        if shared {
            flags |= VmFlags::SHARED | VmFlags::MAYSHARE;
        }
        probe_mmap_prepare(p, start, size, pgoff, flags)
    }

    #[test]
    fn whole_window_only_as_iommufd_answers() {
        let p = BarProvider::new(0, W);
        prepare(&p, 0x1_0000, 0, true).unwrap();
        assert_eq!(p.name(), "bar0");
        // Not the window (offset or length): ENXIO, as iommufd.
        for (size, pgoff) in [(0x1000, 0), (0x1_0000, 1), (0x2_0000, 0)] {
            let e = prepare(&p, size, pgoff, true).unwrap_err();
            assert_eq!(e.errno(), guest_mm::errno::ENXIO, "{size:#x} {pgoff}");
        }
        // Private: EINVAL, checked first.
        let e = prepare(&p, 0x1000, 1, false).unwrap_err();
        assert_eq!(e.errno(), guest_mm::errno::EINVAL);
        let e = prepare(&BarProvider::unknown(7), 0x1000, 0, true).unwrap_err();
        assert_eq!(e.errno(), guest_mm::errno::ENXIO);
    }

    /// What `p`'s prepare chooses for a shared mapping with `flags` added.
    fn prepare_with(p: &dyn MmapProvider, size: u64, pgoff: u64, extra: VmFlags) -> Result<PreparedDesc, MmError> {
        let start = GuestVirtAddr::try_new(0x1_0000_0000).unwrap();
        let flags = VmFlags::READ | VmFlags::MAYREAD | VmFlags::SHARED | VmFlags::MAYSHARE | extra;
        probe_mmap_prepare(p, start, size, pgoff, flags)
    }

    #[test]
    fn executable_mappings_are_eperm_and_exec_may_not_be_added_later() {
        let p = BarProvider::new(0, W);
        let r = BarRegionProvider::new(0, W, 0x100, 0x2f00).unwrap();
        for (what, prov, size) in [("window", &p as &dyn MmapProvider, 0x1_0000), ("region", &r, 0x1000)] {
            let e = prepare_with(prov, size, 0, VmFlags::EXEC | VmFlags::MAYEXEC).unwrap_err();
            assert_eq!(e.errno(), guest_mm::errno::EPERM, "{what}");
            // Without VM_EXEC: mapped, and never executable (no MAYEXEC).
            let d = prepare_with(prov, size, 0, VmFlags::MAYEXEC).unwrap();
            assert!(!d.flags.contains(VmFlags::MAYEXEC), "{what}: {:?}", d.flags);
        }
    }

    #[test]
    fn the_window_cache_mode_reaches_the_entries() {
        let wc = BarWindow { cache: CacheMode::WriteCombining, ..W };
        let d = prepare(&BarProvider::new(0, wc), 0x1_0000, 0, true).unwrap();
        assert_eq!(d.page_prot.cache, CacheMode::WriteCombining);
        let d = prepare(&BarRegionProvider::new(0, wc, 0x100, 0x2f00).unwrap(), 0x1000, 0, true).unwrap();
        assert_eq!(d.page_prot.cache, CacheMode::WriteCombining);
        let d = prepare(&BarProvider::new(0, W), 0x1_0000, 0, true).unwrap();
        assert_eq!(d.page_prot.cache, CacheMode::Uncached);
        // Device memory is never write-back, whatever the window says.
        let wb = BarWindow { cache: CacheMode::WriteBack, ..W };
        let d = prepare(&BarProvider::new(0, wb), 0x1_0000, 0, true).unwrap();
        assert_eq!(d.page_prot.cache, CacheMode::Uncached);
    }

    #[test]
    fn region_uses_simple_ioremap() {
        let r = BarRegionProvider::new(0, W, 0x100, 0x2f00).unwrap();
        assert_eq!(r.phys(), GuestAddress(0xe000_0100));
        let d = prepare(&r, 0x1000, 1, true).unwrap();
        assert!(matches!(d.action, ActionKind::SimpleIoRemap { .. }), "{d:?}");
        assert!(BarRegionProvider::new(0, W, 0xf000, 0x2000).is_err());
        assert!(BarRegionProvider::new(0, W, u64::MAX, 2).is_err());
        assert!(prepare(&r, 0x1000, 0, false).is_err());
    }
}
