//! Items 1 and 3: map-kernel-pages of 262,144 scattered frames and the
//! munmap of that range, against the store floor and the peers, warm and
//! cold, in one pass of repetitions.
//!
//! Ours and every peer are measured in the same repetition, one after the
//! other. Three groups of repetitions, each with its own measurement of
//! ours: (a) the light ones (the floor, the `x86_64` crate, our munmap,
//! pinning), all gentle on the caches; (b) the heavy ones (262,144 calls,
//! the host kernel's 1 GiB memfd, the shootdown's KVM ioctls), which leave
//! caches, TLBs and the host kernel disturbed for whatever follows
//! (measured: the store floor 0.55 → 0.89 ns/page right after the memfd
//! peer); (c) cold runs, each on a fresh fixture (guest memory not yet
//! touched, as at launch). In (a) and (b) each workload runs twice and its
//! second (warm) run is kept, after one unrecorded warm-up repetition.

use std::time::Duration;

use super::fixture::{Fixture, PAGES};
use super::kernel_pages::{self, ArrayProvider};
use super::shootdown::HostShootdown;
use super::{floor, memfd_peer, remap};
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use crate::progress::Progress;

/// Steps [`run`] reports per repetition.
pub const STEPS_PER_REP: usize = 3;

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

#[cfg(feature = "x86_64-peer")]
fn x86(fx: &Fixture) -> Result<Option<f64>, BenchError> {
    Ok(Some(ns_per_page(super::x86_64_peer::map_to_per_page(fx)?)))
}

#[cfg(not(feature = "x86_64-peer"))]
fn x86(_fx: &Fixture) -> Result<Option<f64>, BenchError> {
    Ok(None)
}

/// The samples of the three groups.
#[derive(Default)]
struct Samples {
    ours_a: Vec<f64>,
    floor: Vec<f64>,
    x86: Vec<f64>,
    unmap_pp: Vec<f64>,
    pin: Vec<f64>,
    unpin: Vec<f64>,
    ours_b: Vec<f64>,
    per_page: Vec<f64>,
    insert_each: Vec<f64>,
    host: Vec<f64>,
    unmap: Vec<f64>,
    unmap_shot: Vec<f64>,
    shot_only: Vec<f64>,
    host_unmap: Vec<f64>,
    detail: kernel_pages::UnmapSample,
    cold_ours: Vec<f64>,
    cold_floor: Vec<f64>,
    cold_x86: Vec<f64>,
}

/// Measures items 1 and 3 and returns their figures.
pub fn run(
    fx: &mut Fixture,
    provider: &ArrayProvider,
    shootdown: Option<&HostShootdown>,
    reps: usize,
    progress: &mut Progress,
) -> Result<Vec<Figure>, BenchError> {
    let memfd = memfd_peer::FilledMemfd::new(PAGES)?;
    let mut s = Samples::default();
    progress.stage("1+3: map-kernel-pages and munmap vs the store floor and the x86_64 crate");
    for rep in 0..=reps {
        let o = ns_per_page(twice(|| kernel_pages::map_in_batches(fx, provider, PAGES))?);
        let f = ns_per_page(twice(|| floor::store_entries(fx))?);
        let x = twice(|| x86(fx))?;
        let u = ns_per_page(twice(|| kernel_pages::unmap_whole(fx, provider, None))?.elapsed);
        let (p, up) = twice(|| kernel_pages::pin_and_unpin(fx))?;
        if rep > 0 {
            s.ours_a.push(o);
            s.floor.push(f);
            s.x86.extend(x);
            s.unmap_pp.push(u);
            s.pin.push(ns_per_page(p));
            s.unpin.push(ns_per_page(up));
            progress.inc();
        }
    }
    progress.stage("1+3: map-kernel-pages and munmap vs one-page-per-call paths and the host kernel");
    let shoot = |flush| shootdown.map_or(Ok(()), |sd| sd.flush(flush));
    for rep in 0..=reps {
        let o = ns_per_page(twice(|| kernel_pages::map_in_batches(fx, provider, PAGES))?);
        let pp = ns_per_page(twice(|| kernel_pages::map_in_batches(fx, provider, 1))?);
        let ip = ns_per_page(twice(|| kernel_pages::insert_page_by_page(fx))?);
        let (m, hu) = twice(|| memfd.populate_and_unmap())?;
        let plain = twice(|| kernel_pages::unmap_whole(fx, provider, None))?;
        let shot = match shootdown {
            Some(_) => Some(twice(|| kernel_pages::unmap_whole(fx, provider, Some(&shoot)))?),
            None => None,
        };
        if rep > 0 {
            s.ours_b.push(o);
            s.per_page.push(pp);
            s.insert_each.push(ip);
            s.host.push(ns_per_page(m));
            s.host_unmap.push(us(hu));
            s.unmap.push(us(plain.elapsed));
            if let Some(sh) = shot {
                s.unmap_shot.push(us(sh.elapsed + sh.shootdown.unwrap_or_default()));
                s.shot_only.push(us(sh.shootdown.unwrap_or_default()));
            }
            s.detail = plain;
            progress.inc();
        }
    }
    progress.stage("1: cold first runs, each on a fresh fixture");
    for _ in 0..reps {
        let cold = Fixture::new()?;
        let cold_provider = ArrayProvider(cold.array.clone());
        let mut cold = cold;
        s.cold_ours.push(ns_per_page(kernel_pages::map_in_batches(&mut cold, &cold_provider, PAGES)?));
        s.cold_floor.push(ns_per_page(floor::store_entries(&cold)?));
        s.cold_x86.extend(x86(&cold)?);
        progress.inc();
    }
    figures(s, shootdown.is_some())
}

