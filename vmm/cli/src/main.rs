//! The `vmm` command: `vmm run` boots the built-in test guest (or
//! `--guest FILE`) and prints a report; the exit code says whether every
//! check passed. `vmm bench` runs the throughput suite (the `vmm-bench`
//! package, see `docs/benchmarks.md`); `vmm kut` runs a kvm-unit-tests
//! suite ([`kut`]); `vmm ltest` runs suites of static Linux programs
//! ([`ltest`]).
//!
//! This crate is only the command line: each subcommand's options and the
//! glue to the `vmm` library are in [`commands`]; the runtime is the `vmm`
//! library.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[macro_use]
mod stdio;
mod commands;
mod kind_options;
mod kut;
mod logger;
mod ltest;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use commands::bench::BenchArgs;
use commands::fuzz_guest::FuzzArgs;
use commands::kut::KutArgs;
use commands::ltest::LtestArgs;
use commands::run::RunArgs;
use vmm::guest::registry::Registry;
use vmm::run::output::{self, Output};

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
    /// Run suites of static x86-64 Linux programs (kselftests, LTP), each
    /// in its own `vmm run --guest` process, and compare their TAP or LTP
    /// totals with the expected ones.
    Ltest(LtestArgs),
    /// Write the example user guest (a freestanding x86-64 ELF) to FILE.
    ExampleElf {
        /// Where to write it.
        file: PathBuf,
    },
    /// The bare KVM launch `vmm bench` times as the floor of `vmm run`
    /// (one VM, one page, one vCPU, one port write): not for users.
    #[command(hide = true)]
    LaunchFloor,
}

/// The command line, with `vmm run`'s kind options from `registry`.
pub(crate) fn command(registry: &Registry) -> clap::Command {
    Cli::command().mut_subcommand("run", |run| kind_options::add(run, registry))
}

fn main() -> ExitCode {
    let registry = Registry::standard();
    // Kinds' keyed options may be written `--NAME:KEY=VALUE` (Solo5's
    // spelling), which clap cannot parse: rewritten first.
    let matches = command(&registry).get_matches_from(kind_options::rewrite(std::env::args_os(), &registry));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Run(args), Some(("run", m))) = (&mut cli.command, matches.subcommand()) {
        args.kind_args = kind_options::collect(m, &registry);
    }
    let job = match cli.command {
        Command::Run(args) => Job::Run(args),
        Command::FuzzGuest(args) => Job::Fuzz(args),
        Command::Bench(args) => return commands::bench::bench(args),
        Command::Kut(args) => return commands::kut::kut(args),
        Command::Ltest(args) => return commands::ltest::ltest(args),
        Command::ExampleElf { file } => return commands::example_elf::example_elf(&file),
        Command::LaunchFloor => return commands::bench::launch_floor(),
    };
    let verbose = match &job {
        Job::Run(a) => a.verbose,
        Job::Fuzz(_) => 0,
    };
    // Every output of a run goes through a bounded, non-blocking buffer
    // (see vmm::run::output): the guest console, the report and the log.
    let (out, err) = match (Output::stdout(), Output::stderr()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            say!("vmm: cannot set up the output: {e}");
            return ExitCode::from(1);
        }
    };
    logger::install(verbose, &err);
    let code = match job {
        Job::Run(args) => commands::run::run(args, &registry, &out, &err),
        Job::Fuzz(args) => commands::fuzz_guest::fuzz_guest(args, &out, &err),
    };
    // The log is lossy: give it a moment, never more.
    let _ = err.flush(Some(Instant::now() + output::GRACE));
    ExitCode::from(code)
}
