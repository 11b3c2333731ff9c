//! Scenario: `vmm kut` takes `run_tests.sh`'s options and environment
//! with their meaning (issue 21): `-a`, `-v`, `-l`, test names as
//! positional arguments (after `--` too) that do not bypass `nodefault`,
//! `-a` passing `ERRATA_FORCE=y` in the guest's environment,
//! `-g` running the `nodefault` tests of its group, `-j 0` refused, `-t`
//! printing TAP13 (one line per sub-result the guest printed, checked by
//! Perl's `TAP::Parser`), `timeout = 0` and the `TIMEOUT` and `ACCEL`
//! variables, `"""` multi-line values and `disabled_if`; the rest of
//! upstream's environment (`CHECK`, `MACHINE` with `machine =`, `QEMU`,
//! the errata environment from `errata.txt` and `ERRATA_*`), backquoted
//! commands, and `logs/` written as upstream writes it.
//!
//! Trees are built here in a temporary directory with tiny multiboot
//! kernels that print kvm-unit-tests' `PASS:` / `SKIP:` / `FAIL:` lines on
//! the serial port and end through the exit port. The `vmm run` children
//! run under the production seccomp filters (`vmm kut` never passes
//! `--no-seccomp`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use iced_x86::code_asm::*;
use vmm_suite::kvm::kut::KutOut;
use vmm_suite::kvm::{multiboot, temp_path, vmm_bin};
use vmm_suite::need_kvm;

/// The environment variables `vmm kut` reads, removed from its
/// environment unless a test gives them.
const READ: &[&str] = &["TIMEOUT", "ACCEL", "CHECK", "MACHINE", "QEMU", "ERRATATXT", "KVM_UNIT_TESTS_ENV"];

