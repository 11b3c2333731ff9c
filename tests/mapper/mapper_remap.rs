//! mremap (shrink, grow in place, move with the data following, fixed
//! moves, `VM_DONTEXPAND`/`VM_PFNMAP` refusal, a provider's refusal) and
//! madvise (DONTNEED then refault, WILLNEED populating in one call),
//! checked by translating every page, by reading guest memory through the
//! translations, and by the independent census walk.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{
    errno, AddressSpace, Advice, FaultAccess, FaultInfo, FaultPage, GuestVirtAddr, MmError, MmapProvider, MmapRequest,
    PageSize, VmFlags, Vma, VmaDesc, VmaOps, PAGE_SIZE,
};
use vm_memory::{Bytes, GuestAddress};
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout, Mem};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn walk_ok(s: &AddressSpace<Mem>) {
    let c = census(s.memory(), s.cr3());
    assert_eq!(c.tables, s.stats().tables_in_use, "reachable tables vs allocator");
    assert_eq!(c.empty_tables, 0, "empty tables left behind");
}

/// Writes `tag + i` into page `i` of `[a, a + pages)` through the CPU's
/// view (faulting each page in for writing first).
fn stamp(s: &mut AddressSpace<Mem>, a: u64, pages: u64, tag: u64) {
    for i in 0..pages {
        let p = va(a + i * PAGE_SIZE);
        s.fault(p, FaultAccess::WRITE).expect("write fault").flush.ignore();
        let t = s.translate(p).expect("mapped");
        s.memory().write_obj(tag + i, t.phys).expect("write");
    }
}

fn read(s: &AddressSpace<Mem>, a: u64) -> Option<u64> {
    let t = s.translate(va(a))?;
    Some(s.memory().read_obj(t.phys).expect("read"))
}

fn fixed(a: u64) -> GuestVirtAddr {
    va(a)
}

#[test]
fn shrink_grow_in_place_and_move_with_the_data() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let base = L.window.0 + (8 << 20);
    s.mmap(&zero, &MmapRequest::private(8 * PAGE_SIZE, RW).fixed(va(base))).expect("map").flush.ignore();
    stamp(&mut s, base, 8, 100);
    // Shrink: the tail goes, the flush covers it.
    let r = s.mremap(va(base), 8 * PAGE_SIZE, 6 * PAGE_SIZE, false, None).expect("shrink");
    assert_eq!(r.addr.raw(), base);
    assert_eq!(r.flush.pages(), 2);
    r.flush.ignore();
    assert!(s.translate(va(base + 6 * PAGE_SIZE)).is_none());
    assert_eq!(s.find_vma(va(base)).expect("vma").end(), base + 6 * PAGE_SIZE);
    // Grow in place: the data stays, the new tail is lazy (reads zero).
    let r = s.mremap(va(base), 6 * PAGE_SIZE, 10 * PAGE_SIZE, false, None).expect("grow");
    assert_eq!(r.addr.raw(), base);
    r.flush.ignore();
    assert_eq!(s.find_vma(va(base)).expect("vma").end(), base + 10 * PAGE_SIZE);
    assert_eq!(read(&s, base + 5 * PAGE_SIZE), Some(105));
    s.fault(va(base + 9 * PAGE_SIZE), FaultAccess::READ).expect("tail fault").flush.ignore();
    assert_eq!(read(&s, base + 9 * PAGE_SIZE), Some(0));
    // Blocked by a neighbour: ENOMEM without MAYMOVE, a move with it.
    s.mmap(&zero, &MmapRequest::private(PAGE_SIZE, VmFlags::READ).fixed(va(base + 10 * PAGE_SIZE)))
        .expect("neighbour")
        .flush
        .ignore();
    let before = s.stats();
    let e = s.mremap(va(base), 10 * PAGE_SIZE, 20 * PAGE_SIZE, false, None).expect_err("blocked");
    assert_eq!(e.errno(), errno::ENOMEM);
    assert_eq!(s.stats(), before);
    let pinned = (s.stats().pins, s.faulted_pins());
    assert_eq!(pinned.1 .1, 10, "faulted runs pin the six stamped pages and the four zero-page entries of the tail");
    let r = s.mremap(va(base), 10 * PAGE_SIZE, 20 * PAGE_SIZE, true, None).expect("move");
    let to = r.addr.raw();
    assert_ne!(to, base);
    assert!(r.flush.pages() >= 6, "the old entries are flushed");
    r.flush.ignore();
    for i in 0..6 {
        assert_eq!(read(&s, to + i * PAGE_SIZE), Some(100 + i), "page {i} followed");
        assert!(s.translate(va(base + i * PAGE_SIZE)).is_none(), "old page {i} gone");
    }
    assert_eq!((s.stats().pins, s.faulted_pins()), pinned, "pins moved, not duplicated or dropped");
    assert!(s.find_vma(va(base)).is_none());
    assert_eq!(s.find_vma(va(to)).expect("moved vma").end(), to + 20 * PAGE_SIZE);
    walk_ok(&s);
    // A fixed move over an existing mapping replaces it.
    let target = L.window.0 + (20 << 20);
    s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, RW).fixed(va(target))).expect("victim").flush.ignore();
    stamp(&mut s, target, 4, 900);
    let r = s.mremap(va(to), 4 * PAGE_SIZE, 4 * PAGE_SIZE, true, Some(fixed(target))).expect("fixed move");
    assert_eq!(r.addr.raw(), target);
    r.flush.ignore();
    for i in 0..4 {
        assert_eq!(read(&s, target + i * PAGE_SIZE), Some(100 + i));
    }
    walk_ok(&s);
    s.munmap(va(L.window.0), L.window.1 - L.window.0).expect("all").ignore();
    assert_eq!((s.stats().pins, s.faulted_pins()), (0, (0, 0)));
    walk_ok(&s);
}

