//! The VMA descriptor a provider's `mmap_prepare` sees (`struct
//! vm_area_desc`).
//!
//! Three groups of fields, enforced by the type: `start`/`end` can only be
//! read; `pgoff`, `flags` and `page_prot` can be read and changed; ops,
//! private data and the action can only be written (through the
//! `mmap_action_*` helpers below). A descriptor is never a live VMA: a
//! provider cannot reach page tables from here.

use std::sync::Arc;

use vm_memory::GuestAddress;

use crate::action::{ActionKind, ErrorHook, MmapAction, PageArray, PageRun, SuccessHook};
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SHIFT};
use crate::error::MmError;
use crate::flags::{PageProt, VmFlags};
use crate::vma::{VmaOps, VmaPrivate};

/// Describes a VMA about to be created.
///
/// Only the pipeline makes descriptors, so a provider cannot build one,
/// nor replace the one it is handed (`*desc = ...` needs a second value):
/// its bounds are the pipeline's by construction.
///
/// ```compile_fail,E0624
/// use guest_mm::{GuestVirtAddr, MmError, MmapProvider, VmaDesc};
/// struct Wider;
/// impl MmapProvider for Wider {
///     fn name(&self) -> &str { "wider" }
///     fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
///         // Rewrite the bounds: over whatever is mapped below, past the window.
///         let start = GuestVirtAddr::try_new(0x1000)?;
///         *desc = VmaDesc::new(start, 1 << 46, desc.pgoff, desc.flags, desc.page_prot);
///         Ok(())
///     }
/// }
/// ```
///
/// Nor by a struct literal (the fields are private):
///
/// ```compile_fail,E0451
/// use guest_mm::{GuestVirtAddr, MmError, MmapProvider, VmaDesc};
/// struct Literal;
/// impl MmapProvider for Literal {
///     fn name(&self) -> &str { "literal" }
///     fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
///         let start = GuestVirtAddr::try_new(0x1000)?;
///         *desc = VmaDesc { start, end: 1 << 46, pgoff: 0, flags: desc.flags, page_prot: desc.page_prot,
///                           ops: None, private: None, action: Default::default() };
///         Ok(())
///     }
/// }
/// ```
///
/// Nor by taking it out and cloning or defaulting a replacement:
///
/// ```compile_fail,E0277
/// use guest_mm::{MmError, MmapProvider, VmaDesc};
/// struct Taker;
/// impl MmapProvider for Taker {
///     fn name(&self) -> &str { "taker" }
///     fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
///         let _old = std::mem::take(desc);
///         Ok(())
///     }
/// }
/// ```
///
/// What a provider may do compiles (the same provider, editing the
/// mutable fields instead):
///
/// ```
/// use guest_mm::{MmError, MmapProvider, VmaDesc, VmFlags};
/// struct Editor;
/// impl MmapProvider for Editor {
///     fn name(&self) -> &str { "editor" }
///     fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
///         desc.pgoff += 1;
///         desc.set_flags(VmFlags::DONTEXPAND);
///         let _ = (desc.start(), desc.end(), desc.flags, desc.page_prot);
///         Ok(())
///     }
/// }
/// ```
pub struct VmaDesc {
    start: GuestVirtAddr,
    end: u64,
    /// Offset, in pages, into what the provider maps.
    pub pgoff: u64,
    /// VMA flags.
    pub flags: VmFlags,
    /// Protection (and cache mode) of the entries.
    pub page_prot: PageProt,
    ops: Option<Arc<dyn VmaOps>>,
    private: Option<VmaPrivate>,
    action: MmapAction,
}

impl VmaDesc {
    /// A descriptor for `[start, end)`. `end` must be page aligned and
    /// greater than `start` (the pipeline's setup guarantees it). Only the
    /// pipeline calls this: a provider must never hold a second descriptor
    /// it could swap in for the one it is handed.
    pub(crate) fn new(start: GuestVirtAddr, end: u64, pgoff: u64, flags: VmFlags, page_prot: PageProt) -> Self {
        VmaDesc { start, end, pgoff, flags, page_prot, ops: None, private: None, action: MmapAction::default() }
    }

    /// First address (read-only).
    pub fn start(&self) -> GuestVirtAddr {
        self.start
    }

    /// Exclusive end (read-only).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// `vma_desc_size()`: bytes.
    pub fn size(&self) -> u64 {
        self.end - self.start.raw()
    }

