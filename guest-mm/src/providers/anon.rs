//! Lazy anonymous memory: the operations of the zero provider's private
//! mappings. A read maps the shared zero page read-only and copy-on-write;
//! a write (or the first write after a read) gets a fresh zeroed pool page.
//! Fault-around gives reads the zero page and writes fresh pages, one pool
//! allocation per window.

use std::sync::{Arc, OnceLock};

use vm_memory::{Bytes, GuestMemory};

use crate::addr::{Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::{Frames, PoolPages};
use crate::vma::{FaultAccess, FaultInfo, FaultPage, Vma, VmaOps};

/// The operations of lazy anonymous VMAs.
pub struct AnonOps<M> {
    frames: Frames,
    mem: M,
    /// The shared zero page, allocated on the first read fault and kept
    /// while any VMA holds these ops.
    zero: OnceLock<PoolPages>,
}

impl<M: GuestMemory> AnonOps<M> {
    /// Pages come from `frames`' pool and are zeroed through `mem`.
    pub fn new(frames: Frames, mem: M) -> Self {
        AnonOps { frames, mem, zero: OnceLock::new() }
    }

    /// The zero page, allocating it on first use.
    pub fn zero_page(&self) -> Result<Pfn, MmError> {
        if let Some(z) = self.zero.get() {
            return z.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"));
        }
        let page = self.frames.alloc(1)?;
        page.zero(&self.mem)?;
        // A racing initialiser wins; this page then goes back to the pool.
        let z = self.zero.get_or_init(|| page);
        z.pfns().first().copied().ok_or(MmError::OutOfMemory("pool pages"))
    }

    /// `n` fresh pages: zeroed, or (for one page) a copy of `from`.
    fn fresh(&self, n: u64, from: Option<Pfn>) -> Result<Vec<FaultPage>, MmError> {
        let pages = self.frames.alloc(n)?;
        match from {
            Some(src) if n == 1 => {
                let mut buf = [0u8; PAGE_SIZE as usize];
                self.mem.read_slice(&mut buf, src.addr()).map_err(|_| MmError::GuestMemory { addr: src.addr().0 })?;
                let dst = pages.pfns()[0].addr();
                self.mem.write_slice(&buf, dst).map_err(|_| MmError::GuestMemory { addr: dst.0 })?;
            }
            _ => pages.zero(&self.mem)?,
        }
        let hold: Arc<dyn std::any::Any + Send + Sync> = Arc::new(pages);
        let pfns = hold.downcast_ref::<PoolPages>().map(|p| p.pfns().clone()).unwrap_or_else(|| Arc::from([]));
        Ok(pfns.iter().map(|&pfn| FaultPage { pfn, copy_on_write: false, hold: Some(hold.clone()) }).collect())
    }

    fn zero_fault_page(&self) -> Result<FaultPage, MmError> {
        Ok(FaultPage { pfn: self.zero_page()?, copy_on_write: true, hold: None })
    }
}

impl<M: GuestMemory + Send + Sync> VmaOps for AnonOps<M> {
    fn name(&self) -> &str {
        "anon"
    }

    fn is_anonymous(&self) -> bool {
        true
    }

    fn fault(&self, _vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        if !vmf.access.write {
            return self.zero_fault_page();
        }
        self.fresh(1, vmf.cow_from)?.pop().ok_or(MmError::OutOfMemory("pool pages"))
    }

    fn map_pages(&self, _vma: &Vma, _first: u64, nr: u64, access: FaultAccess) -> Vec<Option<FaultPage>> {
        let got =
            if access.write { self.fresh(nr, None) } else { self.zero_fault_page().map(|z| vec![z; nr as usize]) };
        match got {
            Ok(v) => v.into_iter().map(Some).collect(),
            // Best effort: the neighbours stay absent.
            Err(_) => Vec::new(),
        }
    }
}
