//! Item 8: the hypercall round trip of a one-page `mmap` + `munmap`,
//! against a no-op hypercall in the same run, in three variants.
//!
//! The guest, at CPL 3, times [`Params::pairs`] iterations of each of:
//! - **untouched, lazy:** `mmap(NULL, 4096, PROT_READ | PROT_WRITE,
//!   MAP_PRIVATE | MAP_ANONYMOUS)` and `munmap` of the result. Private
//!   anonymous memory is mapped on first touch, so the `munmap` clears no
//!   entry: there is nothing to shoot down;
//! - **untouched, populated:** the same with `MAP_SHARED` of the kernel
//!   page buffer (`fd::PAGE_BUFFER`), which `mmap` maps at once. The
//!   `munmap` clears a present entry whose Accessed bit is clear: no CPU
//!   or shadow MMU can have cached it, so the shootdown is skipped;
//! - **touched:** `mmap` as in the first, a write to the page (a page
//!   fault the VMM resolves with a fresh page), `munmap`. The entry was
//!   used (Accessed set), so the `munmap` pays the TLB shootdown of `tlb`
//!   under the address-space lock: KVM's shadow translations dropped by
//!   re-creating a memory slot, and an NMI to the calling vCPU whose
//!   handler (`invlpg`, acknowledge) runs at CPL 0;
//!
//! then [`Params::noops`] `vcpu_id` hypercalls: the same `out` to the
//! hypercall port, register read and write-back, and dispatch, with no
//! work behind it. Every result is checked in the loop; a failed call ends
//! the run. Every loop is timed in chunks and a repetition keeps the
//! median chunk (see `programs::timed_chunks`). The guest also counts,
//! with `exit_count`, the exits each mmap/munmap loop took (the touched
//! one: the fault and the NMI acknowledgement besides the two calls).

use iced_x86::code_asm::*;

use super::programs::{exit_port, finish, prologue, repeat, slot, timed_chunks, FAIL_SETUP, SLOT_FIRST_FREE};
use super::session::{guest_err, run_program};
use super::tsc::Calibration;
use crate::error::BenchError;
use crate::figure::{Figure, RatioKind, Unit};
use vmm::config::VmConfig;
use vmm::guest::asm::{hcall, Arg, AsmResult};
use vmm::guest::kinds::abi_elf::example::assemble_elf;
use vmm::hosted::stub::abi::{fd, map, nr, prot};
use vmm::layout::PAGE_SIZE;

const ITEM: &str = "8 (hypercall mmap + munmap)";

/// Timed chunks per loop.
const CHUNKS: usize = 5;
/// Untimed iterations before each loop.
const WARM: u64 = 2;

/// Result slots.
mod slots {
    use super::{CHUNKS, SLOT_FIRST_FREE};
    /// Chunks of the mmap/munmap loops, one run of `CHUNKS` per variant.
    pub const PAIRS: usize = SLOT_FIRST_FREE;
    /// Chunks of the no-op loop.
    pub const NOOPS: usize = PAIRS + 3 * CHUNKS;
    /// Exits each timed mmap/munmap loop took, one per variant.
    pub const PAIR_EXITS: usize = NOOPS + CHUNKS;
}

/// The mmap/munmap variants, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Private anonymous, never touched: nothing mapped.
    Lazy,
    /// The page buffer, mapped by `mmap`, never touched.
    Populated,
    /// Private anonymous, written once.
    Touched,
}

const VARIANTS: [Variant; 3] = [Variant::Lazy, Variant::Populated, Variant::Touched];

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
    /// mmap + munmap, µs, per variant (see [`VARIANTS`]).
    pub pair_us: [f64; 3],
    /// No-op hypercall, µs.
    pub noop_us: f64,
    /// Exits per mmap + munmap pair, per variant.
    pub exits_per_pair: [f64; 3],
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

