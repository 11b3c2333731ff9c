//! Scenario: the VMM reads only regular files of bounded size as inputs
//! (`--config`, `--guest`). A device (`/dev/zero`, `/dev/urandom`), a FIFO
//! with no writer, a directory, or a file over the cap is refused at once
//! with a clear message: no unbounded growth, no hang. None of this needs
//! KVM (inputs are read before the VM is created).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmm_suite::kvm::{temp_path, vmm_bin};

/// Runs `vmm` with `args`, kills it after `limit`; returns (exit code,
/// stderr, elapsed) — the code is `None` if it had to be killed.
fn run_bounded(args: &[&str], limit: Duration) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(vmm_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("stderr");
            return (status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("stderr");
            return (None, String::from_utf8_lossy(&out.stderr).into_owned(), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn refused(args: &[&str], want: &str) {
    let (code, stderr, took) = run_bounded(args, Duration::from_secs(5));
    assert_eq!(code, Some(1), "{args:?} not refused in time ({took:?}): {stderr}");
    assert!(stderr.contains(want), "{args:?}: expected {want:?} in: {stderr}");
    assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
}

#[test]
fn devices_are_refused_as_inputs() {
    refused(&["run", "--guest", "/dev/zero"], "not a regular file");
    refused(&["run", "--config", "/dev/urandom"], "not a regular file");
    refused(&["run", "--guest", "/"], "not a regular file");
}

#[test]
fn a_fifo_without_a_writer_does_not_hang() {
    let fifo = temp_path("input.fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let p = fifo.to_str().expect("utf-8");
    refused(&["run", "--guest", p, "--timeout", "1"], "FIFO");
    refused(&["run", "--config", p], "FIFO");
    let _ = std::fs::remove_file(&fifo);
}

#[test]
fn oversized_files_are_refused_before_reading() {
    // Sparse files: the size is what counts, not what is on disk.
    let big_cfg = temp_path("big.toml");
    std::fs::File::create(&big_cfg).and_then(|f| f.set_len(2 << 20)).expect("sparse config");
    refused(&["run", "--config", big_cfg.to_str().expect("utf-8")], "larger than");
    let _ = std::fs::remove_file(&big_cfg);
    let big_elf = temp_path("big.elf");
    std::fs::File::create(&big_elf).and_then(|f| f.set_len(1 << 40)).expect("sparse ELF");
    refused(&["run", "--guest", big_elf.to_str().expect("utf-8")], "larger than");
    let _ = std::fs::remove_file(&big_elf);
}
