//! Providers the model uses besides guest-mm's own: one per action kind
//! that guest-mm's providers do not cover.

use guest_mm::{Frames, MmError, MmapProvider, PageArray, PageRun, Pfn, VmaDesc, PAGE_SIZE};
use vm_memory::GuestAddress;

use super::{ARRAY_BASE, IO_PHYS, IO_SIZE};

/// `MMAP_NOTHING`: the only kind that may merge.
pub struct Nothing;

impl MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _desc: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// Scattered array frame for page `i`.
pub fn array_frame(i: u64) -> u64 {
    ARRAY_BASE + (i * 37) % 2048
}

/// `n` array frames from page `first`, pinned in `frames` (per mapping).
fn array(frames: &Frames, n: u64, first: u64) -> Result<PageArray, MmError> {
    PageArray::pin(frames, (0..n).map(|i| Pfn(array_frame(first + i))).collect::<Vec<_>>().into())
}

/// map-kernel-pages from `skip` pages into the VMA (partial form).
pub struct Partial {
    /// Pages left unmapped at the start.
    pub skip: u64,
    /// Where the array's frames are pinned.
    pub frames: Frames,
}

impl MmapProvider for Partial {
    fn name(&self) -> &str {
        "partial"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let n = desc.pages() - self.skip;
        let start = desc.start().checked_add(self.skip * PAGE_SIZE)?;
        desc.mmap_action_map_kernel_pages(start, array(&self.frames, n, self.skip)?, n);
        Ok(())
    }
}

/// Two runs: pages `[0, a)` and `[b, n)`.
pub struct Discontig {
    /// End of the first run.
    pub a: u64,
    /// Start of the second run.
    pub b: u64,
    /// Where the arrays' frames are pinned.
    pub frames: Frames,
}

impl MmapProvider for Discontig {
    fn name(&self) -> &str {
        "discontig"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let n = desc.pages();
        let runs = vec![
            PageRun { start: desc.start(), pages: array(&self.frames, self.a, 0)? },
            PageRun {
                start: desc.start().checked_add(self.b * PAGE_SIZE)?,
                pages: array(&self.frames, n - self.b, self.b)?,
            },
        ];
        desc.mmap_action_map_kernel_pages_discontig(runs);
        Ok(())
    }
}

/// A page array whose last frame is `bad` (refused when it is pinned).
pub struct BadArray {
    /// The bad frame.
    pub bad: u64,
    /// Where the array's frames are pinned.
    pub frames: Frames,
}

impl MmapProvider for BadArray {
    fn name(&self) -> &str {
        "bad-array"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let mut v: Vec<Pfn> = (0..desc.pages()).map(|i| Pfn(array_frame(i))).collect();
        let last = v.len() - 1;
        v[last] = Pfn(self.bad);
        desc.mmap_action_map_kernel_pages_full(PageArray::pin(&self.frames, v.into())?);
        Ok(())
    }
}

/// simple_ioremap of a device window with a sub-page start.
pub struct Io;

impl MmapProvider for Io {
    fn name(&self) -> &str {
        "io"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_simple_ioremap(GuestAddress(IO_PHYS), IO_SIZE);
        Ok(())
    }
}
