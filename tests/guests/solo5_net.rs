//! Scenario: a Solo5 `spt` unikernel's network devices on host tap
//! interfaces (`vmm run --net:NAME=TAP`), each test in a network
//! namespace of its own with its own taps, and nothing sent outside it.
//! Upstream's `test_net.spt` answers pings; unikernels generated here
//! check what the manifest says (MTU from the interface, the MAC given,
//! one descriptor per device), send frames (whole ones cross, malformed
//! ones are refused and the tap's counters never see them), and wait in
//! the yield for a frame on the second of two interfaces. Taps that are
//! missing, down, in use or not taps, and bad MACs, are refused at load.
//!
//! Needs root (`CAP_NET_ADMIN`, `ip netns`), `/dev/net/tun` and, for
//! pings, `busybox`; without them the tests say so and pass.
//! `VMM_NET_FLOOD=1` adds upstream's full check: 100,000 pings answered,
//! then `SUCCESS` and exit 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{exit_group, spt_elf, syscall, DATA_VA, TEXT_VA};
use vmm_suite::kvm::{temp_path, vmm_bin};
use vmm_suite::need_kvm;

const NET: u32 = 2;
const READ: u64 = 0;
const WRITE: u64 = 1;
const EPOLL_PWAIT: u64 = 281;
const EPOLL_FD: u32 = 3;

/// A network namespace made for one test, deleted when dropped.
pub(crate) struct Netns {
    /// Its name (`ip netns`).
    pub(crate) name: String,
}

fn ok(o: &Output) -> bool {
    o.status.success()
}

impl Netns {
    /// A new namespace, or `None` (with the reason printed) where this
    /// host cannot make one.
    pub(crate) fn new() -> Option<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if !Path::new("/dev/net/tun").exists() {
            eprintln!("skipped: no /dev/net/tun");
            return None;
        }
        let name = format!("vmmnet{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(o) if ok(&o) => {}
            Ok(o) => {
                eprintln!(
                    "skipped: cannot make a network namespace (CAP_NET_ADMIN?): {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return None;
            }
            Err(e) => {
                eprintln!("skipped: no `ip` command: {e}");
                return None;
            }
        }
        let ns = Netns { name };
        // Quiet taps: no IPv6 neighbour discovery on them.
        ns.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; ip link set lo up");
        Some(ns)
    }

    /// Runs `script` with `sh -c` inside the namespace.
    pub(crate) fn sh(&self, script: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec: {e}"))
    }

