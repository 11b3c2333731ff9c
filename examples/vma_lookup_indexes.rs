//! The measurement behind the choice of `VmaTree`'s lookup index
//! (docs/guest-mm.md, "VMA lookup"): the tree's `find_vma` beside three
//! search structures holding the same VMAs, at 10 and 100,000 VMAs laid
//! out as in bench item 10 (one-page VMAs packed at the top of the
//! window). Run: `cargo run --release --example vma_lookup_indexes`.
//!
//! - `BTreeMap<u64, [u64; 16]>`: a 128-byte value per VMA in the nodes,
//!   as the tree kept its VMAs before;
//! - `BTreeMap<u64, (u64, u32)>`: only end and handle in the nodes;
//! - a sorted array of starts, binary search, ends beside it.
//!
//! Patterns, ns per lookup (64 lookups per timed region): one address
//! repeated; two addresses a third of the VMAs apart, alternating; 64
//! addresses spread over all VMAs, warm; the same right after sweeping
//! 64 MiB through the caches and TLBs. Every result is checked after
//! timing. The figures are for choosing, not targets: `vmm bench` item 10
//! is the measurement of record.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use guest_mm::{GuestVirtAddr, PAGE_SIZE};
use vmm_bench::host::vma_scaling::Populated;

/// Lookups per timed region.
const LOOKUPS: usize = 64;

/// Median over `rounds` timed regions of the ns per lookup of `addrs`
/// (cycled to 64), a 64 MiB sweep before each region when `cold` (the
/// median, so that a preemption on a shared machine does not count);
/// every result checked.
fn time(addrs: &[u64], rounds: usize, cold: bool, mut f: impl FnMut(u64) -> u64) -> f64 {
    let addrs: Vec<u64> = addrs.iter().cycle().take(LOOKUPS).copied().collect();
    let mut sweep = if cold { vec![0u8; 64 << 20] } else { Vec::new() };
    let mut found = vec![0u64; LOOKUPS];
    let mut ns = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        for b in sweep.iter_mut().step_by(64) {
            *b = b.wrapping_add(1);
        }
        black_box(&sweep);
        let t = Instant::now();
        for (a, out) in addrs.iter().zip(found.iter_mut()) {
            *out = f(black_box(*a));
        }
        ns.push(t.elapsed().as_nanos() as f64 / LOOKUPS as f64);
        for (a, got) in addrs.iter().zip(&found) {
            assert_eq!(*got, a & !(PAGE_SIZE - 1), "lookup of {a:#x}");
        }
    }
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn main() {
    println!("| VMAs | index | repeated | 2 alternating | 64 spread | 64 spread, after a sweep |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in [10usize, 100_000] {
        let p = Populated::new(n).expect("populate");
        let starts: Vec<u64> = (0..n).rev().map(Populated::vma_start).collect();
        let ends: Vec<u64> = starts.iter().map(|s| s + PAGE_SIZE).collect();
        let payload: BTreeMap<u64, [u64; 16]> = starts.iter().map(|&s| (s, [s + PAGE_SIZE; 16])).collect();
        let compact: BTreeMap<u64, (u64, u32)> =
            starts.iter().enumerate().map(|(i, &s)| (s, (s + PAGE_SIZE, i as u32))).collect();
        let at = |i: usize| Populated::vma_start(i) + PAGE_SIZE / 2;
        let patterns: [(Vec<u64>, bool); 4] = [
            (vec![at(n / 2)], false),
            (vec![at(n / 3), at(2 * n / 3)], false),
            ((0..LOOKUPS).map(|j| at(j * n / LOOKUPS)).collect(), false),
            ((0..LOOKUPS).map(|j| at(j * n / LOOKUPS)).collect(), true),
        ];
        let ours = |a: u64| {
            let va = GuestVirtAddr::try_new(a).expect("canonical");
            p.space.find_vma(va).map_or(0, |v| v.start().raw())
        };
        let btree_payload = |a: u64| payload.range(..=a).next_back().filter(|(_, v)| v[0] > a).map_or(0, |(&k, _)| k);
        let btree_compact = |a: u64| compact.range(..=a).next_back().filter(|(_, v)| v.0 > a).map_or(0, |(&k, _)| k);
        let sorted = |a: u64| {
            let i = starts.partition_point(|&s| s <= a);
            if i > 0 && ends[i - 1] > a {
                starts[i - 1]
            } else {
                0
            }
        };
        let indexes: [(&str, &dyn Fn(u64) -> u64); 4] = [
            ("VmaTree::find (radix)", &ours),
            ("BTreeMap, 128-byte values", &btree_payload),
            ("BTreeMap, (end, handle)", &btree_compact),
            ("sorted array", &sorted),
        ];
        for (name, f) in indexes {
            let cells: Vec<String> = patterns
                .iter()
                .map(|(a, cold)| format!("{:.1}", time(a, if *cold { 21 } else { 2001 }, *cold, f)))
                .collect();
            println!("| {n} | {name} | {} |", cells.join(" | "));
        }
    }
}
