//! A failed fixed mapping puts the range it replaced back as it was; what
//! its detach cleared may have been cached meanwhile (another vCPU walked
//! an entry between the detach's read of the leaves and its clear), so the
//! put-back range must still be flushed: the restore writes back the
//! Accessed bits read *before* the clear, and a later change would
//! otherwise trust them.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::test_util::{space, va, WINDOW};
use super::MmapRequest;
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::paging::table::RACE;
use crate::provider::MmapProvider;

const ACCESSED: u64 = 1 << 5;

/// Remaps its VMA whole to `pfn`; its success hook fails when `fail`.
struct Remap {
    pfn: u64,
    fail: bool,
}

impl MmapProvider for Remap {
    fn name(&self) -> &str {
        "remap"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(Pfn(self.pfn));
        if self.fail {
            desc.set_success_hook(Box::new(|_| Err(MmError::Invalid("success hook refused"))));
        }
        Ok(())
    }
}

thread_local! {
    /// Walks left to the simulated vCPU.
    static WALKS: Cell<u32> = const { Cell::new(0) };
}

/// Another vCPU walking the entry just before the writer changes it: sets
/// its Accessed bit, once.
fn walker(e: &AtomicU64) {
    if WALKS.get() > 0 && e.load(Ordering::Relaxed) & 1 != 0 {
        WALKS.set(WALKS.get() - 1);
        e.fetch_or(ACCESSED, Ordering::Relaxed);
    }
}

#[test]
fn a_failed_fixed_mapping_flushes_what_its_detach_found_walked() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let at = va(WINDOW.0);
    s.mmap(&Remap { pfn: 0x200, fail: false }, &MmapRequest::shared(PAGE_SIZE, rw).fixed(at)).unwrap().flush.ignore();
    let before = s.page_tables().leaves(at, PAGE_SIZE);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].raw & ACCESSED, 0, "nothing walked the entry yet");
    // The fixed mapping over it fails after its detach; a vCPU walks the
    // old entry right before the detach clears it.
    WALKS.set(1);
    RACE.with(|r| r.set(Some(walker)));
    let r = s.mmap(&Remap { pfn: 0x300, fail: true }, &MmapRequest::shared(PAGE_SIZE, rw).fixed(at));
    RACE.with(|r| r.set(None));
    assert_eq!(WALKS.get(), 0, "the walk happened");
    assert!(r.is_err());
    // The old translation is back (as read before the walk) ...
    assert_eq!(s.page_tables().leaves(at, PAGE_SIZE), before);
    // ... and since a vCPU may have cached it while it was being replaced,
    // the failed call leaves a flush of it that says so.
    let f = s.take_deferred_flush();
    assert!(f.may_be_cached(), "{f:?}");
    assert!(f.ranges().iter().any(|&(a, len)| a.raw() <= at.raw() && at.raw() < a.raw() + len), "{f:?}");
}
