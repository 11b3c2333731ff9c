//! The `x86_64` crate peer of item 1: `OffsetPageTable::map_to`, one call
//! per page, building tables in the same guest memory ours use (its own
//! region of it), with a bump frame allocator over that region.
//!
//! Each sample starts from a zeroed root; `map_to` zeroes every table it
//! creates (ours zeroes a new table unless the insert overwrites all 512
//! entries). The flush each call returns is ignored (the tables are not
//! live on any CPU), as ours is.

use std::time::{Duration, Instant};

use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::fixture::{Fixture, PEER_TABLES, WINDOW};
use crate::error::BenchError;

/// Hands out the frames of the peer table region in order.
struct Bump {
    next: u64,
    end: u64,
}

// SAFETY: every frame returned lies in `PEER_TABLES`, which only this peer
// uses while it runs, and is returned at most once per sample.
unsafe impl FrameAllocator<Size4KiB> for Bump {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        if self.next >= self.end {
            return None;
        }
        let f = PhysFrame::containing_address(PhysAddr::new(self.next));
        self.next += 4096;
        Some(f)
    }
}

/// Maps every fixture frame with one `map_to` per page; returns the time.
pub fn map_to_per_page(fx: &Fixture) -> Result<Duration, BenchError> {
    let peer = |reason: String| BenchError::Peer { peer: "x86_64 OffsetPageTable::map_to".into(), reason };
    let base = fx.host_address(0)?;
    let root_ptr = fx.host_address(PEER_TABLES.0)?.cast::<PageTable>();
    // SAFETY: `root_ptr` is the first page of `PEER_TABLES` inside the
    // fixture's guest memory (one host mapping, 4 KiB aligned); no other
    // reference to it exists while this function runs, and zeroing a
    // `PageTable` makes every entry unused.
    let root = unsafe {
        root_ptr.write_bytes(0, 1);
        &mut *root_ptr
    };
    let mut alloc = Bump { next: PEER_TABLES.0 + 4096, end: PEER_TABLES.0 + PEER_TABLES.1 };
    // SAFETY: guest-physical `p` is at host address `base + p` for the whole
    // fixture (a single region from 0), so the offset mapping is complete
    // for every frame the allocator hands out.
    let mut pt = unsafe { OffsetPageTable::new(root, VirtAddr::new(base as u64)) };
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE;
    let frames = fx.frames();
    let t = Instant::now();
    for (i, p) in frames.iter().enumerate() {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(WINDOW.0 + i as u64 * 4096));
        let frame = PhysFrame::containing_address(PhysAddr::new(p.0 << 12));
        // SAFETY: the tables are not in use by any CPU; mapping a frame
        // twice or aliasing it cannot affect this process's memory.
        match unsafe { pt.map_to(page, frame, flags, &mut alloc) } {
            Ok(f) => f.ignore(),
            Err(e) => return Err(peer(format!("page {i}: {e:?}"))),
        }
    }
    let elapsed = t.elapsed();
    // Checks that it really mapped: a sample of pages through the same
    // independent walker that checks ours, and its own translate.
    super::verify::mapped(fx.space.memory(), PEER_TABLES.0, WINDOW.0, frames, "x86_64 map_to")?;
    use x86_64::structures::paging::mapper::Translate;
    let last = frames.len() - 1;
    let got = pt.translate_addr(VirtAddr::new(WINDOW.0 + last as u64 * 4096));
    if got != Some(PhysAddr::new(frames[last].0 << 12)) {
        return Err(peer(format!("the last page translates to {got:?}")));
    }
    Ok(elapsed)
}
