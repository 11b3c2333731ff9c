//! The huge-page provider, after hugetlbfs: a guest-RAM region handed out
//! in 2 MiB or 1 GiB pages. `pgoff` must be huge-page aligned, mappings are
//! placed on huge-page boundaries so leaves can be huge, and a success hook
//! attaches per-VMA state (hugetlbfs allocates its VMA lock there). Its
//! VMAs carry ops whose `pagesize` is the huge-page size (hugetlbfs's
//! `hugetlb_vm_op_pagesize`), so `mremap` and `munmap` keep them whole
//! pages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vm_memory::GuestAddress;

use crate::addr::{GuestVirtAddr, PageSize, Pfn, PAGE_SHIFT};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::vma::{Vma, VmaOps};

/// Maps a huge-page region.
pub struct HugePageProvider {
    base: Pfn,
    nr_pages: u64,
    page: PageSize,
    live: Arc<AtomicUsize>,
    ops: Arc<HugePageOps>,
}

/// The ops of a huge-page VMA: no fault handler (the mapping is remapped
/// whole at `mmap`), and the page size.
#[derive(Debug)]
struct HugePageOps {
    page: u64,
}

impl VmaOps for HugePageOps {
    fn name(&self) -> &str {
        "huge"
    }

    fn pagesize(&self, _vma: &Vma) -> u64 {
        self.page
    }
}

/// Per-VMA state the success hook attaches; shared by the pieces of a
/// split VMA and dropped with the last of them.
#[derive(Debug)]
pub struct HugeVmaState {
    /// Where the VMA started when it was created.
    pub created_at: GuestVirtAddr,
    live: Arc<AtomicUsize>,
}

impl Drop for HugeVmaState {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HugePageProvider {
    /// A provider over `[base, base + size)` in pages of `page` (2 MiB or
    /// 1 GiB); both ends must be aligned to it.
    pub fn new(base: GuestAddress, size: u64, page: PageSize) -> Result<Self, MmError> {
        if page == PageSize::Size4K {
            return Err(MmError::Invalid("huge pages are 2 MiB or 1 GiB"));
        }
        let align = page.bytes();
        if base.0 % align != 0 || size % align != 0 || size == 0 {
            return Err(MmError::Misaligned { what: "huge-page region", value: base.0 | size, align });
        }
        Ok(HugePageProvider {
            base: Pfn::containing(base),
            nr_pages: size >> PAGE_SHIFT,
            page,
            live: Arc::new(AtomicUsize::new(0)),
            ops: Arc::new(HugePageOps { page: align }),
        })
    }

    /// VMAs alive that carry this provider's state.
    pub fn live_vmas(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl MmapProvider for HugePageProvider {
    fn name(&self) -> &str {
        "huge"
    }

    fn align(&self) -> u64 {
        self.page.bytes()
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        let huge = self.page.bytes();
        let per = huge >> PAGE_SHIFT;
        if desc.pgoff % per != 0 {
            return Err(MmError::Misaligned { what: "huge-page pgoff", value: desc.pgoff, align: per });
        }
        if !desc.start().is_aligned(huge) || desc.size() % huge != 0 {
            return Err(MmError::Misaligned {
                what: "huge-page mapping",
                value: desc.start().raw() | desc.size(),
                align: huge,
            });
        }
        match desc.pgoff.checked_add(desc.pages()) {
            Some(end) if end <= self.nr_pages => {}
            _ => return Err(MmError::Invalid("mapping extends beyond the huge-page region")),
        }
        desc.set_flags(VmFlags::HUGETLB | VmFlags::DONTEXPAND);
        desc.set_ops(self.ops.clone());
        desc.mmap_action_remap_full(Pfn(self.base.0 + desc.pgoff));
        let live = self.live.clone();
        desc.set_success_hook(Box::new(move |vma| {
            live.fetch_add(1, Ordering::Relaxed);
            Ok(Some(Arc::new(HugeVmaState { created_at: vma.start(), live })))
        }));
        Ok(())
    }
}