#[test]
fn eager_mappings_move_their_frames_and_special_ones_refuse_to_grow() {
    let mut s = space(&L);
    let buffer = PageBuffer::new(s.frames(), 32).expect("buffer");
    let m = s.mmap(&buffer, &MmapRequest::shared(32 * PAGE_SIZE, VmFlags::READ)).expect("buffer map");
    m.flush.ignore();
    let r = s.mremap(m.addr, 32 * PAGE_SIZE, 32 * PAGE_SIZE, true, Some(fixed(L.window.0 + (1 << 20)))).expect("mv");
    r.flush.ignore();
    for i in 0..32u64 {
        let t = s.translate(va(L.window.0 + (1 << 20) + i * PAGE_SIZE)).expect("moved");
        assert_eq!(t.pfn, buffer.pages()[i as usize], "page {i}");
        assert!(t.counted);
    }
    assert_eq!(s.stats().pins, 32, "the buffer's array, pinned once, held by the moved VMA");
    // Huge pages (VM_DONTEXPAND) and guest RAM (VM_PFNMAP) cannot grow.
    let huge = HugePageProvider::new(GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
    let h = s.mmap(&huge, &MmapRequest::shared(2 << 20, VmFlags::READ)).expect("huge").addr;
    let ram = GuestRamProvider::new(s.layout(), &[(GuestAddress(L.pool.0), L.pool.1)]);
    let g = s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).pgoff(0x200)).expect("ram").addr;
    let before = (s.stats(), census(s.memory(), s.cr3()));
    for (a, len) in [(h, 2 << 20), (g, PAGE_SIZE)] {
        let e = s.mremap(a, len, 2 * len, true, None).expect_err("DONTEXPAND/PFNMAP");
        assert_eq!(e.errno(), errno::EFAULT);
    }
    // But a huge mapping may move, whole leaves and all.
    let r = s.mremap(h, 2 << 20, 2 << 20, true, None).expect("huge move");
    let t = s.translate(r.addr).expect("moved huge");
    assert_eq!((t.size, t.pfn.0), (PageSize::Size2M, L.huge.0 / PAGE_SIZE));
    r.flush.ignore();
    let _ = before;
    walk_ok(&s);
}

