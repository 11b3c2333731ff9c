//! The zero provider (`/dev/zero`). A private mapping is lazy anonymous
//! memory (`MMAP_NOTHING` with [`AnonOps`]): pages come on the first touch,
//! a read maps the shared zero page copy-on-write, and the fault path pins
//! each faulted run until its range is unmapped or dropped. A shared
//! mapping gets fresh zeroed pool pages up front, mapped as a page array:
//! the array pins them and the VMA holds the array, so they return to the
//! pool when the last piece of the VMA goes.

use std::sync::Arc;

use vm_memory::GuestMemory;

use super::anon::AnonOps;
use crate::action::PageArray;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::frames::Frames;
use crate::provider::MmapProvider;

/// Hands out zeroed pool pages.
pub struct ZeroProvider<M> {
    frames: Frames,
    mem: M,
    anon: Arc<AnonOps<M>>,
}

impl<M: GuestMemory + Clone> ZeroProvider<M> {
    /// Pages come from `frames`' pool and are zeroed through `mem`.
    pub fn new(frames: Frames, mem: M) -> Self {
        let anon = Arc::new(AnonOps::new(frames.clone(), mem.clone()));
        ZeroProvider { frames, mem, anon }
    }

    /// The operations of its private (lazy) mappings.
    pub fn anon_ops(&self) -> &Arc<AnonOps<M>> {
        &self.anon
    }
}

impl<M: GuestMemory + Clone + Send + Sync + 'static> MmapProvider for ZeroProvider<M> {
    fn name(&self) -> &str {
        "zero"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        if !desc.test_flags(VmFlags::SHARED) {
            // MMAP_NOTHING: the fault path fills it.
            desc.set_ops(self.anon.clone());
            return Ok(());
        }
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
