//! A suite's results as text (one line per test, as `run_tests.sh`
//! prints them, and a summary), JSON, JUnit XML and TAP13 (one point per
//! sub-result the guest printed, as `run_tests.sh -t` prints it).

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

/// One TAP point of a result, without its number: whether it is `ok`,
/// and what follows the number (` - description`, maybe a directive).
pub type TapPoint = (bool, String);

/// `s` safe in a TAP description or directive: on one line, its `#`
/// escaped (an unescaped one would start a directive).
fn tap_text(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('#', "\\#")
}

/// The TAP points of one result, as upstream's `run_tests.sh -t` makes
/// them: one per `PASS:` / `FAIL:` / `SKIP:` line the guest printed
/// (`ok N - test: what`, `not ok N - test: what`, `ok N - test: what #
/// skip`). A test that printed none (or was not run) is one point for the
/// whole test, and a failed test none of whose lines failed (a timeout,
/// a crash) gets one `not ok` point with the reason.
pub fn tap_points(r: &TestResult) -> Vec<TapPoint> {
    let mut points: Vec<TapPoint> = Vec::new();
    for line in r.log.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // kvm-unit-tests' report lines are `PASS: what` (`report()` prints
        // "%s: %s"); upstream looks at 4 characters, the colon is asked
        // for here too so that a console line such as "FAILED to map"
        // is not taken for a result.
        let Some((kind, rest)) =
            ["PASS", "FAIL", "SKIP"].into_iter().find_map(|k| Some((k, line.strip_prefix(k)?.strip_prefix(':')?)))
        else {
            continue;
        };
        let what = tap_text(rest.strip_prefix(' ').unwrap_or(rest));
        match kind {
            "PASS" => points.push((true, format!("{}: {what}", tap_text(&r.name)))),
            "FAIL" => points.push((false, format!("{}: {what}", tap_text(&r.name)))),
            "SKIP" => points.push((true, format!("{}: {what} # skip", tap_text(&r.name)))),
            _ => {}
        }
    }
    let name = tap_text(&r.name);
    let reason = tap_text(&r.reason);
    match r.verdict {
        _ if points.is_empty() => points.push(match r.verdict {
            Verdict::Pass => (true, name),
            Verdict::Fail => (false, format!("{name}: {reason}")),
            Verdict::Skip => (true, format!("{name} # skip {reason}")),
        }),
        Verdict::Fail if points.iter().all(|(ok, _)| *ok) => points.push((false, format!("{name}: {reason}"))),
        _ => {}
    }
    points
}

/// `points` as TAP lines numbered from `first`.
pub fn tap_lines(points: &[TapPoint], first: usize) -> String {
    let mut s = String::new();
    for (i, (ok, rest)) in points.iter().enumerate() {
        let _ = writeln!(s, "{} {} - {rest}", if *ok { "ok" } else { "not ok" }, first + i);
    }
    s
}

/// The suite as TAP version 13, as [`tap_points`] makes it, the plan last
/// (as upstream prints it).
pub fn tap(results: &[TestResult]) -> String {
    let mut s = String::from("TAP version 13\n");
    let mut n = 0;
    for r in results {
        let points = tap_points(r);
        s.push_str(&tap_lines(&points, n + 1));
        n += points.len();
    }
    let _ = writeln!(s, "1..{n}");
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

    /// Issue 21: TAP was one line per test, only to a file; upstream's
    /// `-t` prints one line per sub-result the guest printed.
    #[test]
    fn tap_has_a_point_per_sub_result() {
        let mut s = sample();
        s[0].log = "PASS: x\nSKIP: y # z\r\nFAIL\nPASS: last\n".into();
        s[1].log = "PASS: before the timeout\n".into();
        let t = tap(&s);
        assert_eq!(
            t,
            "TAP version 13\n\
             ok 1 - a: x\n\
             ok 2 - a: y \\# z # skip\n\
             ok 3 - a: last\n\
             ok 4 - b<&>: before the timeout\n\
             not ok 5 - b<&>: timeout; x=\"1\"\n\
             ok 6 - c # skip i386 \\# only\n\
             1..6\n"
        );
        // A failed sub-result is the test's failure: no extra point.
        s[1].log = "FAIL: this\n".into();
        assert_eq!(tap_points(&s[1]), [(false, "b<&>: this".to_string())]);
        // A test that printed nothing is one point.
        s[0].log.clear();
        assert_eq!(tap_points(&s[0]), [(true, "a".to_string())]);
    }

    #[test]
    fn json_has_totals_and_tests() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample(), 2.0)).unwrap();
        assert_eq!(v["totals"]["failed"], 1);
        assert_eq!(v["tests"][2]["verdict"], "SKIP");
        assert_eq!(v["tests"][0]["reason"], "4 tests");
    }
}
