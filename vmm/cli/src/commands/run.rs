//! `vmm run`: boots a guest (the built-in test guest, `--guest FILE`, or a
//! multiboot `--kernel`) and prints its report; also the report printing
//! that `vmm fuzz-guest` shares.

use std::path::PathBuf;
use std::time::Instant;

use vmm::config::{parse_size, VmConfig};
use vmm::guest::options::KindArgs;
use vmm::guest::registry::Registry;
use vmm::run::output::{self, FlushError, Output};
use vmm::seccomp::ThreadKind;
use vmm::{ConsoleSink, GuestChoice};

use crate::stdio::EXIT_BROKEN_PIPE;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A freestanding x86-64 ELF to run instead of the built-in test guest:
    /// a program with the VMM's ABI, or a Solo5 `spt` unikernel (told by
    /// its ABI note; see --abi).
    #[arg(long, value_name = "FILE")]
    guest: Option<PathBuf>,
    /// The kind that runs the --guest ELF: `auto` (told by the file) or a
    /// kind's name (`vmm`, `solo5`).
    #[arg(long, value_name = "KIND", default_value = "auto")]
    abi: String,
    /// Guest memory (MiB, or with a K/M/G suffix). Default 128M; for a
    /// Solo5 unikernel, its memory, default 512M as with `solo5-spt`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// Number of vCPUs. Default 1.
    #[arg(long, value_name = "N")]
    vcpus: Option<u8>,
    /// TOML configuration file (memory, vCPUs, BAR windows, timeout).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Stop a guest that has not finished after SECS seconds (output
    /// nobody reads is given up 2 s after the run ends).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Most mappings (VMAs) the guest may have, like Linux's
    /// vm.max_map_count; more fail with ENOMEM. Default 65530.
    #[arg(long, value_name = "N")]
    max_map_count: Option<usize>,
    /// Print the report as JSON (guest console output goes to stderr,
    /// unless --report takes the report).
    #[arg(long)]
    json: bool,
    /// Write the report (text, or JSON with --json) to FILE instead of
    /// stdout or stderr: the terminal then shows only the guest's output.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// When the guest has ended, check the VMM's own state (page-table
    /// census, map counts, pool accounting); a violation fails the run.
    #[arg(long)]
    check_invariants: bool,
    /// Run without the seccomp filters (for debugging: strace, gdb, a
    /// system call the allow-lists lack; with them, such a call ends the
    /// run with status 159 and a line naming it). See docs/reliability.md.
    #[arg(long)]
    no_seccomp: bool,
    /// Test hook: the given thread makes a forbidden system call once its
    /// filter is on (the process must die with SIGSYS).
    #[arg(long, value_enum, hide = true)]
    seccomp_selftest: Option<SelftestThread>,
    /// More log output (-v info, -vv debug) on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Arguments for the guest after `--` (a unikernel's command line).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// The values of the options the kinds declare (`--block`,
    /// `--kernel`, ...): filled from the registry, not by clap's derive.
    #[arg(skip)]
    pub kind_args: KindArgs,
}

/// The thread `--seccomp-selftest` names: the command-line spelling of
/// [`ThreadKind`] (`vcpu`, `event-loop`, `writer`), which the library
/// keeps free of `clap`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SelftestThread {
    /// A vCPU thread.
    Vcpu,
    /// The event loop (the main thread of `vmm run`).
    EventLoop,
    /// An output writer thread (console, report and log buffers).
    Writer,
}

impl From<SelftestThread> for ThreadKind {
    fn from(t: SelftestThread) -> Self {
        match t {
            SelftestThread::Vcpu => ThreadKind::Vcpu,
            SelftestThread::EventLoop => ThreadKind::EventLoop,
            SelftestThread::Writer => ThreadKind::Writer,
        }
    }
}

