//! Scenario: the `vmm` command runs under seccomp by default. A system
//! call outside a thread's allow-list ends the process with status 159
//! (128 + `SIGSYS`) and a message on stderr from the `SIGSYS` handler that
//! names the thread kind and the call, whichever thread makes it (the
//! test hook `--seccomp-selftest` makes a vCPU thread, the event loop or
//! an output writer call `socket()` once its filter is on);
//! `--no-seccomp` turns the filters off; and guests that use every part
//! of the VMM still pass with the filters on.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use vmm_suite::kvm::{run_vmm, vmm_bin};
use vmm_suite::need_kvm;

/// Runs `vmm` and returns (exit code, signal, stderr).
fn run_raw(args: &[&str]) -> (Option<i32>, Option<i32>, String) {
    let out = Command::new(vmm_bin()).args(args).stdin(Stdio::null()).output().expect("run vmm");
    (out.status.code(), out.status.signal(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The exit status of a run a filter stopped (128 + `SIGSYS`).
const FILTER_STATUS: i32 = 159;

/// Checks that the `SIGSYS` handler ended the run: status 159, no signal,
/// and one message naming `thread`, `socket` with its number, and the hint.
fn assert_handler_report(code: Option<i32>, signal: Option<i32>, err: &str, thread: &str) {
    assert_eq!((code, signal), (Some(FILTER_STATUS), None), "{err}");
    let line = err.lines().find(|l| l.starts_with("vmm: seccomp:")).unwrap_or_else(|| panic!("no report:\n{err}"));
    assert!(line.contains(&format!("the {thread} thread")), "{line}");
    assert!(line.contains(&format!("socket ({})", libc::SYS_socket)), "{line}");
    assert!(line.contains("a row missing from the allow-list") && line.contains("--no-seccomp"), "{line}");
    assert!(!err.contains("socket() returned"), "{err}");
}

#[test]
fn forbidden_syscall_on_a_vcpu_thread_is_reported_and_ends_the_process() {
    need_kvm!();
    let (code, signal, err) = run_raw(&["run", "--seccomp-selftest", "vcpu"]);
    assert!(err.contains("the Vcpu thread calls socket()"), "{err}");
    assert_handler_report(code, signal, &err, "vCPU");
}

#[test]
fn forbidden_syscall_on_the_event_loop_is_reported_and_ends_the_process() {
    need_kvm!();
    let (code, signal, err) = run_raw(&["run", "--vcpus", "2", "--seccomp-selftest", "event-loop"]);
    assert!(err.contains("the EventLoop thread calls socket()"), "{err}");
    assert_handler_report(code, signal, &err, "event loop");
}

#[test]
fn no_seccomp_lets_the_same_call_through() {
    need_kvm!();
    for kind in ["vcpu", "event-loop"] {
        let (code, signal, err) = run_raw(&["run", "--no-seccomp", "--seccomp-selftest", kind]);
        assert_eq!((code, signal), (Some(0), None), "{kind}: {err}");
        assert!(err.contains("socket() returned"), "{kind}: {err}");
    }
}

#[test]
fn guests_pass_under_the_filters() {
    need_kvm!();
    // Two vCPUs (shootdown NMIs, kicks, the zap slot), the watchdog, the
    // invariant check, JSON on stdout and the console on stderr.
    let r = run_vmm(&["run", "--vcpus", "2", "--timeout", "60", "--check-invariants", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["passed"], r.json()["total"]);
    // The watchdog firing and kicking the vCPUs out of a spinning guest.
    let elf = vmm_suite::kvm::write_guest("seccomp-spin", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.pause()?;
        a.jmp(l)
    });
    let r = run_vmm(&["run", "--vcpus", "2", "--timeout", "1", "--guest", elf.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&elf);
    assert_eq!(r.code, 124, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn forbidden_syscall_on_a_writer_thread_is_reported_and_ends_the_process() {
    need_kvm!();
    // The built-in guest writes to its console, so the console's writer
    // thread wakes, installs its filter and makes the forbidden call.
    let (code, signal, err) = run_raw(&["run", "--seccomp-selftest", "writer"]);
    assert!(err.contains("the Writer thread calls socket()"), "{err}");
    assert_handler_report(code, signal, &err, "output writer");
    let (code, signal, err) = run_raw(&["run", "--no-seccomp", "--seccomp-selftest", "writer"]);
    assert_eq!((code, signal), (Some(0), None), "{err}");
}

#[test]
fn a_stopped_and_continued_vmm_goes_on_under_the_filters() {
    // SIGSTOP then SIGCONT (a shell's Ctrl-Z and `fg`): a thread that was
    // in a timed wait resumes it through `restart_syscall`, which the
    // filters must allow (it ended the run with SIGSYS, status 159).
    need_kvm!();
    let Some(p) = vmm_suite::kvm::linux::static_c_program("sleeper") else { return };
    let child = Command::new(vmm_bin())
        .args(["run", "--timeout", "60", "--guest", p.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmm starts");
    let pid = child.id() as i32;
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: signals to our own child, which is not reaped before
        // `wait_with_output` below.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
        }
    }
    let out = child.wait_with_output().expect("vmm ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (Some(0), None),
        "stdout:\n{}\nstderr:\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "slept\n", "{err}");
}
