//! Running one benchmark guest in the VMM and collecting what it measured.
//!
//! The program (a user ELF from [`vmm::guest::kinds::abi_elf::example::assemble_elf`]) is
//! written to a temporary file and run through [`vmm::run_with`], the
//! same path `vmm run --guest FILE` takes: every exit, hypercall and
//! device access goes through the VMM's own dispatch. Console output is
//! discarded, stdin is not attached, and a watchdog bounds the run. A
//! hook before the vCPUs start keeps a handle on guest memory, from which
//! the results area (see [`super::programs`]) is read after the run.
//!
//! A run counts only if the guest wrote the exit port cleanly, wrote the
//! done marker, and its first and last TSC readings fall between the
//! host's readings taken around the run — the last check is what makes
//! converting guest cycles with the host's TSC rate legitimate.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use super::programs::{DONE, EXIT_OK, FAIL_SETUP, RESULTS_PA, SLOTS, SLOT_DONE, SLOT_TSC_END, SLOT_TSC_START};
use super::tsc::{self, Calibration};
use crate::error::BenchError;
use crate::stats::Stat;
use vmm::config::{GuestChoice, VmConfig};
use vmm::hosted::hypercall::ConsoleOut;
use vmm::memory::GuestMem;
use vmm::run::control::Outcome;
use vmm::run::runner::{run_with, ConsoleSink, RunOptions};
use vmm::run::vm_exit::ExitCounts;

/// Seconds a benchmark guest may run before the watchdog stops it.
pub const WATCHDOG_SECS: u64 = 120;

/// What one guest run left in its results area.
#[derive(Clone, Debug)]
pub struct GuestResults {
    words: Vec<u64>,
    /// The guest's memory, still mapped (for host peers over the same
    /// bytes).
    pub mem: GuestMem,
    /// Exits per vCPU, as the VMM counted them.
    pub exits: Vec<ExitCounts>,
    /// Host TSC just before the VMM started and just after it returned.
    pub host_tsc: (u64, u64),
}

impl GuestResults {
    /// The word in `slot`; `item` names the benchmark for the error.
    pub fn word(&self, item: &str, slot: usize) -> Result<u64, BenchError> {
        self.words.get(slot).copied().ok_or_else(|| guest_err(item, format!("no result slot {slot}")))
    }

    /// A cycle count in `slot`, which must be positive and below the
    /// run's own length (a guest timing cannot exceed the run it is in).
    pub fn cycles(&self, item: &str, slot: usize) -> Result<u64, BenchError> {
        let c = self.word(item, slot)?;
        let run = self.host_tsc.1.wrapping_sub(self.host_tsc.0);
        if c == 0 || c > run {
            return Err(guest_err(item, format!("slot {slot}: {c} cycles is not a timing within a {run}-cycle run")));
        }
        Ok(c)
    }
}

impl GuestResults {
    /// The median over `chunks` timed chunks from slot `first` (see
    /// `programs::timed_chunks`) of the time per operation, in ns, for
    /// `per_chunk` operations per chunk.
    pub fn median_chunk_ns(
        &self,
        item: &str,
        cal: &Calibration,
        first: usize,
        chunks: usize,
        per_chunk: u64,
    ) -> Result<f64, BenchError> {
        let mut v = Vec::with_capacity(chunks);
        for c in 0..chunks {
            v.push(cal.ns_per_op(self.cycles(item, first + c)?, per_chunk));
        }
        Stat::of(&v).map(|s| s.median).ok_or_else(|| guest_err(item, format!("no timed chunks at slot {first}")))
    }
}

/// A [`BenchError::Guest`].
pub fn guest_err(item: &str, reason: impl Into<String>) -> BenchError {
    BenchError::Guest { item: item.to_string(), reason: reason.into() }
}

/// A temporary file removed when dropped.
pub struct TempFile(PathBuf);

impl TempFile {
    /// Writes `bytes` to a fresh file in the temporary directory.
    pub fn write(bytes: &[u8]) -> std::io::Result<TempFile> {
        TempFile::write_as(bytes, "elf")
    }

