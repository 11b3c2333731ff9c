//! Scenario: `vmm ltest` over a directory of fake programs. The `linux`
//! guest kind is not needed: `VMM_LTEST_RUNNER` names a script run
//! instead of `vmm run --guest` (it gets the program's path, then the
//! `--vmm-arg` values). Each fake program is a file starting with the ELF
//! magic on a line of its own, then a shell script the runner runs: it
//! prints TAP or LTP output, exits with a status, sleeps past its timeout
//! or kills the runner with a signal. No KVM is needed.
//!
//! Checked from the outside: the per-program lines, the summary, the exit
//! status, the JSON and JUnit files, and the clear errors (exit 2) on bad
//! input.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use vmm_suite::kvm::{temp_path, vmm_bin};

/// The runner: runs the program's script (its lines after the first),
/// with the `--vmm-arg` values as its arguments.
const RUNNER: &str = "#!/bin/sh\nprog=\"$1\"; shift\nexec /bin/sh -c \"$(tail -n +2 \"$prog\")\" \"$prog\" \"$@\"\n";

/// The fake programs: name, script.
const PROGRAMS: &[(&str, &str)] = &[
    // Matches its host result.
    ("tap_pass", "echo 1..3; echo ok 1 a; echo ok 2 b; echo 'ok 3 # SKIP no swap'\necho '# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0'"),
    // Differs from Linux, as the expectations file says, with a reason.
    ("tap_differs", "echo ok 1 a; echo 'ok 2 # SKIP no pkeys'; echo 'ok 3 # SKIP no pkeys'"),
    // LTP, on stderr, with its summary.
    ("ltp_pass", "echo 'x.c:1: TINFO: hi' >&2; echo 'x.c:2: TPASS: fine' >&2\nprintf '\\nSummary:\\npassed   1\\nfailed   0\\nbroken   0\\nskipped  1\\nwarnings 0\\n' >&2"),
    // No totals: the lines are counted; the file expects the failure.
    ("counted", "echo ok 1; echo not ok 2; exit 1"),
    // The program killed by SIGSEGV, as `vmm run` reports it: 128 + 11.
    ("segv_guest", "echo ok 1 before; exit 139"),
    // Runs past its timeout.
    ("hang", "echo ok 1 started; sleep 20"),
    // The runner itself dies (a VMM crash): never what a program does.
    ("vmm_crash", "echo ok 1; kill -ABRT $$"),
    // Fails where a clean run is expected.
    ("unexpected", "echo 'ok 1 <a&b>'; echo 'not ok 2 \"quoted\"'; echo '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0'"),
    // Shows the --vmm-arg values it got.
    ("args_seen", "echo \"ok 1 args: $*\""),
];

const HOST: &str = "tap_pass rc=0 pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0 ok 3 # SKIP no swap\n\
                    tap_differs rc=0 pass:3 fail:0 xfail:0 xpass:0 skip:0 error:0\n\
                    ltp_pass rc=0  passed=1 failed=0 broken=0 skipped=1  [TPASS=1 TFAIL/TBROK=0]\n\
                    unexpected rc=0 pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0\n";

const EXPECT: &str = "# expectations of the fake suite\n\
                      [tap_differs]\npass = 1\nskip = 2\ndifferences = [\"2 tests skip: no pkeys here\"]\n\
                      [counted]\nrc = 1\nfail = 1\n\
                      [segv_guest]\nrc = 139\n";

fn write(path: &Path, text: &[u8], mode: u32) {
    std::fs::write(path, text).expect("write a test file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod a test file");
}

/// A directory of the fake programs and files that are not programs;
/// the runner; the host results and expectations files.
fn setup() -> (PathBuf, PathBuf) {
    let root = temp_path("ltest");
    let dir = root.join("suite");
    std::fs::create_dir_all(&dir).expect("create the suite directory");
    for (name, script) in PROGRAMS {
        write(&dir.join(name), format!("\x7fELF\n{script}\n").as_bytes(), 0o755);
    }
    write(&dir.join("notes.txt"), b"\x7fELF\nexit 1\n", 0o755);
    write(&dir.join("not_elf"), b"#!/bin/sh\nexit 1\n", 0o755);
    write(&dir.join("not_executable"), b"\x7fELF\nexit 1\n", 0o644);
    write(&root.join("runner"), RUNNER.as_bytes(), 0o755);
    write(&root.join("host.txt"), HOST.as_bytes(), 0o644);
    write(&root.join("expect.toml"), EXPECT.as_bytes(), 0o644);
    (root, dir)
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    secs: f64,
}

fn ltest(root: &Path, args: &[&str]) -> Out {
    let vmm = vmm_bin();
    let start = Instant::now();
    let out = Command::new(vmm)
        .arg("ltest")
        .args(args)
        .current_dir(root)
        .env("VMM_LTEST_RUNNER", root.join("runner"))
        .stdin(Stdio::null())
        .output()
        .expect("run vmm ltest");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        secs: start.elapsed().as_secs_f64(),
    }
}

