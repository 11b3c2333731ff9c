//! The parser: one pass over the lines, constant work per line beyond
//! reading it, and a hash set for the duplicate-section check (a linear
//! scan of the sections seen made a 10 MB file with 283k sections run
//! for minutes). [`parse_counted`] reports the work it did so a test can
//! show it grows linearly without timing anything.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::CfgError;
use crate::excerpt::excerpt;
use crate::spec::TestSpec;
use crate::values::{parse_checks, parse_duration, split_append, unquote};

/// Work one parse did: what the tests bound to show linear growth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Lines read.
    pub lines: usize,
    /// Bytes of those lines.
    pub bytes: usize,
    /// Section names compared or looked up for the duplicate check.
    pub name_probes: usize,
}

/// Parses a file given as bytes: invalid UTF-8 is [`CfgError::Binary`]
/// naming the line it is on.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<TestSpec>, CfgError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let byte = bytes.get(offset).copied().unwrap_or(0);
        CfgError::Binary { line: line_of(bytes, offset), offset, what: format!("byte {byte:#04x} that is not UTF-8") }
    })?;
    parse(text)
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<Vec<TestSpec>, CfgError> {
    parse_counted(text).0
}

/// 1-based line of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A control character (other than a tab) in `line`, as (column, byte).
fn control_char(line: &str) -> Option<(usize, u8)> {
    line.bytes().enumerate().find(|&(_, b)| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Parses the whole file and says how much work that was.
pub fn parse_counted(text: &str) -> (Result<Vec<TestSpec>, CfgError>, Work) {
    let mut work = Work::default();
    let r = parse_into(text, &mut work);
    (r, work)
}

fn parse_into(text: &str, work: &mut Work) -> Result<Vec<TestSpec>, CfgError> {
    let all = text.len();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tests: Vec<TestSpec> = Vec::new();
    // Section name -> its line, and each section's line (for "no file").
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut starts: Vec<usize> = Vec::new();
    let mut lines = Lines { rest: text.split('\n').enumerate(), offset: all - text.len() };
    while let Some((line_no, raw)) = lines.next(work)? {
        let line = raw.trim();
        let err = |message: String| CfgError::Syntax { line: line_no, message };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name =
                name.strip_suffix(']').ok_or_else(|| err(format!("unclosed section name {}", excerpt(line))))?.trim();
            if name.is_empty() {
                return Err(err("empty section name".into()));
            }
            work.name_probes += 1;
            if let Some(first) = seen.get(name) {
                return Err(err(format!("duplicate section [{}] (first on line {first})", excerpt(name))));
            }
            seen.insert(name.to_owned(), line_no);
            starts.push(line_no);
            tests.push(TestSpec { name: name.into(), smp: 1, ..Default::default() });
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or_else(|| err(format!("expected key = value, got {}", excerpt(line))))?;
        let t = tests.last_mut().ok_or_else(|| err("key before any [section]".into()))?;
        let value: Cow<'_, str> = match value.trim().strip_prefix(TRIPLE) {
            Some(first) => Cow::Owned(triple_quoted(first, line_no, &mut lines, work)?),
            None => Cow::Borrowed(unquote(value)),
        };
        let value = value.as_ref();
        match key.trim() {
            "file" => t.file = value.into(),
            "smp" => {
                t.smp = value
                    .parse()
                    .map_err(|e| err(format!("smp must be a whole number, not {}: {e}", excerpt(value))))?;
            }
            "extra_params" | "qemu_params" => {
                let (params, append) = split_append(value);
                if !t.qemu_params.is_empty() && !params.is_empty() {
                    t.qemu_params.push(' ');
                }
                t.qemu_params.push_str(&params);
                if let Some(a) = append {
                    t.test_args = a;
                }
            }
            "test_args" => t.test_args = value.into(),
            "groups" => t.groups = value.split_whitespace().map(String::from).collect(),
            "timeout" => {
                let secs = parse_duration(value).ok_or_else(|| {
                    err(format!("timeout must be seconds (or with s, m, h, d) below 2^64 s, not {}", excerpt(value)))
                })?;
                t.timeout_secs = Some(secs);
            }
            "arch" => t.arch = Some(value.into()),
            "accel" => t.accel = Some(value.into()),
            "machine" => t.machine = Some(value.into()),
            "check" => t.check.extend(parse_checks(value).map_err(err)?),
            // The condition as written (quotes are part of it).
            "disabled_if" => t.disabled_if = Some(value.into()),
            // Keys of other runners (e.g. `kvmtool_params`) are kept out
            // of the plan and do not make the file invalid.
            other => log::debug!("unittests.cfg line {line_no}: ignoring key {}", excerpt(other)),
        }
    }
    if let Some((t, line)) = tests.iter().zip(&starts).find(|(t, _)| t.file.is_empty()) {
        return Err(CfgError::Syntax { line: *line, message: format!("[{}] has no file", excerpt(&t.name)) });
    }
    Ok(tests)
}

/// Opens and closes a value of several lines.
const TRIPLE: &str = "\"\"\"";

/// The file's lines, one at a time: each counted in the work, stripped of
/// a trailing `\r`, and refused if it holds a control character.
struct Lines<'a> {
    rest: std::iter::Enumerate<std::str::Split<'a, char>>,
    /// Byte offset of the next line in the file (a byte-order mark
    /// included).
    offset: usize,
}

impl<'a> Lines<'a> {
    /// The next line and its 1-based number.
    fn next(&mut self, work: &mut Work) -> Result<Option<(usize, &'a str)>, CfgError> {
        let Some((i, raw)) = self.rest.next() else { return Ok(None) };
        work.lines += 1;
        work.bytes += raw.len();
        let start = self.offset;
        self.offset += raw.len() + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some((col, b)) = control_char(raw) {
            let what = format!("control character {b:#04x}");
            return Err(CfgError::Binary { line: i + 1, offset: start + col, what });
        }
        Ok(Some((i + 1, raw)))
    }
}

/// A value opened with `"""` on line `line_no` (`first` is the rest of
/// that line): the text up to the closing `"""`, its lines trimmed and
/// joined with spaces, as upstream's `scripts/common.bash` joins them.
fn triple_quoted(first: &str, line_no: usize, lines: &mut Lines<'_>, work: &mut Work) -> Result<String, CfgError> {
    let mut parts: Vec<&str> = Vec::new();
    let mut line = first;
    loop {
        if let Some(end) = line.find(TRIPLE) {
            parts.push(line[..end].trim());
            break;
        }
        parts.push(line.trim());
        line = match lines.next(work)? {
            Some((_, l)) => l,
            None => {
                let message = format!("the value opened with \"\"\" on line {line_no} is not closed");
                return Err(CfgError::Syntax { line: line_no, message });
            }
        };
    }
    Ok(parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests;
