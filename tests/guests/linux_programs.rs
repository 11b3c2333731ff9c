//! Scenario: unmodified static Linux programs under `vmm run` (issue
//! 18): a C program built here with `gcc -static` prints the same lines
//! under the VMM as on the host and ends with the same status (exit,
//! abort, a bad pointer); Linux's own `hello` and `map_fixed_noreplace`
//! from `../shared/testguests/linux-mm` print what they print on Linux;
//! a dynamically linked program is refused with the reason. Production
//! seccomp filters throughout.

use std::path::{Path, PathBuf};
use std::process::Command;

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::{run_vmm, temp_path, VmmRun};
use vmm_suite::need_kvm;

/// The probe program (`tests/guests/linux/probe.c`).
fn probe() -> Option<PathBuf> {
    static_c_program("probe")
}

fn linux_mm(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testguests/linux-mm/bin").join(name);
    if !p.exists() {
        eprintln!("SKIP: {} is absent", p.display());
        return None;
    }
    Some(p)
}

fn host(prog: &Path, args: &[&str]) -> (String, i32) {
    run_on_host(prog, args)
}

fn guest(prog: &Path, args: &[&str]) -> VmmRun {
    let mut argv = vec!["run", "--timeout", "60", "--guest", prog.to_str().expect("utf-8")];
    if !args.is_empty() {
        argv.push("--");
        argv.extend_from_slice(args);
    }
    run_vmm(&argv)
}