    /// `vma_desc_pages()`: base pages.
    pub fn pages(&self) -> u64 {
        self.size() >> PAGE_SHIFT
    }

    /// `vma_desc_set_flags()`.
    pub fn set_flags(&mut self, flags: VmFlags) {
        self.flags.insert(flags);
    }

    /// `vma_desc_test_flags()`: any of `flags` set?
    pub fn test_flags(&self, flags: VmFlags) -> bool {
        self.flags.intersects(flags)
    }

    /// `vma_desc_clear_flags()`.
    pub fn clear_flags(&mut self, flags: VmFlags) {
        self.flags.remove(flags);
    }

    /// Attaches operations (write-only).
    pub fn set_ops(&mut self, ops: Arc<dyn VmaOps>) {
        self.ops = Some(ops);
    }

    /// Attaches private state (write-only).
    pub fn set_private(&mut self, private: VmaPrivate) {
        self.private = Some(private);
    }

    /// Sets a hook run after the VMA is complete.
    pub fn set_success_hook(&mut self, hook: SuccessHook) {
        self.action.success_hook = Some(hook);
    }

    /// Sets a hook that may replace an error after the VMA existed.
    pub fn set_error_hook(&mut self, hook: ErrorHook) {
        self.action.error_hook = Some(hook);
    }

    /// `mmap_action_remap()`: map `size` bytes of frames from `pfn` at
    /// `start`.
    pub fn mmap_action_remap(&mut self, start: GuestVirtAddr, pfn: Pfn, size: u64) {
        self.action.kind = ActionKind::Remap { start, pfn, size, io: false };
    }

    /// `mmap_action_remap_full()`: the whole VMA from `pfn`.
    pub fn mmap_action_remap_full(&mut self, pfn: Pfn) {
        self.mmap_action_remap(self.start, pfn, self.size());
    }

    /// `mmap_action_ioremap()`: as remap, for I/O memory.
    pub fn mmap_action_ioremap(&mut self, start: GuestVirtAddr, pfn: Pfn, size: u64) {
        self.action.kind = ActionKind::Remap { start, pfn, size, io: true };
    }

    /// `mmap_action_ioremap_full()`.
    pub fn mmap_action_ioremap_full(&mut self, pfn: Pfn) {
        self.mmap_action_ioremap(self.start, pfn, self.size());
    }

    /// `mmap_action_simple_ioremap()`: I/O remap of a physical region with
    /// every guard rail of `__simple_ioremap_prep`; `pgoff` selects where in
    /// the region the VMA starts.
    pub fn mmap_action_simple_ioremap(&mut self, phys: GuestAddress, size: u64) {
        self.action.kind = ActionKind::SimpleIoRemap { phys, size };
    }

    /// `mmap_action_map_kernel_pages()`: `nr_pages` of `pages` from `start`.
    pub fn mmap_action_map_kernel_pages(&mut self, start: GuestVirtAddr, pages: PageArray, nr_pages: u64) {
        self.action.kind = ActionKind::MapKernelPages { start, pages, nr_pages, pgoff: self.pgoff };
    }

    /// `mmap_action_map_kernel_pages_full()`: the whole VMA; `pages` must
    /// hold at least [`VmaDesc::pages`] entries (checked in prepare).
    pub fn mmap_action_map_kernel_pages_full(&mut self, pages: PageArray) {
        let n = self.pages();
        self.mmap_action_map_kernel_pages(self.start, pages, n);
    }

    /// `mmap_action_map_kernel_pages_discontig()`: several runs.
    pub fn mmap_action_map_kernel_pages_discontig(&mut self, runs: Vec<PageRun>) {
        self.action.kind = ActionKind::MapKernelPagesDiscontig { runs };
    }

    /// The action (crate-internal: write-only to providers).
    pub(crate) fn action(&self) -> &MmapAction {
        &self.action
    }

    pub(crate) fn action_kind_mut(&mut self) -> &mut ActionKind {
        &mut self.action.kind
    }

    /// Whether the descriptor still has the bounds `[start, end)` the
    /// pipeline gave it (always, outside this crate; checked anyway).
    pub(crate) fn has_bounds(&self, start: GuestVirtAddr, end: u64) -> bool {
        self.start == start && self.end == end
    }

    /// Splits into the parts the VMA keeps and the action to run. The
    /// bounds are not among them: the pipeline uses its own.
    pub(crate) fn into_parts(self) -> (DescParts, MmapAction) {
        (
            DescParts {
                pgoff: self.pgoff,
                flags: self.flags,
                page_prot: self.page_prot,
                ops: self.ops,
                private: self.private,
            },
            self.action,
        )
    }
}

