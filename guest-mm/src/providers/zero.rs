//! The zero provider (`/dev/zero`): every mapping gets fresh, zeroed pages
//! from the kernel page pool, mapped as a page array. The pages belong to
//! the mapping: the array pins them and the VMA holds the array, so they
//! return to the pool when the last piece of the VMA goes.

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
        // Pinned before the owner lets go: the pin (the action's array,
        // then the VMA's) keeps them; if anything fails first, dropping
        // the array returns the pages.
        let pages = self.frames.alloc(desc.pages())?;
        pages.zero(&self.mem)?;
        let array = PageArray::pin(&self.frames, pages.pfns().clone())?;
        drop(pages);
        desc.mmap_action_map_kernel_pages_full(array);
        Ok(())
    }
}
