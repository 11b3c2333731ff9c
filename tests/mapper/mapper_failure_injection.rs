//! Failure injection: complete is made to fail at every possible point
//! (the Nth page-table allocation, then a failing success hook), and the
//! address space, the tables and the counters must be exactly as before
//! the call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{
    errno, AddressSpace, MmError, MmapProvider, MmapRequest, PageArray, PageRun, PageSize, Pfn, VmFlags, VmaDesc,
    PAGE_SIZE,
};
use vm_memory::GuestAddress;
use vmm_suite::census::{census, Census};
use vmm_suite::fixture::{space, va, Layout, Mem};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

/// Everything observable about an address space.
#[derive(Debug, PartialEq)]
struct Snapshot {
    vmas: Vec<String>,
    leaves: Vec<(u64, u64, u64, bool, bool)>,
    stats: guest_mm::SpaceStats,
    census: Census,
}

fn snapshot(s: &AddressSpace<Mem>) -> Snapshot {
    let leaves = s
        .page_tables()
        .leaves(va(L.window.0), L.window.1 - L.window.0)
        .iter()
        .map(|l| {
            let t = s.translate(l.va).expect("leaf translates");
            (l.va.raw(), l.size.bytes(), t.pfn.0, t.prot.writable, t.counted)
        })
        .collect();
    Snapshot {
        vmas: s.vmas().map(|v| format!("{v:?}")).collect(),
        leaves,
        stats: s.stats(),
        census: census(s.memory(), s.cr3()),
    }
}

/// Runs `attempt` with the Nth table allocation failing, for N = 0, 1, ...
/// until it succeeds; every failure must leave `s` exactly as before.
/// Returns how many failure points there were.
fn every_failure_point(
    s: &mut AddressSpace<Mem>,
    want_errno: i32,
    mut attempt: impl FnMut(&mut AddressSpace<Mem>) -> Result<(), MmError>,
) -> u64 {
    for n in 0.. {
        let before = snapshot(s);
        s.page_tables_mut().allocator_mut().inject_failure_after(Some(n));
        let r = attempt(s);
        s.page_tables_mut().allocator_mut().inject_failure_after(None);
        s.take_deferred_flush().ignore();
        match r {
            Ok(()) => return n,
            Err(e) => {
                assert_eq!(e.errno(), want_errno, "failure point {n}: {e}");
                assert_eq!(snapshot(s), before, "state changed by failure at point {n}");
            }
        }
    }
    unreachable!()
}

fn map(s: &mut AddressSpace<Mem>, p: &dyn MmapProvider, req: MmapRequest) -> Result<(), MmError> {
    s.mmap(p, &req).map(|m| m.flush.ignore())
}

#[test]
fn zero_pages_across_many_tables() {
    let mut s = space(&L);
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    // 3 MiB starting 4 KiB below a 1 GiB boundary: needs new PDPT entries,
    // two PDs and several PTs.
    let at = va(L.window.0 + (1 << 30) - PAGE_SIZE);
    // Shared: populated up front (a private mapping is lazy, see
    // `mapper_fault.rs` for its fault path).
    let points =
        every_failure_point(&mut s, errno::ENOMEM, |s| map(s, &zero, MmapRequest::shared(3 << 20, RW).fixed(at)));
    assert!(points >= 4, "expected several allocation points, got {points}");
}

#[test]
fn discontiguous_runs() {
    let mut s = space(&L);
    struct Runs(guest_mm::Frames);
    impl MmapProvider for Runs {
        fn name(&self) -> &str {
            "runs"
        }
        fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
            let arr = |n: u64, base: u64| {
                PageArray::pin(&self.0, (0..n).map(|i| Pfn(base + i * 3)).collect::<Vec<_>>().into())
            };
            let second = d.start().checked_add(3 << 20)?;
            d.mmap_action_map_kernel_pages_discontig(vec![
                PageRun { start: d.start(), pages: arr(600, 0x100)? },
                PageRun { start: second, pages: arr(700, 0x900)? },
            ]);
            Ok(())
        }
    }
    let points = every_failure_point(&mut s, errno::ENOMEM, |s| {
        map(s, &Runs(s.frames().clone()), MmapRequest::shared(6 << 20, RW))
    });
    assert!(points >= 3);
}

