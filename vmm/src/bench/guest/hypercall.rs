//! Item 8: the hypercall round trip of a one-page `mmap` + `munmap`,
//! against a no-op hypercall in the same run.
//!
//! The guest, at CPL 3, times [`Params::pairs`] iterations of
//! `mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)`
//! followed by `munmap` of the result (the page is not touched), then
//! [`Params::noops`] `vcpu_id` hypercalls: the same `out` to the hypercall
//! port, register read and write-back, and dispatch, with no work behind
//! it. Every result is checked in the loop; a failed call ends the run.
//! Both loops are timed in chunks and a repetition keeps the median chunk
//! (see `programs::timed_chunks`). The guest also counts, with
//! `exit_count`, the exits the mmap/munmap loop took.
//!
//! What the `munmap` half includes: guest-mm's unmap, then the TLB
//! shootdown of `tlb` under the address-space lock — KVM's shadow
//! translations dropped by re-creating a memory slot, and an NMI to the
//! calling vCPU whose handler (`invlpg`, acknowledge) runs at CPL 0.

use iced_x86::code_asm::*;

use super::programs::{exit_port, finish, prologue, repeat, slot, timed_chunks, FAIL_SETUP, SLOT_FIRST_FREE};
use super::session::{guest_err, run_program};
use super::tsc::Calibration;
use crate::bench::error::BenchError;
use crate::bench::figure::{Figure, RatioKind, Unit};
use crate::config::VmConfig;
use crate::guest::asm::{hcall, Arg, AsmResult};
use crate::guest::example::assemble_elf;
use crate::kernel::abi::{map, nr, prot};
use crate::layout::PAGE_SIZE;

const ITEM: &str = "8 (hypercall mmap + munmap)";

/// Timed chunks per loop.
const CHUNKS: usize = 5;
/// Untimed iterations before each loop.
const WARM: u64 = 2;

/// Result slots.
mod slots {
    use super::{CHUNKS, SLOT_FIRST_FREE};
    /// Chunks of the mmap/munmap loop.
    pub const PAIRS: usize = SLOT_FIRST_FREE;
    /// Chunks of the no-op loop.
    pub const NOOPS: usize = PAIRS + CHUNKS;
    /// Exits the timed mmap/munmap loop took.
    pub const PAIR_EXITS: usize = NOOPS + CHUNKS;
}

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Timed mmap + munmap pairs (a multiple of the chunk count).
    pub pairs: u64,
    /// Timed no-op hypercalls (a multiple of the chunk count).
    pub noops: u64,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        if quick {
            Params { pairs: 25, noops: 250 }
        } else {
            Params { pairs: 200, noops: 2000 }
        }
    }
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// mmap + munmap, µs.
    pub pair_us: f64,
    /// No-op hypercall, µs.
    pub noop_us: f64,
    /// Exits per mmap + munmap pair.
    pub exits_per_pair: f64,
}

/// Ends the run with `FAIL_SETUP + code` if `rax` is negative (`-errno`).
fn fail_if_negative(a: &mut CodeAssembler, code: u32) -> AsmResult {
    let mut ok = a.create_label();
    a.test(rax, rax)?;
    a.jns(ok)?;
    exit_port(a, FAIL_SETUP + code)?;
    a.set_label(&mut ok)?;
    a.nop()
}

/// Ends the run with `FAIL_SETUP + code` unless `rax` is 0.
fn fail_if_nonzero(a: &mut CodeAssembler, code: u32) -> AsmResult {
    let mut ok = a.create_label();
    a.test(rax, rax)?;
    a.jz(ok)?;
    exit_port(a, FAIL_SETUP + code)?;
    a.set_label(&mut ok)?;
    a.nop()
}

fn mmap_munmap(a: &mut CodeAssembler) -> AsmResult {
    let args = [
        Arg::Imm(0),
        Arg::Imm(PAGE_SIZE),
        Arg::Imm(prot::READ | prot::WRITE),
        Arg::Imm(map::PRIVATE | map::ANONYMOUS),
        Arg::Imm(0),
        Arg::Imm(0),
    ];
    hcall(a, nr::MMAP, &args)?;
    fail_if_negative(a, 1)?;
    hcall(a, nr::MUNMAP, &[Arg::Reg(rax), Arg::Imm(PAGE_SIZE)])?;
    fail_if_nonzero(a, 2)
}

fn noop(a: &mut CodeAssembler) -> AsmResult {
    hcall(a, nr::VCPU_ID, &[])?;
    fail_if_nonzero(a, 3)
}

fn program(p: &Params) -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        prologue(a, true)?;
        repeat(a, rbx, WARM, mmap_munmap)?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
        a.mov(r12, rax)?;
        timed_chunks(a, CHUNKS, p.pairs / CHUNKS as u64, slots::PAIRS, mmap_munmap)?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
        // Minus the second `exit_count` call's own exit.
        a.sub(rax, r12)?;
        a.dec(rax)?;
        a.mov(slot(slots::PAIR_EXITS), rax)?;
        repeat(a, rbx, WARM, noop)?;
        timed_chunks(a, CHUNKS, p.noops / CHUNKS as u64, slots::NOOPS, noop)?;
        finish(a)
    })
}

/// Runs one repetition.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let elf = program(p).map_err(|e| guest_err(ITEM, format!("cannot assemble the guest: {e}")))?;
    let r = run_program(ITEM, &VmConfig::default(), &elf)?;
    let pair_ns = r.median_chunk_ns(ITEM, cal, slots::PAIRS, CHUNKS, p.pairs / CHUNKS as u64)?;
    let noop_ns = r.median_chunk_ns(ITEM, cal, slots::NOOPS, CHUNKS, p.noops / CHUNKS as u64)?;
    Ok(Sample {
        pair_us: pair_ns / 1e3,
        noop_us: noop_ns / 1e3,
        exits_per_pair: r.word(ITEM, slots::PAIR_EXITS)? as f64 / p.pairs as f64,
    })
}

/// The figure of item 8.
pub fn figures(p: &Params, s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let exits = s.iter().map(|x| x.exits_per_pair).fold(0.0f64, f64::max);
    Ok(vec![Figure::new(
        8,
        "hypercall.mmap_munmap_1page",
        "hypercall round trip: mmap of one anonymous page + munmap (with its TLB shootdown)",
        Unit::Us,
        col(|x| x.pair_us),
    )?
    .vs(
        "no-op hypercall (vcpu_id): the same port exit and register round trip, no work",
        col(|x| x.noop_us),
        RatioKind::Times,
    )?
    .detail("pairs", p.pairs as f64)
    .detail("exits_per_pair", exits)
    .note(
        "munmap includes the shootdown: KVM's shadow translations are dropped by deleting and re-creating \
         a memory slot, and the caller's own vCPU takes an NMI whose handler runs at CPL 0 (invlpg, then \
         an acknowledgement exit); each slot change waits for a host SRCU grace period, tens of µs on a \
         quiet host or several 4 ms ticks on a busy one: the two clusters of this figure",
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble_in_whole_chunks() {
        for quick in [true, false] {
            let p = Params::new(quick);
            assert!(program(&p).is_ok());
            assert_eq!(p.pairs % CHUNKS as u64, 0);
            assert_eq!(p.noops % CHUNKS as u64, 0);
        }
    }
}
