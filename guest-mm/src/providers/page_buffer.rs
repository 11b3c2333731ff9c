//! A kernel page buffer, like a relay channel's: an array of pool pages
//! whose physical order is scattered, mapped as a page array. `pgoff`
//! selects the first buffer page a mapping shows.

use std::sync::Arc;

use crate::action::PageArray;
use crate::addr::Pfn;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::frames::{Frames, PoolPages};
use crate::provider::MmapProvider;

/// A buffer of discontiguous pages that guests may map.
pub struct PageBuffer {
    pages: PageArray,
    _owner: Arc<PoolPages>,
}

impl PageBuffer {
    /// Allocates `nr_pages` pool pages and scatters their order so that
    /// neighbouring buffer pages are not neighbouring frames.
    pub fn new(frames: &Frames, nr_pages: u64) -> Result<Self, MmError> {
        let owner = Arc::new(frames.alloc(nr_pages)?);
        let pfns = scatter(owner.pfns());
        Ok(PageBuffer { pages: PageArray::pin(frames, pfns.into())?, _owner: owner })
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
        "page-buffer"
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let pages = self
            .pages
            .slice(desc.pgoff, desc.pages())
            .ok_or(MmError::Invalid("mapping extends beyond the page buffer"))?;
        desc.mmap_action_map_kernel_pages_full(pages);
        Ok(())
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
