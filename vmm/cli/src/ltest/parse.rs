//! One program's output (standard output and standard error together:
//! kselftest writes TAP to stdout, LTP its results to stderr) turned into
//! its totals: kselftest's `# Totals:` line if there is one, else LTP's
//! summary block, else the result lines counted.

use serde::Serialize;

use super::counts::Counts;
use super::{ltp, tap};

/// Which kind of output a program printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// kselftest TAP.
    Kselftest,
    /// LTP result lines.
    Ltp,
    /// Neither.
    None,
}

/// Where the totals come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// kselftest's `# Totals:` line.
    Totals,
    /// LTP's summary block.
    Summary,
    /// The result lines, counted.
    Counted,
    /// No result was printed (the totals are all zero).
    Nothing,
}

/// What a program's output says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Parsed {
    /// The kind of output.
    pub format: Format,
    /// The totals.
    pub counts: Counts,
    /// Where they come from.
    pub source: Source,
    /// kselftest's `Bail out!` reason, if the program bailed out.
    pub bail_out: Option<String>,
}

/// Reads `stdout` and `stderr` of one program.
pub fn parse(stdout: &str, stderr: &str) -> Parsed {
    let text = format!("{stdout}\n{stderr}");
    let t = tap::parse(&text);
    let l = ltp::parse(&text);
    let (format, counts, source) = match (&t, &l) {
        (tap::Tap { totals: Some(c), .. }, _) => (Format::Kselftest, *c, Source::Totals),
        (_, ltp::Ltp { summary: Some(c), .. }) => (Format::Ltp, *c, Source::Summary),
        (tap::Tap { seen: true, counted, .. }, _) => (Format::Kselftest, *counted, Source::Counted),
        (_, ltp::Ltp { seen: true, counted, .. }) => (Format::Ltp, *counted, Source::Counted),
        _ => (Format::None, Counts::default(), Source::Nothing),
    };
    Parsed { format, counts, source, bail_out: t.bail_out }
}

impl Parsed {
    /// The totals in the program's own spelling (`no results` when it
    /// printed none).
    pub fn counts_text(&self) -> String {
        match self.format {
            Format::Ltp => self.counts.ltp(),
            Format::Kselftest => self.counts.kselftest(),
            Format::None => "no results".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_then_summary_then_counting() {
        let p = parse("ok 1\nok 2\n# Totals: pass:5 fail:0 xfail:0 xpass:0 skip:1 error:0\n", "");
        assert_eq!((p.format, p.source, p.counts.pass, p.counts.skip), (Format::Kselftest, Source::Totals, 5, 1));
        let p = parse("", "a.c:1: TPASS: x\n\nSummary:\npassed 3\nfailed 0\nbroken 0\nskipped 1\nwarnings 0\n");
        assert_eq!((p.format, p.source, p.counts.pass, p.counts.skip), (Format::Ltp, Source::Summary, 3, 1));
        assert_eq!(p.counts_text(), "passed=3 failed=0 broken=0 skipped=1 warnings=0");
        let p = parse("ok 1\nnot ok 2\n", "vmm: some log line\n");
        assert_eq!((p.format, p.source, p.counts.pass, p.counts.fail), (Format::Kselftest, Source::Counted, 1, 1));
        let p = parse("", "x  1  TPASS  :  y\nx  2  TFAIL  :  z\n");
        assert_eq!((p.format, p.source, p.counts.pass, p.counts.fail), (Format::Ltp, Source::Counted, 1, 1));
        let p = parse("hello\n", "");
        assert_eq!((p.format, p.source, p.counts), (Format::None, Source::Nothing, Counts::default()));
        assert_eq!(p.counts_text(), "no results");
    }
}
