//! Property and size tests of the pool over several regions: random
//! allocate / pin / drop sequences against a model that knows which
//! frames are free, and the host memory of a pool over 64 GiB of RAM.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use vm_memory::GuestAddress;

use crate::addr::{Pfn, PAGE_SIZE};
use crate::frames::{Frames, Pinned, PoolPages};

/// Pool regions (in frames) with holes between them, out of order.
const REGIONS: [(u64, u64); 3] = [(40, 46), (8, 12), (20, 23)];
/// Frames of RAM.
const RAM: u64 = 64;

fn pool() -> Frames {
    let regions: Vec<(GuestAddress, u64)> =
        REGIONS.iter().map(|&(s, e)| (GuestAddress(s * PAGE_SIZE), (e - s) * PAGE_SIZE)).collect();
    Frames::with_pool_regions(RAM, &regions).unwrap()
}

fn pool_frames() -> BTreeSet<u64> {
    REGIONS.iter().flat_map(|&(s, e)| s..e).collect()
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocate this many pages.
    Alloc(u64),
    /// Allocate an aligned contiguous block of `1 << order` pages.
    AllocBlock(u32),
    /// Drop the owner handle at this index (modulo the live ones).
    DropOwner(usize),
    /// Pin the frames of the owner at this index.
    Pin(usize),
    /// Drop the pin at this index.
    Unpin(usize),
    /// Allocate everything free, check it is exactly the model's free
    /// set, give it back.
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..8).prop_map(Op::Alloc),
        2 => (0u32..4).prop_map(Op::AllocBlock),
        3 => any::<usize>().prop_map(Op::DropOwner),
        2 => any::<usize>().prop_map(Op::Pin),
        2 => any::<usize>().prop_map(Op::Unpin),
        1 => Just(Op::Drain),
    ]
}

/// The model: the frames held by each live owner and pin; a pool frame is
/// free when none holds it.
#[derive(Default)]
struct Model {
    owners: Vec<(PoolPages, Vec<u64>)>,
    pins: Vec<(Pinned, Vec<u64>)>,
}

impl Model {
    fn held(&self) -> BTreeSet<u64> {
        self.owners.iter().flat_map(|o| o.1.iter()).chain(self.pins.iter().flat_map(|p| p.1.iter())).copied().collect()
    }

    fn free(&self) -> BTreeSet<u64> {
        pool_frames().difference(&self.held()).copied().collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pool_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let f = pool();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Alloc(n) => {
                    let free = m.free();
                    match f.alloc(n) {
                        Ok(pages) => {
                            prop_assert!(n as usize <= free.len());
                            let got: Vec<u64> = pages.pfns().iter().map(|p| p.0).collect();
                            let distinct: BTreeSet<u64> = got.iter().copied().collect();
                            prop_assert_eq!(distinct.len(), got.len(), "a frame handed out twice in one call");
                            prop_assert!(distinct.is_subset(&free), "handed out {:?}, free {:?}", got, free);
                            m.owners.push((pages, got));
                        }
                        Err(e) => {
                            prop_assert!(n as usize > free.len(), "refused {} with {} free", n, free.len());
                            prop_assert_eq!(e.errno(), crate::error::errno::ENOMEM);
                        }
                    }
                }
                Op::AllocBlock(order) => {
                    let n = 1u64 << order;
                    let free = m.free();
                    match f.alloc_block(n) {
                        Ok(pages) => {
                            let got: Vec<u64> = pages.pfns().iter().map(|p| p.0).collect();
                            prop_assert_eq!(got.len() as u64, n);
                            prop_assert_eq!(got[0] % n, 0, "block {:?} not aligned", got);
                            prop_assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "block {:?} not contiguous", got);
                            prop_assert!(got.iter().all(|p| free.contains(p)), "handed out {:?}, free {:?}", got, free);
                            m.owners.push((pages, got));
                        }
                        Err(e) => prop_assert_eq!(e.errno(), crate::error::errno::ENOMEM),
                    }
                }
                Op::DropOwner(i) if !m.owners.is_empty() => {
                    let i = i % m.owners.len();
                    m.owners.swap_remove(i);
                }
                Op::Pin(i) if !m.owners.is_empty() => {
                    let (pages, got) = &m.owners[i % m.owners.len()];
                    let pin = f.pin(pages.pfns().clone()).unwrap();
                    let got = got.clone();
                    m.pins.push((pin, got));
                }
                Op::Unpin(i) if !m.pins.is_empty() => {
                    let i = i % m.pins.len();
                    m.pins.swap_remove(i);
                }
                Op::Drain => {
                    let free = m.free();
                    let all = f.alloc(free.len() as u64).unwrap();
                    let got: BTreeSet<u64> = all.pfns().iter().map(|p| p.0).collect();
                    prop_assert_eq!(&got, &free, "draining did not hand out exactly the free frames");
                    prop_assert!(f.alloc(1).is_err());
                }
                _ => {}
            }
            // The pool agrees with the model, and its census is sound.
            let free = m.free();
            let st = f.lock();
            prop_assert_eq!(st.pool_free(), free.len());
            let view = st.free_view();
            for p in pool_frames() {
                prop_assert_eq!(view.contains(Pfn(p)), free.contains(&p), "frame {}", p);
            }
            let listed: BTreeSet<u64> = st.free_frames().map(|p| p.0).collect();
            prop_assert_eq!(&listed, &free);
            let c = st.pool_census();
            prop_assert!(c.leaked.is_empty() && c.free_but_used.is_empty(), "{:?}", c);
            prop_assert!(c.free_twice.is_empty() && c.foreign_free.is_empty(), "{:?}", c);
            prop_assert_eq!((c.total, c.free, c.used), (pool_frames().len(), free.len(), pool_frames().len() - free.len()));
        }
        // Everything comes back.
        drop(m);
        prop_assert_eq!(f.pool_free(), pool_frames().len());
    }
}

