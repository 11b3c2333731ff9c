//! Reads host results: what each program printed when run directly on
//! Linux, one line per program, as `../shared/testguests/linux-mm` ships
//! them (`host-results-musl.txt`, `ltp/host-results-musl.txt`):
//!
//! ```text
//! mremap_test rc=0 pass:16 fail:0 xfail:3 xpass:0 skip:0 error:0 [note]
//! hugepage-shm rc=0
//! brk01 rc=0  passed=1 failed=0 broken=0 skipped=1  [TPASS=1 TFAIL/TBROK=0] [note]
//! mmap11 rc=0   [TPASS=1 TFAIL/TBROK=0]
//! ```
//!
//! Each line becomes the program's exit status and the counters it
//! printed: kselftest's `key:N`, LTP's summary `key=N`, or, without a
//! summary, LTP's result lines (`[TPASS=P TFAIL/TBROK=F]`: `pass` = P,
//! and `fail` = `broken` = 0 when F is 0; a nonzero F, which does not say
//! which, constrains neither). The note (the rest of the line) is kept
//! for the reader. Blank lines and lines starting with `#` are skipped.

use std::collections::BTreeMap;

use super::counts::Key;

/// One program's results on Linux.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostResult {
    /// Exit status.
    pub rc: u8,
    /// The counters it printed.
    pub counts: BTreeMap<Key, u64>,
    /// The rest of the line.
    pub note: String,
}

/// A malformed line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {what}")]
pub struct BaselineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

/// Parses a host-results file.
pub fn parse(text: &str) -> Result<BTreeMap<String, HostResult>, BaselineError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |what: String| BaselineError { line: i + 1, what };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default().to_string();
        let rc = words
            .next()
            .and_then(|w| w.strip_prefix("rc="))
            .ok_or_else(|| err(format!("{name}: no rc=N after the name")))?;
        let rc: u8 = rc.parse().map_err(|_| err(format!("{name}: rc={rc} is not an exit status (0 to 255)")))?;
        let mut r = HostResult { rc, ..Default::default() };
        let (mut tpass, mut tfail) = (None, None);
        let mut rest: Vec<&str> = Vec::new();
        for w in words {
            if !rest.is_empty() {
                rest.push(w);
                continue;
            }
            match counter(w) {
                Some(Counter::Key(k, n)) => {
                    r.counts.insert(k, n);
                }
                Some(Counter::TPass(n)) => tpass = Some(n),
                Some(Counter::TFailBrok(n)) => tfail = Some(n),
                None => rest.push(w),
            }
        }
        // The bracket only counts when LTP printed no summary.
        if !r.counts.contains_key(&Key::Pass) {
            if let Some(p) = tpass {
                r.counts.insert(Key::Pass, p);
            }
            if tfail == Some(0) {
                r.counts.insert(Key::Fail, 0);
                r.counts.insert(Key::Broken, 0);
            }
        }
        r.note = rest.join(" ");
        if out.insert(name.clone(), r).is_some() {
            return Err(err(format!("{name} is listed twice")));
        }
    }
    Ok(out)
}

/// A word of a line that is a counter.
enum Counter {
    Key(Key, u64),
    TPass(u64),
    TFailBrok(u64),
}

fn counter(w: &str) -> Option<Counter> {
    let n = |v: &str| v.parse::<u64>().ok();
    if let Some(v) = w.strip_prefix("[TPASS=") {
        return n(v).map(Counter::TPass);
    }
    if let Some(v) = w.strip_prefix("TFAIL/TBROK=") {
        return n(v.strip_suffix(']')?).map(Counter::TFailBrok);
    }
    let key = |k: &str| -> Option<Key> {
        Some(match k {
            "pass" | "passed" => Key::Pass,
            "fail" | "failed" => Key::Fail,
            "xfail" => Key::Xfail,
            "xpass" => Key::Xpass,
            "skip" | "skipped" => Key::Skip,
            "error" => Key::Error,
            "broken" => Key::Broken,
            "warnings" => Key::Warn,
            _ => return None,
        })
    };
    // kselftest's `pass:1`, LTP's `passed=1`.
    let (k, v) = w.split_once(':').or_else(|| w.split_once('='))?;
    Some(Counter::Key(key(k)?, n(v)?))
}

/// The host results of several files, looked up by program name.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    files: Vec<(String, BTreeMap<String, HostResult>)>,
}

impl Baseline {
    /// Adds the results of the file called `file_name`; a program in two
    /// files takes the later one's.
    pub fn add(&mut self, file_name: String, results: BTreeMap<String, HostResult>) {
        self.files.push((file_name, results));
    }

