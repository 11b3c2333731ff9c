//! The fault path and VMA operations: lazy anonymous memory (zero page,
//! copy-on-write), lazy page buffers with fault-around, the `open`/`close`
//! balance through every split, merge, fixed replace and rollback, and
//! failure injection on the fault path's allocations. Every mapping is
//! checked by translating it and by the independent census walk.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use guest_mm::providers::{PageBuffer, ZeroProvider};
use guest_mm::{
    errno, AddressSpace, FaultAccess, FaultInfo, FaultKind, FaultPage, MmError, MmapProvider, MmapRequest, VmFlags,
    Vma, VmaDesc, VmaOps, PAGE_SIZE,
};
use vm_memory::Bytes;
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout, Mem};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn walk_ok(s: &AddressSpace<Mem>) {
    let c = census(s.memory(), s.cr3());
    assert_eq!(c.tables, s.stats().tables_in_use, "reachable tables vs allocator");
    assert_eq!(c.empty_tables, 0, "empty tables left behind");
}

fn fault(s: &mut AddressSpace<Mem>, a: u64, write: bool) -> Result<guest_mm::Faulted, MmError> {
    s.fault(va(a), if write { FaultAccess::WRITE } else { FaultAccess::READ })
}

#[test]
fn lazy_zero_reads_the_zero_page_and_copies_on_write() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let free0 = s.stats().pool_free;
    assert_eq!(s.fault_around(), guest_mm::space::FAULT_AROUND_PAGES);
    s.set_fault_around(16).expect("16 pages");
    let m = s.mmap(&zero, &MmapRequest::private(64 * PAGE_SIZE, RW)).expect("map");
    m.flush.ignore();
    let a = m.addr.raw();
    // Nothing is populated up front.
    assert!(s.page_tables().leaves(m.addr, 64 * PAGE_SIZE).is_empty());
    assert_eq!(s.stats().pool_free, free0);
    // A read maps the shared zero page read-only, around the page too.
    let f = fault(&mut s, a + 3 * PAGE_SIZE + 8, false).expect("read fault");
    assert_eq!((f.kind, f.around), (FaultKind::Mapped, 15));
    let zp = zero.anon_ops().zero_page().expect("zero page");
    for i in 0..16 {
        let t = s.translate(va(a + i * PAGE_SIZE)).expect("mapped around");
        assert_eq!(t.pfn, zp);
        assert!(!t.prot.writable, "zero page must be read-only");
    }
    assert!(s.translate(va(a + 16 * PAGE_SIZE)).is_none(), "window ends at 16 pages");
    assert_eq!(s.stats().pool_free, free0 - 1, "only the zero page was allocated");
    // A second read is spurious.
    assert_eq!(fault(&mut s, a + 3 * PAGE_SIZE, false).expect("again").kind, FaultKind::Spurious);
    // mprotect read-only then read-write: the zero page stays read-only.
    s.mprotect(m.addr, 64 * PAGE_SIZE, VmFlags::READ).expect("ro").ignore();
    s.mprotect(m.addr, 64 * PAGE_SIZE, RW).expect("rw").ignore();
    assert!(!s.translate(va(a)).expect("still mapped").prot.writable);
    // The first write copies: a fresh private page, writable, zero.
    let f = fault(&mut s, a + 3 * PAGE_SIZE, true).expect("cow");
    assert_eq!(f.kind, FaultKind::CopiedOnWrite);
    let ranges: Vec<(u64, u64)> = f.flush.ranges().iter().map(|&(v, l)| (v.raw(), l)).collect();
    assert_eq!(ranges, vec![(a + 3 * PAGE_SIZE, PAGE_SIZE)], "the replaced entry is flushed");
    f.flush.ignore();
    let t = s.translate(va(a + 3 * PAGE_SIZE)).expect("copied");
    assert_ne!(t.pfn, zp);
    assert!(t.prot.writable && t.counted);
    assert_eq!(s.memory().read_obj::<u64>(t.phys).expect("read"), 0);
    s.memory().write_obj(0xdead_beef_u64, t.phys).expect("write");
    assert_eq!(s.memory().read_obj::<u64>(zp.addr()).expect("read"), 0, "the zero page is untouched");
    // A write fault on an absent page maps a fresh page and fresh
    // neighbours, all writable.
    let f = fault(&mut s, a + 40 * PAGE_SIZE, true).expect("write fault");
    assert_eq!((f.kind, f.around), (FaultKind::Mapped, 15));
    let mut frames = std::collections::BTreeSet::new();
    for i in 32..48 {
        let t = s.translate(va(a + i * PAGE_SIZE)).expect("mapped");
        assert!(t.prot.writable && t.pfn != zp);
        assert!(frames.insert(t.pfn), "frame mapped twice");
    }
    walk_ok(&s);
    // Unmapping returns every page but the zero page (the provider's).
    s.munmap(m.addr, 64 * PAGE_SIZE).expect("munmap").ignore();
    assert_eq!(s.stats().pool_free, free0 - 1);
    assert_eq!(s.stats().pins, 0, "no pin left");
    assert_eq!(s.faulted_pins(), (0, 0), "no faulted run left");
    walk_ok(&s);
}

