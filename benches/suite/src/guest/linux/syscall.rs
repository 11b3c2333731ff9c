//! Item 12a: a Linux system call's round trip against a bare `KVM_RUN`
//! exit, in the same repetition.
//!
//! - **ours**: a static Linux program calls `getpid` with the `syscall`
//!   instruction [`Params::calls`] times, timed with `rdtsc` in chunks
//!   (the median chunk is the repetition's value), each result compared
//!   with the first call's in the loop (a different pid ends the program
//!   with a failure status). On `kvm_pvm`, `syscall` stays in user mode
//!   and jumps to the VMM's trampoline, whose `out` to the hypercall port
//!   is the one exit; the VMM reads the registers, serves the call from
//!   the Linux kind's table, writes the registers back and re-enters; the
//!   trampoline returns as `sysret` would.
//! - **floor**: the bare exit loop ([`super::super::bare_exit`]): a
//!   write to an unbacked BAR page, re-entered by a plain `KVM_RUN` loop
//!   with no register access and no dispatch, timed the same way.
//!
//! The program runs without [`super::session::Counted`], so nothing but
//! the VMM's own path is in the loop. After timing: the status must be 0,
//! the pid positive, the results page whole, and the guest's clock the
//! host's.

use iced_x86::code_asm::*;

use devices::BarWindow;
use vm_memory::GuestAddress;

use super::super::bare_exit::{self, BareMachine};
use super::super::programs::{self as vmm_programs, FixedMap, RESULTS_MAP};
use super::super::session::{check_same_clock, guest_err, TempFile};
use super::super::tsc::Calibration;
use super::program::{self, expect_no_error, prologue, repeat, slot, store_elapsed, sys, tsc, Results};
use super::session::{run, Counting, LinuxGuest};
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use vmm::guest::asm::AsmResult;
use vmm::guest::kinds::abi_elf::example::assemble_elf;
use vmm::hosted::stub::abi::{fd, map, prot};
use vmm::layout::DEFAULT_BAR_BASE;

const ITEM: &str = "12 (Linux system call)";

/// Timed chunks per loop.
const CHUNKS: usize = 10;
/// Untimed iterations before each loop.
const WARM: u64 = 16;

/// The unbacked window of the bare loop.
const WINDOW: BarWindow = BarWindow::uncached(GuestAddress(DEFAULT_BAR_BASE), 0x1_0000);
/// Where the bare loop's program sees it.
const WINDOW_VA: u64 = vmm_programs::va::BAR;

/// Result slots of the Linux program.
mod slots {
    use super::super::program::SLOT_FIRST_FREE;
    /// The pid every call returned.
    pub const PID: usize = SLOT_FIRST_FREE;
    /// The chunks.
    pub const CHUNKS: usize = PID + 1;
}

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Timed calls (and timed bare exits), a multiple of the chunk count.
    pub calls: u64,
}

impl Params {
    /// Sizes for `quick` or the full suite.
    pub fn new(quick: bool) -> Params {
        Params { calls: if quick { 500 } else { 3000 } }
    }
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// `getpid` round trip, µs.
    pub syscall_us: f64,
    /// Bare exit round trip, µs.
    pub bare_us: f64,
}

fn getpid(a: &mut CodeAssembler) -> AsmResult {
    sys(a, libc::SYS_getpid, &[])?;
    a.cmp(rax, r13)?;
    let mut ok = a.create_label();
    a.je(ok)?;
    program::exit_group(a, program::FAIL + 2)?;
    a.set_label(&mut ok)?;
    a.nop()
}

/// The Linux program.
pub fn linux_program(p: &Params) -> AsmResult<Vec<u8>> {
    program::assemble(|a| {
        prologue(a)?;
        sys(a, libc::SYS_getpid, &[])?;
        expect_no_error(a, 1)?;
        a.mov(r13, rax)?;
        a.mov(slot(slots::PID), rax)?;
        repeat(a, rbx, WARM, getpid)?;
        for c in 0..CHUNKS {
            tsc(a, r14)?;
            repeat(a, rbx, p.calls / CHUNKS as u64, getpid)?;
            store_elapsed(a, r14, slots::CHUNKS + c)?;
        }
        program::finish(a)
    })
}

fn window_map() -> FixedMap {
    FixedMap {
        addr: WINDOW_VA,
        len: WINDOW.size,
        prot: prot::READ | prot::WRITE,
        flags: map::SHARED,
        handle: fd::BAR0,
        off: 0,
    }
}

fn bare_store(a: &mut CodeAssembler) -> AsmResult {
    a.mov(qword_ptr(rbp), rbx)
}

/// The bare loop's program (the VMM's own ABI: the bare machine has no
/// Linux kind behind it).
pub fn bare_program(p: &Params) -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        vmm_programs::prologue(a, false)?;
        a.mov(rbp, WINDOW_VA)?;
        vmm_programs::repeat(a, rbx, WARM, bare_store)?;
        vmm_programs::timed_chunks(a, CHUNKS, p.calls / CHUNKS as u64, vmm_programs::SLOT_FIRST_FREE, bare_store)?;
        vmm_programs::finish(a)
    })
}

/// The median chunk's time per operation, ns.
fn median_chunk(cal: &Calibration, chunks: &[u64], per: u64) -> Result<f64, BenchError> {
    let v: Vec<f64> = chunks.iter().map(|c| cal.ns_per_op(*c, per)).collect();
    crate::stats::Stat::of(&v).map(|s| s.median).ok_or_else(|| guest_err(ITEM, "no timed chunks"))
}