#[test]
fn freed_frames_are_handed_out_again_before_untouched_ones() {
    let f = pool();
    let a = f.alloc(5).unwrap();
    assert_eq!(a.pfns().as_ref(), &[Pfn(8), Pfn(9), Pfn(10), Pfn(11), Pfn(20)], "ascending, across the hole");
    drop(a);
    let b = f.alloc(6).unwrap();
    assert_eq!(b.pfns()[..5].iter().map(|p| p.0).collect::<BTreeSet<_>>(), (8..12).chain([20]).collect());
    assert_eq!(b.pfns()[5], Pfn(21));
}

#[test]
fn a_64_gib_pool_costs_no_host_memory_per_frame() {
    // 64 GiB of RAM frames, the pool all of it but the first 16 MiB, in
    // two regions around a 1 GiB hole. Nothing is ever written to guest
    // memory here: the pool needs none to be handed frames.
    const GIB: u64 = 1 << 30;
    let ram = 64 * GIB / PAGE_SIZE;
    let f = Frames::with_pool_regions(
        ram,
        &[(GuestAddress(16 << 20), 3 * GIB - (16 << 20)), (GuestAddress(4 * GIB), 60 * GIB)],
    )
    .unwrap();
    let st = f.lock();
    let empty = st.pool_host_bytes();
    assert_eq!(st.pool_total(), (63 * GIB - (16 << 20)) / PAGE_SIZE);
    assert_eq!(st.pool_free() as u64, st.pool_total());
    assert!(empty < 512, "an unused 63 GiB pool holds {empty} host bytes");
    drop(st);
    // Handing out and giving back 1000 frames costs about the frames.
    let pages: Vec<_> = (0..1000).map(|_| f.alloc(1).unwrap()).collect();
    let used = f.lock().pool_host_bytes();
    assert!(used < empty + 16 * 1024, "1000 owned frames hold {used} host bytes");
    drop(pages);
    let st = f.lock();
    assert!(st.pool_host_bytes() < empty + 16 * 1024);
    let c = st.pool_census();
    assert_eq!((c.free, c.used, c.total as u64), (st.pool_free(), 0, st.pool_total()));
    // And the last frame of the pool is reachable without materialising
    // the rest: a pin on a frame far above is refused while it is free.
    let last = Pfn(ram - 1);
    assert!(st.free_view().contains(last));
}

#[test]
fn census_of_a_large_pool_costs_the_frames_handed_out() {
    // A census over 16 Mi frames that walks only the ones handed out: it
    // would allocate 64 MiB if it kept a slot per pool frame.
    let f = Frames::with_pool_regions(1 << 24, &[(GuestAddress(0), (1 << 24) * PAGE_SIZE)]).unwrap();
    let held = f.alloc(3).unwrap();
    let pin = f.pin(Arc::from([held.pfns()[1]].as_slice())).unwrap();
    drop(held);
    let c = f.lock().pool_census();
    assert_eq!((c.total, c.free, c.used), (1 << 24, (1 << 24) - 1, 1));
    drop(pin);
    assert_eq!(f.pool_free(), 1 << 24);
}
