//! The compat entry point (`__compat_vma_mmap_prepare`): runs a provider's
//! `mmap_prepare` for a VMA that already exists, copies the descriptor back
//! into the VMA (`set_vma_from_desc`) and completes the action. Stacked
//! callers use it when they hold a VMA rather than a descriptor.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::action;
use crate::addr::GuestVirtAddr;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Prepares and completes `provider`'s mapping over the existing,
    /// still unpopulated VMA that starts at `addr` (`EPERM` if it is
    /// sealed). A failure after the VMA was updated unmaps it entirely,
    /// as the kernel does.
    pub fn compat_mmap_prepare(&mut self, addr: GuestVirtAddr, provider: &dyn MmapProvider) -> Result<(), MmError> {
        let vma = match self.vmas.find(addr.raw()) {
            Some(v) if v.start() == addr => v.clone(),
            _ => return Err(MmError::NotMapped { addr: addr.raw() }),
        };
        // Replacing a sealed VMA's mapping is a change it refuses.
        if vma.is_sealed() {
            return Err(MmError::Sealed { addr: addr.raw() });
        }
        if !self.pt.leaves(vma.start(), vma.size()).is_empty() {
            return Err(MmError::Invalid("compat prepare on a populated mapping"));
        }
        let mut desc = VmaDesc::new(vma.start(), vma.end(), vma.pgoff(), vma.flags(), vma.page_prot());
        provider.mmap_prepare(&mut desc)?;
        super::mmap::check_bounds(&desc, vma.start(), vma.end())?;
        action::prepare(&mut desc, &self.layout)?;
        if desc.flags.contains(VmFlags::WRITE) && !desc.flags.contains(VmFlags::MAYWRITE) {
            return Err(MmError::Access("write"));
        }
        let (parts, mut act) = desc.into_parts();
        let (start, len) = (vma.start(), vma.size());
        action::check_pins(&act.kind, &self.frames)?;
        action::check_table_frames(&act.kind, &self.frames)?;
        let mut new_vma = crate::vma::Vma::from_parts(start, vma.end(), parts, vma.provider(), vma.provider_name());
        for pin in action::pins(&act.kind) {
            new_vma.hold(pin);
        }
        let gone = self.vmas.remove_range(start.raw(), vma.end());
        drop(self.page_pins.take(start.raw(), vma.end()));
        super::vma_life::close_all(gone);
        self.vmas.insert(new_vma.clone());
        if let Some(ops) = new_vma.ops() {
            ops.mapped(&new_vma);
        }
        let done = action::complete(&act.kind, &new_vma, &mut self.pt);
        let done = done.and_then(|_| match act.success_hook.take() {
            Some(hook) => hook(&new_vma),
            None => Ok(None),
        });
        match done {
            Ok(private) => {
                if let Some(p) = private {
                    if let Some(v) = self.vmas.starting_at_mut(start.raw()) {
                        v.private = Some(p);
                    }
                }
                Ok(())
            }
            Err(err) => {
                // What complete wrote was live: the caller flushes it
                // (take_deferred_flush), like a failed mmap's.
                match self.munmap(start, len) {
                    Ok(flush) => self.deferred.merge(flush),
                    Err(e) => log::error!("unmapping {:#x}+{len:#x} after a failed compat prepare: {e}", start.raw()),
                }
                Err(match act.error_hook.take() {
                    Some(hook) => hook(err),
                    None => err,
                })
            }
        }
    }
}
