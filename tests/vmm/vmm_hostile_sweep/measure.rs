//! Running one hostile guest through the `vmm` binary (production
//! seccomp filters on) and judging how it ended: its status and message,
//! its duration against `--timeout` + 2 s, and the VMM's peak resident
//! memory against twice the guest's memory plus [`ALLOWANCE_MIB`].
//!
//! Peak memory is the kernel's own figure for the child (`wait4`'s
//! `ru_maxrss`). That figure starts at the spawning process's high-water
//! mark (`execve` folds the replaced address space into it), so each test
//! runs in a fresh process of the test binary (`in_fresh_process`), whose
//! own peak is printed beside the VMM's. This module does not build
//! guests; the sibling modules do.

use std::io::Read;
use std::process::{ChildStdout, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_suite::kvm::vmm_bin;

/// What the VMM may use beyond twice the guest's memory: its own code,
/// heap and page-table bookkeeping, and the spawning test process's
/// high-water mark that `ru_maxrss` starts from (about 10 MiB).
pub const ALLOWANCE_MIB: u64 = 32;
/// `--timeout` of a guest that ends by itself: it only has to end, and
/// costs no time unless it hangs. Short timeouts (10-20 s) failed such
/// guests on a loaded machine (a niced test run at load 5 took 4x longer).
pub const SELF_ENDING: u64 = 60;
/// How long past `--timeout` a run may take (the bound).
pub const GRACE: Duration = Duration::from_secs(2);
/// How much of each output stream is kept for the messages.
const KEPT: usize = 64 << 10;

/// What the test does with the VMM's standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdout {
    /// Read to the end as it comes (its first bytes are kept).
    Drained,
    /// A pipe nobody reads until the VMM has ended.
    Unread,
}

/// How a run must end.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// The VMM's exit status.
    pub code: i32,
    /// Text that must appear in its standard output or error.
    pub text: &'static str,
}

/// The watchdog's ending: status 124 and its message in the report.
pub const TIMED_OUT: Expect = Expect { code: 124, text: "watchdog: the guest did not finish within" };
/// The watchdog's ending seen without the report (on a standard output
/// nobody reads): status 124 and the warning on standard error.
pub const TIMED_OUT_UNREAD: Expect = Expect { code: 124, text: "watchdog expired after" };

/// One hostile run: `vmm run --mem MEM --timeout T ARGS...`.
#[derive(Debug)]
pub struct Case {
    /// Names the run in messages.
    pub name: &'static str,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// `--timeout` in seconds.
    pub timeout_s: u64,
    /// The rest of the command line (`--guest FILE`, `--kernel FILE`, ...).
    pub args: Vec<String>,
    /// What the test does with standard output.
    pub stdout: Stdout,
    /// How it must end.
    pub expect: Expect,
}

/// What a run left.
#[derive(Debug)]
pub struct Ended {
    /// Exit status, when the VMM exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// From spawn to reaping.
    pub took: Duration,
    /// The VMM's peak resident set (KiB).
    pub peak_rss_kib: u64,
    /// The first bytes of standard output, and how many there were.
    pub stdout: (String, u64),
    /// The first bytes of standard error, and how many there were.
    pub stderr: (String, u64),
}

/// Reads `r` to its end; returns its first and last [`KEPT`] bytes
/// (joined by a line of dots when bytes between were dropped) and its
/// length.
fn drain(mut r: impl Read) -> (String, u64) {
    let mut head = Vec::new();
    let mut tail = std::collections::VecDeque::<u8>::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                let room = KEPT.saturating_sub(head.len());
                head.extend_from_slice(&buf[..n.min(room)]);
                tail.extend(&buf[n.min(room)..n]);
                let excess = tail.len().saturating_sub(KEPT);
                tail.drain(..excess);
            }
        }
    }
    let dropped = total > (head.len() + tail.len()) as u64;
    if dropped {
        head.extend_from_slice(b"\n...\n");
    }
    head.extend(tail);
    (String::from_utf8_lossy(&head).into_owned(), total)
}

