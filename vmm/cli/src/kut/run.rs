//! Runs planned tests, each in its own `vmm run --kernel` child process
//! with its own timeout, `jobs` at a time, and turns each child's end
//! into PASS / FAIL / SKIP with a reason, by the kvm-unit-tests exit
//! convention: exit-port status 1 is PASS, 77 is SKIP (the test found
//! nothing it could test), anything else FAIL; a child killed by a signal
//! is a FAIL "terminated on SIGNAME", as `run_tests.sh` reports a status
//! above 127.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::plan::{Launch, Plan};
use super::subst::Template;

/// A test's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Passed.
    Pass,
    /// Failed (or timed out, or the guest could not run).
    Fail,
    /// Not run, or found nothing to test.
    Skip,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        })
    }
}

/// One test's result.
#[derive(Clone, Debug, Serialize)]
pub struct TestResult {
    /// Section name.
    pub name: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Why (the test's `SUMMARY:` line, a skip reason, a timeout...).
    pub reason: String,
    /// Wall-clock seconds of the child (0 for a test not run).
    pub secs: f64,
    /// Console output of the guest and the VMM's log (not serialized).
    #[serde(skip)]
    pub log: String,
}

/// Extra seconds the host allows a child beyond the guest's timeout
/// before killing it (VMM start-up and teardown).
const GRACE_SECS: u64 = 15;
/// Most bytes of a child's output kept.
const MAX_LOG: u64 = 4 << 20;

/// What a guest prints when it looks for something this machine does not
/// have, and the reason a test that then does not pass is skipped with.
const MISSING: &[(&str, &str)] =
    &[(vmm::guest::kinds::multiboot::CPU_NOT_FOLLOWED, "its CPU model cannot be followed here")];

/// Classifies a child's end from its JSON report (stdout) and its console
/// and log (stderr). A test that does not pass after reporting that the
/// machine lacks something it needs ([`MISSING`]) is a SKIP naming it.
pub fn classify(report: Option<&serde_json::Value>, console: &str, timeout_secs: Option<u64>) -> (Verdict, String) {
    let (verdict, reason) = classify_end(report, console, timeout_secs);
    if verdict == Verdict::Fail {
        if let Some((_, why)) = MISSING.iter().find(|(sign, _)| console.contains(sign)) {
            return (Verdict::Skip, format!("{why} ({reason})"));
        }
    }
    (verdict, reason)
}

fn classify_end(report: Option<&serde_json::Value>, console: &str, timeout_secs: Option<u64>) -> (Verdict, String) {
    let summary = console
        .lines()
        .rev()
        .find_map(|l| l.trim_start_matches(|c: char| !c.is_ascii_alphabetic()).strip_prefix("SUMMARY: "))
        .map(|s| s.trim().to_string());
    let Some(outcome) = report.and_then(|r| r.get("outcome")).filter(|o| !o.is_null()) else {
        let last = console.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no report").trim();
        return (Verdict::Fail, format!("vmm did not run the guest: {last}"));
    };
    let kind = outcome.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    match kind {
        "exit_port" => {
            let status = outcome.get("status").and_then(|s| s.as_i64()).unwrap_or(-1);
            let why = summary.unwrap_or_else(|| format!("exit status {status}"));
            match status {
                1 => (Verdict::Pass, why),
                77 => (Verdict::Skip, why),
                _ => (Verdict::Fail, why),
            }
        }
        "timeout" => (Verdict::Fail, format!("timeout; duration={}s", timeout_secs.unwrap_or(0))),
        "vcpu_error" => {
            let m = outcome.get("message").and_then(|m| m.as_str()).unwrap_or("vCPU error");
            (Verdict::Fail, m.to_string())
        }
        "triple_fault" => (Verdict::Fail, "triple fault".into()),
        other => (Verdict::Fail, format!("guest ended with {other}: {outcome}")),
    }
}

/// The arguments of the `vmm` child that runs `l`.
pub fn arguments(l: &Launch) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["run".into(), "--kernel".into(), l.kernel.clone().into_os_string()];
    for a in ["--vcpus".into(), l.vcpus.to_string(), "--mem".into(), format!("{}M", l.mem >> 20)] {
        args.push(a.into());
    }
    if let Some(t) = l.timeout_secs {
        args.extend(["--timeout".into(), t.to_string().into()]);
    }
    if let Some(f) = &l.initrd {
        args.extend(["--initrd".into(), f.clone().into_os_string()]);
    }
    if let Some(c) = &l.cpu {
        args.push(format!("--cpu={c}").into());
    }
    args.push("--json".into());
    if !l.append.is_empty() {
        args.push(format!("--append={}", l.append).into());
    }
    args
}

