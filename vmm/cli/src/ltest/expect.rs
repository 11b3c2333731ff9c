//! What each program is expected to do, and whether it did.
//!
//! The expectations file is TOML, one table per program (its file
//! name), every key optional:
//!
//! ```toml
//! [mseal_test]
//! rc = 0          # exit status (128 + N: killed by signal N)
//! pass = 80       # counters: pass fail xfail xpass skip error broken warn
//! skip = 8
//! differences = ["pkey_alloc is ENOSYS here: the 6 pkey tests skip"]
//! ```
//!
//! A program's expectation is its host result ([`super::baseline`],
//! `--host-results`) with the file's keys over it; a key neither gives is
//! not checked. Every value that differs from the host result must be
//! explained: `differences` (one line per difference and its reason) may
//! not be empty then. A program with no host result expects `rc = 0`
//! unless the file says otherwise; a program in neither expects a clean
//! run: `rc = 0` and no `fail`, `xpass`, `error` or `broken`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::baseline::Baseline;
use super::counts::Key;
use super::parse::Parsed;
use super::run::Exit;

/// One program's table in the expectations file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Exit status.
    pub rc: Option<u8>,
    /// Passed.
    pub pass: Option<u64>,
    /// Failed.
    pub fail: Option<u64>,
    /// Expected failures.
    pub xfail: Option<u64>,
    /// Unexpected passes.
    pub xpass: Option<u64>,
    /// Skipped.
    pub skip: Option<u64>,
    /// kselftest errors.
    pub error: Option<u64>,
    /// LTP TBROK.
    pub broken: Option<u64>,
    /// LTP TWARN.
    pub warn: Option<u64>,
    /// Each expected difference from Linux, with its reason.
    #[serde(default)]
    pub differences: Vec<String>,
}

impl Entry {
    fn get(&self, k: Key) -> Option<u64> {
        match k {
            Key::Pass => self.pass,
            Key::Fail => self.fail,
            Key::Xfail => self.xfail,
            Key::Xpass => self.xpass,
            Key::Skip => self.skip,
            Key::Error => self.error,
            Key::Broken => self.broken,
            Key::Warn => self.warn,
        }
    }
}

/// The expectations file, by program name.
pub type Expectations = BTreeMap<String, Entry>;

/// A malformed expectations file.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// Not TOML, or not the keys above.
    #[error("{0}")]
    Syntax(String),
    /// A difference given with no words.
    #[error("[{0}]: an empty line in `differences`")]
    EmptyReason(String),
    /// A value differs from Linux and `differences` does not say why.
    #[error("[{name}]: expects {what}, unlike Linux ({host}), and gives no `differences` saying why")]
    Unexplained {
        /// The program.
        name: String,
        /// The values that differ, as the file gives them.
        what: String,
        /// The host result's values.
        host: String,
    },
}

/// Parses an expectations file.
pub fn parse(text: &str) -> Result<Expectations, ExpectError> {
    let e: Expectations = toml::from_str(text).map_err(|e| ExpectError::Syntax(e.to_string().trim_end().into()))?;
    for (name, entry) in &e {
        if entry.differences.iter().any(|d| d.trim().is_empty()) {
            return Err(ExpectError::EmptyReason(name.clone()));
        }
    }
    Ok(e)
}

/// Where an expectation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The expectations file alone.
    File,
    /// The host results alone.
    Host,
    /// The host results, with the file's keys over them.
    FileOverHost,
    /// Neither: a clean run.
    Default,
}

/// What one program is expected to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// Exit status.
    pub rc: Option<u8>,
    /// Counters to check (by [`Key::name`]).
    pub counts: BTreeMap<&'static str, u64>,
    /// Where this comes from.
    pub origin: Origin,
    /// The expected differences from Linux, with their reasons.
    pub differences: Vec<String>,
}

/// The expectation of program `name`, or why the file's is not
/// acceptable.
pub fn resolve(name: &str, file: &Expectations, host: &Baseline) -> Result<Expectation, ExpectError> {
    let entry = file.get(name);
    let base = host.lookup(name);
    let mut e = Expectation {
        rc: None,
        counts: BTreeMap::new(),
        origin: Origin::Default,
        differences: entry.map(|e| e.differences.clone()).unwrap_or_default(),
    };
    match (entry, base) {
        (None, None) => {
            e.rc = Some(0);
            e.counts = Key::BAD.iter().map(|k| (k.name(), 0)).collect();
            return Ok(e);
        }
        (None, Some(h)) | (Some(_), Some(h)) => {
            e.origin = if entry.is_some() { Origin::FileOverHost } else { Origin::Host };
            e.rc = Some(h.rc);
            e.counts = h.counts.iter().map(|(k, v)| (k.name(), *v)).collect();
        }
        (Some(_), None) => {
            e.origin = Origin::File;
            e.rc = Some(0);
        }
    }
    let Some(entry) = entry else { return Ok(e) };
    let (mut what, mut was) = (String::new(), String::new());
    let mut differ = |k: &str, v: u64, h: Option<u64>| {
        if base.is_some() && h != Some(v) {
            let _ = write!(what, "{}{k}={v}", if what.is_empty() { "" } else { " " });
            let h = h.map_or_else(|| "-".to_string(), |h| h.to_string());
            let _ = write!(was, "{}{k}={h}", if was.is_empty() { "" } else { " " });
        }
    };
    if let Some(rc) = entry.rc {
        differ("rc", u64::from(rc), base.map(|h| u64::from(h.rc)));
        e.rc = Some(rc);
    }
    for k in Key::ALL {
        if let Some(v) = entry.get(k) {
            differ(k.name(), v, base.and_then(|h| h.counts.get(&k).copied()));
            e.counts.insert(k.name(), v);
        }
    }
    if !what.is_empty() && entry.differences.is_empty() {
        return Err(ExpectError::Unexplained { name: name.into(), what, host: was });
    }
    Ok(e)
}

