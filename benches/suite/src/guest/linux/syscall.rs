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
    /// The chunks of the direct port write (PVM only).
    pub const PORT_CHUNKS: usize = CHUNKS + super::CHUNKS;
}

/// Workload sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Timed calls (and timed bare exits), a multiple of the chunk count.
    pub calls: u64,
    /// Also time the call made by writing the hypercall port directly,
    /// as the trampoline does, without the `syscall` instruction (only
    /// where `syscall` stays in user mode: elsewhere user mode has no
    /// ports).
    pub port: bool,
}

impl Params {
    /// Sizes for `quick` or the full suite, on this host's backend.
    pub fn new(quick: bool) -> Params {
        let port = vmm::vstate::backend::syscall_entry() == vmm::vstate::backend::SyscallEntry::User;
        Params { calls: if quick { 500 } else { 3000 }, port }
    }
}

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// `getpid` round trip, µs.
    pub syscall_us: f64,
    /// Bare exit round trip, µs.
    pub bare_us: f64,
    /// The same call by a direct hypercall-port write, µs (with
    /// [`Params::port`]).
    pub port_us: Option<f64>,
}

fn getpid(a: &mut CodeAssembler) -> AsmResult {
    sys(a, libc::SYS_getpid, &[])?;
    same_pid(a)
}

/// `getpid` as the trampoline makes it: `rcx` the return address, `r11`
/// the flags, the number in `rax`, `out` to the hypercall port; the VMM
/// resumes at `rcx` as it does after a `syscall`.
fn getpid_by_port(a: &mut CodeAssembler) -> AsmResult {
    let mut back = a.create_label();
    a.lea(rcx, ptr(back))?;
    a.pushfq()?;
    a.pop(r11)?;
    a.mov(eax, libc::SYS_getpid as u32)?;
    a.out(u32::from(vmm::hosted::stub::abi::HCALL_PORT), al)?;
    a.set_label(&mut back)?;
    same_pid(a)
}

/// Ends the program unless `rax` is the pid in `r13`.
fn same_pid(a: &mut CodeAssembler) -> AsmResult {
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
        if p.port {
            repeat(a, rbx, WARM, getpid_by_port)?;
            for c in 0..CHUNKS {
                tsc(a, r14)?;
                repeat(a, rbx, p.calls / CHUNKS as u64, getpid_by_port)?;
                store_elapsed(a, r14, slots::PORT_CHUNKS + c)?;
            }
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

/// Checks a Linux run of [`linux_program`] and returns its chunks: the
/// `syscall` loop's, and with `port` the direct port write's.
pub fn check_linux_run(
    stdout: &[u8],
    exit_code: i32,
    host_tsc: (u64, u64),
    port: bool,
) -> Result<(Vec<u64>, Option<Vec<u64>>), BenchError> {
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
    let chunks = |first: usize| -> Result<Vec<u64>, BenchError> {
        let mut v = Vec::with_capacity(CHUNKS);
        for c in 0..CHUNKS {
            let w = r.word(first + c).map_err(|e| guest_err(ITEM, e))?;
            if w == 0 || w > end.saturating_sub(start) {
                return Err(guest_err(ITEM, format!("slot {}: {w} cycles is not a timing within the run", first + c)));
            }
            v.push(w);
        }
        Ok(v)
    };
    Ok((chunks(slots::CHUNKS)?, if port { Some(chunks(slots::PORT_CHUNKS)?) } else { None }))
}

/// Runs one repetition: the Linux program, then the bare exit loop.
pub fn sample(p: &Params, cal: &Calibration) -> Result<Sample, BenchError> {
    let asm = |e: iced_x86::IcedError| guest_err(ITEM, format!("cannot assemble: {e}"));
    let file = TempFile::write(&linux_program(p).map_err(asm)?)
        .map_err(|source| BenchError::Io { context: format!("{ITEM}: temp ELF"), source })?;
    let r = run(ITEM, &LinuxGuest::new(file.path().to_path_buf()), Counting::No)?;
    let (chunks, port_chunks) = check_linux_run(&r.stdout, r.exit_code, r.host_tsc, p.port)?;
    // Each call is one exit; the rest are the program's start and end.
    let calls = (p.calls + WARM) * if p.port { 2 } else { 1 } + 1;
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
    let port_us = match port_chunks {
        Some(c) => Some(median_chunk(cal, &c, per)? / 1e3),
        None => None,
    };
    Ok(Sample {
        syscall_us: median_chunk(cal, &chunks, per)? / 1e3,
        bare_us: bare.median_chunk_ns(ITEM, cal, vmm_programs::SLOT_FIRST_FREE, CHUNKS, per)? / 1e3,
        port_us,
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
    // The decomposition: the same call without the `syscall` instruction.
    let port: Option<Vec<(f64, f64, f64)>> =
        s.iter().map(|x| x.port_us.map(|u| (u, x.bare_us, x.syscall_us))).collect();
    let f = match port {
        Some(v) => {
            let med = |g: &dyn Fn(&(f64, f64, f64)) -> f64| {
                crate::stats::Stat::of(&v.iter().map(g).collect::<Vec<f64>>()).map_or(f64::NAN, |s| s.median)
            };
            f.detail("port_write_us", med(&|t| t.0))
                .detail("port_write_vs_bare_exit", med(&|t| t.0 / t.1))
                .detail("syscall_instruction_us", med(&|t| t.2 - t.0))
        }
        None => f,
    };
    let why = if f.all_met() {
        String::new()
    } else {
        " Missed: port_write_us is the same call made by the trampoline's `out` alone (no `syscall` \
         instruction): the VMM's part (the exit, the registers through kvm_run's synced area, the Linux kind's \
         dispatch) against the bare exit is port_write_vs_bare_exit; syscall_instruction_us is what the \
         backend's handling of `syscall` itself (its jump to LSTAR) adds; see docs/benchmarks.md."
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
            assert!(linux_program(&Params { port: !p.port, ..p }).is_ok());
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
        assert_eq!(check_linux_run(&page, 0, (900, 2100), false).unwrap(), (vec![50; CHUNKS], None));
        assert!(check_linux_run(&page, 0, (900, 2100), true).is_err(), "no port chunks");
        for c in 0..CHUNKS {
            put(&mut page, slots::PORT_CHUNKS + c, 40);
        }
        assert_eq!(check_linux_run(&page, 0, (900, 2100), true).unwrap().1, Some(vec![40; CHUNKS]));
        assert!(check_linux_run(&page, program::FAIL as i32 + 2, (900, 2100), false).is_err(), "a pid changed");
        assert!(check_linux_run(&page, 0, (1100, 2100), false).is_err(), "another clock");
        assert!(check_linux_run(&page[..8], 0, (900, 2100), false).is_err(), "short output");
        let mut zero = page.clone();
        put(&mut zero, slots::CHUNKS + 3, 0);
        assert!(check_linux_run(&zero, 0, (900, 2100), false).is_err(), "an empty chunk");
        let mut nopid = page.clone();
        put(&mut nopid, slots::PID, 0);
        assert!(check_linux_run(&nopid, 0, (900, 2100), false).is_err(), "no pid");
    }
}
