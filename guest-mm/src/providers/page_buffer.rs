//! A kernel page buffer, like a relay channel's: an array of pool pages
//! whose physical order is scattered, mapped as a page array. `pgoff`
//! selects the first buffer page a mapping shows. A lazy view
//! ([`PageBuffer::lazy`]) maps nothing up front: its fault handler maps the
//! touched page and fault-around its neighbours (all already available,
//! like page-cache pages for `filemap_map_pages`).

use std::sync::Arc;

use crate::action::PageArray;
use crate::addr::Pfn;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::frames::{Frames, PoolPages};
use crate::provider::MmapProvider;
use crate::vma::{FaultAccess, FaultInfo, FaultPage, Vma, VmaOps};

/// A buffer of discontiguous pages that guests may map.
pub struct PageBuffer {
    pages: PageArray,
    owner: Arc<PoolPages>,
    /// Set for a lazy view: the fault path maps the pages.
    lazy: Option<Arc<BufferOps>>,
}

/// The fault handlers of a lazy page-buffer mapping.
pub struct BufferOps {
    pages: PageArray,
}

impl PageBuffer {
    /// Allocates `nr_pages` pool pages and scatters their order so that
    /// neighbouring buffer pages are not neighbouring frames.
    pub fn new(frames: &Frames, nr_pages: u64) -> Result<Self, MmError> {
        let owner = Arc::new(frames.alloc(nr_pages)?);
        let pfns = scatter(owner.pfns());
        Ok(PageBuffer { pages: PageArray::pin(frames, pfns.into())?, owner, lazy: None })
    }

    /// A provider over the same pages that maps them on fault.
    pub fn lazy(&self) -> PageBuffer {
        PageBuffer {
            pages: self.pages.clone(),
            owner: self.owner.clone(),
            lazy: Some(Arc::new(BufferOps { pages: self.pages.clone() })),
        }
    }

    /// The frames in buffer order.
    pub fn pages(&self) -> &[Pfn] {
        self.pages.as_slice()
    }
}

/// Even-indexed frames first, then odd-indexed ones: neighbouring buffer
/// pages are never neighbouring frames once there are more than four.
fn scatter(pfns: &[Pfn]) -> Vec<Pfn> {
    pfns.iter().step_by(2).chain(pfns.iter().skip(1).step_by(2)).copied().collect()
}

impl MmapProvider for PageBuffer {
    fn name(&self) -> &str {
        if self.lazy.is_some() {
            "page-buffer-lazy"
        } else {
            "page-buffer"
        }
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let pages = self
            .pages
            .slice(desc.pgoff, desc.pages())
            .ok_or(MmError::Invalid("mapping extends beyond the page buffer"))?;
        match &self.lazy {
            Some(ops) => {
                desc.set_flags(VmFlags::MIXEDMAP);
                desc.set_ops(ops.clone());
            }
            None => desc.mmap_action_map_kernel_pages_full(pages),
        }
        Ok(())
    }
}

impl VmaOps for BufferOps {
    fn name(&self) -> &str {
        "page-buffer"
    }

    fn fault(&self, _vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        let i = usize::try_from(vmf.pgoff).map_err(|_| MmError::Invalid("page offset"))?;
        let pfn = self.pages.as_slice().get(i).ok_or(MmError::Invalid("fault beyond the page buffer"))?;
        Ok(FaultPage::new(*pfn))
    }

    fn map_pages(&self, _vma: &Vma, first: u64, nr: u64, _access: FaultAccess) -> Vec<Option<FaultPage>> {
        (first..first.saturating_add(nr))
            .map(|i| usize::try_from(i).ok().and_then(|i| self.pages.as_slice().get(i)).map(|&p| FaultPage::new(p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_is_a_permutation_without_adjacent_neighbours() {
        for n in 5..40 {
            let pfns: Vec<Pfn> = (100..100 + n).map(Pfn).collect();
            let s = scatter(&pfns);
            let mut sorted = s.clone();
            sorted.sort();
            assert_eq!(sorted, pfns);
            assert!(s.windows(2).all(|w| w[0].0.abs_diff(w[1].0) > 1), "{s:?}");
        }
    }
}