fn figures(s: Samples, shot: bool) -> Result<Vec<Figure>, BenchError> {
    let title = "map-kernel-pages, 262,144 scattered 4 KiB frames, one call through the full pipeline";
    let floor_name = "floor: plain 8-byte stores into the same memory";
    let mut out = vec![
        Figure::new(1, "map_kernel_pages.vs_floor", title, Unit::NsPerPage, s.ours_a.clone())?
            .vs(floor_name, s.floor.clone(), RatioKind::Times)?
            .target_ratio(Bound::AtMost(1.5), "within 1.5× of the store floor"),
        Figure::new(1, "map_kernel_pages.vs_per_page_calls", title, Unit::NsPerPage, s.ours_b.clone())?
            .vs("our pipeline, one mmap call per page (262,144 VMAs)", s.per_page, RatioKind::Speedup)?
            .target_ratio(Bound::AtLeast(5.0), "at least 5× faster than one page per call"),
        Figure::new(1, "map_kernel_pages.vs_insert_page_each", title, Unit::NsPerPage, s.ours_b.clone())?
            .vs(
                "insert_pages one page per call in one mapping (vm_insert_page way: a walk from the root each)",
                s.insert_each,
                RatioKind::Speedup,
            )?
            .target_ratio(Bound::AtLeast(5.0), "at least 5× faster than one page per call"),
    ];
    out.push(if s.x86.is_empty() {
        Figure::new(1, "map_kernel_pages.vs_x86_64", title, Unit::NsPerPage, s.ours_a.clone())?
            .note("x86_64 crate peer not built (feature x86_64-peer off)")
    } else {
        Figure::new(1, "map_kernel_pages.vs_x86_64", title, Unit::NsPerPage, s.ours_a.clone())?
            .vs("x86_64 crate OffsetPageTable::map_to, one call per page", s.x86, RatioKind::Speedup)?
            .target_ratio(Bound::AtLeast(10.0), "at least 10× faster than x86_64 map_to")
    });
    out.push(Figure::new(1, "map_kernel_pages.vs_host_kernel", title, Unit::NsPerPage, s.ours_b)?.vs(
        "host Linux: mmap(MAP_SHARED|MAP_POPULATE) of a filled memfd",
        s.host,
        RatioKind::Speedup,
    )?);
    let cold_title = "map-kernel-pages, first run on a fresh fixture (guest memory untouched, as at launch)";
    out.push(
        Figure::new(1, "map_kernel_pages.cold_vs_floor", cold_title, Unit::NsPerPage, s.cold_ours.clone())?
            .vs("floor: plain stores, its first run on the same fresh fixture", s.cold_floor, RatioKind::Times)?
            .note("cold: both sides pay the host's first-touch faults of the pages they write"),
    );
    if !s.cold_x86.is_empty() {
        out.push(Figure::new(1, "map_kernel_pages.cold_vs_x86_64", cold_title, Unit::NsPerPage, s.cold_ours)?.vs(
            "x86_64 crate map_to per page, its first run on the same fresh fixture",
            s.cold_x86,
            RatioKind::Speedup,
        )?);
    }
    let pin_note = "paid once per page array, when it is made (pin) or its last holder drops it (unpin), not per \
                    mapping: every mapping of the array holds the one pin";
    out.push(
        Figure::new(
            1,
            "map_kernel_pages.pin_array",
            "pin 262,144 scattered frames (making a page array)",
            Unit::NsPerPage,
            s.pin,
        )?
        .vs(floor_name, s.floor.clone(), RatioKind::Times)?
        .note(pin_note),
    );
    out.push(
        Figure::new(
            1,
            "map_kernel_pages.unpin_array",
            "unpin 262,144 scattered frames (dropping a page array)",
            Unit::NsPerPage,
            s.unpin,
        )?
        .vs(floor_name, s.floor, RatioKind::Times)?
        .note(pin_note),
    );

    // Tables 262,144 4 KiB leaves need (a skewed physical start forces 4 KiB).
    let min_tables = remap::minimum(super::fixture::WINDOW.0, 4096, PAGES * 4096).tables as f64;
    let d = s.detail;
    out.push(
        Figure::new(
            3,
            "munmap.whole_range",
            "munmap of item 1's 262,144-page range, without the TLB shootdown",
            Unit::Us,
            s.unmap,
        )?
        .vs(
            "host Linux: munmap of the populated memfd mapping (its own TLB flush included)",
            s.host_unmap.clone(),
            RatioKind::Speedup,
        )?
        .detail("tables_freed", d.tables_freed as f64)
        .detail("tables_minimum", min_tables)
        .detail("flush_pages", d.flush_pages as f64)
        .detail("flush_ranges", d.flush_ranges as f64)
        .target_detail("tables_freed", Bound::Equal(min_tables), "frees every table the mapping needed"),
    );
    out.push(
        Figure::new(
            3,
            "munmap.vs_map_per_page",
            "munmap of item 1's range per page, without the shootdown",
            Unit::NsPerPage,
            s.unmap_pp,
        )?
        .vs("our map of the same range (item 1), same repetitions", s.ours_a, RatioKind::Times)?
        .target_ratio(Bound::AtMost(1.5), "munmap per page within 1.5× of the map per page"),
    );
    let shot_title = "munmap of item 1's range plus the VMM's TLB shootdown (KvmFlusher, one vCPU)";
    // Without KVM there is no VM to shoot down in: the figure is left out
    // and `run` says so in the progress output.
    if shot {
        out.push(
            Figure::new(3, "munmap.with_shootdown", shot_title, Unit::Us, s.unmap_shot)?
                .vs(
                    "host Linux: munmap of the populated memfd mapping (its own TLB flush included)",
                    s.host_unmap,
                    RatioKind::Speedup,
                )?
                .note(
                    "the shootdown is the VMM's KvmFlusher: KVM drops its shadow translations (the zap slot created \
                     and deleted); the caller's own invlpg NMI runs at its next entry and is in neither figure",
                ),
        );
        out.push(
            Figure::new(
                3,
                "munmap.shootdown_only",
                "the VMM's TLB shootdown alone (KvmFlusher after item 3's munmap, one vCPU)",
                Unit::Us,
                s.shot_only,
            )?
            .note(
                "two KVM_SET_USER_MEMORY_REGION calls (zap slot created, deleted); each waits for the host \
                 kernel's SRCU grace period, which takes tens of µs or several 4 ms ticks depending on the host",
            ),
        );
    }
    Ok(out)
}