fn mmap_munmap(a: &mut CodeAssembler, v: Variant) -> AsmResult {
    let (flags, handle) = match v {
        Variant::Lazy | Variant::Touched => (map::PRIVATE | map::ANONYMOUS, 0),
        Variant::Populated => (map::SHARED, fd::PAGE_BUFFER),
    };
    let args = [
        Arg::Imm(0),
        Arg::Imm(PAGE_SIZE),
        Arg::Imm(prot::READ | prot::WRITE),
        Arg::Imm(flags),
        Arg::Imm(handle),
        Arg::Imm(0),
    ];
    hcall(a, nr::MMAP, &args)?;
    fail_if_negative(a, 1)?;
    if v == Variant::Touched {
        a.mov(qword_ptr(rax), rax)?;
    }
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
        for (i, v) in VARIANTS.into_iter().enumerate() {
            let one: fn(&mut CodeAssembler) -> AsmResult = match v {
                Variant::Lazy => |a| mmap_munmap(a, Variant::Lazy),
                Variant::Populated => |a| mmap_munmap(a, Variant::Populated),
                Variant::Touched => |a| mmap_munmap(a, Variant::Touched),
            };
            repeat(a, rbx, WARM, one)?;
            hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
            a.mov(r12, rax)?;
            timed_chunks(a, CHUNKS, p.pairs / CHUNKS as u64, slots::PAIRS + i * CHUNKS, one)?;
            hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
            // Minus the second `exit_count` call's own exit.
            a.sub(rax, r12)?;
            a.dec(rax)?;
            a.mov(slot(slots::PAIR_EXITS + i), rax)?;
        }
        repeat(a, rbx, WARM, noop)?;
        timed_chunks(a, CHUNKS, p.noops / CHUNKS as u64, slots::NOOPS, noop)?;
        finish(a)
    })
}

/// Runs one repetition.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let elf = program(p).map_err(|e| guest_err(ITEM, format!("cannot assemble the guest: {e}")))?;
    let r = run_program(ITEM, &VmConfig::default(), &elf)?;
    let mut pair_us = [0.0; 3];
    let mut exits_per_pair = [0.0; 3];
    for i in 0..VARIANTS.len() {
        pair_us[i] = r.median_chunk_ns(ITEM, cal, slots::PAIRS + i * CHUNKS, CHUNKS, p.pairs / CHUNKS as u64)? / 1e3;
        exits_per_pair[i] = r.word(ITEM, slots::PAIR_EXITS + i)? as f64 / p.pairs as f64;
    }
    let noop_ns = r.median_chunk_ns(ITEM, cal, slots::NOOPS, CHUNKS, p.noops / CHUNKS as u64)?;
    Ok(Sample { pair_us, noop_us: noop_ns / 1e3, exits_per_pair })
}

/// The figures of item 8, one per variant.
pub fn figures(p: &Params, s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let col = |f: &dyn Fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let texts: [(&str, &str, &str); 3] = [
        (
            "hypercall.mmap_munmap_1page",
            "hypercall round trip: mmap of one anonymous page + munmap, page never touched",
            "private anonymous memory is mapped on first touch: this munmap clears no entry and needs no TLB \
             shootdown (exits_per_pair 2: the two calls)",
        ),
        (
            "hypercall.mmap_munmap_1page_populated",
            "hypercall round trip: mmap of one page mapped at once (the kernel page buffer) + munmap, page never \
             touched",
            "the munmap clears a present entry whose Accessed bit is clear: no vCPU (and not KVM's shadow MMU) \
             can have cached it, so the TLB shootdown (memslot zap and NMI) is skipped (exits_per_pair 2)",
        ),
        (
            "hypercall.mmap_touch_munmap_1page",
            "hypercall round trip: mmap of one anonymous page, a write to it + munmap (with its TLB shootdown)",
            "the write faults (the VMM maps a fresh page) and sets the entry's Accessed bit, so the munmap pays \
             the shootdown: KVM's shadow translations are dropped by creating and deleting a memory slot, and \
             the caller's own vCPU takes an NMI whose handler runs at CPL 0 (invlpg, then an acknowledgement \
             exit; exits_per_pair 4); each slot change waits for a host SRCU grace period, tens of µs on a quiet \
             host or several 4 ms ticks on a busy one",
        ),
    ];
    let mut out = Vec::with_capacity(texts.len());
    for (i, (id, title, note)) in texts.into_iter().enumerate() {
        let exits = s.iter().map(|x| x.exits_per_pair[i]).fold(0.0f64, f64::max);
        out.push(
            Figure::new(8, id, title, Unit::Us, col(&|x: &Sample| x.pair_us[i]))?
                .vs(
                    "no-op hypercall (vcpu_id): the same port exit and register round trip, no work",
                    col(&|x: &Sample| x.noop_us),
                    RatioKind::Times,
                )?
                .detail("pairs", p.pairs as f64)
                .detail("exits_per_pair", exits)
                .note(note),
        );
    }
    Ok(out)
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
