//! The frame guarantee, checked by walking the tables: no frame that a
//! leaf maps can be freed or reused while it is mapped.

use std::collections::BTreeSet;

use guest_mm::{AddressSpace, Pfn};

use crate::census::leaf_frames;
use crate::fixture::Mem;

/// Walks `space`'s tables (independently, see [`leaf_frames`]) and panics
/// unless: no mapped frame is on the pool's free list, every page-array
/// leaf's frame is pinned, and taking every free pool page hands out none
/// of the mapped frames (they are given back afterwards). Returns the
/// number of page-array leaves found.
pub fn assert_mapped_frames_kept(space: &AddressSpace<Mem>) -> usize {
    let leaves = leaf_frames(space.memory(), space.cr3());
    let mapped: BTreeSet<u64> = leaves.iter().map(|l| l.pfn).collect();
    let frames = space.frames();
    {
        let st = frames.lock();
        let free = st.free_view();
        for &f in &mapped {
            assert!(!free.contains(Pfn(f)), "frame {f:#x} is mapped and free in the pool");
        }
        for l in leaves.iter().filter(|l| l.page_array) {
            assert!(st.pins().get(Pfn(l.pfn)) > 0, "page-array frame {:#x} is mapped but not pinned", l.pfn);
        }
    }
    let free = frames.pool_free() as u64;
    let taken = frames.alloc(free).expect("every free pool page");
    for f in taken.pfns().iter() {
        assert!(!mapped.contains(&f.0), "the pool handed out mapped frame {:#x}", f.0);
    }
    drop(taken);
    assert_eq!(frames.pool_free() as u64, free, "pool pages not given back");
    leaves.iter().filter(|l| l.page_array).count()
}
