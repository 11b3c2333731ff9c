//! Reads LTP output: the result lines (`file.c:27: TPASS: …` of the new
//! library, `name  1  TPASS  :  …` of the old one), counted by kind
//! (`TPASS`, `TFAIL`, `TBROK`, `TCONF`, `TWARN`), and the summary block
//! the new library prints last (`Summary:` then `passed N`, `failed N`,
//! `broken N`, `skipped N`, `warnings N`). LTP writes these to standard
//! error. It never fails: a line it does not understand is not a result.

use super::counts::{Counts, Key};

/// What a program's LTP output said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ltp {
    /// Whether any LTP line was seen (a result, `TINFO`, a summary).
    pub seen: bool,
    /// The result lines, counted (TPASS → pass, TFAIL → fail, TBROK →
    /// broken, TCONF → skip, TWARN → warn).
    pub counted: Counts,
    /// The last complete summary block, if any.
    pub summary: Option<Counts>,
}

/// How many leading words of a line may come before the result kind.
const KIND_WITHIN: usize = 3;

/// Parses `text`.
pub fn parse(text: &str) -> Ltp {
    let mut l = Ltp::default();
    // The summary being read: its counts and which of the four required
    // lines (passed, failed, broken, skipped) it has had.
    let mut block: Option<(Counts, [bool; 4])> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim() == "Summary:" {
            l.seen = true;
            block = Some((Counts::default(), [false; 4]));
            continue;
        }
        if let Some((c, have)) = &mut block {
            match summary_line(line) {
                Some((i, key, n)) => {
                    *c.get_mut(key) = n;
                    if let Some(h) = have.get_mut(i) {
                        *h = true;
                    }
                    if have.iter().all(|h| *h) {
                        l.summary = Some(*c);
                    }
                    continue;
                }
                None => block = None,
            }
        }
        if let Some(kind) = line.split_whitespace().take(KIND_WITHIN).find_map(kind) {
            l.seen = true;
            if let Some(k) = kind {
                l.counted.bump(k);
            }
        }
    }
    l
}

/// The counter of a result word (`TPASS` or `TPASS:`); `Some(None)` for
/// the kinds that are no result (`TINFO`, `TDEBUG`).
fn kind(word: &str) -> Option<Option<Key>> {
    Some(match word.strip_suffix(':').unwrap_or(word) {
        "TPASS" => Some(Key::Pass),
        "TFAIL" => Some(Key::Fail),
        "TBROK" => Some(Key::Broken),
        "TCONF" => Some(Key::Skip),
        "TWARN" => Some(Key::Warn),
        "TINFO" | "TDEBUG" => None,
        _ => return None,
    })
}

/// A summary line: its index among the required four (4 for
/// `warnings`), its counter and its number.
fn summary_line(line: &str) -> Option<(usize, Key, u64)> {
    let mut words = line.split_whitespace();
    let (name, n, none) = (words.next()?, words.next()?, words.next());
    if none.is_some() {
        return None;
    }
    let (i, key) = match name {
        "passed" => (0, Key::Pass),
        "failed" => (1, Key::Fail),
        "broken" => (2, Key::Broken),
        "skipped" => (3, Key::Skip),
        "warnings" => (4, Key::Warn),
        _ => return None,
    };
    Some((i, key, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_library_output() {
        let l = parse(
            "tst_test.c:2048: TINFO: LTP version: 20260529\n\
             sbrk01.c:27: TFAIL: sbrk(8192) returned 0xffffffffffffffff failed: ENOMEM (12)\n\
             sbrk01.c:30: TPASS: sbrk(-8192) returned 0x1\n\
             x.c:1: TCONF: no hugepages\nx.c:2: TBROK: setup\nx.c:3: TWARN: leak\n\
             a message mentioning TPASS late in the line\n\nSummary:\npassed   1\nfailed   2\nbroken   0\nskipped  0\nwarnings 0\n",
        );
        assert!(l.seen);
        assert_eq!(l.counted, Counts { pass: 1, fail: 1, skip: 1, broken: 1, warn: 1, ..Default::default() });
        assert_eq!(l.summary, Some(Counts { pass: 1, fail: 2, ..Default::default() }));
    }

    #[test]
    fn old_library_and_partial_summaries() {
        let l = parse("mmap11    1  TPASS  :  Functionality of mmap() successful\nmmap11 2 TINFO : x\n");
        assert_eq!((l.counted.pass, l.summary), (1, None));
        // A summary cut short, or interrupted, is not one.
        assert_eq!(parse("Summary:\npassed 1\nfailed 0\n").summary, None);
        assert_eq!(parse("Summary:\npassed 1\nfailed 0\nnoise\nbroken 0\nskipped 0\n").summary, None);
        assert_eq!(parse("Summary:\npassed 1 2\nfailed 0\nbroken 0\nskipped 0\n").summary, None);
        let s = parse("Summary:\nskipped 4\nbroken 3\nfailed 2\npassed 1\n").summary;
        assert_eq!(s, Some(Counts { pass: 1, fail: 2, broken: 3, skip: 4, ..Default::default() }));
        assert!(!parse("ok 1 x\n").seen);
    }
}