#[test]
fn a_suite_of_fake_programs() {
    let (root, _) = setup();
    let o = ltest(
        &root,
        &[
            "suite",
            "--host-results",
            "host.txt",
            "--expect",
            "expect.toml",
            "--timeout",
            "1",
            "-j",
            "3",
            "--vmm-arg",
            "--mem=64M",
            "--json",
            "out.json",
            "--junit",
            "out.xml",
        ],
    );
    let all = format!("{}\n{}", o.stdout, o.stderr);
    assert_eq!(o.code, 1, "{all}");
    // One line per program, as it finishes, then the summary.
    let verdict = |name: &str| {
        let line =
            o.stdout.lines().find(|l| l.split(' ').nth(1) == Some(name)).unwrap_or_else(|| panic!("{name}: {all}"));
        line.split(' ').next().unwrap().to_string()
    };
    for name in ["tap_pass", "tap_differs", "ltp_pass", "counted", "segv_guest", "args_seen"] {
        assert_eq!(verdict(name), "PASS", "{name}: {all}");
    }
    for name in ["hang", "vmm_crash", "unexpected"] {
        assert_eq!(verdict(name), "FAIL", "{name}: {all}");
    }
    assert_eq!(o.stdout.lines().count(), PROGRAMS.len() + 1, "{all}");
    assert!(o.stdout.contains("timed out after 1 s"), "{all}");
    assert!(o.stdout.contains("vmm killed by SIGABRT"), "{all}");
    assert!(o.stdout.contains("fail=1, expected 0"), "{all}");
    assert!(
        o.stdout.lines().last().unwrap().starts_with("SUMMARY: 9 programs, 6 as expected, 3 not (1 timed out)"),
        "{all}"
    );
    // The hung program's sleep outlives its runner; the suite does not wait for it.
    assert!(o.secs < 15.0, "{} s: {all}", o.secs);

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("out.json")).unwrap()).unwrap();
    let programs = v["programs"].as_array().unwrap();
    let mut names: Vec<&str> = PROGRAMS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    assert_eq!(programs.iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>(), names);
    let by = |n: &str| programs.iter().find(|p| p["name"] == n).unwrap();
    assert_eq!(by("tap_differs")["expected"]["origin"], "file_over_host");
    assert_eq!(by("tap_differs")["expected"]["differences"][0], "2 tests skip: no pkeys here");
    assert_eq!((by("ltp_pass")["format"].as_str(), by("ltp_pass")["counts"]["skip"].as_u64()), (Some("ltp"), Some(1)));
    assert_eq!(
        (by("counted")["source"].as_str(), by("counted")["counts"]["fail"].as_u64()),
        (Some("counted"), Some(1))
    );
    assert_eq!(by("hang")["exit"], serde_json::json!({"kind": "timeout", "value": 1}));
    assert_eq!(by("vmm_crash")["exit"]["kind"], "killed");
    assert_eq!(by("args_seen")["expected"]["origin"], "default");
    assert_eq!(v["totals"]["failed"], 3);

    let x = std::fs::read_to_string(root.join("out.xml")).unwrap();
    assert!(x.starts_with("<?xml") && x.trim_end().ends_with("</testsuite>"), "{x}");
    assert!(x.contains("tests=\"9\" failures=\"3\""), "{x}");
    assert_eq!(x.matches("<testcase ").count(), 9);
    assert_eq!(x.matches("</testcase>").count(), 9);
    assert_eq!(x.matches("<failure ").count(), 3);
    assert!(x.contains("ok 1 &lt;a&amp;b&gt;") && x.contains("not ok 2 &quot;quoted&quot;"), "{x}");
    assert!(x.contains("ok 1 args: --mem=64M"), "{x}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn only_matching_programs_exit_zero() {
    let (root, dir) = setup();
    let files: Vec<String> =
        ["tap_pass", "ltp_pass", "segv_guest"].iter().map(|n| dir.join(n).display().to_string()).collect();
    let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
    args.extend(["--host-results", "host.txt", "--expect", "expect.toml"]);
    let o = ltest(&root, &args);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("SUMMARY: 3 programs, 3 as expected, 0 not"), "{}", o.stdout);
    // The expectations list programs not run: a note, not a failure.
    assert!(o.stderr.contains("note: the expectations list counted"), "{}", o.stderr);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_input_is_a_clear_error() {
    let (root, _) = setup();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    write(&root.join("bad.toml"), b"[tap_pass]\npass = \"two\"\n", 0o644);
    write(&root.join("unexplained.toml"), b"[tap_pass]\npass = 1\n", 0o644);
    write(&root.join("bad-host.txt"), b"tap_pass pass:2\n", 0o644);
    write(&root.join("binary.toml"), b"\xff\xfe\x00garbage", 0o644);
    let cases: &[(&[&str], &str)] = &[
        (&["missing-dir"], "cannot read missing-dir"),
        (&["empty"], "no programs in empty"),
        (&["suite", "--expect", "bad.toml"], "bad.toml: TOML parse error"),
        (&["suite", "--expect", "binary.toml"], "binary.toml: not UTF-8 text"),
        (&["suite", "--expect", "missing.toml"], "missing.toml"),
        (&["suite", "--expect", "unexplained.toml", "--host-results", "host.txt"], "gives no `differences`"),
        (&["suite", "--host-results", "bad-host.txt"], "bad-host.txt: line 1: tap_pass: no rc=N"),
        (&["suite", "-j", "0"], "0 jobs would run nothing"),
        (&["suite", "--timeout", "99999999999"], "--timeout"),
    ];
    for (args, message) in cases {
        let o = ltest(&root, args);
        assert_eq!(o.code, 2, "{args:?}: {}\n{}", o.stdout, o.stderr);
        assert!(o.stderr.contains(message), "{args:?}: {}", o.stderr);
        assert!(!o.stderr.contains("panicked"), "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
    }
    std::fs::remove_dir_all(&root).unwrap();
}
