//! The zero provider (`/dev/zero`): every mapping gets fresh, zeroed pages
//! from the kernel page pool, mapped as a page array. The pages belong to
//! the mapping: they return to the pool when the last entry goes.

use std::sync::Arc;

use vm_memory::GuestMemory;

use crate::action::PageArray;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::frames::Frames;
use crate::provider::MmapProvider;

/// Hands out zeroed pool pages.
pub struct ZeroProvider<M> {
    frames: Frames,
    mem: M,
}

impl<M: GuestMemory> ZeroProvider<M> {
    /// Pages come from `frames`' pool and are zeroed through `mem`.
    pub fn new(frames: Frames, mem: M) -> Self {
        ZeroProvider { frames, mem }
    }
}

impl<M: GuestMemory + Send + Sync> MmapProvider for ZeroProvider<M> {
    fn name(&self) -> &str {
        "zero"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        // Owned by the action until the mapping holds its own counts; if
        // anything fails first, dropping it returns the pages.
        let pages = self.frames.alloc(desc.pages())?;
        pages.zero(&self.mem)?;
        let pfns = pages.pfns().clone();
        desc.mmap_action_map_kernel_pages_full(PageArray::with_hold(pfns, Arc::new(pages)));
        Ok(())
    }
}
