//! Scenario: the VMM's output is closed or full. A closed pipe
//! (`vmm run | head -c0`) ends the run quietly with status 141, as a
//! writer killed by `SIGPIPE` would; a full device (`>/dev/full`) is a
//! one-line error and status 1. Never a panic (exit 101), with or without
//! `--json`.

use std::process::{Command, Stdio};

use vmm_suite::kvm::vmm_bin;
use vmm_suite::need_kvm;

/// Runs `vmm run ARGS` with stdout going to `stdout`; returns (code, stderr).
fn run(args: &[&str], stdout: Stdio) -> (Option<i32>, String) {
    let out = Command::new(vmm_bin())
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run vmm");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

fn dev_full() -> Stdio {
    Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full"))
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    need_kvm!();
    for args in [&[][..], &["--json"][..]] {
        let (code, stderr) = run(args, closed_pipe());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        // Quiet: nothing from the VMM (with --json the guest's console
        // output is on stderr, and that is all there is).
        assert!(!stderr.contains("vmm") && !stderr.contains("[WARN"), "{args:?}: not quiet: {stderr}");
        if args.is_empty() {
            assert!(stderr.is_empty(), "{args:?}: not quiet: {stderr}");
        }
    }
}

#[test]
fn a_full_stdout_is_a_clean_error() {
    need_kvm!();
    for args in [&[][..], &["--json"][..]] {
        let (code, stderr) = run(args, dev_full());
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{args:?}: {stderr}");
        // A line or two from the VMM, not one per failed write.
        let ours = stderr.lines().filter(|l| l.starts_with("vmm") || l.starts_with('[')).count();
        assert!((1..=2).contains(&ours), "{args:?}: {stderr}");
    }
}

#[test]
fn errors_on_stdout_never_panic_without_kvm_either() {
    // A run refused before any guest runs writes only to stderr; help
    // text goes to stdout.
    let out =
        Command::new(vmm_bin()).args(["--help"]).stdout(dev_full()).stderr(Stdio::piped()).output().expect("run vmm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
