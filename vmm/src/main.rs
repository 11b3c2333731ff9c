//! The `vmm` command: `vmm run` boots the built-in test guest (or
//! `--guest FILE`) and prints a report; the exit code says whether every
//! check passed. `vmm bench` runs the throughput suite (see
//! `docs/benchmarks.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use vmm::config::{parse_size, VmConfig};
use vmm::output::{self, FlushError, Output};
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

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot a guest and report on it.
    Run(RunArgs),
    /// Run the throughput suite: each figure beside its peer or floor.
    Bench(BenchArgs),
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
    #[arg(long, value_name = "FILE")]
    guest: Option<PathBuf>,
    /// The ABI of the --guest ELF: `auto` (from the file), `vmm` or `solo5`.
    #[arg(long, value_enum, default_value_t = AbiArg::Auto)]
    abi: AbiArg,
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
    /// Print the report as JSON (guest console output goes to stderr).
    #[arg(long)]
    json: bool,
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
    use vmm::bench::{BenchOptions, Parts};
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
    let report = match vmm::bench::run(&opts) {
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
        if let Err(e) = vmm::bench::plot::draw(&report, p) {
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
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Bench(args) => return bench(args),
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
    let level = match args.verbose {
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
    let code = run(args, &out, &err);
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
    if let Some(v) = args.vcpus {
        cfg.vcpus = v;
    }
    if let Some(t) = args.timeout {
        cfg.timeout_secs = Some(t);
    }
    if let Some(g) = args.guest {
        cfg.guest = GuestChoice::Elf(g);
    }
    let console = if args.json { err.clone() } else { out.clone() };
    let report = match vmm::run(&cfg, ConsoleSink::Writer(console)) {
        Ok(r) => r,
        Err(e) => {
            err.write(format!("vmm: {e}\n").as_bytes());
            return 1;
        }
    };
    let text = if args.json { report.to_json() + "\n" } else { report.to_text() };
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
