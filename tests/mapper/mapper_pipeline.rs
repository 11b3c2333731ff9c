//! The mmap pipeline's rules, scenario by scenario: placement, fixed and
//! no-replace mappings, merging, mprotect limits, delegation, the compat
//! entry point, hooks, and leaf sizes.

use std::sync::Arc;

use guest_mm::providers::{GuestRamProvider, HugePageProvider, HugeVmaState, ReadOnlyView, ZeroProvider};
use guest_mm::{
    errno, CacheMode, MmError, MmapProvider, MmapRequest, PageSize, Pfn, VmFlags, VmaDesc, PAGE_SIZE, VM_REMAP_FLAGS,
};
use vm_memory::GuestAddress;
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

struct Nothing;
impl MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _d: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// An I/O window far above RAM, mapped whole.
struct Window {
    phys: u64,
}
impl MmapProvider for Window {
    fn name(&self) -> &str {
        "window"
    }
    fn align(&self) -> u64 {
        1 << 30
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_ioremap_full(Pfn(self.phys / PAGE_SIZE + d.pgoff));
        Ok(())
    }
}

#[test]
fn placement_hint_top_down_and_window_exhaustion() {
    let mut s = space(&L);
    let a = s.mmap(&Nothing, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).expect("map");
    assert_eq!(a.addr.raw(), L.window.1 - PAGE_SIZE, "top-down placement");
    let hint = va(L.window.0 + 0x10000);
    let b = s
        .mmap(&Nothing, &MmapRequest { addr: Some(hint), ..MmapRequest::shared(PAGE_SIZE, VmFlags::READ) })
        .expect("map");
    assert_eq!(b.addr, hint);
    // A taken hint is only a hint.
    let c = s
        .mmap(&Nothing, &MmapRequest { addr: Some(hint), ..MmapRequest::shared(PAGE_SIZE, VmFlags::READ) })
        .expect("map");
    assert_ne!(c.addr, hint);
    // No room left for the whole window.
    let e = s.mmap(&Nothing, &MmapRequest::shared(L.window.1 - L.window.0, VmFlags::READ)).map(|m| m.addr).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
}

#[test]
fn setup_rejects_bad_lengths_and_addresses() {
    let mut s = space(&L);
    let cases: &[(MmapRequest, i32)] = &[
        (MmapRequest::shared(0, VmFlags::READ), errno::EINVAL),
        (MmapRequest::shared(u64::MAX, VmFlags::READ), errno::EINVAL),
        (MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(va(L.window.0 + 1)), errno::EINVAL),
        (MmapRequest::shared(2 * PAGE_SIZE, VmFlags::READ).fixed(va(0x7fff_ffff_f000)), errno::EINVAL),
        (MmapRequest::shared(PAGE_SIZE, VmFlags::READ).pgoff(u64::MAX), errno::EINVAL),
        (
            MmapRequest { placement: guest_mm::Placement::Fixed, ..MmapRequest::shared(PAGE_SIZE, VmFlags::READ) },
            errno::EINVAL,
        ),
        (MmapRequest::shared(PAGE_SIZE, VmFlags::HUGETLB), errno::EINVAL),
    ];
    for (req, want) in cases {
        let e = s.mmap(&Nothing, req).map(|m| m.addr).unwrap_err();
        assert_eq!(e.errno(), *want, "{req:?}: {e}");
    }
    assert_eq!(s.stats().vmas, 0);
    // The page offset may run up to the last page number, counted in pages
    // (not bytes): 16 pages from 2^64 - 17 fit, from 2^64 - 16 they do not.
    let req = |pgoff| MmapRequest::shared(16 * PAGE_SIZE, VmFlags::READ).pgoff(pgoff);
    let e = s.mmap(&Nothing, &req(u64::MAX - 15)).map(|m| m.addr).unwrap_err();
    assert!(matches!(e, MmError::Overflow { .. }), "{e}");
    let m = s.mmap(&Nothing, &req(u64::MAX - 16)).expect("last pages");
    s.munmap(m.addr, 16 * PAGE_SIZE).expect("unmap").ignore();
    // A provider's alignment must be a power of two and at least a page.
    for align in [PAGE_SIZE / 2, 3 * PAGE_SIZE] {
        let e = s.mmap(&Aligned(align), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).map(|m| m.addr).unwrap_err();
        assert_eq!(e, MmError::Invalid("provider alignment is not a power of two"), "{align:#x}");
    }
    let m = s.mmap(&Aligned(4 * PAGE_SIZE), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).expect("aligned");
    assert!(m.addr.is_aligned(4 * PAGE_SIZE));
}