/// How the run differs from `e`: empty when it matched.
pub fn check(e: &Expectation, exit: &Exit, parsed: &Parsed) -> Vec<String> {
    let mut why = Vec::new();
    match (exit, e.rc) {
        (Exit::Code(c), Some(rc)) if *c != i32::from(rc) => why.push(format!("rc={c}, expected {rc}")),
        (Exit::Code(_), _) => {}
        (other, _) => why.push(other.to_string()),
    }
    for (k, v) in &e.counts {
        let got = Key::ALL.iter().find(|key| key.name() == *k).map_or(0, |key| parsed.counts.get(*key));
        if got != *v {
            why.push(format!("{k}={got}, expected {v}"));
        }
    }
    why
}

/// `e` as `rc=0 pass=16 xfail=3`, for the reader.
pub fn describe(e: &Expectation) -> String {
    let mut s = e.rc.map_or_else(String::new, |rc| format!("rc={rc}"));
    for (k, v) in &e.counts {
        let _ = write!(s, "{}{k}={v}", if s.is_empty() { "" } else { " " });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::baseline;
    use super::super::parse::parse as parse_output;
    use super::*;

    fn host(text: &str) -> Baseline {
        let mut b = Baseline::default();
        b.add("host-results-musl.txt".into(), baseline::parse(text).unwrap());
        b
    }

    #[test]
    fn file_format_and_errors() {
        let f = parse("[a]\nrc = 1\npass = 3\ndifferences = [\"why\"]\n['odd.name']\n").unwrap();
        assert_eq!(f["a"], Entry { rc: Some(1), pass: Some(3), differences: vec!["why".into()], ..Default::default() });
        assert_eq!(f["odd.name"], Entry::default());
        for bad in [
            "[a]\nbogus = 1\n",
            "[a]\nrc = 256\n",
            "[a]\npass = -1\n",
            "[a\n",
            "a = 1\n",
            "[a]\ndifferences = [\" \"]\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn resolution() {
        let h = host("mremap_test rc=0 pass:16 fail:0 xfail:3 xpass:0 skip:0 error:0\nquiet rc=0\n");
        let none = Expectations::new();
        // In neither: a clean run.
        let e = resolve("new", &none, &h).unwrap();
        assert_eq!((e.origin, describe(&e).as_str()), (Origin::Default, "rc=0 broken=0 error=0 fail=0 xpass=0"));
        // The host's.
        let e = resolve("mremap_test", &none, &h).unwrap();
        assert_eq!(
            (e.origin, describe(&e).as_str()),
            (Origin::Host, "rc=0 error=0 fail=0 pass=16 skip=0 xfail=3 xpass=0")
        );
        // A -glibc build finds its host line.
        assert_eq!(resolve("mremap_test-glibc", &none, &h).unwrap().origin, Origin::Host);
        // The file over the host: a difference needs a reason.
        let f = parse("[mremap_test]\npass = 15\nskip = 1\n").unwrap();
        let err = resolve("mremap_test", &f, &h).unwrap_err().to_string();
        assert!(err.contains("pass=15 skip=1") && err.contains("pass=16 skip=0"), "{err}");
        let f = parse("[mremap_test]\npass = 15\nskip = 1\ndifferences = [\"one skips: no swap\"]\n").unwrap();
        let e = resolve("mremap_test", &f, &h).unwrap();
        assert_eq!((e.origin, e.counts["pass"], e.counts["xfail"]), (Origin::FileOverHost, 15, 3));
        assert_eq!(e.differences, ["one skips: no swap"]);
        // Repeating the host's values needs none; a key the host lacks does.
        let f = parse("[mremap_test]\npass = 16\n[quiet]\npass = 0\n").unwrap();
        assert!(resolve("mremap_test", &f, &h).is_ok());
        assert!(resolve("quiet", &f, &h).is_err());
        // The file alone: rc 0 unless given, only given keys checked.
        let f = parse("[solo]\nskip = 2\n").unwrap();
        let e = resolve("solo", &f, &Baseline::default()).unwrap();
        assert_eq!((e.origin, describe(&e).as_str()), (Origin::File, "rc=0 skip=2"));
        let f = parse("[solo]\nrc = 139\n").unwrap();
        assert_eq!(resolve("solo", &f, &Baseline::default()).unwrap().rc, Some(139));
    }

    #[test]
    fn checking() {
        let h = host("t rc=0 pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0\n");
        let e = resolve("t", &Expectations::new(), &h).unwrap();
        let good = parse_output("ok 1\nok 2\nok 3 # SKIP\n", "");
        assert!(check(&e, &Exit::Code(0), &good).is_empty());
        assert_eq!(check(&e, &Exit::Code(1), &good), ["rc=1, expected 0"]);
        let bad = parse_output("ok 1\nnot ok 2\nok 3 # SKIP\n", "");
        assert_eq!(check(&e, &Exit::Code(0), &bad), ["fail=1, expected 0", "pass=1, expected 2"]);
        let w = check(&e, &Exit::Timeout(5), &good);
        assert_eq!(w, ["timed out after 5 s"]);
        let w = check(&e, &Exit::Killed(9), &parse_output("", ""));
        assert_eq!(w[0], "vmm killed by SIGKILL");
        assert_eq!(w.len(), 3);
    }
}