/// This process's own peak resident set (KiB), from `/proc/self/status`.
fn own_peak_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `case` and returns how it ended. A VMM still running 30 s after
/// its timeout is killed (and the checks then fail on the duration).
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
pub fn run(case: &Case) -> Ended {
    let mem = format!("{}M", case.mem_mib);
    let timeout = case.timeout_s.to_string();
    let mut cmd = Command::new(vmm_bin());
    cmd.args(["run", "--mem", &mem, "--timeout", &timeout]).args(&case.args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn vmm");
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let mut unread: Option<ChildStdout> = None;
    let out_reader: Option<JoinHandle<(String, u64)>> = match case.stdout {
        Stdout::Drained => Some(std::thread::spawn(move || drain(out))),
        Stdout::Unread => {
            unread = Some(out);
            None
        }
    };
    let err_reader = std::thread::spawn(move || drain(err));
    let give_up = Duration::from_secs(case.timeout_s) + Duration::from_secs(30);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    let took = loop {
        // SAFETY: `pid` is our child, not yet reaped (Child's drop never
        // waits); `status` and `ru` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break start.elapsed();
        }
        assert_eq!(r, 0, "{}: wait4: {}", case.name, std::io::Error::last_os_error());
        if !killed && start.elapsed() > give_up {
            // SAFETY: kill has no memory effects; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = match out_reader {
        Some(t) => t.join().expect("stdout reader"),
        None => (String::new(), 0),
    };
    drop(unread);
    let stderr = err_reader.join().expect("stderr reader");
    let exited = libc::WIFEXITED(status);
    Ended {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        took,
        peak_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
        stdout,
        stderr,
    }
}

/// Runs `case` and checks the sweep's promises: no signal ended the VMM
/// (no seccomp kill, no abort), no panic, the expected status and
/// message, an end by `--timeout` + [`GRACE`], and peak memory within
/// twice the guest's plus [`ALLOWANCE_MIB`]. Returns the ending for
/// further checks.
pub fn sweep(case: Case) -> Ended {
    let e = run(&case);
    let limit_kib = (2 * case.mem_mib + ALLOWANCE_MIB) << 10;
    eprintln!(
        "{}: status {:?} signal {:?} in {:.2?} (limit {} s), peak RSS {} KiB (limit {limit_kib} KiB; the test process's own peak {} KiB), stdout {} bytes, stderr {} bytes",
        case.name,
        e.code,
        e.signal,
        e.took,
        case.timeout_s + GRACE.as_secs(),
        e.peak_rss_kib,
        own_peak_kib(),
        e.stdout.1,
        e.stderr.1,
    );
    let last_lines =
        |s: &str| s.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n  ");
    eprintln!("  stdout ends:\n  {}\n  stderr ends:\n  {}", last_lines(&e.stdout.0), last_lines(&e.stderr.0));
    let tail = |s: &str| s.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect::<String>();
    let both = format!("stdout:\n{}\nstderr:\n{}", tail(&e.stdout.0), tail(&e.stderr.0));
    assert_eq!(e.signal, None, "{}: the VMM was killed by a signal\n{both}", case.name);
    assert!(!e.stderr.0.contains("panicked"), "{}: the VMM panicked\n{both}", case.name);
    assert!(!e.stderr.0.contains("seccomp"), "{}: a seccomp filter stopped the VMM\n{both}", case.name);
    assert_eq!(e.code, Some(case.expect.code), "{}: exit status\n{both}", case.name);
    assert!(
        e.stdout.0.contains(case.expect.text) || e.stderr.0.contains(case.expect.text),
        "{}: no {:?} in the output\n{both}",
        case.name,
        case.expect.text
    );
    assert!(
        e.took <= Duration::from_secs(case.timeout_s) + GRACE,
        "{}: took {:?} with --timeout {}\n{both}",
        case.name,
        e.took,
        case.timeout_s
    );
    assert!(
        e.peak_rss_kib <= limit_kib,
        "{}: peak RSS {} KiB > {limit_kib} KiB (2 x {} MiB + {ALLOWANCE_MIB} MiB)\n{both}",
        case.name,
        e.peak_rss_kib,
        case.mem_mib
    );
    e
}
