//! Reads kselftest TAP: `ok N desc`, `not ok N desc` with their `# SKIP`,
//! `# XFAIL`, `# XPASS`, `# TODO` and `# error` directives, the plan
//! `1..N`, `Bail out!`, and the `# Totals: pass:P fail:F xfail:X xpass:Y
//! skip:S error:E` line `ksft_print_cnts()` prints. Indented lines
//! (TAP14 subtests) and other `#` lines are comments. It never fails: a
//! line it does not understand is not a result.

use super::counts::{Counts, Key};

/// What a program's TAP said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tap {
    /// Whether any TAP line was seen (a result, a plan, totals).
    pub seen: bool,
    /// The `ok` / `not ok` lines, counted.
    pub counted: Counts,
    /// The last `# Totals:` line, if any.
    pub totals: Option<Counts>,
    /// The last plan (`1..N`).
    pub plan: Option<u64>,
    /// What followed the first `Bail out!`.
    pub bail_out: Option<String>,
}

/// Parses `text` (any bytes made text; lines may end in `\r\n`).
pub fn parse(text: &str) -> Tap {
    let mut t = Tap::default();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(rest) = result_line(line, "not ok") {
            t.seen = true;
            t.counted.bump(classify(false, rest));
        } else if let Some(rest) = result_line(line, "ok") {
            t.seen = true;
            t.counted.bump(classify(true, rest));
        } else if let Some(n) = plan(line) {
            t.seen = true;
            t.plan = Some(n);
        } else if let Some(c) = totals(line) {
            t.seen = true;
            t.totals = Some(c);
        } else if let Some(why) = line.strip_prefix("Bail out!") {
            t.seen = true;
            t.bail_out.get_or_insert_with(|| why.trim().to_string());
        }
    }
    t
}

/// What follows `word` when `line` is a result line starting with it.
fn result_line<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// The directive of a result (the text after its number), lower case:
/// the word after the first unescaped `#` that is one.
fn directive(rest: &str) -> Option<&'static str> {
    let bytes = rest.as_bytes();
    for (i, _) in rest.match_indices('#') {
        if i > 0 && bytes[i - 1] == b'\\' {
            continue;
        }
        let word: String = rest[i + 1..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let found = match word.as_str() {
            "xfail" => "xfail",
            "xpass" => "xpass",
            "todo" => "todo",
            "error" => "error",
            w if w.starts_with("skip") => "skip",
            _ => continue,
        };
        return Some(found);
    }
    None
}

/// The counter a result goes to.
fn classify(ok: bool, rest: &str) -> Key {
    match (ok, directive(rest)) {
        (_, Some("skip")) => Key::Skip,
        (_, Some("xfail")) | (false, Some("todo")) => Key::Xfail,
        (_, Some("xpass")) | (true, Some("todo")) => Key::Xpass,
        (_, Some("error")) => Key::Error,
        (true, _) => Key::Pass,
        (false, _) => Key::Fail,
    }
}

/// `1..N` (maybe followed by a comment).
fn plan(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("1..")?;
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    let tail = rest[digits.len()..].trim_start();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return None;
    }
    digits.parse().ok()
}

/// `# Totals: pass:P fail:F xfail:X xpass:Y skip:S error:E`: every one
/// of the six present, numbers only, nothing else.
fn totals(line: &str) -> Option<Counts> {
    let rest = line.strip_prefix('#')?.trim_start().strip_prefix("Totals:")?;
    let mut c = Counts::default();
    let mut seen = [false; 6];
    for tok in rest.split_whitespace() {
        let (k, v) = tok.split_once(':')?;
        let i = ["pass", "fail", "xfail", "xpass", "skip", "error"].iter().position(|n| *n == k)?;
        let key = [Key::Pass, Key::Fail, Key::Xfail, Key::Xpass, Key::Skip, Key::Error][i];
        *c.get_mut(key) = v.parse().ok()?;
        seen[i] = true;
    }
    seen.iter().all(|s| *s).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_directives_are_counted() {
        let t = parse(
            "TAP version 13\n1..9\n# comment ok 1\nok 1 plain\nok 2 # SKIP no swap\nok 3 # XFAIL known\n\
             not ok 4 broken\nnot ok 5 # error bad\nok 6 # XPASS lucky\nok 7 a #  plain message\r\n\
             not ok 8 # TODO later\nok 9 a \\# SKIP escaped\n  ok 1 subtest\nokay 10\nok\n",
        );
        assert!(t.seen);
        assert_eq!(t.counted, Counts { pass: 4, fail: 1, xfail: 2, xpass: 1, skip: 1, error: 1, ..Default::default() });
        assert_eq!((t.plan, t.totals, t.bail_out), (Some(9), None, None));
    }

    #[test]
    fn totals_and_bail_out() {
        let t = parse(
            "1..3\nok 1 x\nBail out! check_vmflag: No VmFlags\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n\
             # Totals: pass:9 fail:1 xfail:2 xpass:3 skip:4 error:5\n",
        );
        assert_eq!(
            t.totals,
            Some(Counts { pass: 9, fail: 1, xfail: 2, xpass: 3, skip: 4, error: 5, ..Default::default() })
        );
        assert_eq!(t.bail_out.as_deref(), Some("check_vmflag: No VmFlags"));
        assert_eq!(t.counted.pass, 1);
        // Malformed totals are not totals.
        for bad in [
            "# Totals: pass:1 fail:0",
            "# Totals: pass:x fail:0 xfail:0 xpass:0 skip:0 error:0",
            "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0 extra",
            "# Totals: pass:99999999999999999999 fail:0 xfail:0 xpass:0 skip:0 error:0",
        ] {
            assert_eq!(parse(bad).totals, None, "{bad}");
        }
        assert_eq!(plan("1..0 # SKIP nothing"), Some(0));
        assert_eq!(plan("1..2x"), None);
        assert!(!parse("hello\nworld\n").seen);
    }
}
