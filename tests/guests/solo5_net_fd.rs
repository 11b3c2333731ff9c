//! Scenario: a Solo5 network device on a tap descriptor the caller opened
//! and passed in (`vmm run --net:NAME=@FD`, `solo5-spt`'s form), each
//! test in a network namespace of its own (`solo5_net.rs`'s [`Netns`]).
//! The test opens the tap itself, in the namespace, in the child it
//! spawns `vmm` from (as a caller would: `TUNSETIFF`, then the descriptor
//! left open across `exec` at a fixed number), so the VMM never opens the
//! interface by name. Inside the namespace the device has the
//! interface's MTU; started outside it the VMM cannot ask the interface
//! and reports 1500, as `solo5-spt` does. A descriptor that is not open,
//! not a tap, or given to two devices is refused at load.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use vmm_suite::kvm::vmm_bin;
use vmm_suite::need_kvm;

use super::solo5_net::{finish, have_busybox, mtu_checker, received, upstream, Netns};

/// The descriptor number the tap is passed at.
const TAP_FD: i32 = 7;
/// `TUNSETIFF` (`_IOW('T', 202, int)`), `IFF_TAP | IFF_NO_PI`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TAP_FLAGS: i16 = 0x0002 | 0x1000;

/// `vmm run ARGS`, started with the tap `tap` of `ns` open at
/// [`TAP_FD`]; the VMM itself runs in `ns` if `inside`, else where the
/// test runs. Output piped.
fn vmm_with_tap(ns: &Netns, tap: &str, inside: bool, args: &[&str]) -> Command {
    let target = File::open(format!("/var/run/netns/{}", ns.name)).expect("namespace file");
    let here = File::open("/proc/self/ns/net").expect("own namespace file");
    let mut ifr = [0u8; 40];
    ifr[..tap.len()].copy_from_slice(tap.as_bytes());
    ifr[16..18].copy_from_slice(&TAP_FLAGS.to_ne_bytes());
    let mut c = Command::new(vmm_bin());
    c.arg("run").args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let check = |rc: libc::c_int| if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) };
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (setns, open, ioctl, dup2,
    // close) on memory it owns (`ifr`, the path literal); `target` and
    // `here` stay open in the parent until the spawn returns.
    unsafe {
        c.pre_exec(move || {
            check(libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET))?;
            let fd = check(libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR))?;
            check(libc::ioctl(fd, TUNSETIFF as _, ifr.as_mut_ptr()))?;
            // dup2 leaves the copy without close-on-exec: inherited.
            check(libc::dup2(fd, TAP_FD))?;
            check(libc::close(fd))?;
            if !inside {
                check(libc::setns(here.as_raw_fd(), libc::CLONE_NEWNET))?;
            }
            Ok(())
        });
    }
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("vmm")
}

#[test]
fn an_inherited_tap_carries_frames_with_the_interfaces_mtu() {
    need_kvm!();
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1400);
    let g = mtu_checker(1400);
    let fd = format!("--net:service0=@{TAP_FD}");
    let o = run(&mut vmm_with_tap(
        &ns,
        "tap100",
        true,
        &["--timeout", "20", "--guest", g.to_str().unwrap(), &fd, "--net-mac:service0=02:00:00:00:00:2a"],
    ));
    let _ = std::fs::remove_file(&g);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // The two whole frames crossed the passed-in tap; nothing else did.
    assert_eq!((ns.stat("tap100", "rx_packets"), ns.stat("tap100", "rx_bytes")), (2, 14 + 1414));
}

#[test]
fn outside_its_namespace_an_inherited_tap_reports_mtu_1500() {
    need_kvm!();
    let Some(ns) = Netns::new() else { return };
    // The interface's MTU is 1280, but the VMM runs where no interface
    // of that name is the tap: it reports solo5-spt's 1500.
    ns.tap("tap100", "10.0.0.1/24", 1280);
    let g = mtu_checker(1500);
    let fd = format!("--net:service0=@{TAP_FD}");
    let o = run(&mut vmm_with_tap(
        &ns,
        "tap100",
        false,
        &["--timeout", "20", "--guest", g.to_str().unwrap(), &fd, "--net-mac:service0=02:00:00:00:00:2a"],
    ));
    let _ = std::fs::remove_file(&g);
    // Exit 11 would be the unikernel's "wrong MTU".
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!((ns.stat("tap100", "rx_packets"), ns.stat("tap100", "rx_bytes")), (2, 14 + 1514));
}

#[test]
fn test_net_answers_pings_on_an_inherited_tap() {
    need_kvm!();
    let (Some(g), true) = (upstream("test_net.spt"), have_busybox()) else { return };
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    let fd = format!("--net:service0=@{TAP_FD}");
    let child = vmm_with_tap(&ns, "tap100", true, &["--timeout", "60", "--guest", g.to_str().unwrap(), &fd])
        .spawn()
        .expect("vmm");
    assert!(ns.wait_for_answer("10.0.0.2", 20), "test_net never answered");
    let ping = ns.sh("busybox ping -A -q -c 500 -w 60 10.0.0.2");
    let (_, stdout, stderr) = finish(child);
    assert_eq!(received(&ping), 500, "{}\n{stdout}\n{stderr}", String::from_utf8_lossy(&ping.stdout));
    assert!(stdout.contains("Serving ping on 10.0.0.2, with MAC: "), "{stdout}");
}

#[test]
fn descriptors_that_are_not_taps_are_refused_at_load() {
    need_kvm!();
    let Some(g) = upstream("test_net.spt") else { return };
    let g = g.to_str().unwrap();
    let refused = |c: &mut Command, why: &str| {
        let o = run(c);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{why}");
        assert!(err.contains(why), "wanted '{why}' in:\n{err}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("Serving ping"), "{why}: ran");
    };
    let plain = |args: &[&str]| {
        let mut c = Command::new(vmm_bin());
        c.args(["run", "--timeout", "10", "--guest", g]).args(args).stdin(Stdio::null());
        c
    };
    // Standard input is /dev/null: open, inherited, not a tap.
    refused(&mut plain(&["--net:service0=@0"]), "descriptor 0 (from @0) is not an attached tap interface");
    refused(&mut plain(&["--net:service0=@999"]), "descriptor 999 (from @999) is not open");
    refused(&mut plain(&["--net:service0=@-1"]), "is not an interface name");
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    let fd = format!("--net:service0=@{TAP_FD}");
    let twice = format!("--net:service1=@{TAP_FD}");
    refused(&mut vmm_with_tap(&ns, "tap100", true, &["--timeout", "10", "--guest", g, &fd, &twice]), "given to two");
}