/// A provider that asks for `.0`-aligned placement.
struct Aligned(u64);
impl MmapProvider for Aligned {
    fn name(&self) -> &str {
        "aligned"
    }
    fn align(&self) -> u64 {
        self.0
    }
    fn mmap_prepare(&self, _d: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

#[test]
fn fixed_replaces_and_noreplace_refuses() {
    let mut s = space(&L);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    let at = va(L.window.0);
    s.mmap(&ram, &MmapRequest::shared(8 * PAGE_SIZE, RW).fixed(at).pgoff(0x100)).expect("first").flush.ignore();
    let e = s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, RW).fixed_noreplace(va(at.raw() + 0x3000))).map(|m| m.addr);
    assert_eq!(e.unwrap_err(), MmError::Exists { addr: at.raw() + 0x3000 });
    assert_eq!(s.translate(va(at.raw() + 0x3000)).expect("kept").pfn.0, 0x103);
    // A failing fixed mapping (bad frame) leaves the old one as it was.
    let e = s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, RW).fixed(va(at.raw() + 0x3000)).pgoff(L.ram / PAGE_SIZE));
    assert_eq!(e.map(|m| m.addr).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.translate(va(at.raw() + 0x3000)).expect("kept").pfn.0, 0x103);
    // A successful fixed mapping replaces the middle and reports the flush.
    let m =
        s.mmap(&ram, &MmapRequest::shared(2 * PAGE_SIZE, RW).fixed(va(at.raw() + 0x3000)).pgoff(0x500)).expect("fixed");
    assert_eq!(m.flush.pages(), 2);
    m.flush.ignore();
    let frames: Vec<u64> = (0..8).map(|i| s.translate(va(at.raw() + i * PAGE_SIZE)).expect("mapped").pfn.0).collect();
    assert_eq!(frames, vec![0x100, 0x101, 0x102, 0x500, 0x501, 0x105, 0x106, 0x107]);
    assert_eq!(s.stats().vmas, 3);
}

#[test]
fn merging_follows_the_kernel_rules() {
    let mut s = space(&L);
    let base = L.window.0;
    let req = |page: u64, n: u64| {
        MmapRequest::shared(n * PAGE_SIZE, VmFlags::READ).fixed(va(base + page * PAGE_SIZE)).pgoff(page)
    };
    s.mmap(&Nothing, &req(0, 4)).expect("a").flush.ignore();
    s.mmap(&Nothing, &req(4, 4)).expect("b").flush.ignore();
    assert_eq!(s.stats().vmas, 1, "contiguous pgoff merges");
    s.mmap(&Nothing, &req(8, 4).pgoff(100)).expect("c").flush.ignore();
    assert_eq!(s.stats().vmas, 2, "discontiguous pgoff does not merge");
    // mprotect splits, and restoring the protection merges again.
    s.mprotect(va(base + PAGE_SIZE), PAGE_SIZE, RW).expect("mprotect").ignore();
    assert_eq!(s.stats().vmas, 4);
    s.mprotect(va(base + PAGE_SIZE), PAGE_SIZE, VmFlags::READ).expect("mprotect").ignore();
    assert_eq!(s.stats().vmas, 2);
    // VM_SPECIAL mappings never merge.
    let ram = GuestRamProvider::new(s.layout(), &[]);
    let r = |page: u64| {
        MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(va(base + page * PAGE_SIZE)).pgoff(0x100 + page)
    };
    s.mmap(&ram, &r(20)).expect("r1").flush.ignore();
    s.mmap(&ram, &r(21)).expect("r2").flush.ignore();
    assert_eq!(s.stats().vmas, 4);
    assert!(s.find_vma(va(base + 20 * PAGE_SIZE)).expect("vma").flags().contains(VM_REMAP_FLAGS));
}

