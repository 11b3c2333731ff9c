//! What a provider asks the pipeline to do once its VMA exists
//! (`struct mmap_action`): the action kinds and the page arrays they map.

use std::fmt;
use std::sync::Arc;

use vm_memory::GuestAddress;

use crate::addr::{GuestVirtAddr, Pfn};
use crate::error::MmError;
use crate::frames::{Frames, Pinned};
use crate::vma::{Vma, VmaPrivate};

/// An array of guest pages to map (`struct page **`), shared without
/// copying. Its frames are pinned when it is made ([`PageArray::pin`]):
/// none of them can be freed or handed out again while the array, a slice
/// of it, or a VMA mapping it exists (see [`crate::frames::Pinned`]).
#[derive(Clone)]
pub struct PageArray {
    pinned: Pinned,
    offset: usize,
    len: usize,
}

impl PageArray {
    /// Pins every frame of `pfns` in `frames` and makes them one array;
    /// a frame outside guest RAM or in a hole gives `FrameNotInGuest`
    /// (EFAULT), a VMM-reserved one `FrameReserved` (EPERM), and then
    /// nothing is pinned.
    pub fn pin(frames: &Frames, pfns: Arc<[Pfn]>) -> Result<Self, MmError> {
        Ok(PageArray::from_pinned(frames.pin(pfns)?))
    }

    /// The whole of already pinned frames.
    pub fn from_pinned(pinned: Pinned) -> Self {
        let len = pinned.pfns().len();
        PageArray { pinned, offset: 0, len }
    }

    /// The pin that keeps the frames (of the whole array) allocated.
    pub fn pinned(&self) -> &Pinned {
        &self.pinned
    }

    /// Entries `[from, from + len)` of this array, or `None` when out of
    /// bounds. The slice shares the array's pin.
    pub fn slice(&self, from: u64, len: u64) -> Option<PageArray> {
        let from = usize::try_from(from).ok()?;
        let len = usize::try_from(len).ok()?;
        let end = from.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(PageArray { pinned: self.pinned.clone(), offset: self.offset + from, len })
    }

    /// The frames.
    pub fn as_slice(&self) -> &[Pfn] {
        &self.pinned.pfns()[self.offset..self.offset + self.len]
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for PageArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageArray[{} pages]", self.len)
    }
}

/// One run of a discontiguous kernel-page mapping: `pages` mapped from
/// `start`.
#[derive(Clone, Debug)]
pub struct PageRun {
    /// First virtual address of the run.
    pub start: GuestVirtAddr,
    /// The pages, one per 4 KiB from `start`.
    pub pages: PageArray,
}

/// The action kinds (`enum mmap_action_type`).
#[derive(Clone, Debug, Default)]
pub enum ActionKind {
    /// `MMAP_NOTHING`: the VMA exists; pages come later or never.
    #[default]
    Nothing,
    /// `MMAP_REMAP_PFN` / `MMAP_IO_REMAP_PFN`: a contiguous frame range
    /// mapped at `[start, start + size)`.
    Remap {
        /// First virtual address.
        start: GuestVirtAddr,
        /// First frame.
        pfn: Pfn,
        /// Length in bytes.
        size: u64,
        /// I/O memory: uncached and `VM_IO`.
        io: bool,
    },
    /// `MMAP_SIMPLE_IO_REMAP`: the guard-railed I/O remap of a physical
    /// range; prepare turns it into [`ActionKind::Remap`] with `io`.
    SimpleIoRemap {
        /// Physical start; need not be page aligned.
        phys: GuestAddress,
        /// Length of the physical region in bytes.
        size: u64,
    },
    /// `MMAP_MAP_KERNEL_PAGES`: `nr_pages` pages of an array from `start`.
    MapKernelPages {
        /// First virtual address.
        start: GuestVirtAddr,
        /// The pages.
        pages: PageArray,
        /// How many of them to map.
        nr_pages: u64,
        /// The descriptor's pgoff when the action was set.
        pgoff: u64,
    },
    /// Several runs of pages inside one VMA.
    MapKernelPagesDiscontig {
        /// The runs; they may not overlap.
        runs: Vec<PageRun>,
    },
}

/// Called once the VMA is complete; sees it read-only and may return state
/// to attach to it (the hugetlb lock of the seeds). An error unmaps the VMA.
pub type SuccessHook = Box<dyn FnOnce(&Vma) -> Result<Option<VmaPrivate>, MmError> + Send>;

/// Called when the mapping fails after the VMA existed; may replace the
/// error (the type makes clearing it impossible).
pub type ErrorHook = Box<dyn FnOnce(MmError) -> MmError + Send>;

/// An action with its optional hooks.
#[derive(Default)]
pub struct MmapAction {
    pub(crate) kind: ActionKind,
    pub(crate) success_hook: Option<SuccessHook>,
    pub(crate) error_hook: Option<ErrorHook>,
}

impl MmapAction {
    /// The action kind (for inspection in tests and logs).
    pub fn kind(&self) -> &ActionKind {
        &self.kind
    }
}

impl fmt::Debug for MmapAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmapAction")
            .field("kind", &self.kind)
            .field("success_hook", &self.success_hook.is_some())
            .field("error_hook", &self.error_hook.is_some())
            .finish()
    }
}
