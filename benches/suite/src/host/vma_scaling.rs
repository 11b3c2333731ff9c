//! Item 10: the cost of one operation against the number of VMAs.
//!
//! An address space is filled with `n` one-page VMAs packed at the top of
//! the placement window, alternating `READ|WRITE` and `READ|EXEC` so that
//! none merge (the way a guest ends up with many small mappings), for each
//! `n` of [`COUNTS`]. Filling happens before any timing, with fixed
//! placement. Then, on every space in the same repetition, each of these is
//! timed call by call (only the call between the clock reads):
//!
//! - `mmap` of one page with default (top-down) placement: it must land
//!   right below the packed VMAs, so a search that walks VMAs from the top
//!   visits all `n`;
//! - `munmap` of that page;
//! - `mprotect` of one VMA in the middle to `READ` and back (two calls,
//!   timed apart, neither merges);
//! - `find_vma` of the middle VMA's address, repeated as the others are
//!   (the path stays in the caches, so this shows the search's own cost),
//!   and of 64 addresses spread over all the VMAs, each visited in turn
//!   (at 100k VMAs their paths no longer fit in the L1 and L2 caches, so
//!   this adds the memory hierarchy); one timed region per 64 lookups.
//!   The first pass over them (the first touch since the rest of the
//!   repetition ran) and the later passes are also reported apart;
//! - the same 64 lookups once more right after sweeping 64 MiB through
//!   the caches and TLBs (cold, under control), beside a floor measured the
//!   same way: reading the `end` of 64 other VMAs through references taken
//!   before the sweep, which is what any index must at least touch to hand
//!   out a VMA (the VMAs are over 100 bytes each: 12 MiB at 100k).
//!
//! Every result is kept in a preallocated buffer and checked after the
//! timed loop: the address each `mmap` returned, the VMA each lookup found,
//! the VMA count afterwards. The host kernel does the same `mmap` and
//! `munmap` beside ours ([`super::vma_scaling_host`]).
//!
//! What it does not measure: page-table work (the VMAs map nothing, so the
//! tree is all there is to scale).

use std::hint::black_box;
use std::time::{Duration, Instant};

use guest_mm::{AddressSpace, MmError, MmapProvider, MmapRequest, SpaceConfig, VmFlags, VmaDesc, PAGE_SIZE};
use vm_memory::GuestAddress;

use super::fixture::{va, Mem};
use super::vma_scaling_host::{max_map_count, HostVmas};
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use crate::progress::Progress;

/// VMA counts measured.
pub const COUNTS: [usize; 4] = [10, 1_000, 10_000, 100_000];
/// Calls of each operation per repetition and count.
pub const CALLS: usize = 400;
/// Addresses one timed lookup region visits.
pub const LOOKUPS: usize = 64;
/// Bytes swept before a cold pass: more than the last-level cache here
/// (32 MiB) and than the TLBs reach.
const EVICT: usize = 64 << 20;

/// Guest RAM of a scaling space (only the root table is ever written).
const RAM: u64 = 16 << 20;
/// Page-table region inside it.
const TABLES: (u64, u64) = (8 << 20, 4 << 20);
/// The placement window: 64 GiB to 80 GiB, as in the other host items.
pub const WINDOW: (u64, u64) = (64 << 30, 80 << 30);

/// A provider that maps nothing: the VMA is all there is.
pub struct NothingProvider;

