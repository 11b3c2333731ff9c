//! Criterion benchmarks of the batched insertion path: 262,144 scattered
//! 4 KiB frames mapped with map-kernel-pages through the full public
//! pipeline (prepare, VMA, complete), and an aligned 1 GiB remap.
//!
//! Setup (guest memory, the page array, unmapping after each run) is kept
//! outside the timed part with `iter_custom`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use guest_mm::{MmError, MmapProvider, MmapRequest, PageArray, Pfn, VmFlags, VmaDesc, PAGE_SIZE};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_suite::fixture::{space_over, Layout};

const PAGES: u64 = 262_144;

/// RAM large enough for 262,144 distinct frames (the memory is mapped
/// lazily; only page-table pages are touched).
const BIG: Layout = Layout {
    ram: 2 << 30,
    tables: (1900 << 20, 64 << 20),
    pool: (1800 << 20, 4 << 20),
    huge: (1024 << 20, 512 << 20),
    window: (64 << 30, 80 << 30),
};

struct Array(PageArray);
impl MmapProvider for Array {
    fn name(&self) -> &str {
        "array"
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_map_kernel_pages_full(self.0.clone());
        Ok(())
    }
}

struct Window;
impl MmapProvider for Window {
    fn name(&self) -> &str {
        "window"
    }
    fn align(&self) -> u64 {
        1 << 30
    }
    fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
        d.mmap_action_ioremap_full(Pfn((4 << 30) / PAGE_SIZE));
        Ok(())
    }
}

/// A fixed pseudo-random permutation of frames 0x10000.. (xorshift).
fn scattered() -> Vec<Pfn> {
    let mut v: Vec<Pfn> = (0..PAGES).map(|i| Pfn(0x10000 + i)).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn bench(c: &mut Criterion) {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), BIG.ram as usize)]).expect("memory");
    let mut space = space_over(mem, &BIG);
    let array = Array(PageArray::new(scattered().into()));
    let req = MmapRequest::shared(PAGES * PAGE_SIZE, VmFlags::READ | VmFlags::WRITE);

    let mut g = c.benchmark_group("map_kernel_pages");
    g.throughput(Throughput::Elements(PAGES));
    g.sample_size(30);
    g.bench_function("262144_scattered_pages_full_pipeline", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let m = space.mmap(&array, &req).expect("map");
                total += t.elapsed();
                m.flush.ignore();
                space.munmap(m.addr, PAGES * PAGE_SIZE).expect("unmap").ignore();
            }
            total
        })
    });
    // Floors on plain host memory, same run: storing the entries alone, and
    // bumping a u32 count per scattered frame alone.
    let frames: Vec<Pfn> = array.0.as_slice().to_vec();
    let mut entries = vec![0u64; PAGES as usize];
    g.bench_function("floor_store_entries", |b| {
        b.iter(|| {
            for (e, p) in entries.iter_mut().zip(&frames) {
                *e = (p.0 << 12) | 0x867;
            }
            std::hint::black_box(&mut entries);
        })
    });
    let mut counts = vec![0u32; (BIG.ram / PAGE_SIZE) as usize];
    g.bench_function("floor_count_scattered_frames", |b| {
        b.iter(|| {
            for p in &frames {
                if let Some(c) = counts.get_mut(p.0 as usize) {
                    *c = c.wrapping_add(1);
                }
            }
            std::hint::black_box(&mut counts);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("remap");
    g.bench_function("aligned_1g_io_remap", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let m = space.mmap(&Window, &MmapRequest::shared(1 << 30, VmFlags::READ)).expect("map");
                total += t.elapsed();
                assert_eq!(m.stats.entries_written, 1);
                m.flush.ignore();
                space.munmap(m.addr, 1 << 30).expect("unmap").ignore();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
