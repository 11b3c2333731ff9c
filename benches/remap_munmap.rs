//! Criterion benches of items 2 and 3 of the throughput suite: remapping a
//! contiguous range (aligned and not, up to 1 GiB) and the munmap of item
//! 1's 262,144-page range. Same workloads as `vmm bench`
//! (`vmm_bench::host`); only the measured call is timed, and each sample
//! checks the entries and tables against the independent minimum.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vmm_bench::host::fixture::Fixture;
use vmm_bench::host::kernel_pages::{unmap_whole, ArrayProvider};
use vmm_bench::host::remap;

fn item2(c: &mut Criterion) {
    let mut fx = Fixture::new().expect("fixture");
    let mut g = c.benchmark_group("remap");
    for case in remap::cases() {
        let min = remap::minimum(case.va, case.pa, case.len);
        g.bench_function(case.id, |b| {
            b.iter_custom(|n| {
                let s = remap::sample(&mut fx, &case, n as u32).expect("remap");
                assert_eq!((s.entries, s.tables), (min.entries, min.tables), "{}", case.title);
                s.per_call * n as u32
            })
        });
    }
    g.finish();
}

fn item3(c: &mut Criterion) {
    let mut fx = Fixture::new().expect("fixture");
    let provider = ArrayProvider(fx.array.clone());
    let mut g = c.benchmark_group("munmap");
    g.sample_size(20);
    g.bench_function("262144_scattered_pages", |b| {
        b.iter_custom(|n| {
            (0..n).map(|_| unmap_whole(&mut fx, &provider, None).expect("munmap").elapsed).sum::<Duration>()
        })
    });
    g.finish();
}

criterion_group!(benches, item2, item3);
criterion_main!(benches);
