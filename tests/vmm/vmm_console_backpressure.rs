//! Scenario: a guest that writes to its console without end, into an
//! output nobody reads (`vmm run --timeout 2 | sleep 3600`). The guest is
//! throttled to what the output takes (a bounded console buffer), the
//! watchdog still stops it on time, and the VMM gives up on the unread
//! output shortly after the run ends instead of blocking forever.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, Arg};
use vmm::guest::kinds::abi_elf::example::EXAMPLE_CODE_VA;
use vmm::hosted::stub::abi::nr;
use vmm_suite::kvm::{vmm_bin, write_guest};
use vmm_suite::need_kvm;

/// The watchdog of every run here, and how long after it the process must
/// be gone.
const TIMEOUT: u64 = 2;
const SLACK: Duration = Duration::from_secs(8);

/// A guest printing through the serial port forever.
fn serial_spewer() -> std::path::PathBuf {
    write_guest("spew-serial", |a| {
        let mut l = a.create_label();
        a.mov(edx, 0x3f8u32)?;
        a.mov(al, b'x' as u32)?;
        a.set_label(&mut l)?;
        a.out(dx, al)?;
        a.jmp(l)
    })
}

/// A guest calling `write(1, code, 4096)` forever.
fn hypercall_spewer() -> std::path::PathBuf {
    write_guest("spew-write", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        hcall(a, nr::WRITE, &[Arg::Imm(1), Arg::Imm(EXAMPLE_CODE_VA), Arg::Imm(4096)])?;
        a.jmp(l)
    })
}

/// Waits for `child` at most `limit`; kills it (and fails) if it is still
/// running.
fn must_end(mut child: Child, limit: Duration, what: &str) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            eprintln!("{what}: ended after {:.2?} with {status}", start.elapsed());
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running {limit:?} after it started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn(guest: &std::path::Path, json: bool, stdout: Stdio, stderr: Stdio) -> Child {
    let t = TIMEOUT.to_string();
    let mut args = vec!["run", "--timeout", &t, "--guest", guest.to_str().expect("utf-8")];
    if json {
        args.push("--json");
    }
    Command::new(vmm_bin()).args(&args).stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().expect("spawn")
}

/// Runs `guest` with stdout into a pipe nobody reads.
fn unread_stdout(name: &str, guest: &std::path::Path) {
    // A pipe whose read end we hold and never read.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let child = spawn(guest, false, Stdio::from(writer), Stdio::null());
    let code = must_end(child, Duration::from_secs(TIMEOUT) + SLACK, name);
    let _ = std::fs::remove_file(guest);
    drop(reader);
    assert_eq!(code, 124, "{name}");
}

#[test]
fn unread_stdout_cannot_stop_the_watchdog_hypercall() {
    need_kvm!();
    unread_stdout("write", &hypercall_spewer());
}

#[test]
fn unread_stdout_cannot_stop_the_watchdog_serial() {
    need_kvm!();
    unread_stdout("serial", &serial_spewer());
}

#[test]
fn unread_stderr_with_json_cannot_stop_the_watchdog() {
    need_kvm!();
    // With --json the console goes to stderr, where the log goes too.
    let guest = hypercall_spewer();
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut child = spawn(&guest, true, Stdio::piped(), Stdio::from(writer));
    let mut stdout = child.stdout.take().expect("stdout");
    let collect = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let code = must_end(child, Duration::from_secs(TIMEOUT) + SLACK, "json");
    let _ = std::fs::remove_file(&guest);
    drop(reader);
    let report = collect.join().expect("stdout");
    assert_eq!(code, 124, "{report}");
    let v: serde_json::Value = serde_json::from_str(&report).expect("JSON report");
    assert_eq!(v["outcome"]["kind"], "timeout");
}

#[test]
fn a_slow_reader_gets_every_byte() {
    need_kvm!();
    // Backpressure, not loss: a guest printing more than the pipe and the
    // console buffer's hard limit together, to a reader that starts late,
    // still delivers all of it (without the vCPU's throttling the excess
    // would be dropped).
    const WRITES: u32 = 1400;
    let guest = write_guest("count", |a| {
        let mut l = a.create_label();
        a.mov(r12d, WRITES)?;
        a.set_label(&mut l)?;
        hcall(a, nr::WRITE, &[Arg::Imm(1), Arg::Imm(EXAMPLE_CODE_VA), Arg::Imm(4096)])?;
        a.dec(r12d)?;
        a.jnz(l)?;
        a.xor(eax, eax)?;
        a.mov(edx, 0xf4u32)?;
        a.out(dx, eax)
    });
    let mut child = spawn(&guest, false, Stdio::piped(), Stdio::piped());
    let mut stdout = child.stdout.take().expect("stdout");
    // Let the pipe and the console buffer fill before reading.
    std::thread::sleep(Duration::from_millis(1500));
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).expect("read");
    let code = must_end(child, Duration::from_secs(20), "count");
    let _ = std::fs::remove_file(&guest);
    let console = WRITES as usize * 4096;
    assert!(console > vmm::run::output::HARD_LIMIT + (64 << 10));
    assert!(out.len() > console, "{} bytes, expected {console} and a report", out.len());
    let report = String::from_utf8_lossy(&out[console..]);
    assert!(
        report.starts_with("== vmm report"),
        "console output lost or duplicated: {}",
        &report[..report.len().min(200)]
    );
    assert_eq!(code, 1, "{report}");
}
