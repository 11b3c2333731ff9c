//! `vmm ltest DIR|FILES…`: the options of the Linux-program suite runner
//! ([`crate::ltest`]) and the printing of its results.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::ltest::{self, report, run::Launcher};
use crate::stdio::print_stdout;

/// Longest timeout accepted (a year), so no deadline can overflow.
const MAX_TIMEOUT_SECS: u64 = 366 * 24 * 3600;

/// `vmm ltest`'s options.
#[derive(clap::Args, Debug)]
pub struct LtestArgs {
    /// Programs to run, or directories whose executable ELF files are run
    /// (sorted by name).
    #[arg(value_name = "DIR|FILE", required = true)]
    inputs: Vec<PathBuf>,
    /// The expectations file (TOML, see docs/test-guests.md).
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// What the programs printed on Linux (`NAME rc=N pass:P …` lines):
    /// a program the expectations file does not list must match it. May
    /// repeat.
    #[arg(long = "host-results", value_name = "FILE")]
    host_results: Vec<PathBuf>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Programs run in parallel (at least 1).
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1, value_parser = jobs)]
    jobs: usize,
    /// Seconds each program may run before it is killed (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(..=MAX_TIMEOUT_SECS))]
    timeout: u64,
    /// An argument for `vmm run`, before `--guest` (may repeat).
    #[arg(long = "vmm-arg", value_name = "ARG", allow_hyphen_values = true)]
    vmm_args: Vec<OsString>,
    /// Print each command line, and the end of the output of each
    /// program that did not match.
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// `-j`: a number of jobs, never 0.
fn jobs(s: &str) -> Result<usize, String> {
    match s.parse::<u16>() {
        Ok(0) => Err("0 jobs would run nothing: give at least 1".into()),
        Ok(n) => Ok(usize::from(n)),
        Err(_) => Err(format!("{s:?} is not a number of jobs (1 to 65535)")),
    }
}

/// Lines of a failed program's output `-v` prints.
const VERBOSE_LINES: usize = 20;

/// `vmm ltest`.
pub fn ltest(args: LtestArgs) -> ExitCode {
    let suite = match ltest::plan(&args.inputs, args.expect.as_deref(), &args.host_results) {
        Ok(s) => s,
        Err(e) => {
            say!("vmm ltest: {e}");
            return ExitCode::from(2);
        }
    };
    for name in &suite.unused {
        say!("vmm ltest: note: the expectations list {name}, which is not run");
    }
    let timeout = (args.timeout > 0).then_some(args.timeout);
    let Some(launcher) = Launcher::from_env(args.vmm_args.clone(), timeout) else {
        say!("vmm ltest: cannot find the vmm binary");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let verbose = args.verbose;
    let paths: Vec<PathBuf> = suite.programs.iter().map(|p| p.path.clone()).collect();
    if verbose {
        for p in &paths {
            let words: Vec<String> = std::iter::once(launcher.exe.as_os_str().to_owned())
                .chain(launcher.arguments(p))
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            let _ = print_stdout(&format!("# {}\n", words.join(" ")));
        }
    }
    let reports = ltest::run::run_all(&launcher, &paths, args.jobs, &|i, outcome| {
        let (Some(program), Some(expected)) = (suite.programs.get(i), suite.expected.get(i)) else {
            // run_all only gives indices of `paths`, which has one per program.
            return None;
        };
        let r = ltest::judge(program, expected, outcome);
        let mut text = format!("{}\n", report::line(&r));
        if verbose && r.verdict == report::Verdict::Fail {
            for (what, out) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                if !out.is_empty() {
                    text.push_str(&format!("  {what}:\n{}", report::tail(out, VERBOSE_LINES)));
                }
            }
        }
        // A closed stdout must not stop the suite; the files still get written.
        let _ = print_stdout(&text);
        Some(r)
    });
    let reports: Vec<_> = reports.into_iter().flatten().collect();
    let secs = start.elapsed().as_secs_f64();
    let totals = report::totals(&reports);
    let _ = print_stdout(&format!("{}\n", report::summary(&totals, secs)));
    for (path, text) in [
        (&args.json, args.json.as_ref().map(|_| report::json(&reports, secs))),
        (&args.junit, args.junit.as_ref().map(|_| report::junit(&reports, secs))),
    ] {
        if let (Some(p), Some(text)) = (path, text) {
            if let Err(e) = std::fs::write(p, text) {
                say!("vmm ltest: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::from(u8::from(totals.failed > 0 || reports.len() != suite.programs.len()))
}
