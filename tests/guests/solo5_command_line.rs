//! Scenario: `vmm run` takes `solo5-spt`'s own command line (issue 22,
//! item 2): `--mem=MB` down to 2 MiB, `--block:NAME=FILE` and
//! `--block-sector-size:NAME=N` (rewritten generically into the Solo5
//! kind's keyed options), `--x-exec-heap` refused with a message, and
//! stdout carrying only what the unikernel wrote (the report on stderr).
//! Each unikernel is generated here.

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{exit_group, spt_elf, syscall, DATA_VA, TEXT_VA};
use vmm_suite::kvm::{run_vmm, temp_path, VmmRun};
use vmm_suite::need_kvm;

/// A unikernel that writes `msg` to fd 1 and exits 0, with a manifest
/// declaring `devices`; run with `args` before `--guest` (production
/// seccomp filters).
fn run_writer(name: &str, msg: &[u8], devices: &[(&str, u32)], args: &[&str]) -> VmmRun {
    let mut a = CodeAssembler::new(64).expect("assembler");
    a.mov(edi, 1u32).expect("emit");
    a.mov(rsi, DATA_VA).expect("emit");
    a.mov(edx, msg.len() as u32).expect("emit");
    syscall(&mut a, 1).expect("emit");
    exit_group(&mut a, 0).expect("emit");
    let code = a.assemble(TEXT_VA).expect("assemble");
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&code, msg, devices)).expect("write");
    let mut argv = vec!["run", "--timeout", "20"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--guest", path.to_str().expect("utf-8")]);
    let r = run_vmm(&argv);
    let _ = std::fs::remove_file(&path);
    r
}

#[test]
fn mem_2_runs_a_unikernel_in_2_mib() {
    need_kvm!();
    let r = run_writer("mem2", b"small\n", &[], &["--mem=2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("small\n"), "{}", r.stdout);
    // Below Solo5's 2 MiB and not a whole number of 2 MiB: refused.
    let r = run_writer("mem1", b"x", &[], &["--mem=1"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("2 MiB"), "{}", r.stderr);
}

#[test]
fn stdout_carries_only_the_unikernels_output() {
    need_kvm!();
    let r = run_writer("stdout-only", b"only this\n", &[], &["--mem=2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "only this\n", "stderr:\n{}", r.stderr);
    // The report went to stderr.
    assert!(r.stderr.contains("== vmm report:") && r.stderr.contains("(exit code 0)"), "{}", r.stderr);
}

/// A host file of `len` zero bytes.
fn disk(name: &str, len: usize) -> std::path::PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, vec![0u8; len]).expect("write");
    p
}

#[test]
fn block_colon_forms_attach_and_size_the_device() {
    need_kvm!();
    let d = disk("colon.img", 8192);
    let attach = format!("--block:storage={}", d.display());
    // solo5-spt's spelling attaches the declared device.
    let r = run_writer("colon", b"ok\n", &[("storage", 1)], &[&attach]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "ok\n");
    // A 4096-byte sector size over an 8 KiB file: two whole sectors.
    let r = run_writer("sector", b"ok\n", &[("storage", 1)], &[&attach, "--block-sector-size:storage=4096"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The sector size is applied: 8 KiB is not a whole 32 KiB sector.
    let r = run_writer("sector-big", b"ok\n", &[("storage", 1)], &[&attach, "--block-sector-size:storage=32768"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("32768-byte blocks"), "{}", r.stderr);
    // What solo5-spt refuses: not a power of two, below 512, not a number,
    // a device the manifest does not declare.
    for bad in ["--block-sector-size:storage=1000", "--block-sector-size:storage=256", "--block-sector-size:storage=x"]
    {
        let r = run_writer("sector-bad", b"ok\n", &[("storage", 1)], &[&attach, bad]);
        assert_eq!(r.code, 2, "{bad}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("power of two"), "{bad}: {}", r.stderr);
    }
    let r = run_writer("sector-undeclared", b"ok\n", &[("storage", 1)], &[&attach, "--block-sector-size:other=4096"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("'other'"), "{}", r.stderr);
    let _ = std::fs::remove_file(&d);
}

#[test]
fn x_exec_heap_is_refused_with_a_message() {
    need_kvm!();
    let r = run_writer("exec-heap", b"ok\n", &[], &["--x-exec-heap"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--x-exec-heap") && r.stderr.contains("not supported"), "{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing ran");
}

/// `--net:NAME=TAP` and `--net-mac:NAME=MAC` are `solo5-spt`'s forms,
/// checked before anything is opened (no root needed: every value here
/// is refused before a tap would be attached).
#[test]
fn net_options_take_the_colon_forms_and_refuse_bad_values_before_the_run() {
    need_kvm!();
    let net = &[("service0", 2)];
    // A MAC that is not one, a name that cannot be an interface's, a
    // device name that cannot be a manifest's: refused by the option
    // check, in the colon form as in the plain one.
    for (args, why) in [
        (&["--net:service0=tap0", "--net-mac:service0=02:00:00:00:00"][..], "is not a MAC address"),
        (&["--net=service0=tap0", "--net-mac=service0=02:00:00:00:00:0g"][..], "is not a MAC address"),
        (&["--net:service0=a/b"][..], "is not an interface name"),
        (&["--net:service0=sixteen_bytes_xx"][..], "is not an interface name"),
        (&["--net:ser-vice0=tap0"][..], "letters and digits"),
        (&["--net:service0=tap0", "--net:service0=tap1"][..], "given twice"),
    ] {
        let r = run_writer("net-opts", b"x", net, args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(why), "{args:?}: wanted '{why}':\n{}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?} ran");
    }
    // A declared network device with no --net, and a --net for a
    // unikernel that declares none: refused at load, naming the device.
    let r = run_writer("net-none", b"x", net, &[]);
    assert!(r.code == 1 && r.stderr.contains("device 'service0' declared but not attached"), "{}", r.stderr);
    let r = run_writer("net-undeclared", b"x", &[], &["--net:service0=tap0"]);
    assert!(r.code == 1 && r.stderr.contains("declares no network device 'service0'"), "{}", r.stderr);
}
