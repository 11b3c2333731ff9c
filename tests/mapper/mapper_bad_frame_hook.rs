//! One rule for a page array's bad frame, wherever the mapping goes: the
//! array is refused when it is pinned, in the provider's prepare, before
//! anything exists; the error hook (complete and success-hook errors
//! only) never sees it, a fresh mapping and a fixed mapping that would
//! replace an existing one get the same errno, and the old mapping stays
//! untouched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use guest_mm::{
    errno, Frames, MmError, MmapProvider, MmapRequest, PageArray, PageRun, Pfn, VmFlags, VmaDesc, PAGE_SIZE,
};
use vmm_suite::census::census;
use vmm_suite::fixture::{space, va, Layout};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

/// Maps `pages` over its whole VMA (or as two discontiguous runs), with
/// an error hook that counts its calls and turns the error into `EAGAIN`.
struct Hooked {
    frames: Frames,
    pages: Arc<[Pfn]>,
    discontig: bool,
    hook_calls: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Option<MmError>>>,
}

impl MmapProvider for Hooked {
    fn name(&self) -> &str {
        "hooked"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        let (calls, seen) = (self.hook_calls.clone(), self.seen.clone());
        d.set_error_hook(Box::new(move |e| {
            calls.fetch_add(1, Ordering::SeqCst);
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            MmError::Again
        }));
        let arr = PageArray::pin(&self.frames, self.pages.clone())?;
        if self.discontig {
            let half = arr.len() as u64 / 2;
            let second = d.start().checked_add(half * PAGE_SIZE)?;
            let first = arr.slice(0, half).ok_or(MmError::Invalid("slice"))?;
            let rest = arr.slice(half, arr.len() as u64 - half).ok_or(MmError::Invalid("slice"))?;
            d.mmap_action_map_kernel_pages_discontig(vec![
                PageRun { start: d.start(), pages: first },
                PageRun { start: second, pages: rest },
            ]);
        } else {
            d.mmap_action_map_kernel_pages_full(arr);
        }
        Ok(())
    }
}

#[test]
fn a_bad_frame_is_refused_the_same_way_in_every_placement() {
    let bad_frames = [
        ("reserved", Pfn(L.tables.0 / PAGE_SIZE + 3), MmError::FrameReserved { pfn: L.tables.0 / PAGE_SIZE + 3 }),
        ("beyond RAM", Pfn(L.ram / PAGE_SIZE + 9), MmError::FrameNotInGuest { pfn: L.ram / PAGE_SIZE + 9 }),
    ];
    for (what, bad, inner) in bad_frames {
        for discontig in [false, true] {
            for fixed_replace in [false, true] {
                let case = format!("{what}, discontig {discontig}, fixed-replace {fixed_replace}");
                let mut s = space(&L);
                let at = va(L.window.0 + (1 << 20));
                let n = 64u64;
                // The mapping to replace (fixed case) or nothing (fresh).
                let old = Hooked {
                    frames: s.frames().clone(),
                    pages: (0..n).map(|i| Pfn(0x400 + i)).collect::<Vec<_>>().into(),
                    discontig: false,
                    hook_calls: Arc::default(),
                    seen: Arc::default(),
                };
                if fixed_replace {
                    s.mmap(&old, &MmapRequest::shared(n * PAGE_SIZE, RW).fixed(at)).expect("old").flush.ignore();
                }
                let before_vmas: Vec<String> = s.vmas().map(|v| format!("{v:?}")).collect();
                let before_leaves = s.page_tables().leaves(va(L.window.0), L.window.1 - L.window.0);
                let before_census = census(s.memory(), s.cr3());
                let mut pages: Vec<Pfn> = (0..n).map(|i| Pfn(0x800 + i)).collect();
                pages[n as usize - 5] = bad;
                let p = Hooked {
                    frames: s.frames().clone(),
                    pages: pages.into(),
                    discontig,
                    hook_calls: Arc::default(),
                    seen: Arc::default(),
                };
                let req = MmapRequest::shared(n * PAGE_SIZE, RW);
                let req = if fixed_replace { req.fixed(at) } else { req.fixed_noreplace(at) };
                let e = s.mmap(&p, &req).map(|m| m.addr).unwrap_err();
                assert_eq!(e, inner, "{case}: the pin's error, unchanged");
                assert_ne!(e.errno(), errno::EAGAIN, "{case}");
                assert_eq!(p.hook_calls.load(Ordering::SeqCst), 0, "{case}: hook calls");
                assert!(p.seen.lock().expect("lock").is_none(), "{case}");
                // Nothing changed: the old mapping (fixed case) is intact.
                assert_eq!(s.vmas().map(|v| format!("{v:?}")).collect::<Vec<_>>(), before_vmas, "{case}");
                assert_eq!(s.page_tables().leaves(va(L.window.0), L.window.1 - L.window.0), before_leaves, "{case}");
                assert_eq!(census(s.memory(), s.cr3()), before_census, "{case}");
                if fixed_replace {
                    assert!(s.take_deferred_flush().is_empty(), "{case}: the old mapping was never detached");
                    assert_eq!(s.translate(at).expect("old page").pfn, Pfn(0x400), "{case}");
                } else {
                    s.take_deferred_flush().ignore();
                }
            }
        }
    }
}