#[test]
fn a_fixed_mapping_over_faulted_pages_returns_them_at_once() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    s.set_fault_around(1).expect("1 page");
    let free0 = s.stats().pool_free;
    let m = s.mmap(&zero, &MmapRequest::private(8 * PAGE_SIZE, RW)).expect("map");
    m.flush.ignore();
    let a = m.addr.raw();
    for i in [2, 3, 6] {
        fault(&mut s, a + i * PAGE_SIZE, true).expect("write fault").flush.ignore();
    }
    assert_eq!(s.stats().pool_free, free0 - 3);
    // Replace the middle four pages: two of the faulted pages go back to the
    // pool now, not when the new mapping goes.
    let r = MmapRequest::private(4 * PAGE_SIZE, RW).fixed(va(a + 2 * PAGE_SIZE));
    s.mmap(&zero, &r).expect("fixed").flush.ignore();
    assert_eq!(s.stats().pool_free, free0 - 1);
    assert_eq!(s.faulted_pins().0, 1, "one faulted run left: page 6's");
    s.munmap(m.addr, 8 * PAGE_SIZE).expect("munmap").ignore();
    assert_eq!((s.stats().pool_free, s.faulted_pins()), (free0, (0, 0)));
    walk_ok(&s);
}

#[test]
fn a_move_that_starts_where_a_faulted_run_ends_leaves_the_run_alone() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    s.set_fault_around(1).expect("1 page");
    let m = s.mmap(&zero, &MmapRequest::private(8 * PAGE_SIZE, RW)).expect("map");
    m.flush.ignore();
    let a = m.addr.raw();
    fault(&mut s, a, true).expect("write fault").flush.ignore();
    assert_eq!(s.faulted_pins(), (1, 1));
    let to = va(L.window.0 + (4 << 20));
    s.mremap(va(a + PAGE_SIZE), 3 * PAGE_SIZE, 3 * PAGE_SIZE, true, Some(to)).expect("move").flush.ignore();
    assert_eq!(s.faulted_pins(), (1, 1), "no run taken, none made");
    walk_ok(&s);
}

#[test]
fn refused_faults_change_nothing() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let ro = s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, VmFlags::READ)).expect("ro").addr.raw();
    let none = s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, VmFlags::empty())).expect("none").addr.raw();
    struct Bare;
    impl MmapProvider for Bare {
        fn name(&self) -> &str {
            "bare"
        }
        fn mmap_prepare(&self, _: &mut VmaDesc) -> Result<(), MmError> {
            Ok(())
        }
    }
    let bare = s.mmap(&Bare, &MmapRequest::private(4 * PAGE_SIZE, RW)).expect("bare").addr.raw();
    let cases: &[(u64, bool, i32)] = &[
        (L.window.0 - PAGE_SIZE, false, errno::ENOMEM), // no VMA (SIGSEGV)
        (ro, true, errno::EACCES),                      // write to a read-only VMA
        (none, false, errno::EACCES),                   // PROT_NONE
        (bare, false, errno::EOPNOTSUPP),               // no fault handler (SIGBUS)
    ];
    let before = s.stats();
    for &(a, w, e) in cases {
        assert_eq!(fault(&mut s, a, w).expect_err("refused").errno(), e, "{a:#x}");
        assert_eq!(s.stats(), before);
        assert!(s.translate(va(a)).is_none());
    }
    walk_ok(&s);
}