#[test]
fn bad_mremap_requests_change_nothing() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = L.window.0 + (4 << 20);
    s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, RW).fixed(va(a))).expect("map").flush.ignore();
    stamp(&mut s, a, 4, 7);
    let snap = |s: &AddressSpace<Mem>| {
        (s.stats(), s.vmas().map(|v| format!("{v:?}")).collect::<Vec<_>>(), census(s.memory(), s.cr3()))
    };
    let before = snap(&s);
    let cases: Vec<(u64, u64, u64, bool, Option<u64>, i32)> = vec![
        (a + 1, PAGE_SIZE, PAGE_SIZE, true, None, errno::EINVAL), // misaligned
        (a, PAGE_SIZE, PAGE_SIZE, false, Some(a + (1 << 20)), errno::EINVAL), // FIXED without MAYMOVE
        (a, PAGE_SIZE, 0, true, None, errno::EINVAL),             // zero length
        (a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, true, Some(a + PAGE_SIZE), errno::EINVAL), // overlap
        (a, 5 * PAGE_SIZE, 6 * PAGE_SIZE, true, None, errno::EFAULT), // beyond the VMA
        (a - (1 << 20), PAGE_SIZE, PAGE_SIZE, true, None, errno::EFAULT), // no VMA
    ];
    for (old, ol, nl, mv, fx, e) in cases {
        let r = s.mremap(GuestVirtAddr::try_new(old).unwrap_or(va(a)), ol, nl, mv, fx.map(fixed));
        assert_eq!(r.map(|r| r.flush.ignore()).expect_err("refused").errno(), e, "{old:#x} {ol:#x} {nl:#x}");
        assert_eq!(snap(&s), before);
    }
}

/// Ops that refuse every mremap and count live VMAs.
struct Pinned {
    live: Arc<AtomicI64>,
    refuse: bool,
}
impl VmaOps for Pinned {
    fn name(&self) -> &str {
        "pinned"
    }
    fn fault(&self, _: &Vma, _: &FaultInfo) -> Result<FaultPage, MmError> {
        Err(MmError::NotSupported("pinned"))
    }
    fn mapped(&self, _: &Vma) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }
    fn open(&self, _: &Vma) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }
    fn close(&self, _: &Vma) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
    fn mremap(&self, _: &Vma, _: GuestVirtAddr, _: u64) -> Result<(), MmError> {
        if self.refuse {
            Err(MmError::NotSupported("this window cannot move"))
        } else {
            Ok(())
        }
    }
}
struct PinnedProvider(Arc<Pinned>);
impl MmapProvider for PinnedProvider {
    fn name(&self) -> &str {
        "pinned"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.set_ops(self.0.clone());
        Ok(())
    }
}

