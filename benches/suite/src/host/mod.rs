//! The host-side suite (items 1–4 and 10): the mapper against its floor and peers
//! on plain guest memory, no guest running.
//!
//! Ours and every peer are measured in the same repetition, one after the
//! other, so a ratio is formed from two numbers taken seconds apart on the
//! same machine state. The workloads are public so the criterion benches
//! in `benches/` run exactly the same code.

pub mod fixture;
pub mod floor;
pub mod kernel_pages;
pub mod map_unmap;
pub mod memfd_peer;
pub mod remap;
pub mod shootdown;
pub mod verify;
pub mod vma_scaling;
pub mod vma_scaling_host;
#[cfg(feature = "x86_64-peer")]
pub mod x86_64_peer;

use std::time::Duration;

use fixture::{Fixture, PAGES};
use kernel_pages::ArrayProvider;

use super::error::BenchError;
use super::figure::{Bound, Figure, RatioKind, Unit};
use super::progress::Progress;

/// Batch sizes of item 4 (pages per call).
pub const SWEEP: [u64; 5] = [1, 8, 64, 512, 4096];

/// Steps `run` reports to the progress bar.
pub fn steps(reps: usize) -> u64 {
    let per_rep = map_unmap::STEPS_PER_REP + SWEEP.len() + remap::cases().len() + 1;
    (reps * per_rep) as u64
}

fn ns_per_page(d: Duration) -> f64 {
    d.as_nanos() as f64 / PAGES as f64
}

fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

/// Runs `f` twice and returns the second result (a warm run).
fn twice<T>(mut f: impl FnMut() -> Result<T, BenchError>) -> Result<T, BenchError> {
    f()?;
    f()
}

/// Runs items 1–4 and 10 with `reps` repetitions each; `kvm` says whether a VM
/// can be made (for the munmap figure with the VMM's TLB shootdown).
pub fn run(reps: usize, kvm: bool, progress: &mut Progress) -> Result<Vec<Figure>, BenchError> {
    let mut fx = Fixture::new()?;
    let provider = ArrayProvider(fx.array.clone());
    let shootdown = if kvm {
        Some(shootdown::HostShootdown::new()?)
    } else {
        progress.stage("3: no usable KVM: the munmap figure with the VMM's TLB shootdown is left out");
        None
    };
    let mut figures = map_unmap::run(&mut fx, &provider, shootdown.as_ref(), reps, progress)?;

    // Item 4: pages per call, each repetition paired with the floor.
    for batch in SWEEP {
        progress.stage(&format!("4: batch sweep, {batch} pages per call"));
        // As in item 1: an unrecorded warm-up repetition, and each
        // workload's second (warm) run, so the floor is not measured in
        // the wake of our untimed teardown of up to 262,144 VMAs.
        let (mut ours, mut floor) = (vec![], vec![]);
        for rep in 0..=reps {
            let o = ns_per_page(twice(|| kernel_pages::map_in_batches(&mut fx, &provider, batch))?);
            let f = ns_per_page(twice(|| floor::store_entries(&fx))?);
            if rep > 0 {
                ours.push(o);
                floor.push(f);
                progress.inc();
            }
        }
        figures.push(
            Figure::new(
                4,
                &format!("sweep.batch_{batch}"),
                &format!("map-kernel-pages, {batch} pages per call (262,144 pages)"),
                Unit::NsPerPage,
                ours,
            )?
            .vs("floor: plain 8-byte stores", floor, RatioKind::Times)?
            .detail("pages_per_call", batch as f64),
        );
    }

    // Item 2: remaps, each checked against the independent minimum.
    for case in remap::cases() {
        progress.stage(&format!("2: remap {}", case.title));
        let min = remap::minimum(case.va, case.pa, case.len);
        // Several calls per repetition (about a million entries' worth, at
        // least one), each timed on its own: the mean smooths the clock's
        // resolution, but a call of 0.4 µs still carries the clock reads'
        // own cost (tens of ns) in its figure.
        let calls = (1u64 << 20).div_ceil(min.entries).clamp(1, 256) as u32;
        let mut times = vec![];
        let mut last = None;
        for _ in 0..reps {
            let s = remap::sample(&mut fx, &case, calls)?;
            times.push(us(s.per_call));
            last = Some(s);
            progress.inc();
        }
        let s = last.ok_or_else(|| BenchError::NoSamples(case.id.into()))?;
        let mut f =
            Figure::new(2, &format!("remap.{}", case.id), &format!("io remap {}", case.title), Unit::Us, times)?
                .detail("entries_written", s.entries as f64)
                .detail("entries_minimum", min.entries as f64)
                .detail("tables_allocated", s.tables as f64)
                .detail("tables_minimum", min.tables as f64)
                .target_detail("entries_written", Bound::Equal(min.entries as f64), "writes the minimum entry count")
                .target_detail("tables_allocated", Bound::Equal(min.tables as f64), "allocates the minimum tables");
        if case.id == "aligned_1g" {
            f = f.note("one 1 GiB leaf; the only table allocated is the PDPT that holds it (no leaf table)");
        }
        figures.push(f);
    }

    // Item 10: VMA-count scaling.
    figures.extend(vma_scaling::run(reps, progress)?);
    Ok(figures)
}
