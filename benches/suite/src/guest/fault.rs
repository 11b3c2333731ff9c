//! Item 11: the fault path. A guest touches every page of a 64 MiB lazy
//! anonymous mapping (one read per page: the shared zero page, mapped by
//! the fault path and fault-around), against mapping the same range
//! eagerly and touching it; the faults it takes, counted with
//! `exit_count`, against a run without fault-around; and the fault round
//! trip (a touch of an absent page until the guest runs again) beside the
//! no-op hypercall round trip.
//!
//! - **ours (touch)**: `mmap` (nothing populated) + 16,384 reads, one per
//!   page, the first read of each fault-around window (64 pages by
//!   default) faulting once;
//! - **peer (eager)**: `mmap` + `madvise(MADV_WILLNEED)` (guest-mm's
//!   batched populate: one `map_pages` and one insert per run of a leaf
//!   table, the same zero-page entries) + the same reads. Both are timed
//!   from before the `mmap` to after the last read, in the same guest run.
//! - **faults**: the exits the lazy loop took, with fault-around and, in a second run, without (`RunOptions::fault_around`).
//! - **round trip**: the second run's lazy loop, per fault (a fault per
//!   page there): the `#PF`, the kernel stub (CPL 0, emulated on a
//!   software-assisted backend) and its exit, guest-mm's fault path under
//!   the address-space lock, `add rsp` + `iretq` back, and the touch
//!   itself; beside a no-op hypercall timed in the same run.
//!
//! The touches are reads: write touches would need 64 MiB of pool pages,
//! and the VMM's page pool is 8 MiB.

use iced_x86::code_asm::*;

use super::programs::{
    check_rax_or_fail, finish, mmap_or_fail, prologue, repeat, slot, store_elapsed, timed_chunks, tsc, FixedMap,
    SLOT_FIRST_FREE,
};
use super::session::{guest_err, run_program_with};
use super::tsc::Calibration;
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use vmm::config::VmConfig;
use vmm::guest::asm::{hcall, Arg, AsmResult};
use vmm::guest::kinds::abi_elf::example::assemble_elf;
use vmm::hosted::stub::abi::{madv, map, nr, prot};
use vmm::layout::PAGE_SIZE;

const ITEM: &str = "11 (fault path)";

/// The lazy range.
const LAZY_VA: u64 = 0x5_0000_0000;
/// Its size.
const LEN: u64 = 64 << 20;
/// Pages in it.
const PAGES: u64 = LEN / PAGE_SIZE;
/// Timed chunks of the no-op loop.
const CHUNKS: usize = 5;

const LAZY_MAP: FixedMap =
    FixedMap { addr: LAZY_VA, len: LEN, prot: prot::READ, flags: map::PRIVATE | map::ANONYMOUS, handle: 0, off: 0 };

/// Result slots.
mod slots {
    use super::{CHUNKS, SLOT_FIRST_FREE};
    /// Cycles of mmap + touch of the lazy range.
    pub const LAZY: usize = SLOT_FIRST_FREE;
    /// Exits the lazy touch loop took.
    pub const LAZY_EXITS: usize = LAZY + 1;
    /// Cycles of mmap + WILLNEED + touch.
    pub const EAGER: usize = LAZY + 2;
    /// Chunks of the no-op loop.
    pub const NOOPS: usize = LAZY + 3;
    /// First slot after them.
    pub const END: usize = NOOPS + CHUNKS;
}
const _: () = assert!(slots::END <= super::programs::SLOTS);

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Timed no-op hypercalls (a multiple of the chunk count).
    pub noops: u64,
}

impl Params {
    /// Sizes for `quick` or the full suite (the touched range is 64 MiB in
    /// both: it is what the target is about).
    pub fn new(quick: bool) -> Params {
        Params { noops: if quick { 250 } else { 2000 } }
    }
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// mmap + touch of the lazy range, ms.
    pub lazy_ms: f64,
    /// mmap + WILLNEED + touch, ms.
    pub eager_ms: f64,
    /// Faults of the lazy touch with fault-around.
    pub faults: u64,
    /// Faults without fault-around.
    pub faults_without: u64,
    /// One fault round trip (no fault-around run), µs.
    pub fault_us: f64,
    /// No-op hypercall of the same run, µs.
    pub noop_us: f64,
}

/// `rsi = LAZY_VA`, read one word of every page. Clobbers `rax`, `rcx`,
/// `rsi`.
fn touch_all(a: &mut CodeAssembler) -> AsmResult {
    let mut top = a.create_label();
    a.mov(rsi, LAZY_VA)?;
    a.mov(ecx, PAGES as u32)?;
    a.set_label(&mut top)?;
    a.mov(rax, qword_ptr(rsi))?;
    a.add(rsi, PAGE_SIZE as i32)?;
    a.dec(ecx)?;
    a.jnz(top)
}

fn noop(a: &mut CodeAssembler) -> AsmResult {
    hcall(a, nr::VCPU_ID, &[])?;
    check_rax_or_fail(a, 0, 9)
}