#[test]
fn the_provider_may_refuse_and_moves_keep_open_close_balanced() {
    let mut s = space(&L);
    let live = Arc::new(AtomicI64::new(0));
    let refusing = PinnedProvider(Arc::new(Pinned { live: live.clone(), refuse: true }));
    let a = s.mmap(&refusing, &MmapRequest::private(4 * PAGE_SIZE, RW)).expect("map").addr;
    let e = s.mremap(a, 4 * PAGE_SIZE, 2 * PAGE_SIZE, true, None).expect_err("refused");
    assert_eq!(e.errno(), errno::EOPNOTSUPP);
    assert_eq!(s.find_vma(a).expect("vma").end(), a.raw() + 4 * PAGE_SIZE);
    let moving = PinnedProvider(Arc::new(Pinned { live: live.clone(), refuse: false }));
    let b = s.mmap(&moving, &MmapRequest::private(8 * PAGE_SIZE, RW)).expect("map").addr;
    let carrying = |s: &AddressSpace<Mem>| s.vmas().filter(|v| v.provider_name() == "pinned").count() as i64;
    // Move the middle: the VMA splits in three, the middle moves.
    let r = s
        .mremap(b.checked_add(2 * PAGE_SIZE).expect("va"), 2 * PAGE_SIZE, 2 * PAGE_SIZE, true, Some(va(L.window.0)))
        .expect("move");
    r.flush.ignore();
    assert_eq!(live.load(Ordering::Relaxed), carrying(&s));
    assert_eq!(carrying(&s), 4);
    s.munmap(va(L.window.0), L.window.1 - L.window.0).expect("all").ignore();
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn dontneed_drops_pages_and_lazy_mappings_refault() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let free0 = s.stats().pool_free;
    let a = L.window.0 + (2 << 20);
    s.mmap(&zero, &MmapRequest::private(16 * PAGE_SIZE, RW).fixed(va(a))).expect("map").flush.ignore();
    stamp(&mut s, a, 16, 50);
    let f = s.madvise(va(a), 16 * PAGE_SIZE, Advice::DontNeed).expect("dontneed");
    assert_eq!(f.pages(), 16);
    f.ignore();
    assert_eq!(s.stats().pool_free, free0, "pages back in the pool");
    assert_eq!(s.vmas().count(), 1, "the VMA stays");
    s.fault(va(a + 3 * PAGE_SIZE), FaultAccess::READ).expect("refault").flush.ignore();
    assert_eq!(read(&s, a + 3 * PAGE_SIZE), Some(0), "refaults zero");
    // A lazy page buffer refaults its own page.
    let buffer = PageBuffer::new(s.frames(), 32).expect("buffer");
    let lazy = buffer.lazy();
    let b = L.window.0 + (6 << 20);
    s.mmap(&lazy, &MmapRequest::shared(32 * PAGE_SIZE, VmFlags::READ).fixed(va(b))).expect("lazy").flush.ignore();
    // WILLNEED: everything in one call.
    s.madvise(va(b), 32 * PAGE_SIZE, Advice::WillNeed).expect("willneed").ignore();
    for i in 0..32u64 {
        assert_eq!(s.translate(va(b + i * PAGE_SIZE)).expect("populated").pfn, buffer.pages()[i as usize]);
    }
    s.madvise(va(b), 32 * PAGE_SIZE, Advice::DontNeed).expect("dontneed").ignore();
    assert!(s.translate(va(b + 7 * PAGE_SIZE)).is_none());
    s.fault(va(b + 7 * PAGE_SIZE), FaultAccess::READ).expect("refault").flush.ignore();
    assert_eq!(s.translate(va(b + 7 * PAGE_SIZE)).expect("back").pfn, buffer.pages()[7]);
    // WILLNEED on private writable anonymous memory: fresh writable pages
    // (for absent pages; zero pages already mapped stay until written).
    s.madvise(va(a), 16 * PAGE_SIZE, Advice::DontNeed).expect("dontneed").ignore();
    s.madvise(va(a), 16 * PAGE_SIZE, Advice::WillNeed).expect("willneed").ignore();
    let t = s.translate(va(a + 15 * PAGE_SIZE)).expect("populated");
    assert!(t.prot.writable);
    // WILLNEED on private read-only anonymous memory populates for reading:
    // the shared zero page, read-only, not a fresh page each.
    let c = L.window.0 + (10 << 20);
    s.mmap(&zero, &MmapRequest::private(4 * PAGE_SIZE, VmFlags::READ).fixed(va(c))).expect("ro").flush.ignore();
    s.madvise(va(c), 4 * PAGE_SIZE, Advice::DontNeed).expect("dontneed").ignore();
    let free = s.stats().pool_free;
    s.madvise(va(c), 4 * PAGE_SIZE, Advice::WillNeed).expect("willneed").ignore();
    let ro: Vec<_> = (0..4u64).map(|i| s.translate(va(c + i * PAGE_SIZE)).expect("populated")).collect();
    assert!(ro.iter().all(|t| t.pfn == ro[0].pfn && !t.prot.writable), "{ro:?}");
    assert!(free - s.stats().pool_free <= 1, "at most the zero page is new");
    // Refusals: a hole, a PFNMAP mapping, a misaligned address.
    let ram = GuestRamProvider::new(s.layout(), &[(GuestAddress(L.pool.0), L.pool.1)]);
    let g = s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).pgoff(0x200)).expect("ram").addr;
    // A hole: as Linux, the mapped parts are advised, then ENOMEM (and
    // what was dropped is in the deferred flush).
    assert!(s.translate(va(a + 15 * PAGE_SIZE)).is_some());
    assert_eq!(
        s.madvise(va(a), 16 * PAGE_SIZE + (1 << 20), Advice::DontNeed).expect_err("hole").errno(),
        errno::ENOMEM
    );
    assert!(s.translate(va(a + 15 * PAGE_SIZE)).is_none(), "the mapped part was dropped");
    assert!(s.take_deferred_flush().pages() >= 16, "and is flushed");
    let before = s.stats();
    assert_eq!(s.madvise(g, PAGE_SIZE, Advice::DontNeed).expect_err("pfnmap").errno(), errno::EINVAL);
    assert_eq!(s.madvise(va(a + 8), PAGE_SIZE, Advice::DontNeed).expect_err("misaligned").errno(), errno::EINVAL);
    assert_eq!(Advice::from_linux(12).expect_err("unknown").errno(), errno::EINVAL);
    assert_eq!(s.stats(), before);
    walk_ok(&s);
}
