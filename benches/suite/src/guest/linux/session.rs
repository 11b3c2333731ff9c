//! Running one Linux program in the VMM, in this process, and collecting
//! its standard output, exit status and exit counts.
//!
//! The program runs through [`vmm::run_kind`] with the kind the standard
//! registry chooses for it (the Linux kind, as `vmm run --guest` would),
//! no seccomp filters (this is the bench's own process), standard input
//! detached and standard output captured in memory. With
//! [`Counting::Yes`] the kind is wrapped in [`Counted`], which delegates
//! every method and, at each system call, before serving it, records the
//! page faults the VMM resolved so far and the vCPU's exits: what the
//! figures report as faults and exits, per phase of a program. Runs that
//! time a system call loop use [`Counting::No`], so nothing but the VMM's
//! own path is in the loop.
//!
//! This module checks nothing about what a program computed: only that
//! the run ended with an exit status and all of its output.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::session::guest_err;
use super::super::tsc;
use crate::error::BenchError;
use vmm::config::{GuestChoice, VmConfig};
use vmm::guest::kind::{DeviceCtx, Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind};
use vmm::guest::registry::Registry;
use vmm::guest::user_state::{FaultAction, UserState};
use vmm::hosted::boot::PortAccess;
use vmm::hosted::exception::ExceptionReport;
use vmm::hosted::hypercall::{self, Args, ConsoleOut, HostedKernel};
use vmm::hosted::mapper::PoolRam;
use vmm::hosted::stub::abi::nr;
use vmm::run::report::RunReport;
use vmm::run::runner::{ConsoleSink, RunOptions};

/// Seconds a program may run before the watchdog stops it.
const WATCHDOG_SECS: u64 = 300;

/// Most system calls whose snapshots are kept (the counts go on).
const LOG_MAX: usize = 4096;

/// Whether to count faults and exits per system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// Wrap the kind in [`Counted`].
    Yes,
    /// Run the kind as it is.
    No,
}

/// The state at one system call, before it was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The call's number.
    pub nr: u64,
    /// Page faults the VMM resolved before it.
    pub faults: u64,
    /// Exits of the calling vCPU, this call's own included.
    pub exits: u64,
}

/// What [`Counted`] saw.
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    /// System calls made.
    pub calls: u64,
    /// The first [`LOG_MAX`] calls' snapshots, in order.
    pub snapshots: Vec<Snapshot>,
    /// The last call's snapshot (`exit_group`'s, for a program that
    /// exits).
    pub last: Option<Snapshot>,
}

impl CallLog {
    /// Snapshots of calls numbered `nr`, in order.
    pub fn of(&self, nr: i64) -> Vec<Snapshot> {
        self.snapshots.iter().filter(|s| s.nr == nr as u64).copied().collect()
    }
}

/// A kind that delegates everything to `inner` and logs each system
/// call's [`Snapshot`].
#[derive(Debug)]
pub struct Counted {
    inner: SharedKind,
    log: Arc<Mutex<CallLog>>,
}

impl Counted {
    fn record(&self, hv: &HostedKernel, vcpu: u8, nr_called: u64) {
        let exits = hv.dispatch(vcpu, &Args { nr: nr::EXIT_COUNT, a: [0; 6] }).ret.max(0) as u64;
        let s = Snapshot { nr: nr_called, faults: hv.faults_resolved(), exits };
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.calls += 1;
        if log.snapshots.len() < LOG_MAX {
            log.snapshots.push(s);
        }
        log.last = Some(s);
    }
}

impl GuestKind for Counted {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn platform(&self) -> vmm::guest::kind::Platform {
        self.inner.platform()
    }
    fn check_mem(&self, cfg: &VmConfig) -> Result<(), vmm::config::ConfigError> {
        self.inner.check_mem(cfg)
    }
    fn stdout_is_the_guests(&self) -> bool {
        self.inner.stdout_is_the_guests()
    }
    fn stdin_is_the_guests(&self) -> bool {
        self.inner.stdin_is_the_guests()
    }
    fn ram_size(&self, cfg: &VmConfig) -> u64 {
        self.inner.ram_size(cfg)
    }
    fn pool_ram(&self) -> PoolRam {
        self.inner.pool_ram()
    }
    fn bars(&self, cfg: &VmConfig) -> Vec<vmm::config::BarConfig> {
        self.inner.bars(cfg)
    }
    fn user_ports(&self) -> PortAccess {
        self.inner.user_ports()
    }
    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        self.inner.load(ctx)
    }
    fn add_devices(&self, ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
        self.inner.add_devices(ctx)
    }
    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        self.inner.syscall(hv, vcpu, args)
    }
    fn syscall_in(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> hypercall::Effects {
        self.record(hv, vcpu, user.regs.rax);
        self.inner.syscall_in(hv, vcpu, user)
    }
    fn on_user_fault(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        report: &ExceptionReport,
        user: &mut UserState<'_>,
    ) -> FaultAction {
        self.inner.on_user_fault(hv, vcpu, report, user)
    }
    fn enter(&self, hv: &HostedKernel, vcpu: u8) -> vmm::guest::kind::Entered<'_> {
        self.inner.enter(hv, vcpu)
    }
    fn wants_kick(&self, vcpu: u8) -> bool {
        self.inner.wants_kick(vcpu)
    }
    fn on_kick(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Option<vmm::guest::kind::Preempted> {
        self.inner.on_kick(hv, vcpu, user)
    }
    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        self.inner.finish(end)
    }
    fn seccomp_rows(&self) -> &'static [vmm::seccomp::Row] {
        self.inner.seccomp_rows()
    }
}

