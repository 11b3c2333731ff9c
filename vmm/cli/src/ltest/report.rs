//! A suite's results: one line per program as it finishes, a summary,
//! JSON (one object per program) and JUnit XML.

use std::fmt::Write as _;

use serde::Serialize;

use super::expect::{describe, Expectation};
use super::parse::Parsed;
use super::run::Exit;

/// Whether a program did what was expected of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// It matched its expectation.
    Pass,
    /// It did not.
    Fail,
}

/// One program's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Its name (file name).
    pub name: String,
    /// Its path, as given or found.
    pub path: String,
    /// Whether it matched.
    pub verdict: Verdict,
    /// How its child ended.
    pub exit: Exit,
    /// What its output says.
    #[serde(flatten)]
    pub parsed: Parsed,
    /// What was expected.
    pub expected: Expectation,
    /// How it differs from what was expected (empty when it matched).
    pub mismatches: Vec<String>,
    /// Wall-clock seconds.
    pub secs: f64,
    /// Whether its output was cut (over `MAX_OUTPUT`).
    pub truncated: bool,
    /// Its standard output (JUnit's `system-out`; not in the JSON).
    #[serde(skip)]
    pub stdout: String,
    /// Its standard error (JUnit's `system-err`; not in the JSON).
    #[serde(skip)]
    pub stderr: String,
}

/// One program's line: `PASS name rc=0 pass:16 … [1.20 s]`, and on a
/// failure what was expected and how it differs.
pub fn line(r: &Report) -> String {
    let mut s =
        format!("{} {} {} {} [{:.2} s]", verdict_word(r.verdict), r.name, r.exit, r.parsed.counts_text(), r.secs);
    if r.verdict == Verdict::Fail {
        let _ = write!(s, ": {} (expected {})", r.mismatches.join("; "), describe(&r.expected));
    }
    if let Some(b) = &r.parsed.bail_out {
        let _ = write!(s, " [Bail out! {}]", one_line(b));
    }
    s
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
    }
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Counts of a suite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Programs run.
    pub programs: usize,
    /// Matched their expectation.
    pub passed: usize,
    /// Did not.
    pub failed: usize,
    /// Of those, timed out.
    pub timed_out: usize,
}

/// Counts `reports`.
pub fn totals(reports: &[Report]) -> Totals {
    let failed = reports.iter().filter(|r| r.verdict == Verdict::Fail).count();
    Totals {
        programs: reports.len(),
        passed: reports.len() - failed,
        failed,
        timed_out: reports.iter().filter(|r| matches!(r.exit, Exit::Timeout(_))).count(),
    }
}

/// The summary line.
pub fn summary(t: &Totals, secs: f64) -> String {
    format!(
        "SUMMARY: {} programs, {} as expected, {} not ({} timed out) in {secs:.1} s",
        t.programs, t.passed, t.failed, t.timed_out
    )
}

/// The last `n` lines of `text`, indented, for `-v`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("    | {l}\n")).collect()
}

#[derive(Serialize)]
struct JsonSuite<'a> {
    totals: Totals,
    secs: f64,
    programs: &'a [Report],
}

/// The suite as JSON: `{"totals": …, "secs": …, "programs": [one object
/// per program]}`.
pub fn json(reports: &[Report], secs: f64) -> String {
    serde_json::to_string_pretty(&JsonSuite { totals: totals(reports), secs, programs: reports })
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// `s` as XML character data or an attribute value: the five special
/// characters escaped, characters XML 1.0 cannot hold dropped.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => o.push(c),
        }
    }
    o
}

/// Most bytes of each stream put in the JUnit file (its end is kept).
const JUNIT_OUTPUT: usize = 64 << 10;

