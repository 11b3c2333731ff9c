//! Mapping providers for BAR windows (the `mmap_prepare` of a device
//! driver, after iommufd's and resctrl's).
//!
//! - [`BarProvider`] maps a whole window: the request must be shared
//!   (`EINVAL` otherwise, as iommufd refuses private MMIO mappings) and
//!   cover the window exactly, from page offset 0 (`EINVAL`); the action
//!   is an I/O remap of the window, so entries are uncached. A window the
//!   VMM does not have is `ENXIO` ([`BarProvider::unknown`]).
//! - [`BarRegionProvider`] maps part of a window through the guard-railed
//!   `simple_ioremap` action: the region may start mid-page and `pgoff`
//!   picks the first page of it to map.
//!
//! Whether the window is trapped or passed through does not matter here:
//! the page tables point at the same guest-physical range either way.
//!
//! Like iommufd, [`BarProvider`] counts the VMAs that map its window
//! (`mapped` and `open` add one, `close` drops one), and a window may be
//! removed ([`BarProvider::remove`]) only when none is left (`EBUSY`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use guest_mm::{MmError, MmapProvider, Pfn, VmFlags, Vma, VmaDesc, VmaOps, PAGE_SIZE};
use vm_memory::GuestAddress;

/// A BAR window as the mapper sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarWindow {
    /// Guest-physical base (page aligned).
    pub base: GuestAddress,
    /// Size in bytes (whole pages).
    pub size: u64,
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

fn require_shared(desc: &VmaDesc) -> Result<(), MmError> {
    if desc.test_flags(VmFlags::SHARED) {
        Ok(())
    } else {
        Err(MmError::Invalid("device memory can only be mapped shared"))
    }
}

impl MmapProvider for BarProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let w = self
            .window
            .filter(|_| !self.ops.removed.load(Ordering::Relaxed))
            .ok_or(MmError::NoDevice { addr: desc.pgoff.saturating_mul(PAGE_SIZE) })?;
        require_shared(desc)?;
        if desc.pgoff != 0 || desc.size() != w.size {
            return Err(MmError::Invalid("a BAR mapping must cover its window exactly"));
        }
        desc.set_ops(self.ops.clone());
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
}

impl BarRegionProvider {
    /// A region of `size` bytes at `offset` (any alignment) into `window`.
    /// Fails when the region does not lie inside the window.
    pub fn new(index: usize, window: BarWindow, offset: u64, size: u64) -> Result<Self, MmError> {
        let end = offset.checked_add(size).ok_or(MmError::Overflow { addr: offset, len: size })?;
        if end > window.size || size == 0 {
            return Err(MmError::Invalid("BAR region outside its window"));
        }
        Ok(BarRegionProvider { name: format!("bar{index}-region"), phys: GuestAddress(window.base.0 + offset), size })
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
        require_shared(desc)?;
        desc.mmap_action_simple_ioremap(self.phys, self.size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use guest_mm::{probe_mmap_prepare, ActionKind, GuestVirtAddr, PreparedDesc};

    use super::*;

    const W: BarWindow = BarWindow { base: GuestAddress(0xe000_0000), size: 0x1_0000 };

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
    fn whole_window_only() {
        let p = BarProvider::new(0, W);
        prepare(&p, 0x1_0000, 0, true).unwrap();
        assert_eq!(p.name(), "bar0");
        for (size, pgoff, shared) in [(0x1000, 0, true), (0x1_0000, 1, true), (0x2_0000, 0, true), (0x1_0000, 0, false)]
        {
            let e = prepare(&p, size, pgoff, shared).unwrap_err();
            assert_eq!(e.errno(), guest_mm::errno::EINVAL, "{size:#x} {pgoff} {shared}");
        }
        let e = prepare(&BarProvider::unknown(7), 0x1000, 0, true).unwrap_err();
        assert_eq!(e.errno(), guest_mm::errno::ENXIO);
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
