//! Item 7: MMIO through the VMM.
//!
//! One repetition is one guest run on a machine with a trapped BAR and a
//! passed-through (host-backed) BAR, followed by one run of the bare exit
//! loop ([`super::bare_exit`]). The guest, at CPL 3, times with `rdtsc`:
//!
//! - (a) `n` 8-byte writes to the trapped BAR's `DATA` register: each one
//!   exits to the VMM, which dispatches it to the BAR model and re-enters.
//!   The bare loop runs the same instructions on the same kind of mapping
//!   with nobody behind the window; the per-repetition ratio is the VMM's
//!   dispatch overhead.
//! - (b) `n` writes to the `DOORBELL` register, which is an ioeventfd:
//!   KVM signals the eventfd itself and the VMM's vCPU thread never sees
//!   the access (checked: the run's MMIO exit count must be exactly the
//!   trapped writes').
//! - (c) read bandwidth of the passed-through window against guest RAM of
//!   the same size mapped the ordinary way, with the same SSE2 read loop:
//!   a warm-up pass of each, then `passes` passes alternating between the
//!   two; each repetition keeps the best pass of each.
//!
//! Writes in (a) and (b) are preceded by a few untimed ones, so the first
//! access's shadow-paging fault is not in the figure, and are timed in ten
//! chunks; a repetition's value is the median chunk's time per write (the
//! same for the VMM and the bare loop), so one burst of host preemption
//! does not decide it. Both ranges of (c) are written before they are
//! read: an untouched anonymous page is the host's shared zero page, and
//! reading the same 4 KiB over and over measures the L1 cache.

use iced_x86::code_asm::*;

use devices::bar::registers::{DATA, DOORBELL};
use devices::BarWindow;
use vm_memory::GuestAddress;

use super::bare_exit::{self, BareMachine};
use super::programs::{
    finish, mmap_or_fail, prologue, read_loop, repeat, slot, store_elapsed, timed_chunks, tsc, FixedMap, RESULTS_MAP,
    SLOT_FIRST_FREE,
};
use super::session::{guest_err, run_program};
use super::tsc::Calibration;
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use vmm::config::{BarBacking, BarCache, BarConfig, VmConfig};
use vmm::guest::asm::AsmResult;
use vmm::guest::kinds::abi_elf::example::assemble_elf;
use vmm::hosted::stub::abi::{fd, map, prot};
use vmm::layout::{DEFAULT_BAR_BASE, FREE_PA};

const ITEM: &str = "7 (MMIO)";

/// The trapped window (the BAR model needs at least its register page).
const TRAPPED: BarWindow = BarWindow::uncached(GuestAddress(DEFAULT_BAR_BASE), 0x1_0000);
/// Guest-physical base of the passed-through window.
const PASSTHROUGH_BASE: u64 = DEFAULT_BAR_BASE + 0x100_0000;
/// Guest-physical base of the guest-RAM range (c) compares with.
const RAM_PA: u64 = FREE_PA + 0x10_0000;
/// Warm-up accesses before each timed loop.
const WARM: u64 = 8;

/// Where the guest maps things.
mod va {
    pub const TRAPPED: u64 = super::super::programs::va::BAR;
    pub const PASSTHROUGH: u64 = super::super::programs::va::SECOND;
    pub const RAM: u64 = 0x5_0000_0000;
}

/// Timed chunks per write loop.
const CHUNKS: usize = 10;

/// Result slots.
mod slots {
    use super::{CHUNKS, SLOT_FIRST_FREE};
    /// The trapped writes' chunks.
    pub const TRAPPED: usize = SLOT_FIRST_FREE;
    /// The doorbell writes' chunks.
    pub const DOORBELL: usize = TRAPPED + CHUNKS;
    /// Passes of the window from here, then passes of RAM after them.
    pub const PASSES: usize = DOORBELL + CHUNKS;
}

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Timed writes per loop.
    pub writes: u64,
    /// Timed read passes of each range.
    pub passes: u64,
    /// Bytes of each range in (c).
    pub window: u64,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        if quick {
            Params { writes: 300, passes: 5, window: 4 << 20 }
        } else {
            Params { writes: 3000, passes: 15, window: 4 << 20 }
        }
    }
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Trapped write round trip, µs.
    pub trapped_us: f64,
    /// Bare exit round trip, µs.
    pub bare_us: f64,
    /// Doorbell write, µs.
    pub doorbell_us: f64,
    /// MMIO exits the VMM saw beyond the trapped writes (should be 0).
    pub doorbell_exits: u64,
    /// Passed-through window, GiB/s (best pass).
    pub passthrough_gib: f64,
    /// Guest RAM, GiB/s (best pass).
    pub ram_gib: f64,
}

