//! Regression for the bug class of seed 003's review (a loop that passed
//! the wrong variable, so pages mapped the wrong frame): for every action
//! kind, each page maps its own frame, checked by walking the tables.

use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{
    Frames, MmError, MmapProvider, MmapRequest, PageArray, PageRun, PageSize, Pfn, VmFlags, VmaDesc, PAGE_SIZE,
};
use vm_memory::{Bytes, GuestAddress};
use vmm_suite::fixture::{space, va, Layout};

const L: Layout = Layout::SMALL;

/// Distinct, scattered frames: neighbours are never adjacent or equal.
fn scattered(n: u64) -> Vec<Pfn> {
    (0..n).map(|i| Pfn(0x100 + (i * 7919) % 3000)).collect()
}

struct Array(Frames, Vec<Pfn>);
impl MmapProvider for Array {
    fn name(&self) -> &str {
        "array"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_map_kernel_pages_full(PageArray::pin(&self.0, self.1.clone().into())?);
        Ok(())
    }
}

struct Runs(Frames, Vec<Pfn>, Vec<Pfn>);
impl MmapProvider for Runs {
    fn name(&self) -> &str {
        "runs"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        let second = d.start().checked_add(600 * PAGE_SIZE)?;
        d.mmap_action_map_kernel_pages_discontig(vec![
            PageRun { start: d.start(), pages: PageArray::pin(&self.0, self.1.clone().into())? },
            PageRun { start: second, pages: PageArray::pin(&self.0, self.2.clone().into())? },
        ]);
        Ok(())
    }
}

#[test]
fn page_arrays_map_each_page_to_its_own_frame() {
    let mut s = space(&L);
    // 1100 pages cross three leaf tables.
    let frames = scattered(1100);
    let m = s
        .mmap(&Array(s.frames().clone(), frames.clone()), &MmapRequest::shared(1100 * PAGE_SIZE, VmFlags::READ))
        .expect("map");
    for (i, f) in frames.iter().enumerate() {
        let t = s.translate(va(m.addr.raw() + i as u64 * PAGE_SIZE)).expect("mapped");
        assert_eq!(t.pfn, *f, "page {i}");
        assert_eq!(t.size, PageSize::Size4K);
    }
    // A sub-page offset lands at the same offset in the frame.
    let t = s.translate(va(m.addr.raw() + 5 * PAGE_SIZE + 0x123)).expect("mapped");
    assert_eq!(t.phys, GuestAddress(frames[5].0 * PAGE_SIZE + 0x123));
}

#[test]
fn discontiguous_runs_map_each_page_to_its_own_frame() {
    let mut s = space(&L);
    let a = scattered(520);
    let b: Vec<Pfn> = scattered(1020)[520..].to_vec();
    let m = s
        .mmap(&Runs(s.frames().clone(), a.clone(), b.clone()), &MmapRequest::shared(1100 * PAGE_SIZE, VmFlags::READ))
        .expect("map");
    for (i, f) in a.iter().enumerate() {
        assert_eq!(s.translate(va(m.addr.raw() + i as u64 * PAGE_SIZE)).expect("run 1").pfn, *f, "run 1 page {i}");
    }
    for i in 520..600 {
        assert!(s.translate(va(m.addr.raw() + i * PAGE_SIZE)).is_none(), "gap page {i}");
    }
    for (i, f) in b.iter().enumerate() {
        let at = m.addr.raw() + (600 + i as u64) * PAGE_SIZE;
        assert_eq!(s.translate(va(at)).expect("run 2").pfn, *f, "run 2 page {i}");
    }
}

#[test]
fn pool_backed_providers_map_distinct_frames_with_the_right_contents() {
    let mut s = space(&L);
    let buffer = PageBuffer::new(s.frames(), 40).expect("buffer");
    // Stamp each buffer page with its index, then map from pgoff 3.
    for (i, p) in buffer.pages().iter().enumerate() {
        s.memory().write_obj(i as u64 + 1000, p.addr()).expect("stamp");
    }
    let m = s.mmap(&buffer, &MmapRequest::shared(30 * PAGE_SIZE, VmFlags::READ).pgoff(3)).expect("map");
    for i in 0..30u64 {
        let t = s.translate(va(m.addr.raw() + i * PAGE_SIZE)).expect("mapped");
        assert_eq!(t.pfn, buffer.pages()[(3 + i) as usize], "page {i}");
        let stamp: u64 = s.memory().read_obj(t.phys).expect("read");
        assert_eq!(stamp, 1003 + i);
    }
    // Shared zero pages (eager): distinct frames, all zero.
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let m = s.mmap(&zero, &MmapRequest::shared(20 * PAGE_SIZE, VmFlags::READ)).expect("zero");
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20u64 {
        let t = s.translate(va(m.addr.raw() + i * PAGE_SIZE)).expect("mapped");
        assert!(seen.insert(t.pfn), "frame {:#x} mapped twice", t.pfn.0);
        let v: u64 = s.memory().read_obj(t.phys).expect("read");
        assert_eq!(v, 0);
    }
}

#[test]
fn remaps_map_consecutive_frames_at_every_page_size() {
    let mut s = space(&L);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    // 5 MiB + 8 KiB from frame 0x3fe, placed so 2 MiB leaves fit inside.
    let at = va(L.window.0 + (2 << 20) - 2 * PAGE_SIZE);
    let len = (5 << 20) + 2 * PAGE_SIZE;
    s.mmap(&ram, &MmapRequest::shared(len, VmFlags::READ).fixed(at).pgoff(0x3fe)).expect("remap").flush.ignore();
    let mut sizes = std::collections::BTreeSet::new();
    for i in 0..len / PAGE_SIZE {
        let t = s.translate(va(at.raw() + i * PAGE_SIZE)).expect("mapped");
        assert_eq!(t.pfn.0, 0x3fe + i, "page {i}");
        sizes.insert(t.size);
    }
    assert!(sizes.contains(&PageSize::Size2M) && sizes.contains(&PageSize::Size4K), "{sizes:?}");
    // Huge pages.
    let huge = HugePageProvider::new(GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
    let m = s.mmap(&huge, &MmapRequest::shared(4 << 20, VmFlags::READ).pgoff(512)).expect("huge");
    for i in 0..1024u64 {
        let t = s.translate(va(m.addr.raw() + i * PAGE_SIZE)).expect("mapped");
        assert_eq!(t.pfn.0, L.huge.0 / PAGE_SIZE + 512 + i, "huge page {i}");
        assert_eq!(t.size, PageSize::Size2M);
    }
}
