//! The guest-RAM provider, this project's `/dev/mem`: maps guest RAM at
//! physical offset `pgoff << 12` with the checks of `mmap_mem_prepare`
//! (fits, does not wrap, is valid RAM, is allowed) and an error hook that
//! filters failures after the VMA existed to `EAGAIN`.

use vm_memory::GuestAddress;

use crate::addr::{Pfn, PAGE_SHIFT};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::frames::PhysLayout;
use crate::provider::MmapProvider;

/// Maps guest RAM; VMM-owned ranges are never mappable (`EPERM`).
#[derive(Clone, Debug)]
pub struct GuestRamProvider {
    layout: PhysLayout,
    forbidden: PhysLayout,
}

impl GuestRamProvider {
    /// RAM as in `layout`; its reserved ranges and `forbidden` ones (the
    /// pool, firmware tables, ...) may not be mapped.
    pub fn new(layout: &PhysLayout, forbidden: &[(GuestAddress, u64)]) -> Self {
        let mut f = layout.clone();
        for &(b, s) in forbidden {
            f.reserve(b, s);
        }
        GuestRamProvider { layout: layout.clone(), forbidden: f }
    }
}

impl MmapProvider for GuestRamProvider {
    fn name(&self) -> &str {
        "guest-ram"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let size = desc.size();
        let pgoff = desc.pgoff;
        let offset = pgoff.wrapping_shl(PAGE_SHIFT);
        // Does it even fit in a physical address?
        if offset >> PAGE_SHIFT != pgoff {
            return Err(MmError::Invalid("offset does not fit a physical address"));
        }
        // Wrapping around the end of the physical address space is illegal.
        if offset.checked_add(size - 1).is_none() {
            return Err(MmError::Overflow { addr: offset, len: size });
        }
        if !self.layout.is_ram(Pfn(pgoff), desc.pages()) {
            return Err(MmError::Invalid("range is not guest RAM"));
        }
        if self.forbidden.reserved_in(Pfn(pgoff), desc.pages()).is_some() {
            return Err(MmError::NotAllowed { start: offset, end: offset + size });
        }
        desc.mmap_action_remap_full(Pfn(pgoff));
        // Failures after the VMA existed are reported as EAGAIN.
        desc.set_error_hook(Box::new(|_| MmError::Again));
        Ok(())
    }
}
