//! `vmm ltest DIR|FILES…`: runs suites of unmodified static Linux
//! programs — the kernel's mm selftests, LTP tests — each in its own
//! `vmm run --guest PROGRAM` child, and compares what each reports with
//! what it is expected to report.
//!
//! [`discover`] finds the programs, [`run`] runs them (timeouts,
//! parallel children), [`tap`] and [`ltp`] read their output and
//! [`parse`] turns it into [`counts`], [`baseline`] reads what they
//! printed on Linux (`--host-results`), [`expect`] reads the expectations
//! file and decides whether each program matched, [`report`] prints and
//! writes the results. Nothing here runs a guest: the children do.
//!
//! The inputs are trusted with nothing: files are read bounded, the
//! programs' output is bounded and parsed line by line, and anything
//! malformed is an error that names the file and line, never a panic.

pub mod baseline;
pub mod counts;
pub mod discover;
pub mod expect;
pub mod ltp;
pub mod parse;
pub mod report;
pub mod run;
pub mod tap;

use std::path::{Path, PathBuf};

use discover::Program;
use expect::Expectation;
use report::{Report, Verdict};
use run::Outcome;

/// Largest expectations or host-results file read.
pub const MAX_FILE: u64 = 4 << 20;

/// Errors before any program runs.
#[derive(Debug, thiserror::Error)]
pub enum LtestError {
    /// The programs could not be listed.
    #[error(transparent)]
    Discover(#[from] discover::DiscoverError),
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] vmm::input_file::InputError),
    /// A file is not text.
    #[error("{0}: not UTF-8 text")]
    NotText(PathBuf),
    /// The expectations file is malformed.
    #[error("{path}: {source}")]
    Expect {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: expect::ExpectError,
    },
    /// A host-results file is malformed.
    #[error("{path}: {source}")]
    Baseline {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: baseline::BaselineError,
    },
}

/// What to run and what to expect of each.
#[derive(Debug)]
pub struct Suite {
    /// The programs, in order.
    pub programs: Vec<Program>,
    /// The expectation of each.
    pub expected: Vec<Expectation>,
    /// Names in the expectations file that name no program run.
    pub unused: Vec<String>,
}

fn read_text(path: &Path) -> Result<String, LtestError> {
    let bytes = vmm::input_file::read_input(path, MAX_FILE)?;
    String::from_utf8(bytes).map_err(|_| LtestError::NotText(path.to_owned()))
}

/// Lists the programs of `inputs` and resolves each one's expectation
/// from `expect_file` and the `host_results` files.
pub fn plan(inputs: &[PathBuf], expect_file: Option<&Path>, host_results: &[PathBuf]) -> Result<Suite, LtestError> {
    let programs = discover::programs(inputs)?;
    let mut host = baseline::Baseline::default();
    for path in host_results {
        let m =
            baseline::parse(&read_text(path)?).map_err(|source| LtestError::Baseline { path: path.clone(), source })?;
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        host.add(name, m);
    }
    let file = match expect_file {
        Some(path) => {
            expect::parse(&read_text(path)?).map_err(|source| LtestError::Expect { path: path.to_owned(), source })?
        }
        None => expect::Expectations::new(),
    };
    let expected =
        programs.iter().map(|p| expect::resolve(&p.name, &file, &host)).collect::<Result<Vec<_>, _>>().map_err(
            |source| LtestError::Expect { path: expect_file.map(Path::to_owned).unwrap_or_default(), source },
        )?;
    let unused = file.keys().filter(|n| !programs.iter().any(|p| &p.name == *n)).cloned().collect();
    Ok(Suite { programs, expected, unused })
}

/// The report of `program`, expected to do `expected`, that ended as
/// `outcome`.
pub fn judge(program: &Program, expected: &Expectation, outcome: Outcome) -> Report {
    let parsed = parse::parse(&outcome.stdout, &outcome.stderr);
    let mismatches = expect::check(expected, &outcome.exit, &parsed);
    Report {
        name: program.name.clone(),
        path: program.path.display().to_string(),
        verdict: if mismatches.is_empty() { Verdict::Pass } else { Verdict::Fail },
        exit: outcome.exit,
        parsed,
        expected: expected.clone(),
        mismatches,
        secs: outcome.secs,
        truncated: outcome.truncated,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
    }
}