#[test]
fn mprotect_changes_entries_and_respects_may_flags() {
    let mut s = space(&L);
    let ram: Arc<dyn MmapProvider> = Arc::new(GuestRamProvider::new(s.layout(), &[]));
    let m = s.mmap(ram.as_ref(), &MmapRequest::shared(4 * PAGE_SIZE, RW).pgoff(0x100)).expect("map");
    let f = s.mprotect(va(m.addr.raw() + PAGE_SIZE), 2 * PAGE_SIZE, VmFlags::READ).expect("ro");
    assert_eq!(f.pages(), 2, "exactly the downgraded pages are flushed");
    f.ignore();
    assert!(s.translate(m.addr).expect("p0").prot.writable);
    assert!(!s.translate(va(m.addr.raw() + PAGE_SIZE)).expect("p1").prot.writable);
    // PROT_NONE makes the entry not present but keeps its frame.
    s.mprotect(m.addr, PAGE_SIZE, VmFlags::empty()).expect("none").ignore();
    assert!(s.translate(m.addr).is_none());
    assert_eq!(s.page_tables().leaves(m.addr, PAGE_SIZE).len(), 1);
    // A hole in the range: ENOMEM and nothing changed.
    let e = s.mprotect(va(m.addr.raw() - PAGE_SIZE), 2 * PAGE_SIZE, RW).map(|f| f.ignore()).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
    assert!(s.translate(m.addr).is_none());
    s.mprotect(m.addr, PAGE_SIZE, VmFlags::READ).expect("back").ignore();
    assert_eq!(s.translate(m.addr).expect("restored").pfn.0, 0x100);
    // Delegation: the read-only view clears MAYWRITE; mprotect cannot add it.
    let ro = ReadOnlyView::new(ram);
    let e = s.mmap(&ro, &MmapRequest::shared(PAGE_SIZE, RW).pgoff(0x200)).map(|m| m.addr).unwrap_err();
    assert_eq!(e.errno(), errno::EACCES);
    let m = s.mmap(&ro, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).pgoff(0x200)).expect("ro map");
    assert_eq!(s.translate(m.addr).expect("mapped").pfn.0, 0x200, "the inner provider did the mapping");
    let e = s.mprotect(m.addr, PAGE_SIZE, RW).map(|f| f.ignore()).unwrap_err();
    assert_eq!(e.errno(), errno::EACCES);
    assert!(!s.translate(m.addr).expect("mapped").prot.writable);
}

#[test]
fn aligned_1g_io_remap_writes_one_entry_and_unaligned_writes_the_minimum() {
    let mut s = space(&L);
    let w = Window { phys: 4 << 30 };
    let m = s.mmap(&w, &MmapRequest::shared(1 << 30, RW).fixed(va(1 << 40))).expect("1G");
    assert_eq!(m.stats.entries_written, 1);
    assert_eq!(m.stats.tables_allocated, 1, "only the PDPT");
    let t = s.translate(va(m.addr.raw() + 0x1234_5678)).expect("mapped");
    assert_eq!((t.size, t.phys), (PageSize::Size1G, GuestAddress((4 << 30) + 0x1234_5678)));
    assert_eq!(t.prot.cache, CacheMode::Uncached);
    // 2 MiB + 8 KiB at a 2 MiB boundary minus 4 KiB: 4K + 2M + 4K leaves.
    let at = va(L.window.0 + (2 << 20) - PAGE_SIZE);
    let m = s.mmap(&w, &MmapRequest::shared((2 << 20) + 2 * PAGE_SIZE, RW).fixed(at).pgoff(511)).expect("unaligned");
    assert_eq!(m.stats.entries_written, 3);
    let c = census(s.memory(), s.cr3());
    assert_eq!(c.leaves, [2, 1, 1]);
}

#[test]
fn huge_provider_hook_attaches_state_and_checks_alignment() {
    let mut s = space(&L);
    let huge = HugePageProvider::new(GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
    let e = s.mmap(&huge, &MmapRequest::shared(2 << 20, RW).pgoff(3)).map(|m| m.addr).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL, "pgoff must be huge aligned");
    let e = s.mmap(&huge, &MmapRequest::shared(PAGE_SIZE, RW)).map(|m| m.addr).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL, "length must be huge aligned");
    let m = s.mmap(&huge, &MmapRequest::shared(4 << 20, RW)).expect("map");
    assert_eq!(m.addr.raw() % (2 << 20), 0);
    let vma = s.find_vma(m.addr).expect("vma");
    let state = vma.private().expect("hook attached state").clone().downcast::<HugeVmaState>().expect("type");
    assert_eq!(state.created_at, m.addr);
    drop(state);
    assert_eq!(huge.live_vmas(), 1);
    // A munmap that would cut a huge page is refused (hugetlbfs: EINVAL)
    // and changes nothing.
    let e = s.munmap(m.addr, PAGE_SIZE).map(|_| ()).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL, "cut inside a huge page");
    assert_eq!(s.translate(m.addr).expect("kept").size, PageSize::Size2M);
    // A partial munmap on a huge-page boundary splits the VMA and keeps
    // the state.
    s.munmap(m.addr, 2 << 20).expect("partial").ignore();
    assert_eq!(huge.live_vmas(), 1);
    assert!(s.translate(m.addr).is_none());
    assert_eq!(s.translate(va(m.addr.raw() + (2 << 20))).expect("second").size, PageSize::Size2M);
    s.munmap(m.addr, 4 << 20).expect("all").ignore();
    assert_eq!(huge.live_vmas(), 0, "state dropped with the last piece");
}

