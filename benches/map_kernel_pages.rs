//! Criterion benches of items 1 and 4 of the throughput suite: 262,144
//! scattered 4 KiB frames mapped with map-kernel-pages through the full
//! public pipeline (prepare, VMA, complete), beside its floors and peers,
//! and the batch-size sweep.
//!
//! The workloads are `vmm_bench::host`'s, the same code `vmm bench` runs;
//! each returns the time of its measured part only, so setup and teardown
//! (building the fixture, unmapping after a map) stay outside the clock
//! (`iter_custom`). Every sample also checks the entry and table counts
//! and, with an independent walk, a sample of the entries.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmm_bench::host::fixture::{Fixture, PAGES};
use vmm_bench::host::kernel_pages::{insert_page_by_page, map_in_batches, ArrayProvider};
use vmm_bench::host::{floor, memfd_peer, x86_64_peer, SWEEP};

/// Sums `iters` samples of a workload that times itself.
fn timed(iters: u64, mut sample: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| sample()).sum()
}

fn item1(c: &mut Criterion) {
    let mut fx = Fixture::new().expect("fixture");
    let provider = ArrayProvider(fx.array.clone());
    let memfd = memfd_peer::FilledMemfd::new(PAGES).expect("memfd");

    let mut g = c.benchmark_group("map_kernel_pages_262144");
    g.throughput(Throughput::Elements(PAGES));
    g.sample_size(30);
    g.bench_function("ours_full_pipeline", |b| {
        b.iter_custom(|n| timed(n, || map_in_batches(&mut fx, &provider, PAGES).expect("map")))
    });
    g.bench_function("floor_store_entries", |b| {
        b.iter_custom(|n| timed(n, || floor::store_entries(&fx).expect("floor")))
    });
    g.bench_function("peer_x86_64_map_to_per_page", |b| {
        b.iter_custom(|n| timed(n, || x86_64_peer::map_to_per_page(&fx).expect("x86_64 peer")))
    });
    g.bench_function("peer_host_memfd_map_populate", |b| {
        b.iter_custom(|n| timed(n, || memfd.populate_and_unmap().expect("memfd").0))
    });
    g.sample_size(10);
    g.bench_function("peer_insert_pages_one_page_per_call", |b| {
        b.iter_custom(|n| timed(n, || insert_page_by_page(&mut fx).expect("insert")))
    });
    g.bench_function("ours_one_page_per_call", |b| {
        b.iter_custom(|n| timed(n, || map_in_batches(&mut fx, &provider, 1).expect("map")))
    });
    g.finish();

    let mut g = c.benchmark_group("batch_sweep");
    g.throughput(Throughput::Elements(PAGES));
    g.sample_size(10);
    for batch in SWEEP {
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_custom(|n| timed(n, || map_in_batches(&mut fx, &provider, batch).expect("map")))
        });
    }
    g.finish();
}

criterion_group!(benches, item1);
criterion_main!(benches);
