//! `vmm kut DIR`: the options of the kvm-unit-tests runner ([`crate::kut`])
//! and the printing of its results.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::kut::{self, output};
use crate::stdio::print_stdout;

#[derive(clap::Args, Debug)]
pub struct KutArgs {
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
    /// Timeout of a test whose section gives none, in seconds (at most a
    /// year).
    #[arg(long, value_name = "SECS", default_value_t = 90, value_parser = secs())]
    timeout: u64,
    /// Cap every test's timeout at SECS (at most a year).
    #[arg(long, value_name = "SECS", value_parser = secs())]
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
    /// Write each test's console output to DIR/NAME.log (a test whose
    /// name is not a file name in DIR is skipped).
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

/// A number of seconds no larger than [`kut::plan::MAX_TIMEOUT_SECS`], so
/// that no deadline computed from it can overflow.
fn secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(..=kut::plan::MAX_TIMEOUT_SECS)
}

/// `vmm kut`.
pub fn kut(args: KutArgs) -> ExitCode {
    let opts = kut::SuiteOptions {
        names: args.names,
        groups: args.groups,
        default_timeout: args.timeout,
        max_timeout: args.max_timeout,
        logs: args.logs.is_some(),
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
                if let Err(e) = kut::logs::write_log(d, &r.name, &r.log) {
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
