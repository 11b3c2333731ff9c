//! Host memory the VMM spends per VMA is bounded: a counting allocator
//! measures the live heap bytes that single-page mappings add (VMA tree
//! nodes, provider names, attached state), so `max_map_count` bounds what
//! a guest can make the VMM hold. The allocator (the `mapper` binary's
//! global one) counts per thread, so the other tests of the binary may
//! run beside this one.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use guest_mm::providers::{GuestRamProvider, ZeroProvider};
use guest_mm::{MmapRequest, VmFlags, DEFAULT_MAX_MAP_COUNT, PAGE_SIZE};
use vmm_suite::fixture::{space, Layout};

thread_local! {
    /// Heap bytes this thread allocated minus those it freed. A const
    /// initializer and no destructor: reaching it never allocates.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `bytes` to this thread's count (nothing once the thread's
/// locals are gone, while it exits).
fn count(bytes: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
}

/// This thread's live heap bytes.
fn live() -> isize {
    LIVE.with(Cell::get)
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        count(-(l.size() as isize));
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most host heap bytes one VMA may cost (measured: see docs/guest-mm.md,
/// "Limits"; this bound leaves headroom, not a target).
const MAX_BYTES_PER_VMA: isize = 512;

#[test]
fn host_memory_per_vma_is_bounded() {
    const L: Layout = Layout::SMALL;
    let mut s = space(&L);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let rw = VmFlags::READ | VmFlags::WRITE;
    let n: u64 = 6_000;
    // Warm up (first tree nodes, first flush vectors), then measure.
    for i in 0..16 {
        s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, rw).pgoff(0x100 + i)).expect("warm-up").flush.ignore();
    }
    let mut addrs = Vec::with_capacity(n as usize);
    let before = live();
    for i in 0..n {
        // Remaps (VM_SPECIAL) and some zero pages: nothing merges. A free
        // page between each two: every VMA also costs a free range in the
        // gap index (the worst case for it).
        let at = vmm_suite::fixture::va(L.window.1 - (2 * i + 40) * PAGE_SIZE);
        let m = if i % 4 != 1 {
            s.mmap(&ram, &MmapRequest::shared(PAGE_SIZE, rw).pgoff(0x100 + i % 0x1000).fixed_noreplace(at))
        } else {
            s.mmap(&zero, &MmapRequest::private(PAGE_SIZE, rw).fixed_noreplace(at))
        };
        let m = m.expect("map");
        addrs.push(m.addr);
        m.flush.ignore();
    }
    let grown = live() - before;
    assert_eq!(s.stats().vmas, n as usize + 16);
    let per_vma = grown / n as isize;
    eprintln!("host heap per VMA: {per_vma} bytes ({grown} bytes for {n} VMAs)");
    assert!(per_vma <= MAX_BYTES_PER_VMA, "{per_vma} bytes per VMA");
    // At the default limit that is at most this much for the VMA tree.
    let worst = MAX_BYTES_PER_VMA as usize * DEFAULT_MAX_MAP_COUNT;
    assert!(worst <= 64 << 20, "{worst}");
    // Unmapping keeps at most what the peak took (the gap index keeps its
    // node array for reuse), and mapping the same again takes no more:
    // the cost follows the largest VMA count, which the limit bounds.
    let remap = addrs.clone();
    for a in addrs.drain(..) {
        s.munmap(a, PAGE_SIZE).expect("unmap").ignore();
    }
    let left = live() - before;
    assert!(left <= grown, "{left} bytes left after unmapping everything, more than the {grown} of the peak");
    for (i, a) in remap.iter().enumerate() {
        let req = MmapRequest::shared(PAGE_SIZE, rw).pgoff(0x100 + i as u64 % 0x1000).fixed_noreplace(*a);
        s.mmap(&ram, &req).expect("map again").flush.ignore();
    }
    let again = live() - before;
    assert!(again <= grown + grown / 8, "{again} bytes after mapping again, {grown} the first time");

    // The worst case of the lookup radix: VMAs alone and straddling a
    // 64 GiB boundary, so that their two ends lie in different radix tables
    // at every level (eight 256-byte tables each). Empty VMAs (no page
    // tables in guest memory), in a fresh space.
    let mut s = space(&L);
    s.mmap(&Nothing, &MmapRequest::shared(PAGE_SIZE, rw)).expect("warm-up").flush.ignore();
    let n: u64 = 2_000;
    let before = live();
    for i in 1..=n {
        let at = vmm_suite::fixture::va((i << 36) - PAGE_SIZE);
        s.mmap(&Nothing, &MmapRequest::shared(2 * PAGE_SIZE, rw).fixed_noreplace(at)).expect("map").flush.ignore();
    }
    let grown = live() - before;
    let per_vma = grown / n as isize;
    eprintln!("host heap per lone VMA: {per_vma} bytes ({grown} bytes for {n} VMAs)");
    assert!(per_vma <= MAX_BYTES_PER_VMA + MAX_RADIX_BYTES_PER_VMA, "{per_vma} bytes per lone VMA");
    // Each VMA needs its own tables: the worst case is real.
    assert!(per_vma >= MAX_RADIX_BYTES_PER_VMA, "{per_vma} bytes per lone VMA");
}

/// The radix tables one VMA can need: 4 levels x 2 ends x 256 bytes.
const MAX_RADIX_BYTES_PER_VMA: isize = 2048;

/// A VMA and nothing else.
struct Nothing;
impl guest_mm::MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _d: &mut guest_mm::VmaDesc) -> Result<(), guest_mm::MmError> {
        Ok(())
    }
}