/// Runs `vmm kut DIR args...` in DIR (its `logs/` goes there) with the
/// environment `env` added (and [`READ`] and `ERRATA_*` removed unless
/// given).
fn kut(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> KutOut {
    let mut cmd = Command::new(vmm_bin());
    cmd.arg("kut").arg(dir).args(args).current_dir(dir);
    let errata = std::env::vars_os().map(|(k, _)| k).filter(|k| k.to_string_lossy().starts_with("ERRATA_"));
    for k in READ.iter().map(Into::into).chain(errata).collect::<Vec<std::ffi::OsString>>() {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.stdin(Stdio::null()).output().expect("run vmm kut");
    KutOut {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A kernel that prints `text` on the serial port, waits for 2^33 to
/// 3 * 2^32 TSC cycles if `wait` (more than a second on any host this
/// runs on), then ends with kvm-unit-tests' exit `code` (0 is PASS).
fn kernel(text: &str, wait: bool, code: u8) -> Vec<u8> {
    let body = multiboot::code32(multiboot::ELF32_ENTRY, |a| {
        a.mov(edx, 0x3f8u32)?;
        for b in text.bytes() {
            a.mov(al, u32::from(b))?;
            a.out(dx, al)?;
        }
        if wait {
            a.rdtsc()?;
            a.mov(esi, edx)?;
            a.add(esi, 2)?;
            let mut again = a.create_label();
            a.set_label(&mut again)?;
            a.rdtsc()?;
            a.cmp(edx, esi)?;
            a.jb(again)?;
        }
        a.mov(al, u32::from(code))?;
        a.out(0xf4, al)?;
        a.hlt()?;
        Ok(())
    });
    multiboot::elf32(&body)
}

/// A fresh tree: `unittests.cfg` with `cfg`, and `pass.flat`, a kernel
/// that passes at once.
fn tree(name: &str, cfg: &str) -> PathBuf {
    let dir = temp_path(name);
    std::fs::create_dir_all(&dir).expect("tree");
    std::fs::write(dir.join("unittests.cfg"), cfg).expect("unittests.cfg");
    std::fs::write(dir.join("pass.flat"), kernel("", false, 0)).expect("kernel");
    dir
}

const NODEFAULT: &str = "[plain]\nfile = pass.flat\ngroups = g\n\
                         [manual]\nfile = pass.flat\ngroups = g nodefault\n\
                         [other]\nfile = pass.flat\ngroups = h\n";

/// `-l` lists every test, one per line, and runs none; `-j 0` is refused
/// with exit status 2 as upstream's.
#[test]
fn list_and_jobs_zero() {
    let dir = tree("kut-conv-list", NODEFAULT);
    let r = kut(&dir, &["-l"], &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "plain\nmanual\nother\n");
    let r = kut(&dir, &["-j", "0"], &[]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    std::fs::remove_dir_all(&dir).ok();
}

/// Names are positional (after `--` too) and do not bypass `nodefault`;
/// `-a` runs `nodefault` tests; `-g` runs those of its group; `-v` prints
/// each command line.
#[test]
fn names_groups_all_and_verbose() {
    need_kvm!();
    let dir = tree("kut-conv-names", NODEFAULT);
    for args in [&["--json", "plain", "manual"][..], &["--json", "--", "plain", "manual"]] {
        let r = kut(&dir, args, &[]);
        assert_eq!(r.names(), ["plain", "manual"], "{args:?}");
        assert_eq!(r.verdict("plain").0, "PASS", "{}", r.stderr);
        assert_eq!(r.verdict("manual"), ("SKIP".into(), "test marked as manual run only".into()), "{args:?}");
    }
    let r = kut(&dir, &["--json", "-a", "manual"], &[]);
    assert_eq!(r.verdict("manual").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["--json", "-g", "g"], &[]);
    assert_eq!(r.names(), ["plain", "manual"]);
    assert_eq!(r.verdict("manual").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("manual").0, "SKIP");
    let r = kut(&dir, &["-v", "other"], &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let cmd = r.stdout.lines().find(|l| l.contains(" run --kernel ")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(cmd.contains("pass.flat") && cmd.contains("--vcpus 1"), "{cmd}");
    std::fs::remove_dir_all(&dir).ok();
}

/// What Perl's `TAP::Parser` makes of `tap`: (version, tests, passed,
/// failed, skipped, parse errors), or `None` if Perl or the module is
/// missing.
fn tap_parse(tap: &str) -> Option<(u32, u32, u32, u32, u32, String)> {
    let script = r#"use TAP::Parser; local $/; my $t = <STDIN>;
        my $p = TAP::Parser->new({ tap => $t }); while (my $r = $p->next) {}
        printf "%d %d %d %d %d|%s", $p->version, $p->tests_run, scalar($p->passed), scalar($p->failed),
            scalar($p->skipped), join("; ", $p->parse_errors);"#;
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(tap.as_bytes()).expect("write TAP");
    let o = child.wait_with_output().expect("perl");
    if !o.status.success() {
        eprintln!(
            "kut_conventions: SKIPPED the TAP check: perl's TAP::Parser is missing: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return None;
    }
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    let (nums, errors) = s.split_once('|').expect("output");
    let n: Vec<u32> = nums.split(' ').map(|x| x.parse().expect("number")).collect();
    Some((n[0], n[1], n[2], n[3], n[4], errors.to_string()))
}

/// `-t` prints TAP13 on stdout, one line per sub-result the guest printed
/// (a test that printed none, or was not run, is one line), which a TAP
/// consumer accepts.
#[test]
fn tap13_on_stdout() {
    need_kvm!();
    let dir = tree(
        "kut-conv-tap",
        "[multi]\nfile = multi.flat\n[good]\nfile = good.flat\n[silent]\nfile = pass.flat\n\
         [arm]\nfile = pass.flat\narch = arm64\n",
    );
    std::fs::write(dir.join("multi.flat"), kernel("PASS: one\nSKIP: two # why\nFAIL: three\n", false, 1)).unwrap();
    std::fs::write(dir.join("good.flat"), kernel("PASS: only\r\nSUMMARY: 1 tests\n", false, 0)).unwrap();
    let r = kut(&dir, &["-t"], &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "TAP version 13",
            "ok 1 - multi: one",
            "ok 2 - multi: two \\# why # skip",
            "not ok 3 - multi: three",
            "ok 4 - good: only",
            "ok 5 - silent",
            "ok 6 - arm # skip arm64 only",
            "1..6",
        ],
        "{}",
        r.stdout
    );
    if let Some((version, tests, passed, failed, skipped, errors)) = tap_parse(&r.stdout) {
        assert_eq!((version, tests, passed, failed, skipped), (13, 6, 5, 1, 2), "{errors}");
        assert!(errors.is_empty(), "{errors}");
    }
    // --tap FILE writes the same TAP.
    let file = dir.join("out.tap");
    let r = kut(&dir, &["--json", "--tap", file.to_str().unwrap()], &[]);
    assert_eq!(r.code, Some(1));
    let t = std::fs::read_to_string(&file).unwrap();
    assert!(
        t.starts_with("TAP version 13\n") && t.contains("not ok 3 - multi: three\n") && t.ends_with("1..6\n"),
        "{t}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `timeout = 0` is no timeout (it was 1 s); `TIMEOUT` overrides every
/// test's timeout (0: none); `ACCEL` other than `kvm` skips, naming it.
#[test]
fn timeouts_and_accel() {
    need_kvm!();
    let dir =
        tree("kut-conv-timeout", "[slow]\nfile = slow.flat\ntimeout = 0\n[short]\nfile = slow.flat\ntimeout = 1\n");
    std::fs::write(dir.join("slow.flat"), kernel("", true, 0)).unwrap();
    let r = kut(&dir, &["--json", "slow"], &[]);
    assert_eq!(r.verdict("slow"), ("PASS".into(), "exit status 1".into()), "{}", r.stderr);
    let r = kut(&dir, &["--json", "short"], &[("TIMEOUT", "0")]);
    assert_eq!(r.verdict("short").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["--json", "slow"], &[("TIMEOUT", "1s")]);
    assert_eq!(r.verdict("slow"), ("FAIL".into(), "timeout; duration=1s".into()), "{}", r.stderr);
    let r = kut(&dir, &["--json"], &[("TIMEOUT", "soon")]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stderr.contains("TIMEOUT"), "{}", r.stderr);
    let r = kut(&dir, &["--json"], &[("ACCEL", "tcg")]);
    for name in ["slow", "short"] {
        let (v, why) = r.verdict(name);
        assert_eq!(v, "SKIP", "{why}");
        assert!(why.contains("ACCEL=tcg"), "{why}");
    }
    let r = kut(&dir, &["--json", "slow"], &[("ACCEL", "kvm")]);
    assert_eq!(r.verdict("slow").0, "PASS", "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// `"""` multi-line values parse; `disabled_if` is evaluated where it is
/// what upstream's configurations write, and a construct `vmm kut` cannot
/// evaluate is a SKIP naming it, never a run.
#[test]
fn multi_line_values_and_disabled_if() {
    need_kvm!();
    let dir = tree(
        "kut-conv-cfg",
        "[multi]\nfile = pass.flat\nextra_params = \"\"\"-smp 2\n   -m 64\n   -append 'a b'\"\"\"\n\
         [after]\nfile = pass.flat\n\
         [off]\nfile = pass.flat\ndisabled_if = [[ \"$TARGET\" != qemu ]] || [[ \"$ACCEL\" == kvm ]]\n\
         [on]\nfile = pass.flat\ndisabled_if = [[ \"$TARGET\" != qemu ]]\n\
         [odd]\nfile = pass.flat\ndisabled_if = test -e /etc/passwd\n",
    );
    let r = kut(&dir, &["--json", "-v"], &[]);
    assert_eq!(r.code, Some(2), "-v and --json conflict: {}", r.stdout);
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.names(), ["multi", "after", "off", "on", "odd"], "{}", r.stderr);
    assert_eq!(r.verdict("multi").0, "PASS", "{}", r.stderr);
    assert_eq!(r.verdict("after").0, "PASS");
    let v = kut(&dir, &["-v", "multi"], &[]);
    let cmd = v.stdout.lines().find(|l| l.contains(" run --kernel ")).unwrap_or_else(|| panic!("{}", v.stdout));
    assert!(cmd.contains("--vcpus 2") && cmd.contains("--mem 64M") && cmd.contains("--append='a b'"), "{cmd}");
    let (v, why) = r.verdict("off");
    assert_eq!(v, "SKIP");
    assert!(why.starts_with("disabled because: [[ \"$TARGET\" != qemu ]]"), "{why}");
    assert_eq!(r.verdict("on").0, "PASS");
    let (v, why) = r.verdict("odd");
    assert_eq!(v, "SKIP");
    assert!(why.contains("cannot evaluate disabled_if") && why.contains("test -e"), "{why}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A kernel that prints its first multiboot module (the environment)
/// and then `CMDLINE:` and its command line on the serial port, and
/// passes: what a test reads from `logs/NAME.log`.
fn echo_kernel() -> Vec<u8> {
    let body = multiboot::code32(multiboot::ELF32_ENTRY, |a| {
        let mut no_module = a.create_label();
        let mut module = a.create_label();
        let mut cmdline = a.create_label();
        let mut no_cmdline = a.create_label();
        a.mov(edx, 0x3f8u32)?;
        a.test(dword_ptr(ebx), 8)?;
        a.jz(no_module)?;
        a.cmp(dword_ptr(ebx + 20), 1)?;
        a.jb(no_module)?;
        a.mov(esi, dword_ptr(ebx + 24))?;
        a.mov(edi, dword_ptr(esi + 4))?;
        a.mov(esi, dword_ptr(esi))?;
        a.set_label(&mut module)?;
        a.cmp(esi, edi)?;
        a.jae(no_module)?;
        a.mov(al, byte_ptr(esi))?;
        a.out(dx, al)?;
        a.inc(esi)?;
        a.jmp(module)?;
        a.set_label(&mut no_module)?;
        for b in "\nCMDLINE:".bytes() {
            a.mov(al, u32::from(b))?;
            a.out(dx, al)?;
        }
        a.test(dword_ptr(ebx), 4)?;
        a.jz(no_cmdline)?;
        a.mov(esi, dword_ptr(ebx + 16))?;
        a.set_label(&mut cmdline)?;
        a.mov(al, byte_ptr(esi))?;
        a.test(al, al)?;
        a.jz(no_cmdline)?;
        a.out(dx, al)?;
        a.inc(esi)?;
        a.jmp(cmdline)?;
        a.set_label(&mut no_cmdline)?;
        a.mov(al, 10u32)?;
        a.out(dx, al)?;
        a.mov(al, 0u32)?;
        a.out(0xf4, al)?;
        a.hlt()?;
        Ok(())
    });
    multiboot::elf32(&body)
}

/// What test `name` printed in `dir/logs/` (empty if it has no log).
fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

/// `-a` also runs the errata-guarded checks: upstream's `run_tests.sh -a`
/// exports `ERRATA_FORCE=y`, which the guest reads from its environment
/// (the first multiboot module).
#[test]
fn all_forces_errata() {
    need_kvm!();
    let dir = tree("kut-conv-errata", "[errata]\nfile = echo.flat\n");
    std::fs::write(dir.join("echo.flat"), echo_kernel()).unwrap();
    let r = kut(&dir, &["--json", "-a"], &[]);
    assert_eq!(r.verdict("errata").0, "PASS", "{}", r.stderr);
    assert!(log(&dir, "errata").lines().any(|l| l == "ERRATA_FORCE=y"), "{}", log(&dir, "errata"));
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("errata").0, "PASS", "{}", r.stderr);
    assert!(!log(&dir, "errata").contains("ERRATA_FORCE"), "{}", log(&dir, "errata"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: the errata environment was not passed (only `-a`'s
/// `ERRATA_FORCE=y`). Upstream gives every test the host kernel's version
/// and one `ERRATA_<commit>=y|n` per line of `errata.txt` (`y` when the
/// host kernel is at least the line's version), a user's `ERRATA_*`
/// deciding its own entry; `ERRATATXT` names another file, which must
/// exist, and a bad line is an error before anything runs.
#[test]
fn errata_environment() {
    need_kvm!();
    let dir = tree("kut-conv-errata-env", "[env]\nfile = echo.flat\n");
    std::fs::write(dir.join("echo.flat"), echo_kernel()).unwrap();
    std::fs::write(
        dir.join("errata.txt"),
        "# commit : version : what\nc0ffee01 : 3.0 : old fix\nc0ffee02:999.1:future\n",
    )
    .unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("env").0, "PASS", "{}", r.stderr);
    let env = log(&dir, "env");
    for line in [
        "ERRATA_c0ffee01=y",
        "ERRATA_c0ffee02=n",
        "QEMU_ACCEL=kvm",
        &format!("KERNEL_VERSION_STRING={}", release.trim()),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
    let r = kut(&dir, &["--json"], &[("ERRATA_c0ffee02", "y"), ("ERRATA_extra", "n")]);
    assert_eq!(r.verdict("env").0, "PASS", "{}", r.stderr);
    let env = log(&dir, "env");
    for line in ["ERRATA_c0ffee01=y", "ERRATA_c0ffee02=y", "ERRATA_extra=n"] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
    assert!(!env.contains("ERRATA_c0ffee02=n"), "{env}");
    let other = dir.join("other-errata.txt");
    std::fs::write(&other, "beef:1.0\n").unwrap();
    let r = kut(&dir, &["--json"], &[("ERRATATXT", other.to_str().unwrap())]);
    assert_eq!(r.verdict("env").0, "PASS", "{}", r.stderr);
    assert!(log(&dir, "env").contains("ERRATA_beef=y\n") && !log(&dir, "env").contains("c0ffee"));
    let r = kut(&dir, &["--json"], &[("ERRATATXT", "/nonexistent/errata.txt")]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    std::fs::write(dir.join("errata.txt"), "$(reboot):6.1\n").unwrap();
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("errata.txt line 1"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: `KVM_UNIT_TESTS_ENV` was not read. Upstream's `env_file`
/// adds the file's `NAME=VALUE` words after the generated variables
/// (which it cannot change), before `errata.txt`'s entries, and its
/// `ERRATA_*` ones decide their entries; a file that is not a regular
/// file is not read; a word that needs a shell is an error before
/// anything runs.
#[test]
fn kvm_unit_tests_env_file() {
    need_kvm!();
    let dir = tree("kut-conv-env-file", "[env]\nfile = echo.flat\n");
    std::fs::write(dir.join("echo.flat"), echo_kernel()).unwrap();
    std::fs::write(dir.join("errata.txt"), "c0ffee01:3.0\nc0ffee03:3.0\n").unwrap();
    let file = dir.join("user.env");
    std::fs::write(&file, "# mine\nFOO=bar BAZ=\"q\"\nQEMU_ACCEL=tcg\nERRATA_c0ffee01=n\nexport NOT=read\n").unwrap();
    let r = kut(&dir, &["--json"], &[("KVM_UNIT_TESTS_ENV", file.to_str().unwrap()), ("ERRATA_c0ffee01", "y")]);
    assert_eq!(r.verdict("env").0, "PASS", "{}", r.stderr);
    let env = log(&dir, "env");
    let lines: Vec<&str> = env.lines().take_while(|l| !l.starts_with("CMDLINE:")).collect();
    let at = |want: &str| lines.iter().position(|l| *l == want).unwrap_or_else(|| panic!("{want} missing:\n{env}"));
    assert!(at("QEMU_ACCEL=kvm") < at("FOO=bar"), "{env}");
    assert!(at("FOO=bar") < at("BAZ=q") && at("BAZ=q") < at("ERRATA_c0ffee01=n"), "{env}");
    assert!(at("ERRATA_c0ffee01=n") < at("ERRATA_c0ffee03=y"), "{env}");
    assert!(!env.contains("QEMU_ACCEL=tcg") && !env.contains("ERRATA_c0ffee01=y"), "{env}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("ERRATA_c0ffee01=")).count(), 1, "{env}");
    assert!(!env.contains("NOT="), "{env}");
    // Not a regular file: not read, as upstream's `[ -f ]`.
    let r = kut(&dir, &["--json"], &[("KVM_UNIT_TESTS_ENV", dir.to_str().unwrap())]);
    assert_eq!(r.verdict("env").0, "PASS", "{}", r.stderr);
    assert!(!log(&dir, "env").contains("FOO="), "{}", log(&dir, "env"));
    // What only a shell could expand stops the run, naming the line.
    std::fs::write(&file, "OK=1\nHOME_COPY=$HOME\n").unwrap();
    let r = kut(&dir, &["--json"], &[("KVM_UNIT_TESTS_ENV", file.to_str().unwrap())]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("KVM_UNIT_TESTS_ENV line 2"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: `CHECK` was not read. Set, it replaces every test's
/// `check =` conditions (upstream's `${CHECK:-$check}`); malformed, it is
/// a usage error.
#[test]
fn check_replaces_the_sections_rules() {
    need_kvm!();
    let dir =
        tree("kut-conv-check", "[guarded]\nfile = pass.flat\ncheck = /nonexistent/param=Y\n[free]\nfile = pass.flat\n");
    let y = dir.join("param");
    std::fs::write(&y, "Y\n").unwrap();
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("guarded"), ("SKIP".into(), "/nonexistent/param not equal to Y".into()));
    assert_eq!(r.verdict("free").0, "PASS");
    let holds = format!("{}=Y", y.display());
    let r = kut(&dir, &["--json"], &[("CHECK", &holds)]);
    assert_eq!(r.verdict("guarded").0, "PASS", "{}", r.stderr);
    let not = format!("{}=N", y.display());
    let r = kut(&dir, &["--json"], &[("CHECK", &not)]);
    for name in ["guarded", "free"] {
        assert_eq!(r.verdict(name), ("SKIP".into(), format!("{} not equal to N", y.display())));
    }
    let r = kut(&dir, &["--json"], &[("CHECK", "no-equals-sign")]);
    assert_eq!(r.code, Some(2), "{}", r.stdout);
    assert!(r.stderr.contains("CHECK"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: `machine =` was ignored and `MACHINE` not read: a test for
/// another machine than `MACHINE` is skipped ("q35 only") as upstream's
/// `run()` does; `QEMU` is accepted and `-v` says it is not used.
#[test]
fn machine_and_qemu() {
    need_kvm!();
    let dir = tree("kut-conv-machine", "[q35]\nfile = pass.flat\nmachine = q35\n[any]\nfile = pass.flat\n");
    let r = kut(&dir, &["--json"], &[("MACHINE", "pc")]);
    assert_eq!(r.verdict("q35"), ("SKIP".into(), "q35 only".into()));
    assert_eq!(r.verdict("any").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["--json"], &[("MACHINE", "q35")]);
    assert_eq!(r.verdict("q35").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("q35").0, "PASS", "{}", r.stderr);
    let r = kut(&dir, &["-v", "any"], &[("QEMU", "/opt/qemu/bin/qemu-system-x86_64")]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("QEMU=/opt/qemu/bin/qemu-system-x86_64 is not used"), "{}", r.stdout);
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: a backquoted command was passed literally. A fixed one
/// (`date +%s`) runs without a shell and its output takes its place, as
/// upstream's `eval` gives; any other skips the test, naming it, and runs
/// nothing.
#[test]
fn backquoted_commands() {
    need_kvm!();
    let marker = temp_path("kut-conv-backquote-ran");
    let dir = tree(
        "kut-conv-backquote",
        &format!(
            "[date]\nfile = echo.flat\ntest_args = \"10000000 `date +%s`\"\n             [old]\nfile = echo.flat\nextra_params = -append \"7 `date +%s`\"\n             [evil]\nfile = echo.flat\nextra_params = -append \"`touch {}`\"\n",
            marker.display()
        ),
    );
    std::fs::write(dir.join("echo.flat"), echo_kernel()).unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let r = kut(&dir, &["--json"], &[]);
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (name, first) in [("date", "10000000"), ("old", "7")] {
        assert_eq!(r.verdict(name).0, "PASS", "{}", r.stderr);
        let out = log(&dir, name);
        let cmdline = out.lines().find_map(|l| l.strip_prefix("CMDLINE:")).unwrap_or_else(|| panic!("{out}"));
        let args: Vec<&str> = cmdline.split(' ').skip(1).collect();
        assert_eq!(args.len(), 2, "{cmdline}");
        assert_eq!(args[0], first);
        let secs: u64 = args[1].parse().unwrap_or_else(|_| panic!("{cmdline}"));
        assert!((before..=after).contains(&secs), "{secs} not in {before}..={after}");
    }
    let (v, why) = r.verdict("evil");
    assert_eq!(v, "SKIP");
    assert_eq!(why, format!("backquoted command not supported: touch {}", marker.display()));
    assert!(!marker.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 21: logs were written only with `--logs DIR`. As upstream,
/// `logs/NAME.log` and `logs/SUMMARY` (first line `BUILD_HEAD=`) are
/// written in the working directory, the previous run's kept in
/// `logs.old`; `--logs DIR` writes there instead, leaving `logs` alone.
#[test]
fn logs_as_upstream() {
    need_kvm!();
    let dir = tree("kut-conv-logs", "[one]\nfile = echo.flat\n[two]\nfile = pass.flat\narch = arm64\n");
    std::fs::write(dir.join("echo.flat"), echo_kernel()).unwrap();
    std::fs::write(dir.join("build-head"), "0123abcd\n").unwrap();
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.verdict("one").0, "PASS", "{}", r.stderr);
    assert!(log(&dir, "one").contains("CMDLINE:"), "{}", log(&dir, "one"));
    let summary = std::fs::read_to_string(dir.join("logs/SUMMARY")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "BUILD_HEAD=0123abcd", "{summary}");
    assert!(lines[1].starts_with("PASS one") && lines[2] == "SKIP two (arm64 only)", "{summary}");
    assert!(lines[3].starts_with("SUMMARY: "), "{summary}");
    std::fs::write(dir.join("logs/marker"), "first run").unwrap();
    let r = kut(&dir, &["--json"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(dir.join("logs.old/marker")).unwrap(), "first run");
    assert!(!dir.join("logs/marker").exists() && dir.join("logs/one.log").exists());
    let elsewhere = dir.join("elsewhere");
    let r = kut(&dir, &["--json", "--logs", elsewhere.to_str().unwrap()], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(elsewhere.join("one.log").exists() && elsewhere.join("SUMMARY").exists());
    assert!(dir.join("logs/one.log").exists() && dir.join("logs.old/marker").exists());
    std::fs::remove_dir_all(&dir).ok();
}