#[test]
fn compat_entry_point_prepares_and_completes_an_existing_vma() {
    let mut s = space(&L);
    // Shared, so the zero provider populates it (a private one is lazy).
    let m = s.mmap(&Nothing, &MmapRequest::shared(4 * PAGE_SIZE, RW)).expect("placeholder");
    assert!(s.translate(m.addr).is_none());
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    s.compat_mmap_prepare(m.addr, &zero).expect("compat");
    for i in 0..4 {
        assert!(s.translate(va(m.addr.raw() + i * PAGE_SIZE)).is_some());
    }
    assert!(s.find_vma(m.addr).expect("vma").flags().contains(VmFlags::MIXEDMAP));
    // Not a VMA start: ENOMEM; a populated VMA: EINVAL.
    assert_eq!(s.compat_mmap_prepare(va(m.addr.raw() + PAGE_SIZE), &zero).unwrap_err().errno(), errno::ENOMEM);
    assert_eq!(s.compat_mmap_prepare(m.addr, &zero).unwrap_err().errno(), errno::EINVAL);
}

#[test]
fn munmap_frees_tables_and_pool_pages() {
    let mut s = space(&L);
    let start = s.stats();
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let m = s.mmap(&zero, &MmapRequest::shared(3 << 20, RW)).expect("map");
    assert_eq!(s.stats().pool_free, start.pool_free - 768);
    assert_eq!(s.stats().pins, 768);
    let f = s.munmap(m.addr, 3 << 20).expect("unmap");
    assert_eq!(f.pages(), 768);
    f.ignore();
    assert_eq!(s.stats(), start);
    // Unmapping nothing is fine and flushes nothing.
    assert!(s.munmap(m.addr, PAGE_SIZE).expect("again").is_empty());
}

/// Maps its page runs (one run per entry) with map-kernel-pages, each run
/// an array pinned (and so checked) in `prepare`.
struct Runs(guest_mm::Frames, Vec<(u64, Vec<u64>)>);
impl MmapProvider for Runs {
    fn name(&self) -> &str {
        "runs"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        Self::prepare_runs(&self.0, &self.1, d)
    }
}

impl Runs {
    fn prepare_runs(frames: &guest_mm::Frames, runs: &[(u64, Vec<u64>)], d: &mut VmaDesc) -> Result<(), MmError> {
        let runs = runs
            .iter()
            .map(|(off, pfns)| {
                Ok(guest_mm::PageRun {
                    start: va(d.start().raw() + off * PAGE_SIZE),
                    pages: guest_mm::PageArray::pin(frames, pfns.iter().map(|&p| Pfn(p)).collect())?,
                })
            })
            .collect::<Result<_, MmError>>()?;
        d.mmap_action_map_kernel_pages_discontig(runs);
        Ok(())
    }
}

#[test]
fn bad_frames_in_page_arrays_are_refused_and_leave_nothing() {
    let mut s = space(&L);
    let ram_end = L.ram / PAGE_SIZE;
    let table = L.tables.0 / PAGE_SIZE + 7;
    let good: Vec<u64> = (100..600).collect();
    let cases = [
        // The bad frame is page 1,001, after 1,000 good ones (the first
        // run fills most of a leaf table before the second run starts).
        (vec![(0, good.clone()), (500, [good.clone(), vec![ram_end]].concat())], errno::EFAULT),
        (vec![(0, good.clone()), (500, [good.clone(), vec![table]].concat())], errno::EPERM),
        (vec![(3, vec![u64::MAX >> 12])], errno::EFAULT),
    ];
    let before = census(s.memory(), s.cr3());
    let stats = s.stats();
    for (runs, want) in cases {
        let req = MmapRequest::shared(1024 * PAGE_SIZE, RW).fixed(va(L.window.0));
        let err = s.mmap(&Runs(s.frames().clone(), runs), &req).expect_err("bad frame accepted");
        assert_eq!(err.errno(), want, "{err}");
        assert!(s.vmas().next().is_none(), "a VMA was left behind");
        assert_eq!(census(s.memory(), s.cr3()), before, "tables left behind");
        assert_eq!(s.stats().pins, stats.pins);
        assert_eq!(s.stats().tables_in_use, stats.tables_in_use);
        assert!(s.frames().pin_count(Pfn(100)) == 0, "a pin was left behind");
        for p in [0u64, 499, 500, 1000] {
            assert!(s.translate(va(L.window.0 + p * PAGE_SIZE)).is_none(), "page {p} still mapped");
        }
    }
    // The same runs without the bad frame map fine.
    let req = MmapRequest::shared(1024 * PAGE_SIZE, RW).fixed(va(L.window.0));
    let m = s.mmap(&Runs(s.frames().clone(), vec![(0, good.clone()), (500, good)]), &req).expect("good runs");
    assert_eq!(m.stats.entries_written, 1000);
    m.flush.ignore();
}

