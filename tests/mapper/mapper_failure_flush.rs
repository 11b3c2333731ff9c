//! Every entry that was ever live ends in a flush set handed to the
//! caller, on every failure path: a complete that wrote entries into a
//! leaf table the hardware walker could already reach and then failed
//! (a failed table allocation), a failing success hook, a rollback that
//! re-joins a split huge page, and the same on the compat entry point.
//! (A bad frame no longer gets that far: arrays are checked when pinned.)
//!
//! "Live" is decided by walking: a page whose leaf table is reachable from
//! the root before the call was live the moment it was written; so was a
//! page in a new table that got linked before the failure. Afterwards the
//! walk must show none of them, and [`AddressSpace::take_deferred_flush`]
//! must cover all of them.

use std::sync::Arc;

use guest_mm::providers::GuestRamProvider;
use guest_mm::{
    errno, AddressSpace, FlushSet, Frames, MmError, MmapProvider, MmapRequest, PageArray, Pfn, VmFlags, VmaDesc,
    PAGE_SIZE,
};
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout, Mem};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
const M2: u64 = 2 << 20;

/// Maps `pages` over its whole VMA; optionally fails its success hook.
struct Pages {
    frames: Frames,
    pages: Arc<[Pfn]>,
    failing_hook: bool,
}

impl Pages {
    fn new(s: &AddressSpace<Mem>, pages: Vec<Pfn>) -> Self {
        Pages { frames: s.frames().clone(), pages: pages.into(), failing_hook: false }
    }
}

impl MmapProvider for Pages {
    fn name(&self) -> &str {
        "pages"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_map_kernel_pages_full(PageArray::pin(&self.frames, self.pages.clone())?);
        if self.failing_hook {
            d.set_success_hook(Box::new(|_| Err(MmError::Invalid("hook refused"))));
        }
        Ok(())
    }
}

/// Maps nothing (a VMA for the compat entry point to fill).
struct Nothing;

impl MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _d: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// `n` distinct good frames from frame 0x100.
fn good(n: u64) -> Vec<Pfn> {
    (0..n).map(|i| Pfn(0x100 + i)).collect()
}

/// Whether the level-1 table covering `addr` is reachable from the root,
/// read from guest memory by an independent walk.
fn leaf_table_reachable(s: &AddressSpace<Mem>, addr: u64) -> bool {
    use vm_memory::{Bytes, GuestAddress};
    let mut table = s.cr3().0;
    for level in [4u32, 3, 2] {
        let idx = (addr >> (12 + 9 * (level - 1))) & 511;
        let e: u64 = s.memory().read_obj(GuestAddress(table + idx * 8)).expect("table in memory");
        if e & 1 == 0 || (level < 4 && e & 0x80 != 0) {
            return false;
        }
        table = e & 0x000f_ffff_ffff_f000;
    }
    true
}

/// How many pages of `[start, start + len)` `f` does not cover.
fn uncovered(f: &FlushSet, start: u64, len: u64) -> usize {
    (start..start + len)
        .step_by(PAGE_SIZE as usize)
        .filter(|&p| !f.ranges().iter().any(|&(s, l)| p >= s.raw() && p < s.raw() + l))
        .count()
}

/// No leaf left in `[start, start + len)`, by walking.
fn nothing_mapped(s: &AddressSpace<Mem>, start: u64, len: u64) -> bool {
    s.page_tables().leaves(va(start), len).is_empty()
}

/// An address space with one page mapped at the window's start, so that
/// the leaf table of its first 2 MiB is linked and reachable.
fn anchored() -> (AddressSpace<Mem>, u64) {
    let mut s = space(&L);
    let base = L.window.0;
    s.mmap(&Pages::new(&s, good(1)), &MmapRequest::shared(PAGE_SIZE, RW).fixed(va(base)))
        .expect("anchor")
        .flush
        .ignore();
    assert!(leaf_table_reachable(&s, base + PAGE_SIZE));
    assert!(!leaf_table_reachable(&s, base + M2));
    (s, base)
}

#[test]
fn every_failed_table_allocation_flushes_what_was_live() {
    // Kernel pages and a guest-RAM remap (4 KiB leaves: the virtual and
    // physical offsets differ), each over three leaf tables from the
    // second page of the anchored one.
    let len = 3 * M2 - PAGE_SIZE;
    let pages = len / PAGE_SIZE;
    for remap in [false, true] {
        let mut points = 0;
        for n in 0.. {
            let (mut s, base) = anchored();
            let at = base + PAGE_SIZE;
            let before = census(s.memory(), s.cr3());
            s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
            let req = MmapRequest::shared(len, RW).fixed_noreplace(va(at));
            let r = if remap {
                let ram = GuestRamProvider::new(s.layout(), &[]);
                s.mmap(&ram, &req.pgoff(0x300)).map(|m| m.flush.ignore())
            } else {
                s.mmap(&Pages::new(&s, good(pages)), &req).map(|m| m.flush.ignore())
            };
            s.page_tables_mut().allocator_mut().inject_failure_after(None);
            let f = s.take_deferred_flush();
            if r.is_ok() {
                f.ignore();
                break;
            }
            points += 1;
            assert!(nothing_mapped(&s, at, len), "remap {remap} n={n}");
            assert_eq!(census(s.memory(), s.cr3()), before, "remap {remap} n={n}");
            // Live: the rest of the anchored table, then each new leaf
            // table allocated (and linked) before allocation n failed.
            let live = (M2 - PAGE_SIZE) + n * M2;
            assert_eq!(uncovered(&f, at, live.min(len)), 0, "remap {remap} n={n}: {f:?}");
            assert_eq!(f.tables_freed(), n > 0, "remap {remap} n={n}: linked tables were freed");
            f.ignore();
        }
        assert_eq!(points, 2, "remap {remap}: failure points (two new leaf tables)");
    }
}