/// A program to run and how.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The executable.
    pub path: PathBuf,
    /// Its arguments (after `argv[0]`).
    pub args: Vec<String>,
    /// `--file GUEST=HOST` values.
    pub files: Vec<String>,
    /// `--mem` (`None`: the default).
    pub mem: Option<u64>,
    /// `--vcpus` (`None`: one).
    pub vcpus: Option<u8>,
}

impl LinuxGuest {
    /// `path` with no arguments, files or memory size.
    pub fn new(path: PathBuf) -> LinuxGuest {
        LinuxGuest { path, args: Vec::new(), files: Vec::new(), mem: None, vcpus: None }
    }

    fn config(&self) -> VmConfig {
        let mut cfg = VmConfig {
            guest: GuestChoice::Elf(self.path.clone()),
            guest_args: self.args.clone(),
            timeout_secs: Some(WATCHDOG_SECS),
            abi: Some("linux".into()),
            ..VmConfig::default()
        };
        if let Some(m) = self.mem {
            cfg.mem_size = m;
            cfg.mem_explicit = true;
        }
        if let Some(n) = self.vcpus {
            cfg.vcpus = n;
        }
        for f in &self.files {
            cfg.kind_args.push("file", f.clone());
        }
        cfg
    }
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct LinuxRun {
    /// Everything the program wrote to fd 1.
    pub stdout: Vec<u8>,
    /// Its exit status as a shell reports it.
    pub exit_code: i32,
    /// Exits of vCPU 0 over the whole run.
    pub exits: u64,
    /// With [`Counting::Yes`], what the program's calls saw.
    pub log: Option<CallLog>,
    /// Host TSC just before the kind was opened and just after the run.
    pub host_tsc: (u64, u64),
    /// Wall time from opening the kind (reading the file) to the run's end.
    pub wall: Duration,
}

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `g` to its end; an error if the VMM could not run it, it did not
/// exit, or output was lost.
pub fn run(item: &str, g: &LinuxGuest, counting: Counting) -> Result<LinuxRun, BenchError> {
    let cfg = g.config();
    let out = SharedBuf::default();
    let console = ConsoleOut::new(Box::new(out.clone()));
    let mut opts = RunOptions::new(ConsoleSink::Writer(console.clone()));
    opts.stdin = false;
    let log: Arc<Mutex<CallLog>> = Arc::default();
    let t0 = tsc::now();
    let started = Instant::now();
    let kind = Registry::standard()
        .open(&cfg)
        .map_err(|e| guest_err(item, format!("{}: cannot open the program: {e}", g.path.display())))?;
    let kind: SharedKind = match counting {
        Counting::Yes => Arc::new(Counted { inner: kind, log: log.clone() }),
        Counting::No => kind,
    };
    let report = vmm::run_kind(&cfg, kind, opts)
        .map_err(|e| guest_err(item, format!("the VMM could not run {}: {e}", g.path.display())))?;
    let wall = started.elapsed();
    let t1 = tsc::now();
    match &report.outcome {
        Some(vmm::run::control::Outcome::Exited { .. }) => {}
        other => {
            let what = other.as_ref().map_or_else(|| "no outcome".to_string(), ToString::to_string);
            return Err(guest_err(item, format!("{} did not exit: {what}", g.path.display())));
        }
    }
    if console.dropped() != 0 {
        return Err(guest_err(item, format!("{} bytes of standard output were dropped", console.dropped())));
    }
    let stdout = std::mem::take(&mut *out.0.lock().unwrap_or_else(|e| e.into_inner()));
    let log = match counting {
        Counting::Yes => Some(std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()))),
        Counting::No => None,
    };
    Ok(LinuxRun {
        stdout,
        exit_code: report.exit_code,
        exits: report.exits.first().map_or(0, |e| e.total),
        log,
        host_tsc: (t0, t1),
        wall,
    })
}