/// The command line of the child that runs `l`, for `-v`: each word
/// quoted for a POSIX shell where it needs to be (nothing here runs a
/// shell; this is for the reader).
pub fn command_line(exe: &Path, l: &Launch) -> String {
    std::iter::once(exe.as_os_str().to_owned())
        .chain(arguments(l))
        .map(|w| shell_word(&w.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `w` as one POSIX shell word.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        return w.to_string();
    }
    // `--append=a b` reads better as `--append='a b'`.
    let (head, rest) = match w.split_once('=') {
        Some((h, r)) if h.starts_with("--") && h.chars().all(plain) => (format!("{h}="), r),
        _ => (String::new(), w),
    };
    format!("{head}'{}'", rest.replace('\'', "'\\''"))
}

/// The name of signal `sig`, as `kill -l` prints it after `SIG`.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
        "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
        "WINCH", "IO", "PWR", "SYS",
    ];
    let rtmin = libc::SIGRTMIN();
    match usize::try_from(sig).ok().and_then(|s| s.checked_sub(1)).and_then(|i| NAMES.get(i)) {
        Some(n) => format!("SIG{n}"),
        None if (rtmin..=libc::SIGRTMAX()).contains(&sig) => format!("SIGRTMIN+{}", sig - rtmin),
        None => format!("signal {sig}"),
    }
}

