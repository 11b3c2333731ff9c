//! The `vmm` command: `vmm run` boots the built-in test guest (or
//! `--guest FILE`) and prints a report; the exit code says whether every
//! check passed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vmm::config::{parse_size, VmConfig};
use vmm::{ConsoleSink, GuestChoice};

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
    /// Write the example user guest (a freestanding x86-64 ELF) to FILE.
    ExampleElf {
        /// Where to write it.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A freestanding x86-64 ELF to run instead of the built-in test guest.
    #[arg(long, value_name = "FILE")]
    guest: Option<PathBuf>,
    /// Guest memory (MiB, or with a K/M/G suffix). Default 128M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    mem: Option<u64>,
    /// Number of vCPUs. Default 1.
    #[arg(long, value_name = "N")]
    vcpus: Option<u8>,
    /// TOML configuration file (memory, vCPUs, BAR windows, timeout).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Stop a guest that has not finished after SECS seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Print the report as JSON (guest console output goes to stderr).
    #[arg(long)]
    json: bool,
    /// More log output (-v info, -vv debug) on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// A minimal `log` backend writing to stderr.
struct StderrLogger(log::LevelFilter);

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Run(args) => args,
        Command::ExampleElf { file } => {
            let written = vmm::guest::example::hello_elf()
                .map_err(|e| e.to_string())
                .and_then(|img| std::fs::write(&file, img).map_err(|e| e.to_string()));
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vmm: cannot write {}: {e}", file.display());
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
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }

    let mut cfg = match &args.config {
        Some(p) => match VmConfig::from_file(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vmm: {e}");
                return ExitCode::from(1);
            }
        },
        None => VmConfig::default(),
    };
    if let Some(m) = args.mem {
        cfg.mem_size = m;
    }
    if let Some(v) = args.vcpus {
        cfg.vcpus = v;
    }
    if let Some(t) = args.timeout {
        cfg.timeout_secs = Some(t);
    }
    if let Some(g) = args.guest {
        cfg.guest = GuestChoice::Elf(g);
    }
    let sink = if args.json { ConsoleSink::Stderr } else { ConsoleSink::Stdout };
    match vmm::run(&cfg, sink) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::from((report.exit_code & 0xff) as u8)
        }
        Err(e) => {
            eprintln!("vmm: {e}");
            ExitCode::from(1)
        }
    }
}
