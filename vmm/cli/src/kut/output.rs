//! A suite's results as text (one line per test, as `run_tests.sh`
//! prints them, and a summary), JSON, JUnit XML and TAP.

use std::fmt::Write as _;

use serde::Serialize;

use super::run::{TestResult, Verdict};

/// Counts of a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Tests.
    pub tests: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

/// Counts `results`.
pub fn totals(results: &[TestResult]) -> Totals {
    let n = |v| results.iter().filter(|r| r.verdict == v).count();
    Totals { tests: results.len(), passed: n(Verdict::Pass), failed: n(Verdict::Fail), skipped: n(Verdict::Skip) }
}

/// One test's line: `PASS name (reason)`.
pub fn line(r: &TestResult) -> String {
    let mut s = format!("{} {}", r.verdict, r.name);
    if !r.reason.is_empty() {
        let _ = write!(s, " ({})", r.reason);
    }
    if r.secs > 0.0 {
        let _ = write!(s, " [{:.2} s]", r.secs);
    }
    s
}

/// The summary line.
pub fn summary(t: &Totals, secs: f64) -> String {
    format!(
        "SUMMARY: {} tests, {} passed, {} failed, {} skipped in {secs:.1} s (backend: /dev/kvm of this host)",
        t.tests, t.passed, t.failed, t.skipped
    )
}

#[derive(Serialize)]
struct JsonSuite<'a> {
    totals: Totals,
    secs: f64,
    tests: &'a [TestResult],
}

/// The suite as JSON.
pub fn json(results: &[TestResult], secs: f64) -> String {
    serde_json::to_string_pretty(&JsonSuite { totals: totals(results), secs, tests: results })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// The suite as JUnit XML (one `<testsuite>`).
pub fn junit(results: &[TestResult], secs: f64) -> String {
    let t = totals(results);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"kvm-unit-tests\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{secs:.3}\">",
        t.tests, t.failed, t.skipped
    );
    for r in results {
        let _ = write!(
            s,
            "  <testcase classname=\"kvm-unit-tests\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.name),
            r.secs
        );
        match r.verdict {
            Verdict::Pass => s.push_str("/>\n"),
            Verdict::Fail => {
                let _ = writeln!(s, ">\n    <failure message=\"{}\"/>\n  </testcase>", xml_escape(&r.reason));
            }
            Verdict::Skip => {
                let _ = writeln!(s, ">\n    <skipped message=\"{}\"/>\n  </testcase>", xml_escape(&r.reason));
            }
        }
    }
    s.push_str("</testsuite>\n");
    s
}

/// The suite as TAP version 13.
pub fn tap(results: &[TestResult]) -> String {
    let mut s = format!("TAP version 13\n1..{}\n", results.len());
    for (i, r) in results.iter().enumerate() {
        let reason = r.reason.replace('#', "\\#").replace('\n', " ");
        let _ = match r.verdict {
            Verdict::Pass => writeln!(s, "ok {} - {}", i + 1, r.name),
            Verdict::Fail => writeln!(s, "not ok {} - {} # {reason}", i + 1, r.name),
            Verdict::Skip => writeln!(s, "ok {} - {} # SKIP {reason}", i + 1, r.name),
        };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, verdict: Verdict, reason: &str) -> TestResult {
        TestResult { name: name.into(), verdict, reason: reason.into(), secs: 0.5, log: String::new() }
    }

    fn sample() -> Vec<TestResult> {
        vec![
            r("a", Verdict::Pass, "4 tests"),
            r("b<&>", Verdict::Fail, "timeout; x=\"1\""),
            r("c", Verdict::Skip, "i386 # only"),
        ]
    }

    #[test]
    fn text_and_totals() {
        let s = sample();
        assert_eq!(totals(&s), Totals { tests: 3, passed: 1, failed: 1, skipped: 1 });
        assert_eq!(line(&s[0]), "PASS a (4 tests) [0.50 s]");
        assert!(summary(&totals(&s), 1.0).starts_with("SUMMARY: 3 tests, 1 passed, 1 failed, 1 skipped"));
    }

    #[test]
    fn junit_is_escaped_and_counts() {
        let x = junit(&sample(), 1.5);
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(x.contains("name=\"b&lt;&amp;&gt;\""));
        assert!(x.contains("<failure message=\"timeout; x=&quot;1&quot;\"/>"));
        assert!(x.contains("<skipped message=\"i386 # only\"/>"));
        assert_eq!(x.matches("<testcase").count(), 3);
    }

    #[test]
    fn tap_lines() {
        let t = tap(&sample());
        assert!(t.starts_with("TAP version 13\n1..3\n"));
        assert!(t.contains("ok 1 - a\n"));
        assert!(t.contains("not ok 2 - b<&> # timeout; x=\"1\"\n"));
        assert!(t.contains("ok 3 - c # SKIP i386 \\# only\n"));
    }

    #[test]
    fn json_has_totals_and_tests() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample(), 2.0)).unwrap();
        assert_eq!(v["totals"]["failed"], 1);
        assert_eq!(v["tests"][2]["verdict"], "SKIP");
        assert_eq!(v["tests"][0]["reason"], "4 tests");
    }
}