/// Runs one launch with the `vmm` binary `exe`.
fn run_one(exe: &Path, name: &str, l: &Launch) -> TestResult {
    let start = Instant::now();
    // The arguments' fixed backquoted commands run now, as the test starts.
    let expanded = match Template::parse(&l.append).and_then(|t| t.expand()) {
        Ok(append) => Launch { append, ..l.clone() },
        Err(why) => {
            return TestResult { name: name.into(), verdict: Verdict::Fail, reason: why, secs: 0.0, log: String::new() }
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args(arguments(&expanded)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let fail = |reason: String, secs: f64| TestResult {
        name: name.into(),
        verdict: Verdict::Fail,
        reason,
        secs,
        log: String::new(),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start {}: {e}", exe.display()), 0.0),
    };
    // Drain both pipes on their own threads so a chatty guest cannot block.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(MAX_LOG).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    // The plan bounds the timeout (plan::MAX_TIMEOUT_SECS); a launch
    // made otherwise whose deadline does not fit waits without one
    // rather than overflow.
    let limit = l.timeout_secs.map(|t| t.saturating_add(GRACE_SECS));
    let deadline = limit.and_then(|limit| start.checked_add(Duration::from_secs(limit)));
    let mut killed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                killed = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return fail(format!("cannot wait for vmm: {e}"), start.elapsed().as_secs_f64()),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let stdout = out.join().unwrap_or_default();
    let console = err.join().unwrap_or_default();
    if killed {
        let mut r = fail(format!("timeout; vmm killed after {} s", limit.unwrap_or(0)), secs);
        r.log = console;
        return r;
    }
    let report = serde_json::from_str::<serde_json::Value>(stdout.trim()).ok();
    let (verdict, reason) = match status.and_then(|s| s.signal()) {
        Some(sig) => (Verdict::Fail, format!("terminated on {}", signal_name(sig))),
        None => classify(report.as_ref(), &console, l.timeout_secs),
    };
    TestResult { name: name.into(), verdict, reason, secs, log: console }
}

/// Runs `tests` (name and plan) `jobs` at a time; `starting` sees each
/// launch before it starts, `each` every result as it comes. Results are
/// returned in the input order.
pub fn run_all(
    exe: &Path,
    tests: &[(String, Plan)],
    jobs: usize,
    starting: &(dyn Fn(&str, &Launch) + Sync),
    each: &(dyn Fn(&TestResult) + Sync),
) -> Vec<TestResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; tests.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, tests.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, plan)) = tests.get(i) else { break };
                let r = match plan {
                    Plan::Skip(reason) => TestResult {
                        name: name.clone(),
                        verdict: Verdict::Skip,
                        reason: reason.clone(),
                        secs: 0.0,
                        log: String::new(),
                    },
                    Plan::Run(l) => {
                        starting(name, l);
                        run_one(exe, name, l)
                    }
                };
                each(&r);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

/// Where the `vmm` binary is (the running one).
pub fn current_vmm() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exit_convention() {
        let r = json!({"outcome": {"kind": "exit_port", "status": 1}});
        assert_eq!(classify(Some(&r), "x\nSUMMARY: 4 tests\n", Some(60)), (Verdict::Pass, "4 tests".into()));
        let r = json!({"outcome": {"kind": "exit_port", "status": 77}});
        assert_eq!(
            classify(Some(&r), "SUMMARY: 1 tests, 1 skipped\n", Some(60)),
            (Verdict::Skip, "1 tests, 1 skipped".into())
        );
        let r = json!({"outcome": {"kind": "exit_port", "status": 3}});
        assert_eq!(
            classify(Some(&r), "SUMMARY: 6 tests, 1 unexpected failures\n", Some(60)),
            (Verdict::Fail, "6 tests, 1 unexpected failures".into())
        );
        let r = json!({"outcome": {"kind": "exit_port", "status": 1}});
        assert_eq!(classify(Some(&r), "", Some(60)), (Verdict::Pass, "exit status 1".into()));
    }

    #[test]
    fn other_ends_fail_with_reason() {
        let r = json!({"outcome": {"kind": "timeout", "secs": 5}});
        assert_eq!(classify(Some(&r), "", Some(5)), (Verdict::Fail, "timeout; duration=5s".into()));
        let m = "the KVM backend could not emulate `xsetbv` (0f 01 d1)";
        let r = json!({"outcome": {"kind": "vcpu_error", "vcpu": 0, "message": m}});
        assert_eq!(classify(Some(&r), "", Some(5)), (Verdict::Fail, m.into()));
        let (v, why) = classify(None, "vmm: cannot open /dev/kvm\n", Some(5));
        assert_eq!(v, Verdict::Fail);
        assert!(why.contains("/dev/kvm"), "{why}");
        let r = json!({"outcome": null});
        assert_eq!(classify(Some(&r), "", Some(5)).0, Verdict::Fail);
    }

    #[test]
    fn a_cpu_model_that_cannot_be_followed_is_a_skip() {
        // A -cpu KVM cannot give here (issue 21): the child refuses to start.
        let (v, why) = classify(None, "vmm: cannot follow -cpu max,+la57: KVM cannot give the guest la57\n", None);
        assert_eq!(v, Verdict::Skip);
        assert!(why.starts_with("its CPU model cannot be followed here") && why.contains("la57"), "{why}");
        // A pass stays a pass.
        let r = json!({"outcome": {"kind": "exit_port", "status": 1}});
        assert_eq!(classify(Some(&r), "cannot follow -cpu\n", Some(5)).0, Verdict::Pass);
        // The ACPI tables are there (issue 21): "Can't find RSDP" is no skip.
        let r = json!({"outcome": {"kind": "exit_port", "status": 127}});
        assert_eq!(classify(Some(&r), "Can't find RSDP\n", Some(5)).0, Verdict::Fail);
    }

    #[test]
    fn skips_are_not_run_and_order_is_kept() {
        let tests = vec![("a".to_string(), Plan::Skip("why".into())), ("b".to_string(), Plan::Skip("no".into()))];
        let seen = Mutex::new(0);
        let r = run_all(Path::new("/nonexistent/vmm"), &tests, 4, &|_, _| {}, &|_| *seen.lock().unwrap() += 1);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].name.as_str(), r[0].verdict, r[0].reason.as_str()), ("a", Verdict::Skip, "why"));
        assert_eq!(r[1].name, "b");
        assert_eq!(*seen.lock().unwrap(), 2);
        // A binary that does not exist is a failure with the reason.
        let t = vec![(
            "c".to_string(),
            Plan::Run(Launch {
                kernel: "k".into(),
                vcpus: 1,
                mem: 128 << 20,
                append: String::new(),
                timeout_secs: Some(1),
                initrd: None,
                cpu: None,
            }),
        )];
        let r = run_all(Path::new("/nonexistent/vmm"), &t, 1, &|_, _| {}, &|_| {});
        assert_eq!(r[0].verdict, Verdict::Fail);
        assert!(r[0].reason.contains("cannot start"), "{}", r[0].reason);
    }

    /// Item 6 of issue 20: a timeout of 2^63 - 1 s panicked here ("overflow
    /// when adding duration to instant"). Any value is a verdict, never a
    /// panic (`true` stands in for `vmm`: it prints no report).
    #[test]
    fn any_timeout_is_a_verdict() {
        for secs in [i64::MAX as u64, u64::MAX - GRACE_SECS, u64::MAX] {
            let l = Launch {
                kernel: "k".into(),
                vcpus: 1,
                mem: 128 << 20,
                append: String::new(),
                timeout_secs: Some(secs),
                initrd: None,
                cpu: None,
            };
            let r = run_all(Path::new("/bin/true"), &[("t".to_string(), Plan::Run(l))], 1, &|_, _| {}, &|_| {});
            assert_eq!(r[0].verdict, Verdict::Fail, "{secs}");
            assert!(r[0].reason.contains("did not run the guest"), "{secs}: {}", r[0].reason);
        }
    }

    /// Issue 21: a `vmm` child killed by a signal was "vmm did not run the
    /// guest"; `run_tests.sh` says "terminated on SIGSEGV". (A script
    /// stands in for `vmm` here: it kills itself.)
    #[test]
    fn a_child_killed_by_a_signal_is_named() {
        let dir = std::env::temp_dir().join(format!("vmm-kut-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("fake-vmm");
        std::fs::write(&exe, "#!/bin/sh\nkill -SEGV $$\n").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let l = Launch {
            kernel: "k".into(),
            vcpus: 1,
            mem: 128 << 20,
            append: String::new(),
            timeout_secs: None,
            initrd: None,
            cpu: None,
        };
        let r = run_all(&exe, &[("t".to_string(), Plan::Run(l))], 1, &|_, _| {}, &|_| {});
        assert_eq!((r[0].verdict, r[0].reason.as_str()), (Verdict::Fail, "terminated on SIGSEGV"));
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(signal_name(0), "signal 0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `-v`'s command line: the arguments `vmm run` gets, quoted for a
    /// reader; no `--timeout` when there is none.
    #[test]
    fn command_lines() {
        let l = Launch {
            kernel: "/t/k.flat".into(),
            vcpus: 2,
            mem: 64 << 20,
            append: "a b's".into(),
            timeout_secs: None,
            initrd: None,
            cpu: None,
        };
        assert_eq!(
            command_line(Path::new("/bin/vmm"), &l),
            "/bin/vmm run --kernel /t/k.flat --vcpus 2 --mem 64M --json --append='a b'\\''s'"
        );
        let l = Launch { append: String::new(), timeout_secs: Some(5), initrd: Some("/e/env".into()), ..l };
        assert!(command_line(Path::new("vmm"), &l).ends_with("--mem 64M --timeout 5 --initrd /e/env --json"));
        let l = Launch { cpu: Some("qemu64,-x2apic,vendor=GenuineIntel".into()), ..l };
        assert!(command_line(Path::new("vmm"), &l)
            .ends_with("--initrd /e/env --cpu=qemu64,-x2apic,vendor=GenuineIntel --json"));
    }
}