/// `vmm run`: returns the exit status. Console output goes to `out`
/// (`err` with `--json`), the report to `out` (to `err` when the guest's
/// kind owns stdout, unless `--json`), messages to `err`.
pub fn run(args: RunArgs, registry: &Registry, out: &Output, err: &Output) -> u8 {
    let mut cfg = match &args.config {
        Some(p) => match VmConfig::from_file(p, registry) {
            Ok(c) => c,
            Err(e) => {
                err.write(format!("vmm: {e}\n").as_bytes());
                return 1;
            }
        },
        None => VmConfig::default(),
    };
    if let Some(m) = args.mem {
        cfg.mem_size = m;
        cfg.mem_explicit = true;
    }
    cfg.abi = (args.abi != "auto").then_some(args.abi);
    cfg.guest_args = args.args;
    cfg.kind_args.override_with(&args.kind_args);
    if let Some(v) = args.vcpus {
        cfg.vcpus = v;
    }
    if let Some(t) = args.timeout {
        cfg.timeout_secs = Some(t);
    }
    if let Some(n) = args.max_map_count {
        cfg.max_map_count = n;
    }
    if let Some(g) = args.guest {
        cfg.guest = GuestChoice::Elf(g);
    }
    let mode = Mode {
        json: args.json,
        check_invariants: args.check_invariants,
        seccomp: !args.no_seccomp,
        seccomp_selftest: args.seccomp_selftest.map(ThreadKind::from),
        report: args.report,
    };
    run_cfg_with(&cfg, registry, &mode, out, err)
}

/// How [`run_cfg`] runs.
pub struct Mode {
    /// Print the report as JSON (the console goes to stderr).
    pub json: bool,
    /// Check the VMM's invariants after the run.
    pub check_invariants: bool,
    /// Install the seccomp filters.
    pub seccomp: bool,
    /// The thread that makes a forbidden call (test hook).
    pub seccomp_selftest: Option<ThreadKind>,
    /// Where the report goes instead of stdout/stderr.
    pub report: Option<PathBuf>,
}

/// Runs `cfg` and prints the report; returns the exit status.
pub fn run_cfg(cfg: &VmConfig, mode: &Mode, out: &Output, err: &Output) -> u8 {
    run_cfg_with(cfg, &Registry::standard(), mode, out, err)
}

/// [`run_cfg`] with the kinds of `registry`.
pub fn run_cfg_with(cfg: &VmConfig, registry: &Registry, mode: &Mode, out: &Output, err: &Output) -> u8 {
    // The report file is opened before the run: a bad path is refused at
    // once, and the seccomp filters (on from the run's start) never see
    // an open.
    let mut report_file = match &mode.report {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                err.write(format!("vmm: cannot create the report file {}: {e}\n", path.display()).as_bytes());
                return 1;
            }
        },
        None => None,
    };
    let console = if mode.json && mode.report.is_none() { err.clone() } else { out.clone() };
    let mut opts = vmm::RunOptions::new(ConsoleSink::Writer(console));
    opts.check_invariants = mode.check_invariants;
    opts.seccomp = mode.seccomp;
    opts.seccomp_selftest = mode.seccomp_selftest;
    opts.outputs = vec![out.clone(), err.clone()];
    let report = match vmm::run_with_registry(cfg, registry, opts) {
        Ok(r) => r,
        Err(e) => {
            err.write(format!("vmm: {e}\n").as_bytes());
            return 1;
        }
    };
    let text = if mode.json { report.to_json() + "\n" } else { report.to_text() };
    // A kind whose guest owns stdout (a Solo5 unikernel) gets its text
    // report on stderr; `--json` asks for the report on stdout; `--report`
    // for it in a file.
    if let Some(file) = report_file.as_mut() {
        if let Err(e) = std::io::Write::write_all(file, text.as_bytes()) {
            err.write(format!("vmm: cannot write the report file: {e}\n").as_bytes());
            let _ = out.flush(None);
            return 1;
        }
    } else if report.to_stderr && !mode.json {
        err.write(text.as_bytes());
    } else {
        out.write(text.as_bytes());
    }
    // With a watchdog, an unread stdout must not keep the process alive.
    let deadline = cfg.timeout_secs.map(|_| Instant::now() + output::GRACE);
    let code = (report.exit_code & 0xff) as u8;
    match out.flush(deadline) {
        Ok(()) => code,
        Err(FlushError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_BROKEN_PIPE,
        Err(FlushError::Io(e)) => {
            err.write(format!("vmm: cannot write the report to stdout: {e}\n").as_bytes());
            1
        }
        Err(e @ FlushError::TimedOut { .. }) => {
            err.write(format!("vmm: stdout {e}\n").as_bytes());
            code
        }
    }
}