    /// [`TempFile::write`] with the file name ending `.{extension}`.
    pub fn write_as(bytes: &[u8], extension: &str) -> std::io::Result<TempFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vmm-bench-{}-{n}.{extension}", std::process::id()));
        std::fs::write(&path, bytes)?;
        Ok(TempFile(path))
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `elf` on the machine `cfg` describes (its `guest` and watchdog are
/// replaced) and returns the results area.
pub fn run_program(item: &str, cfg: &VmConfig, elf: &[u8]) -> Result<GuestResults, BenchError> {
    run_program_with(item, cfg, elf, None)
}

/// [`run_program`] with the address space's fault-around window set
/// (`None`: the default).
pub fn run_program_with(
    item: &str,
    cfg: &VmConfig,
    elf: &[u8],
    fault_around: Option<u64>,
) -> Result<GuestResults, BenchError> {
    let file =
        TempFile::write(elf).map_err(|source| BenchError::Io { context: format!("{item}: temp ELF"), source })?;
    let mut cfg = cfg.clone();
    cfg.guest = GuestChoice::Elf(file.0.clone());
    cfg.timeout_secs = Some(WATCHDOG_SECS);
    let kept: Arc<Mutex<Option<GuestMem>>> = Arc::default();
    let hook_slot = kept.clone();
    let mut opts = RunOptions::new(ConsoleSink::Writer(ConsoleOut::new(Box::new(std::io::sink()))));
    opts.stdin = false;
    opts.fault_around = fault_around;
    opts.before_start = Some(Box::new(move |mem: &GuestMem| {
        *hook_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(mem.clone());
    }));
    let t0 = tsc::now();
    let report = run_with(&cfg, opts).map_err(|e| guest_err(item, format!("the VMM could not run the guest: {e}")))?;
    let t1 = tsc::now();
    drop(file);
    match &report.outcome {
        Some(Outcome::ExitPort { status }) if *status == exit_status(EXIT_OK) => {}
        Some(Outcome::ExitPort { status }) if (status >> 1) as u32 >= FAIL_SETUP => {
            let step = (status >> 1) as u32 - FAIL_SETUP;
            return Err(guest_err(item, format!("the guest's set-up step {step} failed (a refused mmap)")));
        }
        other => {
            let what = other.as_ref().map_or_else(|| "no outcome".to_string(), ToString::to_string);
            return Err(guest_err(item, format!("the guest did not finish cleanly: {what}")));
        }
    }
    let mem = kept.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mem = mem.ok_or_else(|| guest_err(item, "guest memory was never handed to the hook"))?;
    collect(item, mem, report.exits, (t0, t1))
}

/// Reads the results area of a finished run and checks its done marker
/// and clock.
pub fn collect(
    item: &str,
    mem: GuestMem,
    exits: Vec<ExitCounts>,
    host_tsc: (u64, u64),
) -> Result<GuestResults, BenchError> {
    let words = read_words(&mem, item)?;
    let results = GuestResults { words, mem, exits, host_tsc };
    if results.word(item, SLOT_DONE)? != DONE {
        return Err(guest_err(item, "the guest ended without its done marker"));
    }
    check_same_clock(item, results.host_tsc, results.word(item, SLOT_TSC_START)?, results.word(item, SLOT_TSC_END)?)?;
    Ok(results)
}

/// The process-style status of exit-port value `v`.
fn exit_status(v: u32) -> i32 {
    ((v << 1) | 1) as i32
}

fn read_words(mem: &GuestMem, item: &str) -> Result<Vec<u64>, BenchError> {
    let mut bytes = vec![0u8; SLOTS * 8];
    mem.read_slice(&mut bytes, GuestAddress(RESULTS_PA))
        .map_err(|e| guest_err(item, format!("cannot read the results area: {e}")))?;
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}

/// The guest's first and last TSC readings must lie between the host's
/// readings around the run: then the guest counter is the host's (no
/// offset, no scaling a bench would notice) and host-calibrated rates
/// apply to guest cycle counts.
pub fn check_same_clock(item: &str, host: (u64, u64), start: u64, end: u64) -> Result<(), BenchError> {
    if host.0 <= start && start <= end && end <= host.1 {
        Ok(())
    } else {
        Err(guest_err(
            item,
            format!(
                "the guest's TSC readings {start}..{end} are not within the host's {}..{}: the guest counter \
                 is offset or scaled, so its cycle counts cannot be converted with the host's rate",
                host.0, host.1
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_clock_must_lie_inside_the_host_interval() {
        assert!(check_same_clock("t", (100, 200), 120, 180).is_ok());
        assert!(check_same_clock("t", (100, 200), 100, 200).is_ok());
        assert!(check_same_clock("t", (100, 200), 90, 180).is_err(), "offset backwards");
        assert!(check_same_clock("t", (100, 200), 120, 260).is_err(), "offset forwards");
        assert!(check_same_clock("t", (100, 200), 180, 120).is_err(), "runs backwards");
    }

    #[test]
    fn timings_must_fit_the_run() {
        let mem = vmm::memory::create_guest_memory(1 << 20).unwrap();
        let r = GuestResults { words: vec![0, 0, 0, 0, 50, 500, 1500], mem, exits: vec![], host_tsc: (1000, 2000) };
        assert_eq!(r.cycles("t", 4).unwrap(), 50);
        assert!(r.cycles("t", 3).is_err(), "zero is no timing");
        assert!(r.cycles("t", 6).is_err(), "longer than the run");
        assert!(r.word("t", 7).is_err(), "past the area");
        // At 1 GHz: chunks of 10 ops taking 50 and 500 cycles are 5 and 50 ns
        // per op; the median of the two is 27.5.
        let cal = Calibration { hz: 1e9, spread: (1e9, 1e9) };
        assert_eq!(r.median_chunk_ns("t", &cal, 4, 2, 10).unwrap(), 27.5);
        assert!(r.median_chunk_ns("t", &cal, 3, 2, 10).is_err(), "a zero chunk is an error");
    }

    #[test]
    fn exit_statuses_match_the_abi() {
        assert_eq!(exit_status(EXIT_OK), 1);
        assert_eq!(exit_status(FAIL_SETUP + 2) >> 1, (FAIL_SETUP + 2) as i32);
    }
}