fn write_loop(a: &mut CodeAssembler, p: &Params, at: usize, store: fn(&mut CodeAssembler) -> AsmResult) -> AsmResult {
    repeat(a, rbx, WARM, store)?;
    timed_chunks(a, CHUNKS, p.writes / CHUNKS as u64, at, store)
}

fn trapped_write(a: &mut CodeAssembler) -> AsmResult {
    a.mov(qword_ptr(rbp + DATA as i32), rbx)
}

fn doorbell_write(a: &mut CodeAssembler) -> AsmResult {
    a.mov(dword_ptr(rbp + DOORBELL as i32), ebx)
}

/// Reads `[base, base + len)` once; with `at`, timed into that slot.
fn read_pass(a: &mut CodeAssembler, base: u64, len: u64, at: Option<usize>) -> AsmResult {
    if at.is_some() {
        tsc(a, r14)?;
    }
    a.mov(rsi, base)?;
    a.mov(rcx, len)?;
    read_loop(a)?;
    match at {
        Some(s) => store_elapsed(a, r14, s),
        None => Ok(()),
    }
}

/// Stores a non-zero word into every u64 of `[base, base + len)`.
fn fill(a: &mut CodeAssembler, base: u64, len: u64) -> AsmResult {
    a.mov(rdi, base)?;
    a.mov(rcx, len / 8)?;
    a.mov(rax, 0x0101_0101_0101_0101u64)?;
    a.rep().stosq()
}

fn trapped_map() -> FixedMap {
    FixedMap {
        addr: va::TRAPPED,
        len: TRAPPED.size,
        prot: prot::READ | prot::WRITE,
        flags: map::SHARED,
        handle: fd::BAR0,
        off: 0,
    }
}

/// The guest of one repetition on the VMM.
fn vmm_program(p: &Params) -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        prologue(a, true)?;
        mmap_or_fail(a, trapped_map(), 1)?;
        let pt = FixedMap { addr: va::PASSTHROUGH, len: p.window, handle: fd::BAR0 + 1, ..trapped_map() };
        mmap_or_fail(a, pt, 2)?;
        let ram = FixedMap { addr: va::RAM, len: p.window, handle: fd::GUEST_RAM, off: RAM_PA, ..trapped_map() };
        mmap_or_fail(a, ram, 3)?;
        a.mov(rbp, va::TRAPPED)?;
        write_loop(a, p, slots::TRAPPED, trapped_write)?;
        write_loop(a, p, slots::DOORBELL, doorbell_write)?;
        // Write both ranges first: an untouched anonymous page would be
        // the host's shared zero page, and reading one 4 KiB page over and
        // over is no bandwidth measurement.
        fill(a, va::PASSTHROUGH, p.window)?;
        fill(a, va::RAM, p.window)?;
        read_pass(a, va::PASSTHROUGH, p.window, None)?;
        read_pass(a, va::RAM, p.window, None)?;
        for i in 0..p.passes as usize {
            read_pass(a, va::PASSTHROUGH, p.window, Some(slots::PASSES + i))?;
            read_pass(a, va::RAM, p.window, Some(slots::PASSES + p.passes as usize + i))?;
        }
        // Keep the accumulators observable (nothing reads them otherwise).
        a.movq(rax, xmm0)?;
        a.mov(slot(slots::PASSES + 2 * p.passes as usize), rax)?;
        finish(a)
    })
}

/// The same trapped-write loop for the bare exit loop.
fn bare_program(p: &Params) -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        prologue(a, false)?;
        a.mov(rbp, va::TRAPPED)?;
        write_loop(a, p, slots::TRAPPED, trapped_write)?;
        finish(a)
    })
}

fn vm_config(p: &Params) -> VmConfig {
    VmConfig {
        bars: vec![
            BarConfig {
                base: TRAPPED.base.0,
                size: TRAPPED.size,
                backing: BarBacking::Trapped,
                cache: BarCache::Uncached,
            },
            BarConfig {
                base: PASSTHROUGH_BASE,
                size: p.window,
                backing: BarBacking::Anonymous,
                cache: BarCache::Uncached,
            },
        ],
        ..VmConfig::default()
    }
}

fn asm_err(e: impl std::fmt::Display) -> BenchError {
    guest_err(ITEM, format!("cannot assemble the guest: {e}"))
}

