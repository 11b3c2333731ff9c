//! The `unittests.cfg` target: bytes through `kut_cfg::parse_bytes` (the
//! parser of `vmm kut`), then, independently of the parser, what a file
//! written elsewhere must not break: an error quotes at most a few
//! hundred bytes of the file; a file that parses has one test per
//! `[section]` line, each with a unique non-empty name and a file, no
//! control character in any field; the work is one visit per line and at
//! most one name probe per line; and `parse_duration` agrees with a
//! reading of its own.

use kut_cfg::{parse_bytes, parse_counted, parse_duration, CfgError, EXCERPT_MAX};

/// Most bytes one input may hold (bigger inputs are skipped).
const MAX_TEXT: usize = 16 << 10;

/// Longest message an error may have: fixed words and at most two
/// quoted excerpts (a quote may double a byte as an escape).
const MAX_MESSAGE: usize = 4 * EXCERPT_MAX + 200;

/// Runs one input.
pub fn kut_cfg(data: &[u8]) {
    if data.len() > MAX_TEXT {
        return;
    }
    let parsed = parse_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(matches!(parsed, Err(CfgError::Binary { .. })), "invalid UTF-8 parsed: {parsed:?}");
        return;
    };
    for line in text.lines().take(4) {
        duration(line);
    }
    let (again, work) = parse_counted(text);
    assert_eq!(again, parsed, "the same text parses the same way as bytes and as text");
    let lines = text.split('\n').count();
    assert!(work.lines <= lines, "at most one visit per line: {work:?}, {lines} lines");
    assert!(work.name_probes <= work.lines, "{work:?}");
    match parsed {
        Err(e) => {
            let m = e.to_string();
            assert!(m.len() <= MAX_MESSAGE, "{} bytes of error", m.len());
        }
        Ok(tests) => {
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            let sections = section_lines(body);
            assert_eq!(work.lines, lines, "a file that parses is read to its end");
            assert_eq!(tests.len(), sections, "one test per [section] line");
            assert_eq!(work.name_probes, sections);
            let mut names = std::collections::HashSet::new();
            for t in &tests {
                assert!(!t.name.is_empty() && t.name == t.name.trim(), "name {:?}", t.name);
                assert!(names.insert(t.name.as_str()), "duplicate {:?}", t.name);
                assert!(!t.file.is_empty(), "[{}] has no file", t.name);
                for field in [&t.name, &t.file, &t.qemu_params, &t.test_args] {
                    assert!(!field.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f), "{field:?}");
                }
            }
        }
    }
}

/// The `[section]` lines of a file that parsed, read on its own: a line
/// inside a triple-quoted value (`key = """` up to the line holding the
/// closing `"""`) is part of that value, not a section.
fn section_lines(body: &str) -> usize {
    const TRIPLE: &str = "\"\"\"";
    let mut open = false;
    let mut count = 0;
    for l in body.split('\n') {
        let t = l.trim();
        if open {
            open = !t.contains(TRIPLE);
        } else if t.starts_with('[') {
            count += 1;
        } else if !t.starts_with('#') {
            if let Some(rest) = t.split_once('=').and_then(|(_, v)| v.trim().strip_prefix(TRIPLE)) {
                open = !rest.contains(TRIPLE);
            }
        }
    }
    count
}

/// `parse_duration`: seconds, or a number with s/m/h/d, that fits.
fn duration(s: &str) {
    let Some(n) = parse_duration(s) else { return };
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b's') => (&t[..t.len() - 1], 1u64),
        Some(b'm') => (&t[..t.len() - 1], 60),
        Some(b'h') => (&t[..t.len() - 1], 3600),
        Some(b'd') => (&t[..t.len() - 1], 86400),
        _ => (t, 1),
    };
    let v: u64 = digits.parse().expect("a time that parses has a number");
    assert_eq!(Some(n), v.checked_mul(mult), "{s:?}");
}
