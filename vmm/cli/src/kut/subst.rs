//! Backquoted commands in `extra_params` and `test_args`
//! (`` -append "10000000 `date +%s`" ``): upstream's `run_tests.sh`
//! `eval`s the command line, so a shell runs them. `vmm kut` runs no
//! shell: a backquoted (or `$( )`) command is run only if it is one of a
//! few fixed commands ([`ALLOWED`]: `date`, `date +FORMAT`, `nproc`),
//! directly with `execve` from a fixed directory, its output (bounded,
//! trailing newlines cut, other whitespace runs made one space, as an
//! unquoted substitution is split into words) put in its place. Anything
//! else is the reason the test is skipped ("backquoted command not
//! supported: ..."), never a run with the text left in.
//!
//! [`Template::parse`] decides before anything runs; [`Template::expand`]
//! runs the commands, when the test starts (so `date +%s` is the test's
//! start, as upstream's is).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kut_cfg::{cut, excerpt, EXCERPT_MAX};

/// The programs a substitution may run, and the directories searched for
/// them (never `PATH`).
const ALLOWED: &[&str] = &["date", "nproc"];
const DIRS: &[&str] = &["/usr/bin", "/bin"];

/// Most bytes of a command's output kept; more is an error.
const MAX_OUTPUT: u64 = 4096;
/// How long a command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A fixed command: a program from [`ALLOWED`] and its checked arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixed {
    program: PathBuf,
    args: Vec<String>,
}

/// One piece of a value: text as written, or a command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Run(Fixed),
}

/// A value with its substitutions found and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Finds the substitutions in `v`; the error is the reason to skip.
    pub fn parse(v: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = v;
        loop {
            let tick = rest.find('`');
            let dollar = rest.find("$(");
            let (start, open_len, close) = match (tick, dollar) {
                (None, None) => break,
                (Some(t), Some(d)) if d < t => (d, 2, ')'),
                (Some(t), _) => (t, 1, '`'),
                (None, Some(d)) => (d, 2, ')'),
            };
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let inner_start = start + open_len;
            let Some(len) = rest[inner_start..].find(close) else {
                return Err(format!("unclosed command substitution in {}", excerpt(v)));
            };
            let cmd = &rest[inner_start..inner_start + len];
            pieces.push(Piece::Run(fixed(cmd).ok_or_else(|| {
                if close == '`' {
                    format!("backquoted command not supported: {}", cut(cmd, EXCERPT_MAX))
                } else {
                    format!("command substitution not supported: $({})", cut(cmd, EXCERPT_MAX))
                }
            })?));
            rest = &rest[inner_start + len + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// Whether it runs any command.
    #[cfg(test)]
    fn has_commands(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Run(_)))
    }

    /// The value with each command's output in its place.
    pub fn expand(&self) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Run(f) => out.push_str(&run(f)?),
            }
        }
        Ok(out)
    }
}

/// `cmd` as a fixed command, if it is one: an allowed program, and for
/// `date` at most one `+FORMAT` argument of letters, digits, `%` and
/// `-_:.,/`.
fn fixed(cmd: &str) -> Option<Fixed> {
    let mut words = cmd.split_whitespace();
    let name = words.next()?;
    let args: Vec<String> = words.map(String::from).collect();
    if !ALLOWED.contains(&name) {
        return None;
    }
    let ok_args = match (name, args.as_slice()) {
        ("date", []) | ("nproc", []) => true,
        ("date", [fmt]) => {
            fmt.starts_with('+') && fmt[1..].chars().all(|c| c.is_ascii_alphanumeric() || "%-_:.,/".contains(c))
        }
        _ => false,
    };
    if !ok_args {
        return None;
    }
    let program = DIRS.iter().map(|d| PathBuf::from(d).join(name)).find(|p| p.is_file())?;
    Some(Fixed { program, args })
}

/// Runs `f` (no shell, no input, an empty environment but `LC_ALL=C`),
/// bounded in time and output; its output as a substitution gives it.
fn run(f: &Fixed) -> Result<String, String> {
    let shown = || format!("`{} {}`", f.program.display(), f.args.join(" "));
    let mut child = Command::new(&f.program)
        .args(&f.args)
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", shown()))?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(MAX_OUTPUT + 1).read_to_end(&mut buf);
        }
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not end within {} s", shown(), COMMAND_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for {}: {e}", shown())),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{} failed ({status})", shown()));
    }
    if out.len() as u64 > MAX_OUTPUT {
        return Err(format!("{} printed more than {MAX_OUTPUT} bytes", shown()));
    }
    let text = String::from_utf8(out).map_err(|_| format!("{} printed text that is not UTF-8", shown()))?;
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(format!("{} printed a control character", shown()));
    }
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_commands_run_without_a_shell() {
        let t = Template::parse("10000000 `date +%s`").unwrap();
        assert!(t.has_commands());
        let v = t.expand().unwrap();
        let (n, secs) = v.split_once(' ').unwrap();
        assert_eq!(n, "10000000");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let secs: u64 = secs.parse().unwrap();
        assert!(secs.abs_diff(now) < 5, "{secs} vs {now}");
        let v = Template::parse("a $(nproc) b").unwrap().expand().unwrap();
        let n: usize = v.strip_prefix("a ").unwrap().strip_suffix(" b").unwrap().parse().unwrap();
        assert!(n >= 1);
        let plain = Template::parse("no commands 'here'").unwrap();
        assert!(!plain.has_commands());
        assert_eq!(plain.expand().unwrap(), "no commands 'here'");
    }

    /// Issue 21: backquotes were passed literally; anything but a fixed
    /// command is a skip reason, and nothing of it runs.
    #[test]
    fn anything_else_is_a_reason() {
        let dir = std::env::temp_dir().join(format!("vmm-kut-subst-{}", std::process::id()));
        let marker = dir.join("ran");
        for v in [
            format!("`touch {}`", marker.display()),
            format!("`date; touch {}`", marker.display()),
            "`date +%s; id`".to_string(),
            "`date -s 0`".to_string(),
            "`date +$(id)`".to_string(),
            "`/usr/bin/date`".to_string(),
            "`nproc --all`".to_string(),
            "``".to_string(),
        ] {
            let why = Template::parse(&v).unwrap_err();
            assert!(why.starts_with("backquoted command not supported: "), "{v}: {why}");
        }
        assert_eq!(Template::parse("$(id)").unwrap_err(), "command substitution not supported: $(id)");
        assert!(Template::parse("a `date").unwrap_err().contains("unclosed"));
        assert!(!marker.exists());
    }
}