/// What a VMA takes from its descriptor (`set_vma_from_desc`).
pub(crate) struct DescParts {
    pub pgoff: u64,
    pub flags: VmFlags,
    pub page_prot: PageProt,
    pub ops: Option<Arc<dyn VmaOps>>,
    pub private: Option<VmaPrivate>,
}

impl std::fmt::Debug for VmaDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmaDesc")
            .field("start", &format_args!("{:#x}", self.start.raw()))
            .field("end", &format_args!("{:#x}", self.end))
            .field("pgoff", &format_args!("{:#x}", self.pgoff))
            .field("flags", &self.flags)
            .field("action", &self.action)
            .finish()
    }
}

/// What a provider's `mmap_prepare` left in a descriptor: a read-only
/// record for testing a provider outside the pipeline. It is not a
/// [`VmaDesc`] and cannot become one.
#[derive(Debug)]
pub struct PreparedDesc {
    /// The offset the provider settled on.
    pub pgoff: u64,
    /// The flags it settled on.
    pub flags: VmFlags,
    /// The protection it settled on.
    pub page_prot: PageProt,
    /// The action it chose (not yet through action prepare).
    pub action: ActionKind,
    /// Whether it set a success hook.
    pub success_hook: bool,
    /// Whether it set an error hook.
    pub error_hook: bool,
}

/// Runs `provider`'s `mmap_prepare` on a descriptor for
/// `[start, start + len)` with `pgoff` and `flags`, outside any address
/// space, and reports what it chose (for provider unit tests).
pub fn probe_mmap_prepare(
    provider: &dyn crate::MmapProvider,
    start: GuestVirtAddr,
    len: u64,
    pgoff: u64,
    flags: VmFlags,
) -> Result<PreparedDesc, MmError> {
    if len == 0 || len % crate::PAGE_SIZE != 0 || !start.is_aligned(crate::PAGE_SIZE) {
        return Err(MmError::Invalid("probe range must be whole pages"));
    }
    let end = start.checked_end(len)?;
    let mut desc = VmaDesc::new(start, end, pgoff, flags, PageProt::from_flags(flags));
    provider.mmap_prepare(&mut desc)?;
    let (parts, action) = desc.into_parts();
    Ok(PreparedDesc {
        pgoff: parts.pgoff,
        flags: parts.flags,
        page_prot: parts.page_prot,
        action: action.kind,
        success_hook: action.success_hook.is_some(),
        error_hook: action.error_hook.is_some(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::addr::PAGE_SIZE;

    /// Attaches private state and asks for nothing else.
    struct WithPrivate;

    impl crate::MmapProvider for WithPrivate {
        fn name(&self) -> &str {
            "with-private"
        }
        fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
            desc.set_private(Arc::new(42u32));
            desc.mmap_action_remap_full(crate::Pfn(0x100));
            Ok(())
        }
    }

    #[test]
    fn probe_refuses_ranges_that_are_not_whole_pages() {
        let at = GuestVirtAddr::try_new(1 << 32).unwrap();
        let rw = VmFlags::READ | VmFlags::WRITE;
        for (start, len) in [(at.raw(), 0), (at.raw(), PAGE_SIZE + 1), (at.raw(), 100), (at.raw() + 8, PAGE_SIZE)] {
            let s = GuestVirtAddr::try_new(start).unwrap();
            assert!(probe_mmap_prepare(&WithPrivate, s, len, 0, rw).is_err(), "{start:#x}+{len:#x}");
        }
        let p = probe_mmap_prepare(&WithPrivate, at, 2 * PAGE_SIZE, 3, rw).unwrap();
        assert_eq!((p.pgoff, p.flags), (3, rw));
    }

    #[test]
    fn private_state_set_in_prepare_reaches_the_vma() {
        use vm_memory::{GuestAddress, GuestMemoryMmap};
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let mut space =
            crate::AddressSpace::new(mem, crate::SpaceConfig::new((GuestAddress(48 << 20), 4 << 20))).unwrap();
        let m = space.mmap(&WithPrivate, &crate::MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).unwrap();
        m.flush.ignore();
        let v = space.find_vma(m.addr).unwrap();
        let private = v.private().unwrap().clone().downcast::<u32>().unwrap();
        assert_eq!(*private, 42);
    }
}