#[test]
fn fixed_over_huge_and_counted_mappings_restores_them() {
    let mut s = space(&L);
    let huge = HugePageProvider::new(GuestAddress(L.huge.0), L.huge.1, PageSize::Size2M).expect("huge");
    let buffer = PageBuffer::new(s.frames(), 64).expect("buffer");
    let base = L.window.0 + (4 << 20);
    // Old mappings: two huge pages, then buffer pages right after.
    map(&mut s, &huge, MmapRequest::shared(4 << 20, RW).fixed(va(base))).expect("huge");
    map(&mut s, &buffer, MmapRequest::shared(64 * PAGE_SIZE, VmFlags::READ).fixed(va(base + (4 << 20)))).expect("buf");
    let live = huge.live_vmas();
    // A fixed mapping over the middle of the first huge page through the
    // buffer: detaching splits the huge leaf; every failure must put it
    // back (same leaves, same tables, same counts).
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let at = va(base + (1 << 20));
    let points =
        every_failure_point(&mut s, errno::ENOMEM, |s| map(s, &zero, MmapRequest::private(5 << 20, RW).fixed(at)));
    assert!(points >= 1);
    assert_eq!(huge.live_vmas(), live, "the surviving huge VMA keeps its state");
    // After success the old mappings outside the range are intact.
    let t = s.translate(va(base)).expect("head of the huge page");
    assert_eq!(t.pfn.0, L.huge.0 / PAGE_SIZE);
    assert_eq!(s.translate(va(base + 0x1000)).expect("huge head").pfn.0, L.huge.0 / PAGE_SIZE + 1);
}

#[test]
fn remap_unaligned_large_range() {
    let mut s = space(&L);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    // 6 MiB + 12 KiB from frame 0x201 at a 2 MiB-aligned address + 4 KiB:
    // virtual and physical offsets match, so 2 MiB leaves fit inside.
    let at = va(L.window.0 + (2 << 20) + 0x1000);
    let req = MmapRequest::shared((6 << 20) + 0x3000, RW).fixed(at).pgoff(0x201);
    // The guest-RAM provider's error hook reports complete failures as EAGAIN.
    every_failure_point(&mut s, errno::EAGAIN, |s| map(s, &ram, req));
    let c = census(s.memory(), s.cr3());
    assert!(c.leaves[1] >= 2, "2 MiB leaves expected: {c:?}");
}

#[test]
fn failing_success_hook_unmaps_and_error_hook_may_change_the_error() {
    let mut s = space(&L);
    struct Hooked {
        seen: Arc<AtomicUsize>,
        frames: guest_mm::Frames,
    }
    impl MmapProvider for Hooked {
        fn name(&self) -> &str {
            "hooked"
        }
        fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
            d.mmap_action_map_kernel_pages_full(PageArray::pin(
                &self.frames,
                (0..d.pages()).map(|i| Pfn(0x300 + i)).collect::<Vec<_>>().into(),
            )?);
            let seen = self.seen.clone();
            d.set_success_hook(Box::new(move |vma| {
                // The hook sees the finished VMA and its entries.
                assert_eq!(vma.pages(), 16);
                seen.fetch_add(1, Ordering::Relaxed);
                Err(MmError::Invalid("hook refused"))
            }));
            d.set_error_hook(Box::new(|e| {
                assert_eq!(e, MmError::Invalid("hook refused"));
                MmError::Again
            }));
            Ok(())
        }
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let before = snapshot(&s);
    let r =
        s.mmap(&Hooked { seen: seen.clone(), frames: s.frames().clone() }, &MmapRequest::shared(16 * PAGE_SIZE, RW));
    assert_eq!(r.map(|m| m.addr).unwrap_err(), MmError::Again);
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    assert_eq!(snapshot(&s), before);
    // The entries the hook saw were live, so they must be flushed.
    let f = s.take_deferred_flush();
    assert_eq!(f.pages(), 16);
    f.ignore();
}

#[test]
fn guest_ram_provider_filters_complete_failures_to_eagain() {
    let mut s = space(&L);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    let before = snapshot(&s);
    s.page_tables_mut().allocator_mut().inject_failure_after(Some(0));
    let r = s.mmap(&ram, &MmapRequest::shared(8 * PAGE_SIZE, RW).pgoff(0x400));
    s.page_tables_mut().allocator_mut().inject_failure_after(None);
    assert_eq!(r.map(|m| m.addr).unwrap_err().errno(), errno::EAGAIN);
    assert_eq!(snapshot(&s), before);
}
