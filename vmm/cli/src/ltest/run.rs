//! Runs each program in its own child — `vmm run [ARGS] --guest PROGRAM`
//! with the running `vmm`, or `$VMM_LTEST_RUNNER PROGRAM [ARGS]` — with
//! its own timeout, `jobs` at a time, and keeps what the child wrote to
//! stdout and stderr (each bounded; the rest is read and dropped so that
//! a chatty program never blocks on a full pipe).
//!
//! A child that outlives its timeout is killed (SIGKILL). Its output is
//! read until the pipes close, or for [`DRAIN_GRACE`] after the child
//! ended if something it started still holds them.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kut::run::signal_name;

/// The environment variable naming a program to run instead of `vmm
/// run`: it gets the program's path, then the `--vmm-arg` values.
pub const RUNNER_ENV: &str = "VMM_LTEST_RUNNER";
/// Most bytes kept of each of a child's two streams.
pub const MAX_OUTPUT: usize = 8 << 20;
/// How long output is still read after the child ended.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How a child ended (in JSON: `{"kind": "code", "value": 0}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Exit {
    /// It exited with this status (the program's, or 128 + the signal
    /// that killed the program).
    Code(i32),
    /// The child itself (`vmm`, or the runner) was killed by this signal.
    Killed(i32),
    /// It was killed after this many seconds.
    Timeout(u64),
    /// It could not be started.
    NotRun(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "rc={c}"),
            Exit::Killed(s) => write!(f, "vmm killed by {}", signal_name(*s)),
            Exit::Timeout(s) => write!(f, "timed out after {s} s"),
            Exit::NotRun(why) => write!(f, "not run: {why}"),
        }
    }
}

/// What runs the programs.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The executable: `vmm`, or the runner.
    pub exe: PathBuf,
    /// Whether `exe` is `vmm` (`run … --guest P`) or a runner (`P …`).
    pub is_vmm: bool,
    /// Extra arguments (`--vmm-arg`).
    pub args: Vec<OsString>,
    /// Seconds each program may take (`None`: no limit).
    pub timeout_secs: Option<u64>,
}

impl Launcher {
    /// The launcher of this process: `$VMM_LTEST_RUNNER` if set and not
    /// empty, else the running executable; `None` if neither is known.
    pub fn from_env(args: Vec<OsString>, timeout_secs: Option<u64>) -> Option<Launcher> {
        match std::env::var_os(RUNNER_ENV).filter(|r| !r.is_empty()) {
            Some(r) => Some(Launcher { exe: r.into(), is_vmm: false, args, timeout_secs }),
            None => Some(Launcher { exe: std::env::current_exe().ok()?, is_vmm: true, args, timeout_secs }),
        }
    }

    /// The arguments of the child running `program`.
    pub fn arguments(&self, program: &std::path::Path) -> Vec<OsString> {
        let p = program.as_os_str().to_owned();
        if self.is_vmm {
            let mut a: Vec<OsString> = vec!["run".into()];
            a.extend(self.args.iter().cloned());
            a.extend(["--guest".into(), p]);
            a
        } else {
            std::iter::once(p).chain(self.args.iter().cloned()).collect()
        }
    }
}

/// One program's run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub exit: Exit,
    /// Its standard output (at most [`MAX_OUTPUT`] bytes of it).
    pub stdout: String,
    /// Its standard error (as much).
    pub stderr: String,
    /// Whether either was cut.
    pub truncated: bool,
    /// Wall-clock seconds.
    pub secs: f64,
}

/// A stream being read: what was kept, whether some was dropped.
type Sink = Arc<Mutex<(Vec<u8>, bool)>>;

/// Reads `r` into a new sink on a thread that says on `done` when the
/// stream closed.
fn drain(r: Option<impl Read + Send + 'static>, done: mpsc::Sender<()>) -> Sink {
    let sink: Sink = Arc::default();
    let s = Arc::clone(&sink);
    std::thread::spawn(move || {
        if let Some(mut r) = r {
            let mut buf = [0u8; 16 << 10];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                        let room = MAX_OUTPUT.saturating_sub(g.0.len());
                        let keep = n.min(room);
                        g.0.extend_from_slice(&buf[..keep]);
                        g.1 |= keep < n;
                    }
                }
            }
        }
        let _ = done.send(());
    });
    sink
}