#[test]
fn holes_and_stops_inside_whole_leaf_tables_leave_nothing() {
    // RAM with a hole at 8–12 MiB (frames 2048..3072).
    let mem = vmm_suite::fixture::Mem::from_ranges(&[(GuestAddress(0), 8 << 20), (GuestAddress(12 << 20), 52 << 20)])
        .expect("memory");
    let mut s = vmm_suite::fixture::space_over(mem, &L);
    let before = census(s.memory(), s.cr3());
    let req = MmapRequest::shared(1024 * PAGE_SIZE, RW).fixed(va(L.window.0));
    // Two whole leaf tables (2 MiB aligned, 512 pages each); the bad frame
    // stops the second one part-way, in a table that was never zeroed.
    for (bad, want) in [(2500u64, errno::EFAULT), (L.tables.0 / PAGE_SIZE, errno::EPERM)] {
        let mut pages: Vec<u64> = (100..1124).collect();
        pages[700] = bad;
        let err = s.mmap(&Runs(s.frames().clone(), vec![(0, pages)]), &req).expect_err("bad frame accepted");
        assert_eq!(err.errno(), want, "{err}");
        assert!(s.vmas().next().is_none());
        assert_eq!(census(s.memory(), s.cr3()), before, "tables left behind");
        assert_eq!(s.stats().pins, 0);
    }
    let m = s.mmap(&Runs(s.frames().clone(), vec![(0, (100..1124).collect())]), &req).expect("good array");
    m.flush.ignore();
    for p in [0u64, 511, 512, 700, 1023] {
        assert_eq!(s.translate(va(L.window.0 + p * PAGE_SIZE)).expect("mapped").pfn, Pfn(100 + p));
    }
}

#[test]
fn a_fixed_mapping_with_a_bad_frame_never_unmaps_what_it_would_replace() {
    let mut s = space(&L);
    let req = MmapRequest::shared(1024 * PAGE_SIZE, RW).fixed(va(L.window.0));
    s.mmap(&Runs(s.frames().clone(), vec![(0, (100..1124).collect())]), &req).expect("first mapping").flush.ignore();
    let before = census(s.memory(), s.cr3());
    let pins = s.stats().pins;
    let mut pages: Vec<u64> = (2000..3024).collect();
    pages[900] = L.tables.0 / PAGE_SIZE + 1;
    let hook_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let err = s
        .mmap(&Hooked(s.frames().clone(), vec![(0, pages)], hook_ran.clone()), &req)
        .expect_err("reserved frame accepted");
    assert_eq!(err.errno(), errno::EPERM);
    // A prepare-time refusal: the error hook (complete failures only) never ran.
    assert!(!hook_ran.load(std::sync::atomic::Ordering::SeqCst), "failed in complete, after detaching");
    // Refused before the old mapping was detached: nothing needs a flush,
    // the tables are bit for bit as before.
    assert!(s.take_deferred_flush().is_empty(), "the old mapping was touched");
    assert_eq!(census(s.memory(), s.cr3()), before);
    assert_eq!(s.stats().pins, pins);
    for p in [0u64, 899, 900, 1023] {
        assert_eq!(s.translate(va(L.window.0 + p * PAGE_SIZE)).expect("still mapped").pfn, Pfn(100 + p));
    }
}

/// [`Runs`] with an error hook that records it ran.
struct Hooked(guest_mm::Frames, Vec<(u64, Vec<u64>)>, Arc<std::sync::atomic::AtomicBool>);
impl MmapProvider for Hooked {
    fn name(&self) -> &str {
        "hooked-runs"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        let ran = self.2.clone();
        d.set_error_hook(Box::new(move |e| {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            e
        }));
        Runs::prepare_runs(&self.0, &self.1, d)
    }
}