fn program(p: &Params) -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        prologue(a, true)?;
        // Lazy: mmap + touches, counting the exits of the touches.
        tsc(a, r14)?;
        mmap_or_fail(a, LAZY_MAP, 1)?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
        a.mov(r12, rax)?;
        touch_all(a)?;
        hcall(a, nr::EXIT_COUNT, &[Arg::Imm(0)])?;
        a.mov(r13, rax)?;
        store_elapsed(a, r14, slots::LAZY)?;
        // Minus the second `exit_count` call's own exit.
        a.sub(r13, r12)?;
        a.dec(r13)?;
        a.mov(slot(slots::LAZY_EXITS), r13)?;
        hcall(a, nr::MUNMAP, &[Arg::Imm(LAZY_VA), Arg::Imm(LEN)])?;
        check_rax_or_fail(a, 0, 2)?;
        // Eager: mmap + populate + the same touches.
        tsc(a, r14)?;
        mmap_or_fail(a, LAZY_MAP, 3)?;
        hcall(a, nr::MADVISE, &[Arg::Imm(LAZY_VA), Arg::Imm(LEN), Arg::Imm(madv::WILLNEED)])?;
        check_rax_or_fail(a, 0, 4)?;
        touch_all(a)?;
        store_elapsed(a, r14, slots::EAGER)?;
        hcall(a, nr::MUNMAP, &[Arg::Imm(LAZY_VA), Arg::Imm(LEN)])?;
        check_rax_or_fail(a, 0, 5)?;
        repeat(a, rbx, 2, noop)?;
        timed_chunks(a, CHUNKS, p.noops / CHUNKS as u64, slots::NOOPS, noop)?;
        finish(a)
    })
}

/// Runs one repetition: the program with fault-around, then without.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let elf = program(p).map_err(|e| guest_err(ITEM, format!("cannot assemble the guest: {e}")))?;
    let with = run_program_with(ITEM, &VmConfig::default(), &elf, None)?;
    let without = run_program_with(ITEM, &VmConfig::default(), &elf, Some(1))?;
    let faults = with.word(ITEM, slots::LAZY_EXITS)?;
    let faults_without = without.word(ITEM, slots::LAZY_EXITS)?;
    if faults == 0 || faults_without < PAGES {
        return Err(guest_err(
            ITEM,
            format!("{faults} faults with fault-around and {faults_without} without: the range was not lazy"),
        ));
    }
    let ms = |r: &super::session::GuestResults, s| -> Result<f64, BenchError> {
        Ok(cal.ns(r.cycles(ITEM, s)? as f64) / 1e6)
    };
    Ok(Sample {
        lazy_ms: ms(&with, slots::LAZY)?,
        eager_ms: ms(&with, slots::EAGER)?,
        faults,
        faults_without,
        fault_us: cal.ns_per_op(without.cycles(ITEM, slots::LAZY)?, faults_without) / 1e3,
        noop_us: without.median_chunk_ns(ITEM, cal, slots::NOOPS, CHUNKS, p.noops / CHUNKS as u64)? / 1e3,
    })
}

/// The figures of item 11; `backend` names the KVM backend.
pub fn figures(s: &[Sample], backend: &str) -> Result<Vec<Figure>, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let max = |f: fn(&Sample) -> u64| s.iter().map(f).max().unwrap_or(0) as f64;
    let min = |f: fn(&Sample) -> u64| s.iter().map(f).min().unwrap_or(0) as f64;
    let faults = max(|x| x.faults);
    let without = min(|x| x.faults_without);
    let touch = Figure::new(
        11,
        "fault.lazy_touch_64mib",
        "64 MiB lazy anonymous mapping: mmap + one read per page (faults with fault-around)",
        Unit::Ms,
        col(|x| x.lazy_ms),
    )?
    .vs(
        "eager: mmap + MADV_WILLNEED (batched populate, same entries) + the same reads",
        col(|x| x.eager_ms),
        RatioKind::Times,
    )?
    .target_ratio(Bound::AtMost(2.0), "within 2× of mapping eagerly then touching")
    .detail("pages", PAGES as f64)
    .detail("faults", faults)
    .detail("faults_without_fault_around", without)
    .detail("fault_ratio", faults / without)
    .detail("fault_around_pages", guest_mm::space::FAULT_AROUND_PAGES as f64)
    .target_detail("fault_ratio", Bound::AtMost(0.125), "at most 1/8 of the faults without fault-around")
    .note(format!("reads only (the zero page): writes would need 64 MiB of pool pages. Backend: {backend}"));
    let round_trip = Figure::new(
        11,
        "fault.round_trip",
        "fault round trip: touch of an absent page until the guest runs on (no fault-around)",
        Unit::Us,
        col(|x| x.fault_us),
    )?
    .vs("no-op hypercall (vcpu_id) in the same run", col(|x| x.noop_us), RatioKind::Times)?
    .note(format!(
        "#PF into the kernel stub (push, jmp, out: the report exit), guest-mm's fault under the \
         address-space lock, add + iretq back, and the touch again; on {backend}"
    ));
    Ok(vec![touch.note_if_missed("see docs/benchmarks.md"), round_trip])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_assembles_and_slots_fit() {
        for quick in [true, false] {
            let p = Params::new(quick);
            assert!(program(&p).is_ok());
            assert_eq!(p.noops % CHUNKS as u64, 0);
        }
    }
}