#[test]
fn lazy_page_buffer_faults_around_inside_the_vma() {
    let mut s = space(&L);
    let buffer = PageBuffer::new(s.frames(), 64).expect("buffer");
    let lazy = buffer.lazy();
    s.set_fault_around(16).expect("16 pages");
    // The window is aligned to 16 pages of the address space.
    let at = va(L.window.0 + (1 << 20));
    let m = s.mmap(&lazy, &MmapRequest::shared(40 * PAGE_SIZE, VmFlags::READ).pgoff(5).fixed(at)).expect("map");
    m.flush.ignore();
    let a = m.addr.raw();
    let f = fault(&mut s, a + 20 * PAGE_SIZE, false).expect("fault");
    assert_eq!((f.kind, f.around), (FaultKind::Mapped, 15));
    for i in 0..40u64 {
        let t = s.translate(va(a + i * PAGE_SIZE));
        if (16..32).contains(&i) {
            assert_eq!(t.expect("mapped").pfn, buffer.pages()[(5 + i) as usize], "page {i}");
        } else {
            assert!(t.is_none(), "page {i} outside the window");
        }
    }
    // The last window is clipped to the VMA; a page mapped already is
    // left alone.
    let f = fault(&mut s, a + 39 * PAGE_SIZE, false).expect("fault");
    assert_eq!(f.around, 7);
    // With fault-around off, one page per fault.
    s.set_fault_around(1).expect("off");
    assert_eq!(fault(&mut s, a, false).expect("fault").around, 0);
    assert!(s.translate(va(a + PAGE_SIZE)).is_none());
    assert!(s.set_fault_around(3).is_err());
    assert_eq!(census(s.memory(), s.cr3()).leaves[0], 16 + 8 + 1);
    walk_ok(&s);
}

#[test]
fn reads_fault_around_the_default_window_and_writes_sixteen_pages() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let at = va(L.window.0 + (1 << 20));
    let m = s.mmap(&zero, &MmapRequest::private(256 * PAGE_SIZE, RW).fixed(at)).expect("map");
    m.flush.ignore();
    let w = guest_mm::space::FAULT_AROUND_PAGES;
    let f = fault(&mut s, at.raw() + 5 * PAGE_SIZE, false).expect("read");
    assert_eq!(f.around, w - 1);
    let free = s.stats().pool_free;
    let f = fault(&mut s, at.raw() + (w + 3) * PAGE_SIZE, true).expect("write");
    assert_eq!(f.around, guest_mm::space::WRITE_FAULT_AROUND_PAGES - 1);
    assert_eq!(s.stats().pool_free, free - guest_mm::space::WRITE_FAULT_AROUND_PAGES as usize);
    walk_ok(&s);
}

#[test]
fn fault_path_allocation_failures_leave_nothing_behind() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    // Far from anything: the fault needs a PDPT, a PD and a PT.
    let m = s.mmap(&zero, &MmapRequest::private(64 * PAGE_SIZE, RW)).expect("map");
    m.flush.ignore();
    let a = m.addr.raw();
    for write in [false, true] {
        for n in 0.. {
            let before = (s.stats(), census(s.memory(), s.cr3()), s.page_tables().leaves(m.addr, 64 * PAGE_SIZE));
            s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
            let r = fault(&mut s, a + 7 * PAGE_SIZE, write);
            s.page_tables_mut().allocator_mut().inject_failure_after(None);
            match r {
                Ok(f) => {
                    f.flush.ignore();
                    assert!(n >= 1, "a fault into empty tables allocates");
                    break;
                }
                Err(e) => {
                    assert_eq!(e.errno(), errno::ENOMEM, "point {n}");
                    let mut after =
                        (s.stats(), census(s.memory(), s.cr3()), s.page_tables().leaves(m.addr, 64 * PAGE_SIZE));
                    // The zero page is the provider's once allocated.
                    if !write && n == 0 {
                        after.0.pool_free += 1;
                    }
                    assert_eq!(after, before, "point {n}");
                }
            }
        }
        s.munmap(m.addr, 64 * PAGE_SIZE).expect("munmap").ignore();
        let _ = s.mmap(&zero, &MmapRequest::private(64 * PAGE_SIZE, RW).fixed(m.addr)).expect("again");
    }
    // An empty pool: the write fault fails with ENOMEM and maps nothing.
    let hog = s.frames().alloc(s.stats().pool_free as u64).expect("take the pool");
    let before = s.stats();
    assert_eq!(fault(&mut s, a + 50 * PAGE_SIZE, true).expect_err("no pages").errno(), errno::ENOMEM);
    assert_eq!(s.stats(), before);
    drop(hog);
    walk_ok(&s);
}

// --- open / close balance ---------------------------------------------------

/// Ops that count how many VMAs carry them: +1 per `mapped` and per
/// `open`, -1 per `close`.
struct Counting {
    live: Arc<AtomicI64>,
    opens: AtomicU64,
    closes: AtomicU64,
}

