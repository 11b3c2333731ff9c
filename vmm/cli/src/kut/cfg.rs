//! The `unittests.cfg` format of kvm-unit-tests: `[name]` sections of
//! `key = value` lines (`file`, `smp`, `extra_params` / `qemu_params`,
//! `test_args`, `groups`, `timeout`, `arch`, `accel`, `check`); `#`
//! starts a comment. Values may be quoted with `'` or `"`.
//!
//! This module only parses; what a test needs and whether it can run is
//! [`super::plan`]'s.

use thiserror::Error;

/// Errors in a configuration file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CfgError {
    /// A line is neither a section, a `key = value`, a comment nor blank.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One `[section]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSpec {
    /// The section name.
    pub name: String,
    /// The kernel file, relative to the directory of the configuration.
    pub file: String,
    /// vCPUs (`smp`), default 1.
    pub smp: u32,
    /// QEMU parameters (`extra_params` and `qemu_params`, joined).
    pub qemu_params: String,
    /// The test's own arguments (`test_args`, or `-append` in the params).
    pub test_args: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Timeout in seconds, if given.
    pub timeout_secs: Option<u64>,
    /// `arch`, if given.
    pub arch: Option<String>,
    /// `accel`, if given.
    pub accel: Option<String>,
    /// `check` conditions: `path=value` pairs.
    pub check: Vec<(String, String)>,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// A time like `90`, `90s`, `2m`, `1h` (the suffixes `timeout(1)` takes).
pub fn parse_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        's' => (&v[..v.len() - 1], 1),
        'm' => (&v[..v.len() - 1], 60),
        'h' => (&v[..v.len() - 1], 3600),
        'd' => (&v[..v.len() - 1], 86400),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<Vec<TestSpec>, CfgError> {
    let mut tests: Vec<TestSpec> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| CfgError::Syntax { line: i + 1, message };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| err("unclosed section name".into()))?.trim();
            if name.is_empty() {
                return Err(err("empty section name".into()));
            }
            if tests.iter().any(|t| t.name == name) {
                return Err(err(format!("duplicate section [{name}]")));
            }
            tests.push(TestSpec { name: name.into(), smp: 1, ..Default::default() });
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| err(format!("expected key = value, got {line:?}")))?;
        let t = tests.last_mut().ok_or_else(|| err("key before any [section]".into()))?;
        let value = unquote(value);
        match key.trim() {
            "file" => t.file = value.into(),
            "smp" => {
                t.smp = value.parse().map_err(|_| err(format!("smp must be a number, not {value:?}")))?;
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
                t.timeout_secs = Some(parse_duration(value).ok_or_else(|| err(format!("bad timeout {value:?}")))?);
            }
            "arch" => t.arch = Some(value.into()),
            "accel" => t.accel = Some(value.into()),
            "check" => {
                for c in value.split_whitespace() {
                    let (p, v) = c.split_once('=').ok_or_else(|| err(format!("bad check {c:?}")))?;
                    t.check.push((p.into(), v.into()));
                }
            }
            // Keys of other runners (e.g. `disabled_if`) are kept out of
            // the plan and do not make the file invalid.
            other => log::debug!("unittests.cfg line {}: ignoring key {other:?}", i + 1),
        }
    }
    if let Some(t) = tests.iter().find(|t| t.file.is_empty()) {
        return Err(CfgError::Syntax { line: 0, message: format!("[{}] has no file", t.name) });
    }
    Ok(tests)
}

/// Splits `-append 'args'` (or `"args"`, or one word) out of QEMU
/// parameters.
fn split_append(params: &str) -> (String, Option<String>) {
    let Some(pos) = params.find("-append") else { return (params.trim().into(), None) };
    let before = params[..pos].trim_end();
    let rest = params[pos + "-append".len()..].trim_start();
    let (arg, after) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => match rest[1..].find(q) {
            Some(end) => (&rest[1..1 + end], &rest[2 + end..]),
            None => (&rest[1..], ""),
        },
        _ => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
    };
    let joined = format!("{before} {}", after.trim()).trim().to_string();
    (joined, Some(arg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
# comment
[smptest]
file = smptest.flat
smp = 2

[vmexit_cpuid]
file = vmexit.flat
test_args = 'cpuid'
groups = vmexit fast

[old]
file = old.flat
extra_params = -cpu max -append "a b" -m 256
timeout = 2m
arch = x86_64
accel = kvm
check = /sys/x=Y /sys/y=N
"#;

    #[test]
    fn parses_sections_and_keys() {
        let t = parse(CFG).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].name.as_str(), t[0].file.as_str(), t[0].smp), ("smptest", "smptest.flat", 2));
        assert_eq!(t[1].test_args, "cpuid");
        assert_eq!(t[1].groups, ["vmexit", "fast"]);
        assert_eq!(t[1].smp, 1);
        assert_eq!(t[2].qemu_params, "-cpu max -m 256");
        assert_eq!(t[2].test_args, "a b");
        assert_eq!(t[2].timeout_secs, Some(120));
        assert_eq!(t[2].arch.as_deref(), Some("x86_64"));
        assert_eq!(t[2].accel.as_deref(), Some("kvm"));
        assert_eq!(t[2].check, [("/sys/x".into(), "Y".into()), ("/sys/y".into(), "N".into())]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("file = x\n"), Err(CfgError::Syntax { line: 1, message: "key before any [section]".into() }));
        assert!(matches!(parse("[a]\nfile = a\nsmp = two\n"), Err(CfgError::Syntax { line: 3, .. })));
        assert!(matches!(parse("[a\n"), Err(CfgError::Syntax { line: 1, .. })));
        assert!(matches!(parse("[a]\nfile=a\n[a]\nfile=b\n"), Err(CfgError::Syntax { line: 3, .. })));
        assert!(
            matches!(parse("[a]\nsmp = 1\n"), Err(CfgError::Syntax { message, .. }) if message.contains("no file"))
        );
        assert!(matches!(parse("[a]\nfile = a\njunk\n"), Err(CfgError::Syntax { line: 3, .. })));
    }

    #[test]
    fn durations_and_append() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(split_append("-append one -m 2"), ("-m 2".into(), Some("one".into())));
        assert_eq!(split_append("-smp 2"), ("-smp 2".into(), None));
    }

    #[test]
    fn parses_the_shipped_file_if_present() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/testguests/kvm-unit-tests/x86/unittests.cfg");
        let Ok(text) = std::fs::read_to_string(&p) else {
            eprintln!("skipped: {} is absent", p.display());
            return;
        };
        let t = parse(&text).unwrap();
        assert!(t.len() > 80, "{} sections", t.len());
        let v = t.iter().find(|t| t.name == "vmexit_ipi").unwrap();
        assert_eq!((v.smp, v.test_args.as_str(), v.qemu_params.as_str()), (2, "ipi", "-machine pit=off"));
    }
}