#[test]
fn a_failing_success_hook_flushes_every_entry() {
    let (mut s, base) = anchored();
    let at = base + 8 * PAGE_SIZE;
    let p = Pages { failing_hook: true, ..Pages::new(&s, good(16)) };
    let r = s.mmap(&p, &MmapRequest::shared(16 * PAGE_SIZE, RW).fixed_noreplace(va(at)));
    assert_eq!(r.map(|m| m.addr).unwrap_err(), MmError::Invalid("hook refused"));
    assert!(nothing_mapped(&s, at, 16 * PAGE_SIZE));
    let f = s.take_deferred_flush();
    assert_eq!(uncovered(&f, at, 16 * PAGE_SIZE), 0, "{f:?}");
    f.ignore();
}

#[test]
fn compat_failures_flush_what_was_live() {
    for case in ["hook", "allocation"] {
        let (mut s, base) = anchored();
        // An empty VMA whose pages share the anchored leaf table, and
        // reach into the next one.
        let at = base + M2 - 8 * PAGE_SIZE;
        let n = 16;
        s.mmap(&Nothing, &MmapRequest::shared(n * PAGE_SIZE, RW).fixed(va(at))).expect("vma").flush.ignore();
        let mut p = Pages::new(&s, good(n));
        let mut want = MmError::Invalid("hook refused");
        if case == "hook" {
            p.failing_hook = true;
        } else {
            s.page_tables_mut().allocator_mut().inject_failure_after(Some(0));
            want = MmError::OutOfMemory("page-table pages");
        }
        let r = s.compat_mmap_prepare(va(at), &p);
        s.page_tables_mut().allocator_mut().inject_failure_after(None);
        let e = r.unwrap_err();
        assert_eq!(e.errno(), want.errno(), "{case}: {e}");
        // The kernel's rule: the VMA is gone, and so are its entries.
        assert!(s.find_vma(va(at)).is_none(), "{case}");
        assert!(nothing_mapped(&s, at, n * PAGE_SIZE), "{case}");
        let f = s.take_deferred_flush();
        // The first 8 pages went into the linked table in every case; in
        // the hook case all 16 were live.
        let live = if case == "hook" { n } else { 8 };
        assert_eq!(uncovered(&f, at, live * PAGE_SIZE), 0, "{case}: {f:?}");
        f.ignore();
    }
}

#[test]
fn a_failed_fixed_mapping_that_split_a_huge_page_flushes_the_freed_split_table() {
    use guest_mm::providers::HugePageProvider;
    use guest_mm::PageSize;
    // A 2 MiB page, and a fixed mapping over its first half and the 1 MiB
    // below it. Allocation 0 is the split table the detach reserves (it is
    // linked while the old half is cleared); allocation 1 the new
    // mapping's first leaf table, before it wrote anything.
    for n in [0u64, 1] {
        let mut s = vmm_suite::fixture::space(&L);
        let huge = HugePageProvider::new(vm_memory::GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
        let base = L.window.0 + (4 << 20);
        s.mmap(&huge, &MmapRequest::shared(M2, RW).fixed(va(base))).expect("huge").flush.ignore();
        let before = census(s.memory(), s.cr3());
        s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
        let r = s.mmap(&Pages::new(&s, good(256)), &MmapRequest::shared(M2 / 2, RW).fixed(va(base - M2 / 4)));
        s.page_tables_mut().allocator_mut().inject_failure_after(None);
        assert_eq!(r.map(|m| m.addr).unwrap_err().errno(), errno::ENOMEM, "n={n}");
        assert_eq!(census(s.memory(), s.cr3()), before, "n={n}: the huge page is back whole");
        let f = s.take_deferred_flush();
        if n == 0 {
            assert!(f.is_empty(), "n=0: the split never happened: {f:?}");
        } else {
            // The split table was reachable (paging-structure caches may
            // hold it) and is freed by the re-join.
            assert!(f.tables_freed(), "n=1: {f:?}");
            assert_eq!(uncovered(&f, base, PAGE_SIZE), 0, "n=1: {f:?}");
        }
        f.ignore();
    }
}
