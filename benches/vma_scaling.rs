//! Criterion bench of item 10 of the throughput suite: one-page mmap
//! (top-down placement), munmap, mprotect and lookup at 10 and 100,000
//! VMAs. Same workload as `vmm bench` (`vmm_bench::host::vma_scaling`):
//! each call timed on its own, results checked after the timed loop.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vmm_bench::host::vma_scaling::{sample, Pick, Populated};

fn item10(c: &mut Criterion) {
    let ops: [(&str, Pick); 5] = [
        ("mmap", |s| s.mmap),
        ("munmap", |s| s.munmap),
        ("mprotect", |s| s.mprotect),
        ("lookup", |s| s.lookup),
        ("lookup_spread", |s| s.lookup_spread),
    ];
    for n in [10, 100_000] {
        let mut p = Populated::new(n).expect("populate");
        let mut g = c.benchmark_group(format!("vma_scaling_{n}"));
        for (id, f) in ops {
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let s = sample(&mut p, iters.max(2) as usize).expect("sample");
                    Duration::from_nanos((f(&s) * iters as f64) as u64)
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, item10);
criterion_main!(benches);
