//! Delegation: a stacked provider that calls another provider's
//! `mmap_prepare` and narrows the result to a read-only view (no write
//! now, and `MAYWRITE` cleared so mprotect cannot add it later).

use std::sync::Arc;

use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

/// A read-only view of another provider.
pub struct ReadOnlyView {
    inner: Arc<dyn MmapProvider>,
    name: String,
}

impl ReadOnlyView {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MmapProvider>) -> Self {
        let name = format!("ro:{}", inner.name());
        ReadOnlyView { inner, name }
    }
}

impl MmapProvider for ReadOnlyView {
    fn name(&self) -> &str {
        &self.name
    }

    fn align(&self) -> u64 {
        self.inner.align()
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        if desc.test_flags(VmFlags::WRITE) {
            return Err(MmError::Access("write"));
        }
        desc.clear_flags(VmFlags::MAYWRITE);
        self.inner.mmap_prepare(desc)?;
        // The inner provider may not widen what this view allows.
        if desc.test_flags(VmFlags::WRITE | VmFlags::MAYWRITE) {
            return Err(MmError::Access("write"));
        }
        desc.set_flags(VmFlags::DONTDUMP);
        Ok(())
    }
}