impl VmaOps for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn fault(&self, _: &Vma, _: &FaultInfo) -> Result<FaultPage, MmError> {
        Err(MmError::NotSupported("counting only"))
    }
    fn mapped(&self, _: &Vma) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }
    fn open(&self, _: &Vma) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
    }
    fn close(&self, _: &Vma) {
        self.closes.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

struct CountingProvider {
    ops: Arc<Counting>,
    fail_hook: std::sync::atomic::AtomicBool,
}

impl MmapProvider for CountingProvider {
    fn name(&self) -> &str {
        "counting"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.set_ops(self.ops.clone());
        let fail = self.fail_hook.load(Ordering::Relaxed);
        d.set_success_hook(Box::new(move |_| {
            // The VMA exists (`mapped` counted it): it will be closed.
            if fail {
                Err(MmError::OutOfMemory("injected"))
            } else {
                Ok(None)
            }
        }));
        Ok(())
    }
}

#[test]
fn open_and_close_balance_through_splits_merges_replaces_and_rollbacks() {
    let mut s = space(&L);
    let live = Arc::new(AtomicI64::new(0));
    let p = CountingProvider {
        ops: Arc::new(Counting { live: live.clone(), opens: AtomicU64::new(0), closes: AtomicU64::new(0) }),
        fail_hook: false.into(),
    };
    let check = |s: &AddressSpace<Mem>, what: &str| {
        let carrying = s.vmas().filter(|v| v.provider_name() == "counting").count() as i64;
        assert_eq!(live.load(Ordering::Relaxed), carrying, "after {what}: {:?}", s.vmas().collect::<Vec<_>>());
    };
    let base = L.window.0 + (1 << 20);
    let at = |page: u64| va(base + page * PAGE_SIZE);
    let map = |s: &mut AddressSpace<Mem>, page: u64, pages: u64, prot: VmFlags| {
        s.mmap(&p, &MmapRequest::private(pages * PAGE_SIZE, prot).fixed(at(page)).pgoff(page)).map(|m| m.flush.ignore())
    };
    map(&mut s, 0, 64, RW).expect("map");
    check(&s, "mmap");
    s.munmap(at(10), 4 * PAGE_SIZE).expect("hole").ignore();
    check(&s, "munmap splitting one VMA in two");
    s.mprotect(at(20), 4 * PAGE_SIZE, VmFlags::READ).expect("ro").ignore();
    check(&s, "mprotect splitting into three");
    assert_eq!(s.vmas().count(), 4);
    s.mprotect(at(20), 4 * PAGE_SIZE, RW).expect("rw").ignore();
    check(&s, "mprotect merging back");
    assert_eq!(s.vmas().count(), 2);
    // Adjacent mmap with contiguous pgoff merges with its neighbour.
    map(&mut s, 64, 8, RW).expect("adjacent");
    check(&s, "merging mmap");
    assert_eq!(s.vmas().count(), 2);
    // A fixed mapping over the middle of a VMA and the hole.
    map(&mut s, 8, 8, RW).expect("fixed replace");
    check(&s, "fixed replace");
    // A fixed replace that fails after the VMA existed: rolled back.
    p.fail_hook.store(true, Ordering::Relaxed);
    let vmas_before: Vec<String> = s.vmas().map(|v| format!("{v:?}")).collect();
    assert!(map(&mut s, 30, 20, RW).is_err());
    assert!(map(&mut s, 200, 4, RW).is_err());
    p.fail_hook.store(false, Ordering::Relaxed);
    check(&s, "rolled-back fixed replace");
    assert_eq!(s.vmas().map(|v| format!("{v:?}")).collect::<Vec<_>>(), vmas_before);
    // Fixed mappings of another provider inside one VMA (both outer
    // pieces stay, the second is new) and over a whole one (nothing stays).
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    map(&mut s, 100, 16, RW).expect("lone");
    check(&s, "lone mmap");
    s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, RW).fixed(at(104))).expect("inside").flush.ignore();
    check(&s, "foreign fixed mapping inside a VMA");
    s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, RW).fixed(at(100))).expect("whole").flush.ignore();
    check(&s, "foreign fixed mapping over a whole VMA");
    // Unmap across several VMAs, then everything.
    s.munmap(at(5), 40 * PAGE_SIZE).expect("munmap across").ignore();
    check(&s, "munmap across VMAs");
    s.munmap(at(0), 256 * PAGE_SIZE).expect("all").ignore();
    check(&s, "munmap all");
    assert_eq!(live.load(Ordering::Relaxed), 0);
    assert!(p.ops.opens.load(Ordering::Relaxed) >= 3, "splits announced with open");
    assert!(p.ops.closes.load(Ordering::Relaxed) >= 6);
}