/// Checks a Linux run of [`linux_program`] and returns its chunks.
pub fn check_linux_run(stdout: &[u8], exit_code: i32, host_tsc: (u64, u64)) -> Result<Vec<u64>, BenchError> {
    if exit_code != 0 {
        return Err(guest_err(ITEM, format!("the program exited with status {exit_code}, not 0")));
    }
    let r = Results::parse(stdout).map_err(|e| guest_err(ITEM, e))?;
    let (start, end) = r.tsc_span().map_err(|e| guest_err(ITEM, e))?;
    check_same_clock(ITEM, host_tsc, start, end)?;
    let pid = r.word(slots::PID).map_err(|e| guest_err(ITEM, e))?;
    if pid == 0 || pid > i32::MAX as u64 {
        return Err(guest_err(ITEM, format!("getpid returned {pid}")));
    }
    let mut chunks = Vec::with_capacity(CHUNKS);
    for c in 0..CHUNKS {
        let v = r.word(slots::CHUNKS + c).map_err(|e| guest_err(ITEM, e))?;
        if v == 0 || v > end.saturating_sub(start) {
            return Err(guest_err(ITEM, format!("chunk {c}: {v} cycles is not a timing within the run")));
        }
        chunks.push(v);
    }
    Ok(chunks)
}

/// Runs one repetition: the Linux program, then the bare exit loop.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let asm = |e: iced_x86::IcedError| guest_err(ITEM, format!("cannot assemble: {e}"));
    let file = TempFile::write(&linux_program(p).map_err(asm)?)
        .map_err(|source| BenchError::Io { context: format!("{ITEM}: temp ELF"), source })?;
    let r = run(ITEM, &LinuxGuest::new(file.path().to_path_buf()), Counting::No)?;
    let chunks = check_linux_run(&r.stdout, r.exit_code, r.host_tsc)?;
    // Each call is one exit; the rest are the program's start and end.
    let calls = p.calls + WARM + 1;
    if r.exits < calls {
        return Err(guest_err(ITEM, format!("{} exits for {calls} system calls", r.exits)));
    }
    let machine = BareMachine {
        mem_size: vmm::config::DEFAULT_MEM,
        bars: vec![WINDOW],
        maps: vec![RESULTS_MAP, window_map()],
        max_exits: p.calls + WARM + 16,
    };
    let bare = bare_exit::run(ITEM, &machine, &bare_program(p).map_err(asm)?)?;
    let bare_mmio = bare.exits.first().map_or(0, |e| e.mmio);
    if bare_mmio != p.calls + WARM {
        return Err(guest_err(ITEM, format!("bare loop: {bare_mmio} MMIO exits for {} writes", p.calls + WARM)));
    }
    let per = p.calls / CHUNKS as u64;
    Ok(Sample {
        syscall_us: median_chunk(cal, &chunks, per)? / 1e3,
        bare_us: bare.median_chunk_ns(ITEM, cal, vmm_programs::SLOT_FIRST_FREE, CHUNKS, per)? / 1e3,
    })
}

/// The figure; `backend` names the KVM backend.
pub fn figure(p: &Params, s: &[Sample], backend: &str) -> Result<Figure, BenchError> {
    let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let f = Figure::new(
        12,
        "linux.syscall_round_trip",
        "Linux system call round trip: getpid via the `syscall` instruction, static Linux program",
        Unit::Us,
        col(|x| x.syscall_us),
    )?
    .vs(
        "bare KVM_RUN exit loop, same repetition: a write to an unbacked page, re-entered with no work",
        col(|x| x.bare_us),
        RatioKind::Times,
    )?
    .detail("calls", p.calls as f64)
    .target_ratio(Bound::AtMost(1.2), "within 1.2× of the bare KVM_RUN exit");
    let why = if f.all_met() {
        String::new()
    } else {
        " Missed: beyond the exit itself each call pays the VMM's KVM_GET_REGS and KVM_SET_REGS, the \
         vCPU loop's exit handling and the Linux kind's dispatch; see docs/benchmarks.md."
            .to_string()
    };
    Ok(f.note(format!(
        "on {backend}: `syscall` stays in user mode and jumps to the VMM's trampoline, whose `out` to the \
         hypercall port is the one exit per call.{why}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble_in_whole_chunks() {
        for quick in [true, false] {
            let p = Params::new(quick);
            assert!(linux_program(&p).is_ok());
            assert!(bare_program(&p).is_ok());
            assert_eq!(p.calls % CHUNKS as u64, 0);
        }
    }

    #[test]
    fn a_failed_or_short_run_is_refused() {
        let mut page = vec![0u8; program::WORDS * 8];
        let put =
            |page: &mut Vec<u8>, slot: usize, v: u64| page[slot * 8..slot * 8 + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut page, 0, program::MAGIC);
        put(&mut page, program::SLOT_TSC_START, 1000);
        put(&mut page, program::SLOT_TSC_END, 2000);
        put(&mut page, slots::PID, 100);
        for c in 0..CHUNKS {
            put(&mut page, slots::CHUNKS + c, 50);
        }
        assert_eq!(check_linux_run(&page, 0, (900, 2100)).unwrap(), vec![50; CHUNKS]);
        assert!(check_linux_run(&page, program::FAIL as i32 + 2, (900, 2100)).is_err(), "a pid changed");
        assert!(check_linux_run(&page, 0, (1100, 2100)).is_err(), "another clock");
        assert!(check_linux_run(&page[..8], 0, (900, 2100)).is_err(), "short output");
        let mut zero = page.clone();
        put(&mut zero, slots::CHUNKS + 3, 0);
        assert!(check_linux_run(&zero, 0, (900, 2100)).is_err(), "an empty chunk");
        let mut nopid = page.clone();
        put(&mut nopid, slots::PID, 0);
        assert!(check_linux_run(&nopid, 0, (900, 2100)).is_err(), "no pid");
    }
}