    /// The host result of program `name`: its own line, else, for a
    /// program named `X-glibc`, the line of `X` in a file whose name says
    /// `glibc` (`host-results-glibc.txt` lists `madv_populate` for
    /// `bin/madv_populate-glibc`), else in any file.
    pub fn lookup(&self, name: &str) -> Option<&HostResult> {
        let any = |n: &str| self.files.iter().rev().find_map(|(_, m)| m.get(n));
        any(name).or_else(|| {
            let base = name.strip_suffix("-glibc")?;
            self.files
                .iter()
                .rev()
                .filter(|(f, _)| f.contains("glibc"))
                .find_map(|(_, m)| m.get(base))
                .or_else(|| any(base))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &HostResult) -> Vec<(&'static str, u64)> {
        r.counts.iter().map(|(k, v)| (k.name(), *v)).collect()
    }

    #[test]
    fn both_formats() {
        let m = parse(
            "cow rc=0 pass:215 fail:0 xfail:4 xpass:0 skip:451 error:0 ok 2 # SKIP MADV_PAGEOUT did not work\n\
             hugepage-shm rc=0  \n\n# comment\n\
             sbrk01 rc=1  passed=1 failed=2 broken=0 skipped=0  [TPASS=1 TFAIL/TBROK=2] sbrk01.c:27: TFAIL: x\n\
             mmap11 rc=0   [TPASS=1 TFAIL/TBROK=0] \n\
             sbrk03 rc=32   [TPASS=0 TFAIL/TBROK=3]\n",
        )
        .unwrap();
        let cow = &m["cow"];
        assert_eq!(keys(cow), [("pass", 215), ("fail", 0), ("xfail", 4), ("xpass", 0), ("skip", 451), ("error", 0)]);
        assert_eq!(cow.note, "ok 2 # SKIP MADV_PAGEOUT did not work");
        assert_eq!((m["hugepage-shm"].rc, m["hugepage-shm"].counts.len()), (0, 0));
        assert_eq!(m["sbrk01"].rc, 1);
        assert_eq!(keys(&m["sbrk01"]), [("pass", 1), ("fail", 2), ("skip", 0), ("broken", 0)]);
        assert_eq!(m["sbrk01"].note, "sbrk01.c:27: TFAIL: x");
        assert_eq!(keys(&m["mmap11"]), [("pass", 1), ("fail", 0), ("broken", 0)]);
        assert_eq!((m["sbrk03"].rc, keys(&m["sbrk03"])), (32, vec![("pass", 0)]));
    }

    #[test]
    fn malformed_lines_say_where() {
        assert_eq!(parse("a rc=0\nb\n").unwrap_err().line, 2);
        assert!(parse("a rc=256\n").unwrap_err().what.contains("exit status"));
        assert!(parse("a rc=-1\n").is_err());
        assert!(parse("a pass:1\n").is_err());
        assert!(parse("a rc=0\na rc=1\n").unwrap_err().what.contains("twice"));
    }

    #[test]
    fn glibc_programs_find_their_file() {
        let mut b = Baseline::default();
        b.add("host-results-glibc.txt".into(), parse("madv_populate rc=0 pass:16\n").unwrap());
        b.add("host-results-musl.txt".into(), parse("madv_populate rc=1 pass:0\ncow rc=0\n").unwrap());
        assert_eq!(b.lookup("madv_populate-glibc").map(|r| r.rc), Some(0));
        assert_eq!(b.lookup("madv_populate").map(|r| r.rc), Some(1));
        assert_eq!(b.lookup("cow-glibc").map(|r| r.rc), Some(0));
        assert!(b.lookup("nothing").is_none());
    }

    /// The files the test data ships parse, and say what the README says.
    #[test]
    fn the_shipped_host_results_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testguests/linux-mm");
        let Ok(musl) = std::fs::read_to_string(dir.join("host-results-musl.txt")) else {
            eprintln!("ltest baseline: SKIPPED: no ../shared/testguests/linux-mm");
            return;
        };
        let m = parse(&musl).unwrap();
        assert_eq!(
            keys(&m["mremap_test"]),
            [("pass", 16), ("fail", 0), ("xfail", 3), ("xpass", 0), ("skip", 0), ("error", 0)]
        );
        assert_eq!((m["madv_populate"].rc, m["madv_populate"].note.starts_with("Bail out!")), (1, true));
        assert_eq!(m["mseal_test"].counts[&Key::Skip], 2);
        let g = parse(&std::fs::read_to_string(dir.join("host-results-glibc.txt")).unwrap()).unwrap();
        assert_eq!(g["madv_populate"].counts[&Key::Pass], 16);
        let l = parse(&std::fs::read_to_string(dir.join("ltp/host-results-musl.txt")).unwrap()).unwrap();
        assert_eq!(keys(&l["brk01"]), [("pass", 1), ("fail", 0), ("skip", 1), ("broken", 0)]);
        assert_eq!((l["sbrk03"].rc, l.len()), (32, 29));
    }
}