    /// Adds the tap `tap` at `addr` (CIDR) with MTU `mtu`, up.
    pub(crate) fn tap(&self, tap: &str, addr: &str, mtu: u32) {
        let o = self.sh(&format!(
            "ip tuntap add {tap} mode tap && ip link set {tap} mtu {mtu} && ip addr add {addr} dev {tap} && ip link set {tap} up"
        ));
        assert!(ok(&o), "tap {tap}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// A counter of `tap` (`rx_packets`, `rx_bytes`, ...).
    pub(crate) fn stat(&self, tap: &str, what: &str) -> u64 {
        let o = self.sh(&format!("cat /sys/class/net/{tap}/statistics/{what}"));
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or_else(|_| panic!("{tap} {what}: {o:?}"))
    }

    /// Whether a process holds `tap` (its carrier is on).
    fn attached(&self, tap: &str) -> bool {
        String::from_utf8_lossy(&self.sh(&format!("cat /sys/class/net/{tap}/carrier")).stdout).trim() == "1"
    }

    /// `vmm run ARGS` inside the namespace, output piped.
    fn vmm(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(vmm_bin()).arg("run").args(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Waits until 10.0.0.2 answers a ping (at most `secs` seconds).
    pub(crate) fn wait_for_answer(&self, addr: &str, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if ok(&self.sh(&format!("busybox ping -c 1 -W 1 {addr} >/dev/null 2>&1"))) {
                return true;
            }
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

pub(crate) fn have_busybox() -> bool {
    let ok = Command::new("busybox").arg("true").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no busybox (for ping)");
    }
    ok
}

pub(crate) fn upstream(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testguests/solo5-spt").join(name);
    if !p.exists() {
        eprintln!("skipped: {} is absent (Solo5 test unikernels)", p.display());
        return None;
    }
    Some(p)
}

/// "N packets received" from busybox ping's summary.
pub(crate) fn received(out: &Output) -> u64 {
    let s = String::from_utf8_lossy(&out.stdout);
    s.split(',')
        .find(|p| p.contains("received"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary: {s}"))
}

pub(crate) fn finish(mut child: Child) -> (Option<i32>, String, String) {
    let _ = child.kill();
    let o = child.wait_with_output().expect("vmm output");
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn test_net_answers_pings_in_its_namespace() {
    need_kvm!();
    let (Some(g), true) = (upstream("test_net.spt"), have_busybox()) else { return };
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    let child = ns
        .vmm(&["--timeout", "60", "--guest", g.to_str().unwrap(), "--net:service0=tap100", "--"])
        .spawn()
        .expect("spawn vmm");
    assert!(ns.wait_for_answer("10.0.0.2", 20), "test_net never answered");
    let ping = ns.sh("busybox ping -A -q -c 2000 -w 60 10.0.0.2");
    let (_, stdout, stderr) = finish(child);
    assert_eq!(received(&ping), 2000, "{}\n{stdout}\n{stderr}", String::from_utf8_lossy(&ping.stdout));
    assert!(stdout.contains("Serving ping on 10.0.0.2, with MAC: "), "{stdout}");
    assert!(!stderr.contains("SIGSYS"), "{stderr}");
}

#[test]
fn test_net_limit_answers_100000_pings_then_succeeds() {
    need_kvm!();
    if std::env::var_os("VMM_NET_FLOOD").is_none() {
        eprintln!("skipped: set VMM_NET_FLOOD=1 for upstream's 100,000-ping check (about a minute here)");
        return;
    }
    let (Some(g), true) = (upstream("test_net.spt"), have_busybox()) else { return };
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    let mac = "--net-mac:service0=02:00:00:00:00:02";
    let child = ns
        .vmm(&["--timeout", "300", "--guest", g.to_str().unwrap(), "--net:service0=tap100", mac, "--", "limit"])
        .spawn()
        .expect("spawn vmm");
    // Upstream floods with one ping in flight at a time; four pingers
    // keep the guest busier. The readiness ping counts towards the limit.
    assert!(ns.wait_for_answer("10.0.0.2", 20), "test_net never answered");
    let start = Instant::now();
    let ping = ns.sh(
        "for i in 1 2 3 4; do busybox ping -A -q -c 25000 -w 280 10.0.0.2 > /tmp/$$.$i & done; wait; cat /tmp/$$.*; rm -f /tmp/$$.*",
    );
    let took = start.elapsed();
    let o = child.wait_with_output().expect("vmm");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&ping.stdout);
    let answered: u64 = s
        .lines()
        .filter(|l| l.contains("received"))
        .filter_map(|l| l.split(',').nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "bench: test_net limit: {answered} pings answered in {took:.2?} ({:.0}/s)",
        answered as f64 / took.as_secs_f64()
    );
    assert!(answered >= 99_999, "{s}");
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
    assert!(stdout.contains("with MAC: 020000000002"), "{stdout}");
}

/// Builds a unikernel declaring `devices`, text from `body`, `data` at
/// [`DATA_VA`]; returns its path.
fn unikernel(
    name: &str,
    data: &[u8],
    devices: &[(&str, u32)],
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> PathBuf {
    let mut a = CodeAssembler::new(64).expect("assembler");
    body(&mut a).expect("emit");
    let code = a.assemble(TEXT_VA).expect("assemble");
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&code, data, devices)).expect("write");
    path
}

/// Jumps to an `exit_group(code)` unless the flags say equal.
fn expect_eq(a: &mut CodeAssembler, fail: &mut Vec<(CodeLabel, u32)>, code: u32) -> Result<(), IcedError> {
    let l = a.create_label();
    a.jne(l)?;
    fail.push((l, code));
    Ok(())
}

fn fail_exits(a: &mut CodeAssembler, fail: Vec<(CodeLabel, u32)>) -> Result<(), IcedError> {
    for (mut l, code) in fail {
        a.set_label(&mut l)?;
        exit_group(a, code)?;
    }
    Ok(())
}

/// `rbx` = manifest entry `i` (boot info in `rdi`, manifest at +24).
fn entry(a: &mut CodeAssembler, reg: AsmRegister64, i: i32) -> Result<(), IcedError> {
    a.mov(reg, qword_ptr(rdi + 24))?;
    a.add(reg, 8 + 104 * i)
}

/// `write(fd_reg, buf, len)`; result in `rax`.
fn write(a: &mut CodeAssembler, fd: AsmRegister64, buf: u64, len: u64) -> Result<(), IcedError> {
    a.mov(rdi, fd)?;
    a.mov(rsi, buf)?;
    a.mov(rdx, len)?;
    syscall(a, WRITE)
}

/// A broadcast frame from 02:00:00:00:00:2a, ethertype 0x88b5 (local
/// experimental), zero payload, `len` bytes.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x2a]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// A unikernel that checks its `service0` entry (attached, MTU `mtu`,
/// MAC 02:00:00:00:00:2a), reads with nothing pending, then writes
/// frames of 14 and `mtu` + 14 bytes (which cross), one more, 13 and 0 bytes and
/// one from outside its memory (refused); exit 0 if all went so.
pub(crate) fn mtu_checker(mtu: u16) -> PathBuf {
    let full = u64::from(mtu) + 14;
    let mut data = frame(full as usize + 1);
    data.resize(0x1000, 0);
    unikernel("net-mtu", &data, &[("service0", NET)], |a| {
        let mut fail = Vec::new();
        entry(a, rbx, 1)?;
        a.cmp(byte_ptr(rbx + 96), 1)?;
        expect_eq(a, &mut fail, 10)?;
        // The MTU is the interface's; the MAC the one given.
        a.cmp(word_ptr(rbx + 78), i32::from(mtu))?;
        expect_eq(a, &mut fail, 11)?;
        a.cmp(dword_ptr(rbx + 72), 0x0000_0002)?;
        expect_eq(a, &mut fail, 12)?;
        a.cmp(word_ptr(rbx + 76), 0x2a00)?;
        expect_eq(a, &mut fail, 12)?;
        a.movsxd(r12, dword_ptr(rbx + 88))?;
        // Nothing pending: EAGAIN.
        a.mov(rdi, r12)?;
        a.mov(rsi, DATA_VA + 0x800)?;
        a.mov(rdx, full)?;
        syscall(a, READ)?;
        a.cmp(rax, -11)?;
        expect_eq(a, &mut fail, 20)?;
        let whole = full as i32;
        for (len, want, code) in
            [(14u64, 14i32, 21), (full, whole, 22), (full + 1, -22, 23), (13, -22, 24), (0, -22, 25)]
        {
            write(a, r12, DATA_VA, len)?;
            a.cmp(rax, want)?;
            expect_eq(a, &mut fail, code)?;
        }
        // A buffer outside the unikernel's memory: EFAULT.
        write(a, r12, 1 << 32, 60)?;
        a.cmp(rax, -14)?;
        expect_eq(a, &mut fail, 26)?;
        exit_group(a, 0)?;
        fail_exits(a, fail)
    })
}

#[test]
fn frames_over_the_mtu_or_under_a_header_never_reach_the_tap() {
    need_kvm!();
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1400);
    let g = mtu_checker(1400);
    let o = ns
        .vmm(&[
            "--timeout",
            "20",
            "--mem",
            "64M",
            "--guest",
            g.to_str().unwrap(),
            "--net:service0=tap100",
            "--net-mac:service0=02:00:00:00:00:2a",
        ])
        .output()
        .expect("vmm");
    let _ = std::fs::remove_file(&g);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // Two frames crossed, 14 and 1414 bytes; nothing else.
    assert_eq!((ns.stat("tap100", "rx_packets"), ns.stat("tap100", "rx_bytes")), (2, 14 + 1414));
}

#[test]
fn two_interfaces_get_their_own_descriptors_frames_and_wake_ups() {
    need_kvm!();
    if !have_busybox() {
        return;
    }
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    ns.tap("tap101", "10.0.1.1/24", 1500);
    let mut data = frame(100);
    data.resize(0x1000, 0);
    let events = DATA_VA + 0x400;
    let buf = DATA_VA + 0x800;
    let g = unikernel("net-2if", &data, &[("service0", NET), ("service1", NET)], |a| {
        let mut fail = Vec::new();
        entry(a, rbx, 1)?;
        entry(a, rcx, 2)?;
        a.cmp(byte_ptr(rbx + 96), 1)?;
        expect_eq(a, &mut fail, 10)?;
        a.cmp(byte_ptr(rcx + 96), 1)?;
        expect_eq(a, &mut fail, 10)?;
        a.cmp(dword_ptr(rcx + 72), 0x0000_0002)?;
        expect_eq(a, &mut fail, 11)?;
        a.cmp(word_ptr(rcx + 76), 0x0b00)?;
        expect_eq(a, &mut fail, 11)?;
        a.movsxd(r12, dword_ptr(rbx + 88))?;
        a.movsxd(r13, dword_ptr(rcx + 88))?;
        a.cmp(r12, r13)?;
        let mut distinct = a.create_label();
        a.jne(distinct)?;
        exit_group(a, 12)?;
        a.set_label(&mut distinct)?;
        // One frame each way, of different sizes.
        write(a, r12, DATA_VA, 60)?;
        a.cmp(rax, 60)?;
        expect_eq(a, &mut fail, 20)?;
        write(a, r13, DATA_VA, 100)?;
        a.cmp(rax, 100)?;
        expect_eq(a, &mut fail, 21)?;
        // Wait for an ARP request on service1 (handle 2).
        let mut wait = a.create_label();
        let mut on1 = a.create_label();
        a.set_label(&mut wait)?;
        a.mov(edi, EPOLL_FD)?;
        a.mov(rsi, events)?;
        a.mov(edx, 3u32)?;
        a.mov(r10, -1i64)?;
        syscall(a, EPOLL_PWAIT)?;
        a.cmp(rax, 1)?;
        let mut got = a.create_label();
        a.jge(got)?;
        exit_group(a, 30)?;
        a.set_label(&mut got)?;
        a.mov(rax, qword_ptr(events + 4))?;
        a.cmp(rax, 2)?;
        a.je(on1)?;
        a.cmp(rax, 1)?;
        expect_eq(a, &mut fail, 31)?;
        // Something on service0: drain it and wait again.
        a.mov(rdi, r12)?;
        a.mov(rsi, buf)?;
        a.mov(rdx, 1514u64)?;
        syscall(a, READ)?;
        a.jmp(wait)?;
        a.set_label(&mut on1)?;
        a.mov(rdi, r13)?;
        a.mov(rsi, buf)?;
        a.mov(rdx, 1514u64)?;
        syscall(a, READ)?;
        a.cmp(rax, 42)?;
        let mut long_enough = a.create_label();
        a.jge(long_enough)?;
        exit_group(a, 32)?;
        a.set_label(&mut long_enough)?;
        a.cmp(word_ptr(buf + 12), 0x0608)?; // ARP, big-endian 0x0806
        a.jne(wait)?;
        exit_group(a, 0)?;
        fail_exits(a, fail)
    });
    let child = ns
        .vmm(&[
            "--timeout",
            "20",
            "--mem",
            "64M",
            "--guest",
            g.to_str().unwrap(),
            "--net:service0=tap100",
            "--net:service1=tap101",
            "--net-mac:service1=02:00:00:00:00:0b",
        ])
        .spawn()
        .expect("vmm");
    // The host asks for 10.0.1.2 on tap101: ARP requests reach service1.
    let start = Instant::now();
    let _ = ns.sh("busybox ping -c 8 -W 1 -w 8 10.0.1.2 >/dev/null 2>&1");
    let o = child.wait_with_output().expect("vmm");
    let _ = std::fs::remove_file(&g);
    assert_eq!(o.status.code(), Some(0), "after {:?}: {}", start.elapsed(), String::from_utf8_lossy(&o.stderr));
    assert_eq!((ns.stat("tap100", "rx_packets"), ns.stat("tap100", "rx_bytes")), (1, 60));
    assert_eq!((ns.stat("tap101", "rx_packets"), ns.stat("tap101", "rx_bytes")), (1, 100));
}

#[test]
fn bad_taps_and_macs_are_refused_at_load_with_the_reason() {
    need_kvm!();
    let Some(g) = upstream("test_net.spt") else { return };
    let Some(ns) = Netns::new() else { return };
    ns.tap("tap100", "10.0.0.1/24", 1500);
    let down = ns.sh("ip tuntap add tapdown mode tap");
    assert!(ok(&down));
    let g = g.to_str().unwrap();
    let refused = |args: &[&str], why: &str| {
        let mut all = vec!["--timeout", "10", "--guest", g];
        all.extend_from_slice(args);
        let o = ns.vmm(&all).output().expect("vmm");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(err.contains(why), "{args:?}: wanted '{why}' in:\n{err}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("Serving ping"), "{args:?} ran");
    };
    refused(&["--net:service0=nosuchtap"], "no network interface 'nosuchtap'");
    refused(&["--net:service0=lo"], "interface 'lo' is not a tap interface");
    refused(&["--net:service0=tapdown"], "interface 'tapdown' is down");
    refused(&["--net:service0=a/b"], "is not an interface name");
    refused(&[], "device 'service0' declared but not attached (attach it with --net service0=TAP)");
    refused(&["--net:service0=tap100", "--net:other=tap100"], "declares no network device 'other'");
    refused(&["--net:service0=tap100", "--net-mac:service0=02:00:00:00:00"], "is not a MAC address");
    refused(&["--net:service0=tap100", "--net-mac:service0=zz:00:00:00:00:01"], "is not a MAC address");
    // A tap another process holds: in use.
    let holder = ns.vmm(&["--timeout", "30", "--guest", g, "--net:service0=tap100"]).spawn().expect("vmm");
    let end = Instant::now() + Duration::from_secs(10);
    while !ns.attached("tap100") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    refused(&["--net:service0=tap100"], "tap interface 'tap100' is in use by another process");
    // The holder itself was not refused: it still runs when killed (its
    // guest may not have printed yet on a loaded machine).
    let (code, stdout, stderr) = finish(holder);
    assert_eq!(code, None, "the holder ended by itself:\n{stdout}\n{stderr}");
}