#[test]
fn a_static_c_program_prints_what_it_prints_on_the_host() {
    need_kvm!();
    let Some(p) = probe() else { return };
    let (want, code) = host(&p, &["one", "two words"]);
    assert_eq!(code, 0, "on the host:\n{want}");
    let r = guest(&p, &["one", "two words"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    assert!(!r.stdout.contains("FAILED"), "{}", r.stdout);
    // stderr is the program's fd 2 (and the report, after it).
    assert!(r.stderr.contains("to stderr\n"), "{}", r.stderr);
}

#[test]
fn exit_statuses_are_a_shells() {
    need_kvm!();
    let Some(p) = probe() else { return };
    for (how, status) in [("exit", 42), ("abort", 134), ("segv", 139)] {
        let (_, code) = host(&p, &[how]);
        assert_eq!(code, status, "{how} on the host");
        let r = guest(&p, &[how]);
        assert_eq!(r.code, status, "{how}:\n{}\n{}", r.stdout, r.stderr);
    }
}

#[test]
fn environment_comes_from_env_options() {
    need_kvm!();
    let Some(p) = probe() else { return };
    let r = run_vmm(&[
        "run",
        "--timeout",
        "60",
        "--env",
        "PROBE_A=1",
        "--env",
        "PROBE_B=x=y",
        "--guest",
        p.to_str().expect("utf-8"),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("env PROBE_A=1\nenv PROBE_B=x=y\n"), "{}", r.stdout);
    let r = run_vmm(&["run", "--env", "=bad", "--guest", p.to_str().expect("utf-8")]);
    // A command-line error (clap's status).
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("NAME=VALUE"), "{}", r.stderr);
}

#[test]
fn linux_hello_programs_match_the_host() {
    need_kvm!();
    for name in ["hello-musl-static", "hello-glibc-static"] {
        let Some(p) = linux_mm(name) else { return };
        let (want, _) = host(&p, &[]);
        let r = guest(&p, &[]);
        assert_eq!((r.code, r.stdout.as_str()), (0, want.as_str()), "{name}:\n{}", r.stderr);
    }
}

#[test]
fn a_dynamically_linked_program_is_refused_with_the_reason() {
    need_kvm!();
    // Debian's musl-gcc `-static-pie` output still names the dynamic
    // loader and needs libc.so: it is not a static program.
    let Some(p) = linux_mm("hello-musl-static-pie") else { return };
    let r = guest(&p, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("dynamically linked (PT_INTERP /lib/ld-musl-x86_64.so.1)"), "{}", r.stderr);
    assert!(r.stderr.contains("-static"), "{}", r.stderr);
}

#[test]
fn vcpus_past_the_limit_are_refused_with_the_range() {
    need_kvm!();
    let Some(p) = linux_mm("hello-musl-static") else { return };
    let r = run_vmm(&["run", "--vcpus", "9", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "the program never ran: {}", r.stdout);
    assert!(r.stderr.contains("--vcpus 9: a Linux program runs on 1 to 8 vCPUs"), "{}", r.stderr);
    // Within the range, the same program runs and prints what it prints.
    let one = run_vmm(&["run", "--guest", p.to_str().expect("utf-8")]);
    let four = run_vmm(&["run", "--vcpus", "4", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!((four.code, &four.stdout), (one.code, &one.stdout), "{}", four.stderr);
    assert!(!four.stdout.is_empty());
}

#[test]
fn map_fixed_noreplace_passes_as_on_linux() {
    need_kvm!();
    let Some(p) = linux_mm("map_fixed_noreplace") else { return };
    let r = guest(&p, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("# Totals: pass:9 fail:0 xfail:0 xpass:0 skip:0 error:0"), "{}", r.stdout);
}

/// Debian's static busybox (`busybox-static`, which `.ci/run` installs).
fn busybox() -> Option<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    let ok = std::fs::read(&p).is_ok_and(|b| b.len() > 64 && b.starts_with(b"\x7fELF") && b[16] == 2);
    if !ok {
        eprintln!("SKIP: no static /bin/busybox (apt-get install busybox-static)");
        return None;
    }
    Some(p)
}

/// A 17 MB text file, the same on every run (a simple generator, no
/// host randomness).
fn big_text() -> PathBuf {
    let p = temp_path("big.txt");
    let mut s = String::with_capacity(17 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while s.len() < 17_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{:016x} {}\n", x, x % 1000));
    }
    std::fs::write(&p, s).expect("write");
    p
}

#[test]
fn busybox_sort_sha256sum_and_wc_of_17_mb_match_the_host() {
    need_kvm!();
    let Some(bb) = busybox() else { return };
    let f = big_text();
    let fs = f.to_str().expect("utf-8");
    let file = format!("{fs}={fs}");
    for args in [vec!["sort", fs], vec!["sha256sum", fs], vec!["wc", fs], vec!["sort", "-r", "-k", "2", fs]] {
        let host = Command::new(&bb).args(&args).output().expect("busybox on the host");
        let mut argv = vec!["run", "--timeout", "120", "--file", &file, "--guest", "/bin/busybox", "--"];
        argv.extend(args.iter().copied());
        let r = run_vmm(&argv);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stdout.as_bytes() == host.stdout.as_slice(), "{args:?}: output differs from the host's");
    }
    let _ = std::fs::remove_file(&f);
}

#[test]
fn busybox_in_a_pipeline_reads_stdin_and_writes_binary_stdout() {
    need_kvm!();
    if busybox().is_none() {
        return;
    }
    use std::io::Write as _;
    use std::process::Stdio;
    let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {}\n", i * 7919 % 100_003).into_bytes()).collect();
    // gzip -c in one VM, gunzip -c in another: stdin in, binary stdout out.
    let spawn = |args: &[&str]| {
        let mut argv = vec!["run", "--timeout", "120", "--guest", "/bin/busybox", "--"];
        argv.extend_from_slice(args);
        Command::new(vmm_suite::kvm::vmm_bin())
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vmm")
    };
    let mut gz = spawn(&["gzip", "-c"]);
    let mut input = gz.stdin.take().expect("stdin");
    let feed = std::thread::spawn(move || input.write_all(&text).map(|()| text));
    let out = gz.wait_with_output().expect("gzip");
    let text = feed.join().expect("feeder").expect("write stdin");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(&[0x1f, 0x8b]), "gzip output");
    let mut gunzip = spawn(&["gunzip", "-c"]);
    let mut input = gunzip.stdin.take().expect("stdin");
    let compressed = out.stdout;
    let feed = std::thread::spawn(move || input.write_all(&compressed));
    let back = gunzip.wait_with_output().expect("gunzip");
    feed.join().expect("feeder").expect("write stdin");
    assert_eq!(back.status.code(), Some(0), "{}", String::from_utf8_lossy(&back.stderr));
    assert!(back.stdout == text, "gunzip -c | gzip -c did not give the input back");
}

#[test]
fn host_files_are_reachable_only_by_name_and_read_only_unless_rw() {
    need_kvm!();
    if busybox().is_none() {
        return;
    }
    let f = temp_path("named.txt");
    std::fs::write(&f, "host text\n").expect("write");
    let fs = f.to_str().expect("utf-8");
    let ro = format!("/data/x={fs}");
    let r = run_vmm(&["run", "--file", &ro, "--guest", "/bin/busybox", "--", "cat", "/data/x"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "host text\n"), "{}", r.stderr);
    // The host path itself is not in the guest's tree.
    let r = run_vmm(&["run", "--file", &ro, "--guest", "/bin/busybox", "--", "cat", fs]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // Read-only: the program cannot write it; with :rw it can.
    let r = run_vmm(&["run", "--file", &ro, "--guest", "/bin/busybox", "--", "sh", "-c", "echo new > /data/x"]);
    assert_ne!(r.code, 0);
    assert_eq!(std::fs::read_to_string(&f).expect("read"), "host text\n");
    let rw = format!("/data/x={fs}:rw");
    let r = run_vmm(&["run", "--file", &rw, "--guest", "/bin/busybox", "--", "sh", "-c", "echo new > /data/x"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&f).expect("read"), "new\n");
    // Bad values are refused before the run.
    for bad in ["relative=/etc/hostname", "/x=", "/x=/no/such/file"] {
        let r = run_vmm(&["run", "--file", bad, "--guest", "/bin/busybox", "--", "true"]);
        assert!(r.code == 1 || r.code == 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("--file"), "{bad}: {}", r.stderr);
    }
    let _ = std::fs::remove_file(&f);
}

#[test]
fn report_file_takes_the_report_off_stderr() {
    need_kvm!();
    let Some(p) = linux_mm("hello-musl-static").or_else(probe) else { return };
    let rep = temp_path("report.txt");
    let r = run_vmm(&["run", "--report", rep.to_str().expect("utf-8"), "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("== vmm report"), "{}", r.stderr);
    assert!(!r.stdout.contains("== vmm report"), "{}", r.stdout);
    let text = std::fs::read_to_string(&rep).expect("report file");
    assert!(text.contains("== vmm report") && text.contains("(exit code 0)"), "{text}");
    // A report file that cannot be created is refused before the run.
    let r = run_vmm(&["run", "--report", "/nonexistent-dir/r.txt", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot create the report file"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing ran: {}", r.stdout);
    let _ = std::fs::remove_file(&rep);
}
