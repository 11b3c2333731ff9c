//! Action prepare (`mmap_action_prepare`): validates what the provider
//! asked for and sets the flags it implies, before any VMA or page-table
//! entry exists. An error here leaves nothing behind.

use crate::action::{ActionKind, PageArray};
use crate::addr::{pages_to_bytes, GuestVirtAddr, Pfn, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::{CacheMode, VmFlags, VM_REMAP_FLAGS};
use crate::frames::{Frames, PhysLayout, Pinned, MAX_PFN};
use crate::range::range_in_vma_desc;

/// Validates the descriptor's action and applies its flag changes. A
/// simple I/O remap is rewritten into an I/O remap of the whole VMA.
pub fn prepare(desc: &mut VmaDesc, layout: &PhysLayout) -> Result<(), MmError> {
    let kind = std::mem::take(desc.action_kind_mut());
    let result = match &kind {
        ActionKind::Nothing => Ok(()),
        ActionKind::Remap { start, pfn, size, io } => remap_prepare(desc, *start, *pfn, *size, *io, layout),
        ActionKind::SimpleIoRemap { phys, size } => {
            let pfn = simple_ioremap_prep(desc.size(), desc.pgoff, phys.0, *size)?;
            desc.mmap_action_ioremap_full(pfn);
            // One level of recursion, as in the seeds.
            return prepare(desc, layout);
        }
        ActionKind::MapKernelPages { start, pages, nr_pages, .. } => {
            map_kernel_pages_prepare(desc, *start, pages, *nr_pages)
        }
        ActionKind::MapKernelPagesDiscontig { runs } => {
            let mut spans: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
            for run in runs {
                let n = run.pages.len() as u64;
                map_kernel_pages_prepare(desc, run.start, &run.pages, n)?;
                spans.push((run.start.raw(), run.start.raw() + n * PAGE_SIZE));
            }
            spans.sort_unstable();
            if spans.windows(2).any(|w| w[0].1 > w[1].0) {
                Err(MmError::Invalid("discontiguous page runs overlap"))
            } else {
                Ok(())
            }
        }
    };
    *desc.action_kind_mut() = kind;
    result
}

/// `remap_pfn_range_prepare` plus the checks complete would do: alignment,
/// overflow, inside the VMA, frames addressable and not the VMM's, and the
/// copy-on-write rule of `get_remap_pgoff`.
fn remap_prepare(
    desc: &mut VmaDesc,
    start: GuestVirtAddr,
    pfn: Pfn,
    size: u64,
    io: bool,
    layout: &PhysLayout,
) -> Result<(), MmError> {
    if !start.is_aligned(PAGE_SIZE) {
        return Err(MmError::Misaligned { what: "remap start", value: start.raw(), align: PAGE_SIZE });
    }
    if size == 0 || size % PAGE_SIZE != 0 {
        return Err(MmError::Misaligned { what: "remap size", value: size, align: PAGE_SIZE });
    }
    let end = start.checked_end(size)?;
    if !range_in_vma_desc(Some(desc), start.raw(), end) {
        return Err(MmError::OutsideVma {
            start: start.raw(),
            end,
            vma_start: desc.start().raw(),
            vma_end: desc.end(),
        });
    }
    let pages = size >> PAGE_SHIFT;
    let last = pfn.checked_add(pages).ok_or(MmError::Overflow { addr: pfn.0, len: size })?;
    if last.0 > MAX_PFN {
        return Err(MmError::Invalid("frame beyond the physical address width"));
    }
    if let Some(p) = layout.reserved_in(pfn, pages) {
        return Err(MmError::FrameReserved { pfn: p.0 });
    }
    if desc.test_flags(VmFlags::MIXEDMAP) {
        return Err(MmError::Invalid("remap into a page-array mapping"));
    }
    get_remap_pgoff(desc, start.raw(), end, pfn)?;
    desc.set_flags(VM_REMAP_FLAGS);
    if io && desc.page_prot.cache == CacheMode::WriteBack {
        desc.page_prot = desc.page_prot.with_cache(CacheMode::Uncached);
    }
    Ok(())
}

/// The copy-on-write special case: a private writable remap must cover the
/// whole VMA, and marks its original pages by `pgoff = pfn`.
fn get_remap_pgoff(desc: &mut VmaDesc, start: u64, end: u64, pfn: Pfn) -> Result<(), MmError> {
    if desc.flags.is_cow_mapping() {
        if start != desc.start().raw() || end != desc.end() {
            return Err(MmError::Invalid("private writable remap must cover the whole mapping"));
        }
        desc.pgoff = pfn.0;
    }
    Ok(())
}

/// `__simple_ioremap_prep`: returns the first frame to map for a VMA of
/// `vm_len` bytes at `vm_pgoff` pages into the physical region
/// `[start_phys, start_phys + size)`. A sub-page start is tolerated and
/// rounded down, as the kernel historically allows for I/O memory.
pub fn simple_ioremap_prep(vm_len: u64, vm_pgoff: u64, start_phys: u64, size: u64) -> Result<Pfn, MmError> {
    let overflow = MmError::Overflow { addr: start_phys, len: size };
    // Does the physical region wrap?
    start_phys.checked_add(size).ok_or(overflow.clone())?;
    let size = size.checked_add(start_phys & !PAGE_MASK).ok_or(overflow.clone())?;
    let mut pfn = start_phys >> PAGE_SHIFT;
    let mut pages = size.checked_add(PAGE_SIZE - 1).ok_or(overflow.clone())? >> PAGE_SHIFT;
    pfn.checked_add(pages).ok_or(overflow)?;
    // The mapping starts vm_pgoff pages into the region.
    if vm_pgoff > pages {
        return Err(MmError::Invalid("pgoff past the end of the I/O region"));
    }
    pfn += vm_pgoff;
    pages -= vm_pgoff;
    // Can the whole VMA fit?
    if (vm_len >> PAGE_SHIFT) > pages {
        return Err(MmError::Invalid("mapping larger than the I/O region"));
    }
    Ok(Pfn(pfn))
}

/// `map_kernel_pages_prepare`: sets `VM_MIXEDMAP`, checks the range lies in
/// the VMA (`EFAULT`) and the array is long enough. The frames themselves
/// (guest RAM, `EFAULT`; not the VMM's, `EPERM`) are checked in complete.
fn map_kernel_pages_prepare(
    desc: &mut VmaDesc,
    start: GuestVirtAddr,
    pages: &PageArray,
    nr_pages: u64,
) -> Result<(), MmError> {
    if desc.test_flags(VmFlags::PFNMAP) {
        return Err(MmError::Invalid("page array into a raw-frame mapping"));
    }
    desc.set_flags(VmFlags::MIXEDMAP);
    if !start.is_aligned(PAGE_SIZE) {
        return Err(MmError::Misaligned { what: "page array start", value: start.raw(), align: PAGE_SIZE });
    }
    let outside =
        |end: u64| MmError::OutsideVma { start: start.raw(), end, vma_start: desc.start().raw(), vma_end: desc.end() };
    let end = pages_to_bytes(nr_pages).and_then(|len| start.raw().checked_add(len)).ok_or(outside(u64::MAX))?;
    if !range_in_vma_desc(Some(desc), start.raw(), end) {
        return Err(outside(end));
    }
    if nr_pages > pages.len() as u64 {
        return Err(MmError::Invalid("page array shorter than the mapping"));
    }
    // Each frame was checked (guest RAM, not reserved) when the array was
    // pinned (`PageArray::pin`); the pipeline checks the pin is this
    // address space's (`check_pins`).
    Ok(())
}

/// The arrays a page-array action maps.
fn arrays(kind: &ActionKind) -> Vec<&PageArray> {
    match kind {
        ActionKind::MapKernelPages { pages, .. } => vec![pages],
        ActionKind::MapKernelPagesDiscontig { runs } => runs.iter().map(|r| &r.pages).collect(),
        _ => Vec::new(),
    }
}

/// Checks that every page array the action maps is pinned in `frames`,
/// the address space's own frame state (`EINVAL` otherwise: its pins
/// would not keep this space's frames). Touches nothing.
pub fn check_pins(kind: &ActionKind, frames: &Frames) -> Result<(), MmError> {
    if arrays(kind).iter().all(|a| a.pinned().frames().same(frames)) {
        Ok(())
    } else {
        Err(MmError::Invalid("page array pinned in another address space"))
    }
}

/// Refuses (`FrameReserved`, EPERM) a raw remap over a pool frame that
/// currently holds a page table: like the table region, such a frame is
/// never mapped. Touches nothing; while the pool lends tables it costs
/// one load per frame of the remap that lies in a pool region (none for
/// remaps of device memory or of guest RAM outside the pool).
pub fn check_table_frames(kind: &ActionKind, frames: &Frames) -> Result<(), MmError> {
    let ActionKind::Remap { pfn, size, .. } = kind else { return Ok(()) };
    let st = frames.lock();
    if st.pool_tables() == 0 {
        return Ok(());
    }
    let end = pfn.0.saturating_add(size >> PAGE_SHIFT);
    for (first, last) in st.pool_regions() {
        let (lo, hi) = (pfn.0.max(first.0), end.min(last.0));
        if let Some(p) = (lo..hi).map(Pfn).find(|&p| st.pins().is_table(p)) {
            return Err(MmError::FrameReserved { pfn: p.0 });
        }
    }
    Ok(())
}

/// The pins the action's page arrays hold, each once: the VMA keeps them.
pub fn pins(kind: &ActionKind) -> Vec<Pinned> {
    let mut out: Vec<Pinned> = Vec::new();
    for a in arrays(kind) {
        if !out.iter().any(|p| p.same(a.pinned())) {
            out.push(a.pinned().clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use vm_memory::{GuestAddress, GuestMemoryMmap};

    use super::*;
    use crate::action::PageRun;
    use crate::flags::PageProt;

    const START: u64 = 0x4000_0000;

    fn layout() -> PhysLayout {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        let mut l = PhysLayout::from_memory(&mem);
        l.reserve(GuestAddress(0xf0_0000), 0x10_0000);
        l
    }

    fn desc(pages: u64, flags: VmFlags) -> VmaDesc {
        let f = flags | VmFlags::MAYREAD | VmFlags::MAYWRITE;
        VmaDesc::new(GuestVirtAddr::try_new(START).unwrap(), START + pages * PAGE_SIZE, 0, f, PageProt::from_flags(f))
    }

    fn va(a: u64) -> GuestVirtAddr {
        GuestVirtAddr::try_new(a).unwrap()
    }

    fn arr(pfns: &[u64]) -> PageArray {
        let frames = Frames::new(16 << 8, None).unwrap();
        PageArray::pin(&frames, pfns.iter().map(|&p| Pfn(p)).collect::<Vec<_>>().into()).unwrap()
    }

    /// (vm_len, pgoff, phys, size, expected pfn or errno)
    type PrepCase = (u64, u64, u64, u64, Result<u64, i32>);

    #[test]
    fn simple_ioremap_prep_table() {
        let cases: &[PrepCase] = &[
            (0x1000, 0, 0x1000_0000, 0x1000, Ok(0x10000)),
            // sub-page start: rounded down, the tail page still counts
            (0x2000, 0, 0x1000_0800, 0x1800, Ok(0x10000)),
            (0x3000, 0, 0x1000_0800, 0x1800, Err(22)),
            // pgoff inside the region
            (0x1000, 1, 0x1000_0000, 0x2000, Ok(0x10001)),
            // pgoff exactly at the end: allowed, nothing left to fit
            (0x1000, 2, 0x1000_0000, 0x2000, Err(22)),
            (0, 2, 0x1000_0000, 0x2000, Ok(0x10002)),
            // pgoff past the region
            (0x1000, 3, 0x1000_0000, 0x2000, Err(22)),
            // phys + size wraps
            (0x1000, 0, u64::MAX - 0xfff, 0x2000, Err(22)),
            // size + sub-page rounding wraps
            (0x1000, 0, 0x800, u64::MAX - 0x900, Err(22)),
            // VMA bigger than the region
            (0x3000, 0, 0x1000_0000, 0x2000, Err(22)),
        ];
        for &(vm_len, pgoff, phys, size, want) in cases {
            let got = simple_ioremap_prep(vm_len, pgoff, phys, size).map(|p| p.0).map_err(|e| e.errno());
            assert_eq!(got, want, "vm_len {vm_len:#x} pgoff {pgoff} phys {phys:#x} size {size:#x}");
        }
    }

    #[test]
    fn simple_ioremap_becomes_io_remap() {
        let l = layout();
        let mut d = desc(2, VmFlags::READ | VmFlags::SHARED);
        d.pgoff = 1;
        d.mmap_action_simple_ioremap(GuestAddress(0xfe00_0100), 0x4000);
        prepare(&mut d, &l).unwrap();
        match d.action().kind() {
            ActionKind::Remap { start, pfn, size, io } => {
                assert_eq!((start.raw(), pfn.0, *size, *io), (START, 0xfe001, 0x2000, true));
            }
            k => panic!("not rewritten: {k:?}"),
        }
        assert!(d.flags.contains(VM_REMAP_FLAGS));
        assert_eq!(d.page_prot.cache, CacheMode::Uncached);
    }

    #[test]
    fn remap_checks() {
        let l = layout();
        // Shared partial remap is fine.
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap(va(START + 0x1000), Pfn(0x10), 0x2000);
        assert!(prepare(&mut d, &l).is_ok());
        assert_eq!(d.pgoff, 0);
        // Private (COW) partial remap is not.
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_remap(va(START + 0x1000), Pfn(0x10), 0x2000);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        // Private full remap sets pgoff = pfn.
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_remap_full(Pfn(0x10));
        prepare(&mut d, &l).unwrap();
        assert_eq!(d.pgoff, 0x10);
        // Past the end of the VMA (exclusive end).
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap(va(START + 0x1000), Pfn(0x10), 0x4000);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 14);
        // Reserved frames.
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap_full(Pfn(0xefe));
        assert_eq!(prepare(&mut d, &l).unwrap_err(), MmError::FrameReserved { pfn: 0xf00 });
        // Frame number overflow and physical width.
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap_full(Pfn(u64::MAX - 1));
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap_full(Pfn(MAX_PFN - 1));
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        // Misaligned start and size.
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap(va(START + 1), Pfn(0x10), 0x1000);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.mmap_action_remap(va(START), Pfn(0x10), 0x1001);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        // I/O remap keeps a cache mode the provider chose.
        let mut d = desc(4, VmFlags::READ | VmFlags::SHARED);
        d.page_prot = d.page_prot.with_cache(CacheMode::WriteCombining);
        d.mmap_action_ioremap_full(Pfn(0x10));
        prepare(&mut d, &l).unwrap();
        assert_eq!(d.page_prot.cache, CacheMode::WriteCombining);
    }

    #[test]
    fn map_kernel_pages_checks() {
        let l = layout();
        // Partial from a start address.
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_map_kernel_pages(va(START + 0x2000), arr(&[1, 9]), 2);
        prepare(&mut d, &l).unwrap();
        assert!(d.test_flags(VmFlags::MIXEDMAP));
        // One page too many (exclusive end).
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_map_kernel_pages(va(START + 0x2000), arr(&[1, 9, 3]), 3);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 14);
        // nr_pages * PAGE_SIZE overflows.
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_map_kernel_pages(va(START), arr(&[1]), 1 << 52);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 14);
        // Full form with too short an array.
        let mut d = desc(4, VmFlags::READ);
        d.mmap_action_map_kernel_pages_full(arr(&[1, 2, 3]));
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        // Frames outside guest memory or reserved never get this far:
        // pinning the array refuses them (frames/pin.rs).
        // Into a PFNMAP mapping.
        let mut d = desc(2, VmFlags::READ | VmFlags::PFNMAP);
        d.mmap_action_map_kernel_pages_full(arr(&[1, 2]));
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
    }

    #[test]
    fn discontig_runs() {
        let l = layout();
        let run = |a: u64, p: &[u64]| PageRun { start: va(a), pages: arr(p) };
        let mut d = desc(8, VmFlags::READ);
        d.mmap_action_map_kernel_pages_discontig(vec![run(START, &[1, 2]), run(START + 0x5000, &[7])]);
        prepare(&mut d, &l).unwrap();
        let mut d = desc(8, VmFlags::READ);
        d.mmap_action_map_kernel_pages_discontig(vec![run(START, &[1, 2]), run(START + 0x1000, &[7])]);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 22);
        let mut d = desc(8, VmFlags::READ);
        d.mmap_action_map_kernel_pages_discontig(vec![run(START + 0x7000, &[1, 2])]);
        assert_eq!(prepare(&mut d, &l).unwrap_err().errno(), 14);
        let _ = Arc::new(0);
    }

    #[test]
    fn pins_of_an_action_and_their_owner() {
        let frames = Frames::new(64, None).unwrap();
        let a = PageArray::pin(&frames, Arc::from([Pfn(1), Pfn(2), Pfn(3)].as_slice())).unwrap();
        let b = PageArray::pin(&frames, Arc::from([Pfn(4)].as_slice())).unwrap();
        let runs = vec![
            PageRun { start: va(START), pages: a.slice(0, 1).unwrap() },
            PageRun { start: va(START + 0x2000), pages: b.clone() },
            PageRun { start: va(START + 0x4000), pages: a.slice(2, 1).unwrap() },
        ];
        let kind = ActionKind::MapKernelPagesDiscontig { runs };
        let p = pins(&kind);
        assert_eq!(p.len(), 2);
        assert!(p[0].same(a.pinned()) && p[1].same(b.pinned()));
        assert_eq!(check_pins(&kind, &frames), Ok(()));
        let other = Frames::new(64, None).unwrap();
        assert_eq!(check_pins(&kind, &other).unwrap_err().errno(), 22);
        assert!(pins(&ActionKind::Nothing).is_empty());
    }
}