fn take(s: &Sink) -> (String, bool) {
    let g = s.lock().unwrap_or_else(|e| e.into_inner());
    (String::from_utf8_lossy(&g.0).into_owned(), g.1)
}

/// Runs `program` and waits for it (or its timeout).
pub fn run_one(l: &Launcher, program: &std::path::Path) -> Outcome {
    let start = Instant::now();
    let mut cmd = Command::new(&l.exe);
    cmd.args(l.arguments(program)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                exit: Exit::NotRun(format!("cannot start {}: {e}", l.exe.display())),
                stdout: String::new(),
                stderr: String::new(),
                truncated: false,
                secs: 0.0,
            }
        }
    };
    let (tx, rx) = mpsc::channel();
    let out = drain(child.stdout.take(), tx.clone());
    let err = drain(child.stderr.take(), tx);
    let deadline = l.timeout_secs.and_then(|t| start.checked_add(Duration::from_secs(t)));
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match (status.code(), status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(s)) => Exit::Killed(s),
                    (None, None) => Exit::NotRun(format!("ended with {status}")),
                }
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                break Exit::Timeout(l.timeout_secs.unwrap_or(0));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Exit::NotRun(format!("cannot wait for {}: {e}", l.exe.display()));
            }
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let until = Instant::now() + DRAIN_GRACE;
    for _ in 0..2 {
        if rx.recv_timeout(until.saturating_duration_since(Instant::now())).is_err() {
            break;
        }
    }
    let ((stdout, t1), (stderr, t2)) = (take(&out), take(&err));
    Outcome { exit, stdout, stderr, truncated: t1 || t2, secs }
}

/// Runs `programs` `jobs` at a time, giving each index and outcome to
/// `each` as it finishes; returns what `each` made, in input order.
pub fn run_all<R: Send>(
    l: &Launcher,
    programs: &[PathBuf],
    jobs: usize,
    each: &(dyn Fn(usize, Outcome) -> R + Sync),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..programs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, programs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = programs.get(i) else { break };
                let r = each(i, run_one(l, p));
                if let Some(slot) = results.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
                    *slot = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn ends_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("vmm-ltest-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The runner runs its first argument as a shell script.
        let runner = script(&dir, "runner", "exec /bin/sh \"$1\"");
        let progs = [
            script(&dir, "ok", "echo out; echo err >&2; exit 3"),
            script(&dir, "segv", "kill -SEGV $$"),
            script(&dir, "slow", "echo before; sleep 30; echo after"),
            script(&dir, "loud", "head -c 20000000 /dev/zero"),
        ];
        let l = Launcher { exe: runner, is_vmm: false, args: vec![], timeout_secs: Some(1) };
        let start = Instant::now();
        let r = run_all(&l, &progs, 4, &|i, o| (i, o));
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        assert_eq!(r.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!((&r[0].1.exit, r[0].1.stdout.as_str(), r[0].1.stderr.as_str()), (&Exit::Code(3), "out\n", "err\n"));
        assert_eq!(r[1].1.exit, Exit::Killed(libc::SIGSEGV));
        assert_eq!(r[1].1.exit.to_string(), "vmm killed by SIGSEGV");
        assert_eq!((&r[2].1.exit, r[2].1.stdout.as_str()), (&Exit::Timeout(1), "before\n"));
        assert_eq!((&r[3].1.exit, r[3].1.stdout.len(), r[3].1.truncated), (&Exit::Code(0), MAX_OUTPUT, true));
        let l = Launcher { exe: dir.join("missing"), ..l };
        assert!(matches!(run_one(&l, &progs[0]).exit, Exit::NotRun(m) if m.contains("cannot start")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn vmm_children_get_run_guest() {
        let l = Launcher { exe: "vmm".into(), is_vmm: true, args: vec!["--mem=256M".into()], timeout_secs: None };
        assert_eq!(l.arguments("/p/x".as_ref()), ["run", "--mem=256M", "--guest", "/p/x"]);
        let l = Launcher { is_vmm: false, ..l };
        assert_eq!(l.arguments("/p/x".as_ref()), ["/p/x", "--mem=256M"]);
    }
}