impl MmapProvider for NothingProvider {
    fn name(&self) -> &str {
        "bench-nothing"
    }
    fn mmap_prepare(&self, _desc: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// The protection of populated VMA `i` (alternating, so none merge).
fn prot_of(i: usize) -> VmFlags {
    if i % 2 == 0 {
        VmFlags::READ | VmFlags::WRITE
    } else {
        VmFlags::READ | VmFlags::EXEC
    }
}

/// An address space holding `n` packed one-page VMAs at the top of the
/// window: VMA `i` is at `WINDOW.1 - (i + 1) pages`.
pub struct Populated {
    /// The space.
    pub space: AddressSpace<Mem>,
    /// Its VMA count.
    pub n: usize,
}

impl Populated {
    /// Builds the space and maps its `n` VMAs (fixed placement).
    pub fn new(n: usize) -> Result<Populated, BenchError> {
        let mem = Mem::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .map_err(|e| BenchError::Check(format!("guest memory for the scaling item: {e}")))?;
        let mut cfg = SpaceConfig::new((GuestAddress(TABLES.0), TABLES.1));
        cfg.mmap_window = (va(WINDOW.0)?, va(WINDOW.1)?);
        // The VMA-count limit (vm.max_map_count, default 65530) is raised
        // to leave room for the timed one-page mappings above `n`.
        cfg.max_map_count = cfg.max_map_count.max(n + 16);
        let mut space = AddressSpace::new(mem, cfg).map_err(BenchError::mm("scaling address space"))?;
        for i in 0..n {
            let req = MmapRequest::private(PAGE_SIZE, prot_of(i)).fixed(va(Self::vma_start(i))?);
            let m = space.mmap(&NothingProvider, &req).map_err(BenchError::mm("populating VMAs"))?;
            m.flush.ignore();
        }
        let got = space.stats().vmas;
        if got != n {
            return Err(BenchError::Check(format!("populated {got} VMAs, wanted {n}")));
        }
        Ok(Populated { space, n })
    }

    /// Start of populated VMA `i`.
    pub fn vma_start(i: usize) -> u64 {
        WINDOW.1 - (i as u64 + 1) * PAGE_SIZE
    }

    /// Where a one-page top-down mmap must land: right below them all.
    pub fn next_free(&self) -> u64 {
        Self::vma_start(self.n)
    }
}

/// Mean time per call of each operation in one repetition, in ns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// One-page default-placement mmap.
    pub mmap: f64,
    /// munmap of that page.
    pub munmap: f64,
    /// mprotect of one VMA (either direction).
    pub mprotect: f64,
    /// One `find_vma` of the same address each time.
    pub lookup: f64,
    /// One `find_vma` of 64 spread addresses in turn.
    pub lookup_spread: f64,
    /// The first of the spread passes.
    pub spread_first: f64,
    /// The spread passes after the first.
    pub spread_later: f64,
    /// The spread lookups right after an [`EVICT`] sweep.
    pub spread_cold: f64,
    /// The floor (reading 64 other VMAs) right after an [`EVICT`] sweep.
    pub floor_cold: f64,
    /// The floor, warm (passes after the cold one).
    pub floor_warm: f64,
    /// An empty timed region (the two clock reads).
    pub clock: f64,
}

/// Touches every cache line of `buf` (evicting the caches and TLBs).
fn sweep(buf: &mut [u8]) {
    for b in buf.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(buf);
}

/// Picks one operation's figure from a sample.
pub type Pick = fn(&Sample) -> f64;

fn ns(d: Duration, calls: usize) -> f64 {
    d.as_nanos() as f64 / calls as f64
}

/// Times `calls` of each operation on `p`; results checked afterwards.
pub fn sample(p: &mut Populated, calls: usize) -> Result<Sample, BenchError> {
    let want = p.next_free();
    let space = &mut p.space;
    let req = MmapRequest::private(PAGE_SIZE, VmFlags::READ);
    let mut placed = vec![0u64; calls];
    let (mut t_map, mut t_unmap) = (Duration::ZERO, Duration::ZERO);
    for slot in placed.iter_mut() {
        let t = Instant::now();
        let m = space.mmap(&NothingProvider, &req);
        t_map += t.elapsed();
        let m = m.map_err(BenchError::mm("timed mmap"))?;
        m.flush.ignore();
        *slot = m.addr.raw();
        let t = Instant::now();
        let f = space.munmap(m.addr, PAGE_SIZE);
        t_unmap += t.elapsed();
        f.map_err(BenchError::mm("timed munmap"))?.ignore();
    }
    // mprotect the middle VMA to READ and back: neighbours differ, so the
    // VMA count never changes.
    let mid = p.n / 2;
    let mid_va = va(Populated::vma_start(mid))?;
    let mut t_prot = Duration::ZERO;
    for _ in 0..calls / 2 {
        for prot in [VmFlags::READ, prot_of(mid)] {
            let t = Instant::now();
            let f = space.mprotect(mid_va, PAGE_SIZE, prot);
            t_prot += t.elapsed();
            f.map_err(BenchError::mm("timed mprotect"))?.ignore();
        }
    }
    // Lookups: LOOKUPS addresses spread over the VMAs, mid-page.
    let addrs: Vec<guest_mm::GuestVirtAddr> =
        (0..LOOKUPS).map(|j| va(Populated::vma_start(j * p.n / LOOKUPS) + PAGE_SIZE / 2)).collect::<Result<_, _>>()?;
    let mut found = vec![0u64; LOOKUPS];
    let mut t_look = Duration::ZERO;
    let rounds = calls.div_ceil(LOOKUPS).max(1);
    let mut found_mid = vec![0u64; LOOKUPS];
    let mid_in = va(mid_va.raw() + PAGE_SIZE / 2)?;
    let mut t_mid = Duration::ZERO;
    for _ in 0..rounds {
        let t = Instant::now();
        for out in found_mid.iter_mut() {
            *out = black_box(space.find_vma(black_box(mid_in))).map_or(0, |v| v.start().raw());
        }
        t_mid += t.elapsed();
    }
    let mut t_first = Duration::ZERO;
    for r in 0..rounds {
        let t = Instant::now();
        for (a, out) in addrs.iter().zip(found.iter_mut()) {
            *out = black_box(space.find_vma(black_box(*a))).map_or(0, |v| v.start().raw());
        }
        let d = t.elapsed();
        t_look += d;
        if r == 0 {
            t_first = d;
        }
    }
    // Cold passes after a sweep: the floor first (64 other VMAs, half a
    // stride away: no line or page shared with the lookups' VMAs at
    // 1,000 VMAs and more), then the same lookups.
    let other = |j: usize| (j * p.n / LOOKUPS + p.n / (2 * LOOKUPS)) % p.n;
    let refs: Vec<&guest_mm::Vma> = (0..LOOKUPS)
        .map(|j| {
            let a = va(Populated::vma_start(other(j)) + PAGE_SIZE / 2)?;
            space.find_vma(a).ok_or_else(|| BenchError::Check(format!("{} VMAs: no VMA at {:#x}", p.n, a.raw())))
        })
        .collect::<Result<_, _>>()?;
    let mut buf = vec![1u8; EVICT];
    let mut floor_ends = vec![0u64; LOOKUPS];
    sweep(&mut buf);
    let t = Instant::now();
    for (v, out) in refs.iter().zip(floor_ends.iter_mut()) {
        *out = black_box(*v).end();
    }
    let t_floor_cold = t.elapsed();
    let mut t_floor_warm = Duration::ZERO;
    for _ in 1..rounds {
        let t = Instant::now();
        for (v, out) in refs.iter().zip(floor_ends.iter_mut()) {
            *out = black_box(*v).end();
        }
        t_floor_warm += t.elapsed();
    }
    let mut found_cold = vec![0u64; LOOKUPS];
    sweep(&mut buf);
    let t = Instant::now();
    for (a, out) in addrs.iter().zip(found_cold.iter_mut()) {
        *out = black_box(space.find_vma(black_box(*a))).map_or(0, |v| v.start().raw());
    }
    let t_cold = t.elapsed();
    drop(buf);
    let mut t_clock = Duration::ZERO;
    for _ in 0..calls {
        let t = Instant::now();
        t_clock += black_box(t).elapsed();
    }

    // Checks, after timing.
    if let Some(bad) = placed.iter().find(|&&a| a != want) {
        return Err(BenchError::Check(format!("{} VMAs: mmap placed at {bad:#x}, expected {want:#x}", p.n)));
    }
    if let Some(bad) = found_mid.iter().find(|&&a| a != mid_va.raw()) {
        return Err(BenchError::Check(format!("{} VMAs: lookup of the middle VMA found {bad:#x}", p.n)));
    }
    for (a, (got, cold)) in addrs.iter().zip(found.iter().zip(&found_cold)) {
        let want = a.raw() - PAGE_SIZE / 2;
        if *got != want || *cold != want {
            return Err(BenchError::Check(format!(
                "{} VMAs: lookup of {:#x} found {got:#x} (cold: {cold:#x})",
                p.n,
                a.raw()
            )));
        }
    }
    for (j, end) in floor_ends.iter().enumerate() {
        let want = Populated::vma_start(other(j)) + PAGE_SIZE;
        if *end != want {
            return Err(BenchError::Check(format!("{} VMAs: floor read end {end:#x}, expected {want:#x}", p.n)));
        }
    }
    let v = space.find_vma(mid_va).map(|v| (v.start().raw(), v.end(), v.flags() & guest_mm::VM_ACCESS_FLAGS));
    if v != Some((mid_va.raw(), mid_va.raw() + PAGE_SIZE, prot_of(mid))) {
        return Err(BenchError::Check(format!("{} VMAs: the mprotected VMA is {v:x?}", p.n)));
    }
    if space.stats().vmas != p.n {
        return Err(BenchError::Check(format!("{} VMAs: {} after the timed calls", p.n, space.stats().vmas)));
    }
    Ok(Sample {
        mmap: ns(t_map, calls),
        munmap: ns(t_unmap, calls),
        mprotect: ns(t_prot, (calls / 2) * 2),
        lookup: ns(t_mid, rounds * LOOKUPS),
        lookup_spread: ns(t_look, rounds * LOOKUPS),
        spread_first: ns(t_first, LOOKUPS),
        spread_later: ns(t_look - t_first, (rounds - 1).max(1) * LOOKUPS),
        spread_cold: ns(t_cold, LOOKUPS),
        floor_cold: ns(t_floor_cold, LOOKUPS),
        floor_warm: ns(t_floor_warm, (rounds - 1).max(1) * LOOKUPS),
        clock: ns(t_clock, calls),
    })
}

/// Runs item 10 with `reps` recorded repetitions (after one warm-up).
pub fn run(reps: usize, progress: &mut Progress) -> Result<Vec<Figure>, BenchError> {
    progress.stage("10: mmap/munmap/mprotect/lookup at 10 to 100k VMAs, beside the host kernel");
    let mut spaces: Vec<Populated> = COUNTS.iter().map(|&n| Populated::new(n)).collect::<Result<_, _>>()?;
    let cap = max_map_count();
    // ours[count index][rep], host likewise. The host process holds one
    // count's extra VMAs at a time (made and dropped around its sample).
    let mut ours: Vec<Vec<Sample>> = vec![Vec::new(); COUNTS.len()];
    let mut host: Vec<Vec<(f64, f64)>> = vec![Vec::new(); COUNTS.len()];
    let mut host_n = COUNTS;
    for rep in 0..=reps {
        for (i, p) in spaces.iter_mut().enumerate() {
            let s = sample(p, CALLS)?;
            let h = HostVmas::new(COUNTS[i])?;
            let hs = h.sample(CALLS)?;
            host_n[i] = h.n;
            drop(h);
            if rep > 0 {
                ours[i].push(s);
                host[i].push(hs);
            }
        }
        if rep > 0 {
            progress.inc();
        }
    }
    let last = COUNTS.len() - 1;
    let (lo_n, hi_n) = (COUNTS[0], COUNTS[last]);
    let col = |v: &[Sample], f: fn(&Sample) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let med = |v: Vec<f64>| crate::stats::Stat::of(&v).map_or(f64::NAN, |s| s.median);
    let clock = med(col(&ours[0], |s| s.clock));
    let mut figures = Vec::new();
    let ops: [(&str, &str, Pick); 5] = [
        ("mmap", "one-page mmap, default (top-down) placement", |s| s.mmap),
        ("munmap", "munmap of that page", |s| s.munmap),
        ("mprotect", "mprotect of one VMA (no split, no merge)", |s| s.mprotect),
        ("lookup", "find_vma of one address, repeated", |s| s.lookup),
        ("lookup_spread", "find_vma of 64 addresses spread over the VMAs, in turn", |s| s.lookup_spread),
    ];
    for (id, what, f) in ops {
        let mut fig = Figure::new(
            10,
            &format!("vma_scaling.{id}"),
            &format!("{what}, at {hi_n} VMAs vs at {lo_n}"),
            Unit::Ns,
            col(&ours[last], f),
        )?
        .vs(&format!("ours at {lo_n} VMAs"), col(&ours[0], f), RatioKind::Times)?
        .target_ratio(Bound::AtMost(2.0), &format!("at {hi_n} VMAs within 2× of {lo_n}"));
        for (i, &n) in COUNTS.iter().enumerate() {
            fig = fig.detail(&format!("ns_at_{n}"), med(col(&ours[i], f)));
        }
        fig = fig.detail("clock_read_ns", clock);
        if id == "lookup_spread" {
            let parts: [(&str, Pick); 5] = [
                ("first_pass", |s| s.spread_first),
                ("later_passes", |s| s.spread_later),
                ("cold", |s| s.spread_cold),
                ("floor_cold", |s| s.floor_cold),
                ("floor_warm", |s| s.floor_warm),
            ];
            for (name, g) in parts {
                for (i, &n) in COUNTS.iter().enumerate() {
                    fig = fig.detail(&format!("{name}_ns_at_{n}"), med(col(&ours[i], g)));
                }
            }
            let m = |i: usize, g: Pick| med(col(&ours[i], g));
            fig = fig.note(format!(
                "at {hi_n} VMAs: first pass {:.1} ns, later passes {:.1} ns (at {lo_n}: {:.1}, {:.1}); after a 64 MiB \
                 sweep the lookups take {:.1} ns and reading 64 other VMAs alone (the floor) {:.1} ns ({:.1}× at \
                 {hi_n}; floor warm {:.1} ns)",
                m(last, |s| s.spread_first),
                m(last, |s| s.spread_later),
                m(0, |s| s.spread_first),
                m(0, |s| s.spread_later),
                m(last, |s| s.spread_cold),
                m(last, |s| s.floor_cold),
                m(last, |s| s.spread_cold) / m(last, |s| s.floor_cold),
                m(last, |s| s.floor_warm),
            ));
        }
        figures.push(fig);
    }
    // The host kernel at the same counts (capped).
    let hcol = |i: usize, m: bool| host[i].iter().map(|&(a, b)| if m { a } else { b }).collect::<Vec<f64>>();
    let cap_note = match cap {
        Some(c) => format!(
            "host VMAs capped by vm.max_map_count = {c} (not changed): the host measured {} extra VMAs where ours \
             has {hi_n}",
            host_n[last]
        ),
        None => "vm.max_map_count unreadable; host counts as made".to_string(),
    };
    for (id, m) in [("mmap", true), ("munmap", false)] {
        let mut fig = Figure::new(
            10,
            &format!("vma_scaling.{id}_vs_host"),
            &format!("one-page {id} at {hi_n} VMAs, ours vs the host kernel at its most VMAs"),
            Unit::Ns,
            col(&ours[last], if m { |s: &Sample| s.mmap } else { |s: &Sample| s.munmap }),
        )?
        .vs(&format!("host Linux {id} at {} extra VMAs", host_n[last]), hcol(last, m), RatioKind::Speedup)?;
        for (i, n) in host_n.iter().enumerate() {
            fig = fig.detail(&format!("host_ns_at_{n}"), med(hcol(i, m)));
        }
        figures.push(
            fig.detail("host_ratio_most_vs_fewest", med(hcol(last, m)) / med(hcol(0, m)))
                .detail("host_vmas_most", host_n[last] as f64)
                .note(cap_note.clone()),
        );
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_space_samples_and_checks() {
        let mut p = Populated::new(10).expect("populate");
        let s = sample(&mut p, 8).expect("sample");
        assert!(s.mmap > 0.0 && s.lookup > 0.0);
        assert_eq!(p.space.stats().vmas, 10);
    }
}
