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

/// `vmm run ARGS…` parsed by `run`'s own options alone, without building
/// the other subcommands' (the common launch: clap builds every option of
/// every subcommand when it parses, whose code and data a `test_hello`
/// launch's peak resident set carried: 5.26 against 5.04 MiB without,
/// `/usr/bin/time -f %M`); `None` for any other command line, and for
/// one this parse refuses or that asks for help, which then goes through
/// the whole command as before (same messages, same help).
fn parse_run(argv: &[std::ffi::OsString], registry: &Registry) -> Option<RunArgs> {
    if argv.get(1).is_none_or(|a| a != "run") {
        return None;
    }
    let help = argv.iter().skip(2).take_while(|a| *a != "--").any(|a| a == "--help" || a == "-h");
    if help {
        return None;
    }
    let run = <RunArgs as clap::Args>::augment_args(clap::Command::new("run").bin_name("vmm run"));
    let run = kind_options::add(run, registry);
    let m = run.try_get_matches_from(argv.iter().skip(1)).ok()?;
    let mut args = RunArgs::from_arg_matches(&m).ok()?;
    args.kind_args = kind_options::collect(&m, registry);
    Some(args)
}

/// The command line, with `vmm run`'s kind options from `registry`.
pub(crate) fn command(registry: &Registry) -> clap::Command {
    Cli::command().mut_subcommand("run", |run| kind_options::add(run, registry))
}

fn main() -> ExitCode {
    let registry = Registry::standard();
    // Kinds' keyed options may be written `--NAME:KEY=VALUE` (Solo5's
    // spelling), which clap cannot parse: rewritten first.
    let argv = kind_options::rewrite(std::env::args_os(), &registry);
    let command = match parse_run(&argv, &registry) {
        Some(run) => Command::Run(run),
        None => {
            let matches = command(&registry).get_matches_from(argv);
            let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            if let (Command::Run(args), Some(("run", m))) = (&mut cli.command, matches.subcommand()) {
                args.kind_args = kind_options::collect(m, &registry);
            }
            cli.command
        }
    };
    let job = match command {
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn argv(line: &str, registry: &Registry) -> Vec<OsString> {
        kind_options::rewrite(line.split(' ').map(OsString::from), registry)
    }

    /// What the whole command makes of a `vmm run` line.
    fn whole(argv: &[OsString], registry: &Registry) -> String {
        let m = command(registry).try_get_matches_from(argv).unwrap();
        let mut cli = Cli::from_arg_matches(&m).unwrap();
        if let (Command::Run(a), Some(("run", sm))) = (&mut cli.command, m.subcommand()) {
            a.kind_args = kind_options::collect(sm, registry);
        }
        format!("{:?}", cli.command)
    }

    #[test]
    fn run_lines_parse_alone_as_the_whole_command_parses_them() {
        let registry = Registry::standard();
        for line in [
            "vmm run",
            "vmm run -v --vcpus 2 --mem 256M --timeout 5",
            "vmm run --guest prog --env A=1 --env B=2 -- x --y -z",
            "vmm run --mem=2 --block:storage=/tmp/disk --guest t.spt -- Hello_Solo5",
            "vmm run --guest prog --thp never --file /etc/x=/tmp/x:rw",
        ] {
            let a = argv(line, &registry);
            let fast = parse_run(&a, &registry).unwrap_or_else(|| panic!("{line}: not parsed alone"));
            assert_eq!(format!("{:?}", Command::Run(fast)), whole(&a, &registry), "{line}");
        }
        // Help, mistakes and other commands go through the whole command
        // (its messages and help).
        for line in
            ["vmm run --help", "vmm run -h --guest x", "vmm run --nosuch", "vmm run --vcpus", "vmm bench", "vmm"]
        {
            assert!(parse_run(&argv(line, &registry), &registry).is_none(), "{line}");
        }
        // After `--`, a `--help` is the guest's.
        assert!(parse_run(&argv("vmm run --guest p -- --help", &registry), &registry).is_some());
    }
}
