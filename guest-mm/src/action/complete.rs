//! Action complete (`mmap_action_complete`): populates the page tables of
//! a VMA that now exists. It cannot change the descriptor (there is none
//! any more) and it reports errors to the pipeline, which unmaps the VMA.

use vm_memory::GuestMemory;

use crate::action::ActionKind;
use crate::addr::PageSize;
use crate::error::MmError;
use crate::paging::{MapStats, PageTables};
use crate::vma::Vma;

/// Writes the entries the action describes into `pt`.
pub fn complete<M: GuestMemory>(kind: &ActionKind, vma: &Vma, pt: &mut PageTables<M>) -> Result<MapStats, MmError> {
    let prot = vma.page_prot();
    match kind {
        ActionKind::Nothing => Ok(MapStats::default()),
        ActionKind::Remap { start, pfn, size, .. } => pt.map_range(*start, pfn.addr(), *size, prot, PageSize::Size1G),
        // Prepare always rewrites it into an I/O remap.
        ActionKind::SimpleIoRemap { .. } => Err(MmError::Invalid("simple I/O remap was not prepared")),
        ActionKind::MapKernelPages { start, pages, nr_pages, .. } => {
            let pages = pages.slice(0, *nr_pages).ok_or(MmError::Invalid("page array shorter than the mapping"))?;
            pt.insert_pages(*start, &pages, prot)
        }
        ActionKind::MapKernelPagesDiscontig { runs } => {
            let mut stats = MapStats::default();
            for run in runs {
                let s = pt.insert_pages(run.start, &run.pages, prot)?;
                stats.entries_written += s.entries_written;
                stats.tables_allocated += s.tables_allocated;
            }
            Ok(stats)
        }
    }
}
