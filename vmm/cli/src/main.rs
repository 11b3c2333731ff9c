//! The `vmm` command: `vmm run` boots the built-in test guest (or
//! `--guest FILE`) and prints a report; the exit code says whether every
//! check passed. `vmm bench` runs the throughput suite (the `vmm-bench`
//! package, see `docs/benchmarks.md`); `vmm kut` runs a kvm-unit-tests
//! suite ([`kut`]).

mod kut;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use vmm::config::{parse_block, parse_size, RawKernel, VmConfig};
use vmm::output::{self, FlushError, Output};
use vmm::seccomp::ThreadKind;
use vmm::{ConsoleSink, GuestChoice};

/// A line on stderr; a full or closed stderr loses it (no panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(name = "vmm", version, about = "A small KVM VMM whose guest page tables are built by guest-mm")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `main` runs once the output is set up.
enum Job {
    Run(RunArgs),
    Fuzz(FuzzArgs),
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot a guest and report on it.
    Run(RunArgs),
    /// Run the throughput suite: each figure beside its peer or floor.
    Bench(BenchArgs),
    /// Run the in-guest fuzzer: random hypercalls and probes from every
    /// vCPU, seeded; the VMM checks its invariants at the end.
    FuzzGuest(FuzzArgs),
    /// Run a kvm-unit-tests suite from DIR/unittests.cfg (or DIR/x86/),
    /// each test in its own `vmm run --kernel` process.
    Kut(KutArgs),
    /// Write the example user guest (a freestanding x86-64 ELF) to FILE.
    ExampleElf {
        /// Where to write it.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A freestanding x86-64 ELF to run instead of the built-in test guest:
    /// a program with the VMM's ABI, or a Solo5 `spt` unikernel (told by
    /// its ABI note; see --abi).
    #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
    guest: Option<PathBuf>,
    /// The ABI of the --guest ELF: `auto` (from the file), `vmm` or `solo5`.
    #[arg(long, value_enum, default_value_t = AbiArg::Auto)]
    abi: AbiArg,
    /// A multiboot v1 kernel (ELF32/ELF64, e.g. a kvm-unit-test `.flat`) to
    /// boot on a bare PC with no firmware, as `qemu -kernel` does.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The kernel's command line (it sees `"<FILE> <ARGS>"`).
    #[arg(long, value_name = "ARGS", requires = "kernel", allow_hyphen_values = true)]
    append: Option<String>,
    /// A file the kernel gets as its first multiboot module (kvm-unit-tests
    /// read their environment from it).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Further multiboot modules, after `--initrd`.
    #[arg(long = "module", value_name = "FILE", requires = "kernel")]
    modules: Vec<PathBuf>,
    /// Guest memory (MiB, or with a K/M/G suffix). Default 128M; for a
    /// Solo5 unikernel, its memory, default 512M as with `solo5-spt`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// Number of vCPUs. Default 1.
    #[arg(long, value_name = "N")]
    vcpus: Option<u8>,
    /// Attach the host file FILE as the Solo5 unikernel's block device
    /// NAME (declared in its manifest), like `solo5-spt --block:NAME=FILE`.
    /// Repeatable; replaces the configuration file's `[[block]]` entries.
    #[arg(long, value_name = "NAME=FILE", value_parser = parse_block)]
    block: Vec<(String, PathBuf)>,
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
    /// Print the report as JSON (guest console output goes to stderr).
    #[arg(long)]
    json: bool,
    /// When the guest has ended, check the VMM's own state (page-table
    /// census, map counts, pool accounting); a violation fails the run.
    #[arg(long)]
    check_invariants: bool,
    /// Run without the seccomp filters (for debugging: strace, gdb, a
    /// system call the allow-lists lack). See docs/reliability.md.
    #[arg(long)]
    no_seccomp: bool,
    /// Test hook: the given thread makes a forbidden system call once its
    /// filter is on (the process must die with SIGSYS).
    #[arg(long, value_enum, hide = true)]
    seccomp_selftest: Option<SelftestThread>,
    /// More log output (-v info, -vv debug) on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Arguments for the guest after `--` (a unikernel's command line).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AbiArg {
    /// Told by the file.
    Auto,
    /// The VMM's own ABI.
    Vmm,
    /// A Solo5 spt unikernel.
    Solo5,
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

#[derive(clap::Args, Debug)]
struct FuzzArgs {
    /// Seed of the guest's generators (decimal or 0x hex); a run is
    /// reproduced by its seed, call count and vCPU count. Default: from
    /// the clock, printed in the report.
    #[arg(long, value_name = "S", value_parser = parse_u64)]
    seed: Option<u64>,
    /// Hypercalls in total, over all vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    calls: u64,
    /// Number of vCPUs (at most 16).
    #[arg(long, value_name = "V", default_value_t = 1)]
    vcpus: u8,
    /// Guest memory (MiB, or with a K/M/G suffix). Default 128M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// Stop a guest that has not finished after SECS seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run without the seccomp filters (for debugging).
    #[arg(long)]
    no_seccomp: bool,
}

/// A u64 in decimal or `0x` hex.
fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

#[derive(clap::Args, Debug)]
struct KutArgs {
    /// The directory holding unittests.cfg and the .flat files.
    dir: PathBuf,
    /// Run only these tests (by section name; may repeat).
    #[arg(long = "test", short = 't', value_name = "NAME")]
    names: Vec<String>,
    /// Run only tests in these groups (may repeat).
    #[arg(long = "group", short = 'g', value_name = "GROUP")]
    groups: Vec<String>,
    /// Tests run in parallel.
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Timeout of a test whose section gives none, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 90)]
    timeout: u64,
    /// Cap every test's timeout at SECS.
    #[arg(long, value_name = "SECS")]
    max_timeout: Option<u64>,
    /// Print the results as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Write JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write TAP to FILE.
    #[arg(long, value_name = "FILE")]
    tap: Option<PathBuf>,
    /// Write each test's console output to DIR/NAME.log.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

/// `vmm kut`.
fn kut(args: KutArgs) -> ExitCode {
    use crate::kut::{self, output};
    let opts = kut::SuiteOptions {
        names: args.names,
        groups: args.groups,
        default_timeout: args.timeout,
        max_timeout: args.max_timeout,
    };
    let plans = match kut::plan_suite(&args.dir, &opts) {
        Ok(p) => p,
        Err(e) => {
            say!("vmm kut: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(exe) = kut::run::current_vmm() else {
        say!("vmm kut: cannot find the vmm binary");
        return ExitCode::from(2);
    };
    if let Some(d) = &args.logs {
        if let Err(e) = std::fs::create_dir_all(d) {
            say!("vmm kut: cannot create {}: {e}", d.display());
            return ExitCode::from(2);
        }
    }
    let start = std::time::Instant::now();
    let quiet = args.json;
    let logs = args.logs.clone();
    let results = kut::run::run_all(&exe, &plans, args.jobs, &|r| {
        if !quiet {
            // A closed stdout must not stop the suite; the summary reports it.
            let _ = print_stdout(&format!("{}\n", output::line(r)));
        }
        if let Some(d) = &logs {
            if !r.log.is_empty() {
                if let Err(e) = std::fs::write(d.join(format!("{}.log", r.name)), &r.log) {
                    say!("vmm kut: cannot write the log of {}: {e}", r.name);
                }
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let totals = output::totals(&results);
    let text = if args.json { output::json(&results, secs) } else { output::summary(&totals, secs) };
    if let Err(code) = print_stdout(&(text + "\n")) {
        return code;
    }
    for (path, text) in [(&args.junit, output::junit(&results, secs)), (&args.tap, output::tap(&results))] {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                say!("vmm kut: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(u8::from(totals.failed > 0))
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// The reduced suite (3 repetitions, smaller guest workloads); well
    /// under a minute.
    #[arg(long)]
    quick: bool,
    /// Repetitions per figure (default 3 with --quick, 11 without).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    reps: Option<u16>,
    /// Run only the host-side items (1–4, 10) or the guest-side items (5–9, 11).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw ns/page against pages per call as an SVG chart to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Exit with status 2 if any target is missed.
    #[arg(long)]
    fail_on_miss: bool,
    /// No progress output on stderr.
    #[arg(long)]
    no_progress: bool,
    /// A Solo5 spt unikernel (e.g. Solo5's test_hello.spt) whose launch is
    /// measured beside the minimal guest's.
    #[arg(long, value_name = "FILE")]
    spt: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Only {
    /// Items 1–4 and 10: the mapper on plain guest memory.
    Host,
    /// Items 5–9 and 11: guests on KVM.
    Guest,
}

/// `vmm bench`.
fn bench(args: BenchArgs) -> ExitCode {
    use vmm_bench::{BenchOptions, Parts};
    if args.plot.is_some() && matches!(args.only, Some(Only::Guest)) {
        say!("vmm bench: --plot draws the host-side sweep (items 1 and 4); it cannot go with --only guest");
        return ExitCode::from(2);
    }
    // Refuse unwritable outputs before spending minutes measuring, without
    // leaving an empty file behind.
    for p in [&args.json, &args.plot].into_iter().flatten() {
        let existed = p.exists();
        match std::fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(_) if !existed => {
                let _ = std::fs::remove_file(p);
            }
            Ok(_) => {}
            Err(e) => {
                say!("vmm bench: cannot write {}: {e}", p.display());
                return ExitCode::from(1);
            }
        }
    }
    let opts = BenchOptions {
        quick: args.quick,
        reps: args.reps.map(usize::from),
        parts: match args.only {
            None => Parts::All,
            Some(Only::Host) => Parts::Host,
            Some(Only::Guest) => Parts::Guest,
        },
        vmm_binary: std::env::current_exe().ok(),
        progress: !args.no_progress,
        spt: args.spt,
    };
    let report = match vmm_bench::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            say!("vmm bench: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(code) = print_stdout(&report.table()) {
        return code;
    }
    if let Some(p) = &args.json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                say!("vmm bench: cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        };
        if let Err(e) = std::fs::write(p, text + "\n") {
            say!("vmm bench: cannot write {}: {e}", p.display());
            return ExitCode::from(1);
        }
        say!("JSON report written to {}", p.display());
    }
    if let Some(p) = &args.plot {
        if let Err(e) = vmm_bench::plot::draw(&report, p) {
            say!("vmm bench: {e}");
            return ExitCode::from(1);
        }
        say!("chart written to {}", p.display());
    }
    if !report.errors.is_empty() {
        for e in &report.errors {
            say!("vmm bench: {e}");
        }
        return ExitCode::from(1);
    }
    if args.fail_on_miss && !report.targets.missed.is_empty() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// A `log` backend writing to stderr through a lossy [`Output`]: a full
/// or unread stderr drops lines, it never blocks the thread that logs (a
/// vCPU, the event loop, the watchdog).
struct StderrLogger {
    level: log::LevelFilter,
    out: Output,
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            self.out.write_lossy(format!("[{} {}] {}\n", r.level(), r.target(), r.args()).as_bytes());
        }
    }
    fn flush(&self) {}
}

/// Exit status when stdout's reader went away (`128 + SIGPIPE`).
const EXIT_BROKEN_PIPE: u8 = vmm::report::EXIT_OUTPUT_CLOSED as u8;

/// Writes `text` to stdout (blocking: for `vmm bench`, which has no
/// guest to stop). A closed pipe is a quiet exit, another error a message.
fn print_stdout(text: &str) -> Result<(), ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ExitCode::from(EXIT_BROKEN_PIPE)),
        Err(e) => {
            say!("vmm: cannot write to stdout: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let job = match cli.command {
        Command::Run(args) => Job::Run(args),
        Command::FuzzGuest(args) => Job::Fuzz(args),
        Command::Bench(args) => return bench(args),
        Command::Kut(args) => return kut(args),
        Command::ExampleElf { file } => {
            let written = vmm::guest::example::hello_elf()
                .map_err(|e| e.to_string())
                .and_then(|img| std::fs::write(&file, img).map_err(|e| e.to_string()));
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("vmm: cannot write {}: {e}", file.display());
                    ExitCode::from(1)
                }
            };
        }
    };
    let verbose = match &job {
        Job::Run(a) => a.verbose,
        Job::Fuzz(_) => 0,
    };
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    // Every output of a run goes through a bounded, non-blocking buffer
    // (see vmm::output): the guest console, the report and the log.
    let (out, err) = match (Output::stdout(), Output::stderr()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            say!("vmm: cannot set up the output: {e}");
            return ExitCode::from(1);
        }
    };
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { level, out: err.clone() }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    let code = match job {
        Job::Run(args) => run(args, &out, &err),
        Job::Fuzz(args) => fuzz_guest(args, &out, &err),
    };
    // The log is lossy: give it a moment, never more.
    let _ = err.flush(Some(Instant::now() + output::GRACE));
    ExitCode::from(code)
}

/// `vmm run`: returns the exit status. Console output goes to `out`
/// (`err` with `--json`), the report to `out`, messages to `err`.
fn run(args: RunArgs, out: &Output, err: &Output) -> u8 {
    let mut cfg = match &args.config {
        Some(p) => match VmConfig::from_file(p) {
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
    cfg.abi = match args.abi {
        AbiArg::Auto => vmm::config::Abi::Auto,
        AbiArg::Vmm => vmm::config::Abi::Vmm,
        AbiArg::Solo5 => vmm::config::Abi::Solo5,
    };
    cfg.guest_args = args.args;
    if !args.block.is_empty() {
        cfg.blocks = args.block;
    }
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
    if let Some(kernel) = args.kernel {
        let modules = args.initrd.into_iter().chain(args.modules).collect();
        cfg.guest = GuestChoice::Raw(RawKernel { kernel, cmdline: args.append.unwrap_or_default(), modules });
    }
    let mode = Mode {
        json: args.json,
        check_invariants: args.check_invariants,
        seccomp: !args.no_seccomp,
        seccomp_selftest: args.seccomp_selftest.map(ThreadKind::from),
    };
    run_cfg(&cfg, &mode, out, err)
}

/// How [`run_cfg`] runs.
struct Mode {
    json: bool,
    check_invariants: bool,
    seccomp: bool,
    seccomp_selftest: Option<ThreadKind>,
}

/// Runs `cfg` and prints the report; returns the exit status.
fn run_cfg(cfg: &VmConfig, mode: &Mode, out: &Output, err: &Output) -> u8 {
    let console = if mode.json { err.clone() } else { out.clone() };
    let mut opts = vmm::RunOptions::new(ConsoleSink::Writer(console));
    opts.check_invariants = mode.check_invariants;
    opts.seccomp = mode.seccomp;
    opts.seccomp_selftest = mode.seccomp_selftest;
    opts.outputs = vec![out.clone(), err.clone()];
    let report = match vmm::run_with(cfg, opts) {
        Ok(r) => r,
        Err(e) => {
            err.write(format!("vmm: {e}\n").as_bytes());
            return 1;
        }
    };
    let text = if mode.json { report.to_json() + "\n" } else { report.to_text() };
    out.write(text.as_bytes());
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

/// `vmm fuzz-guest`: returns the exit status.
fn fuzz_guest(args: FuzzArgs, out: &Output, err: &Output) -> u8 {
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id())
    });
    let mut cfg =
        VmConfig { vcpus: args.vcpus, guest: GuestChoice::Fuzz { seed, calls: args.calls }, ..VmConfig::default() };
    if let Some(m) = args.mem {
        cfg.mem_size = m;
        cfg.mem_explicit = true;
    }
    cfg.timeout_secs = args.timeout;
    err.write(format!("vmm fuzz-guest: seed {seed:#x}, {} calls, {} vCPUs\n", args.calls, args.vcpus).as_bytes());
    let mode = Mode { json: args.json, check_invariants: true, seccomp: !args.no_seccomp, seccomp_selftest: None };
    run_cfg(&cfg, &mode, out, err)
}