fn last_bytes(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The suite as JUnit XML (one `<testsuite>`, a `<testcase>` per
/// program with its output).
pub fn junit(reports: &[Report], secs: f64) -> String {
    let t = totals(reports);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuite name=\"vmm ltest\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{secs:.3}\">",
        t.programs, t.failed
    );
    for r in reports {
        let _ = writeln!(s, "  <testcase classname=\"ltest\" name=\"{}\" time=\"{:.3}\">", xml_escape(&r.name), r.secs);
        if r.verdict == Verdict::Fail {
            let _ = writeln!(
                s,
                "    <failure message=\"{}\">{}\nexpected {}</failure>",
                xml_escape(&r.mismatches.join("; ")),
                xml_escape(&format!("{} {}", r.exit, r.parsed.counts_text())),
                xml_escape(&describe(&r.expected))
            );
        }
        for (tag, text) in [("system-out", &r.stdout), ("system-err", &r.stderr)] {
            if !text.is_empty() {
                let _ = writeln!(s, "    <{tag}>{}</{tag}>", xml_escape(last_bytes(text, JUNIT_OUTPUT)));
            }
        }
        s.push_str("  </testcase>\n");
    }
    s.push_str("</testsuite>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::baseline::{self, Baseline};
    use super::super::expect::{check, resolve, Expectations};
    use super::super::parse::parse;
    use super::*;

    fn report(name: &str, exit: Exit, stdout: &str) -> Report {
        let mut b = Baseline::default();
        b.add("h".into(), baseline::parse("t rc=0 pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0\n").unwrap());
        let expected = resolve("t", &Expectations::new(), &b).unwrap();
        let parsed = parse(stdout, "");
        let mismatches = check(&expected, &exit, &parsed);
        let verdict = if mismatches.is_empty() { Verdict::Pass } else { Verdict::Fail };
        Report {
            name: name.into(),
            path: format!("/p/{name}"),
            verdict,
            exit,
            parsed,
            expected,
            mismatches,
            secs: 0.25,
            truncated: false,
            stdout: stdout.into(),
            stderr: "log <&> \u{1b}[0m\u{0}".into(),
        }
    }

    fn sample() -> Vec<Report> {
        vec![
            report("t", Exit::Code(0), "ok 1\nok 2\n"),
            report("b<&>\"'", Exit::Code(1), "ok 1 <a & b>\nnot ok 2 \"q\"\nBail out! x\u{7}y\n"),
            report("slow", Exit::Timeout(3), "ok 1\n"),
        ]
    }

    #[test]
    fn lines_and_summary() {
        let s = sample();
        assert_eq!(line(&s[0]), "PASS t rc=0 pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0 [0.25 s]");
        let l = line(&s[1]);
        assert!(l.starts_with("FAIL b<&>\"' rc=1 pass:1 fail:1"), "{l}");
        assert!(l.contains(": rc=1, expected 0; fail=1, expected 0; pass=1, expected 2 (expected rc=0 "), "{l}");
        assert!(l.ends_with("[Bail out! x y]"), "{l}");
        assert!(line(&s[2]).contains("timed out after 3 s"));
        let t = totals(&s);
        assert_eq!(t, Totals { programs: 3, passed: 1, failed: 2, timed_out: 1 });
        assert_eq!(summary(&t, 2.0), "SUMMARY: 3 programs, 1 as expected, 2 not (1 timed out) in 2.0 s");
        assert_eq!(tail("a\nb\nc\n", 2), "    | b\n    | c\n");
    }

    #[test]
    fn json_parses_back() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample(), 1.5)).unwrap();
        assert_eq!(v["totals"]["failed"], 2);
        let p = v["programs"].as_array().unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0]["name"].as_str(), p[0]["verdict"].as_str()), (Some("t"), Some("PASS")));
        assert_eq!(p[0]["exit"], serde_json::json!({"kind": "code", "value": 0}));
        assert_eq!(p[0]["counts"]["pass"], 2);
        assert_eq!((p[0]["format"].as_str(), p[0]["source"].as_str()), (Some("kselftest"), Some("counted")));
        assert_eq!(p[0]["expected"]["counts"]["pass"], 2);
        assert_eq!(p[0]["expected"]["origin"], "host");
        assert_eq!(p[1]["name"], "b<&>\"'");
        assert_eq!(p[1]["mismatches"].as_array().unwrap().len(), 3);
        assert_eq!(p[1]["bail_out"], "x\u{7}y");
        assert_eq!(p[2]["exit"], serde_json::json!({"kind": "timeout", "value": 3}));
        assert!(p[0].get("stdout").is_none());
    }

    /// A tiny XML well-formedness check: tags nest and close, attribute
    /// values are quoted, `&` only starts the five entities, no raw `<`
    /// in text, no control characters.
    pub(crate) fn assert_well_formed(x: &str) {
        let body = x.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("declaration");
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        let check_text = |t: &str| {
            assert!(!t.contains('>'), "raw > in {t:?}");
            assert!(!t.chars().any(|c| (c as u32) < 0x20 && !"\t\n\r".contains(c)), "control character in {t:?}");
            let mut parts = t.split('&');
            parts.next();
            for p in parts {
                assert!(
                    ["amp;", "lt;", "gt;", "quot;", "apos;"].iter().any(|e| p.starts_with(e)),
                    "bad entity in {t:?}"
                );
            }
        };
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
                continue;
            }
            let selfclosing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name:?}");
            while !attrs.trim().is_empty() {
                let (k, v) = attrs.trim_start().split_once("=\"").expect("attribute");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric()), "{k:?}");
                let end = v.find('"').expect("closing quote");
                assert!(!v[..end].contains('<'), "< in attribute");
                check_text(&v[..end]);
                attrs = &v[end + 1..];
            }
            if !selfclosing {
                stack.push(name.to_string());
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(rest.trim().is_empty());
    }

    #[test]
    fn junit_is_well_formed_and_counts() {
        let x = junit(&sample(), 1.5);
        assert_well_formed(&x);
        assert!(x.contains("tests=\"3\" failures=\"2\""), "{x}");
        assert!(x.contains("name=\"b&lt;&amp;&gt;&quot;&apos;\""), "{x}");
        assert!(x.contains("<system-out>ok 1 &lt;a &amp; b&gt;"), "{x}");
        assert!(x.contains("<system-err>log &lt;&amp;&gt; [0m</system-err>"), "{x}");
        assert_eq!(x.matches("<failure").count(), 2);
        assert_eq!(last_bytes("héllo", 4), "llo");
    }
}