/// Runs one repetition: the VMM guest, then the bare exit loop.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let r = run_program(ITEM, &vm_config(p), &vmm_program(p).map_err(asm_err)?)?;
    let bare_machine = BareMachine {
        mem_size: vmm::config::DEFAULT_MEM,
        bars: vec![TRAPPED],
        maps: vec![RESULTS_MAP, trapped_map()],
        max_exits: p.writes + WARM + 16,
    };
    let bare = bare_exit::run(ITEM, &bare_machine, &bare_program(p).map_err(asm_err)?)?;
    let bare_mmio = bare.exits.first().map_or(0, |e| e.mmio);
    if bare_mmio != p.writes + WARM {
        return Err(guest_err(ITEM, format!("bare loop: {bare_mmio} MMIO exits for {} writes", p.writes + WARM)));
    }
    let mmio = r.exits.first().map_or(0, |e| e.mmio);
    let best = |first: usize| -> Result<f64, BenchError> {
        let mut best = 0.0f64;
        for i in 0..p.passes as usize {
            best = best.max(cal.gib_per_s(p.window, r.cycles(ITEM, first + i)?));
        }
        Ok(best)
    };
    let per = p.writes / CHUNKS as u64;
    Ok(Sample {
        trapped_us: r.median_chunk_ns(ITEM, cal, slots::TRAPPED, CHUNKS, per)? / 1e3,
        bare_us: bare.median_chunk_ns(ITEM, cal, slots::TRAPPED, CHUNKS, per)? / 1e3,
        doorbell_us: r.median_chunk_ns(ITEM, cal, slots::DOORBELL, CHUNKS, per)? / 1e3,
        doorbell_exits: mmio.saturating_sub(p.writes + WARM),
        passthrough_gib: best(slots::PASSES)?,
        ram_gib: best(slots::PASSES + p.passes as usize)?,
    })
}

/// The figures of item 7 from every repetition's sample.
pub fn figures(p: &Params, s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let doorbell_exits = s.iter().map(|x| x.doorbell_exits).max().unwrap_or(0);
    let a = Figure::new(
        7,
        "mmio.trapped_vs_bare_exit",
        &format!("trapped BAR register write, exit to the VMM and back ({} per repetition)", p.writes),
        Unit::Us,
        col(|x| x.trapped_us),
    )?
    .vs("bare KVM_RUN loop: same guest write, re-entered with no device work", col(|x| x.bare_us), RatioKind::Overhead)?
    .detail("writes", p.writes as f64)
    .target_ratio(Bound::AtMost(0.10), "VMM dispatch at most 10% over the bare exit loop");
    let a = if a.all_met() {
        a
    } else {
        a.note(
            "missed on the median of the per-repetition ratios; the VMM's path adds, per exit, the vCPU \
             loop's run-control and shootdown bookkeeping, exit counters, the MMIO bus lookup and the BAR \
             device's lock and register update (see min–max for how much the exit itself varies here)",
        )
    };
    let b = Figure::new(
        7,
        "mmio.ioeventfd_vs_trapped",
        "ioeventfd doorbell write (KVM signals the eventfd; no exit to the VMM)",
        Unit::Us,
        col(|x| x.doorbell_us),
    )?
    .vs("trapped BAR register write, same run", col(|x| x.trapped_us), RatioKind::Speedup)?
    .detail("vmm_mmio_exits_during_doorbell_loop", doorbell_exits as f64)
    .note(
        "the doorbell write still leaves the guest: KVM completes it in the host kernel by signalling the \
         eventfd, without returning to the VMM, whose event-loop thread reads the eventfd on its own",
    );
    let mut c = Figure::new(
        7,
        "mmio.passthrough_vs_ram",
        &format!("read bandwidth of a passed-through BAR window ({} MiB, host memfd)", p.window >> 20),
        Unit::GibPerS,
        col(|x| x.passthrough_gib),
    )?
    .vs("guest RAM of the same size, same read loop, same run", col(|x| x.ram_gib), RatioKind::Fraction)?
    .target_ratio(Bound::AtLeast(0.8), "passed-through window at least 80% of guest RAM bandwidth");
    if !c.all_met() {
        c = c.note(
            "the window is mapped with an I/O remap (uncached, as for device memory); reads of uncached \
             memory are not cached or prefetched",
        );
    }
    Ok(vec![a, b, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble_and_slots_fit() {
        for quick in [true, false] {
            let p = Params::new(quick);
            assert!(vmm_program(&p).is_ok());
            assert!(bare_program(&p).is_ok());
            assert!(slots::PASSES + 2 * p.passes as usize + 1 < super::super::programs::SLOTS);
            assert_eq!(p.writes % CHUNKS as u64, 0, "whole chunks");
            assert!(RAM_PA + p.window <= vmm::config::DEFAULT_MEM);
        }
    }
}
