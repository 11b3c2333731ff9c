//! Unit tests of the Solo5 network devices ([`super::net`]) and of the
//! calls that reach them through the `spt` table, with a datagram socket
//! pair standing in for each tap (one frame per message, truncated to the
//! reader's buffer, `EAGAIN` when empty: what a tap does), over a real
//! [`HostedKernel`] (no KVM, no root): every manifest byte attach writes,
//! every refusal, and every frame that crosses or does not.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guest_mm::errno;

use super::block::{Devices, FIRST_FD};
use super::layout::{EPOLL_FD, TIMER_FD};
use super::mac::Mac;
use super::net::{NetError, Nets};
use super::note::{BLOCK_BASIC, ENTRY, NET_BASIC};
use super::numbers::nr;
use super::syscalls::{Table, SIGSYS_STATUS};
use super::syscalls_tests::{call, mono_ns, setup, RO_VA, UNMAPPED_VA, USER_VA};
use super::tap::{Tap, TapError};
use crate::hosted::hypercall::{Effects, HostedKernel, Outcome};

const MTU: u16 = 1500;
const FRAME_MAX: usize = MTU as usize + 14;

/// A manifest with the reserved entry and `devs` (name, type).
fn manifest(devs: &[(&str, u32)]) -> Vec<u8> {
    let mut m = vec![1, 0, 0, 0];
    m.extend_from_slice(&(devs.len() as u32 + 1).to_le_bytes());
    let mut first = vec![0u8; ENTRY];
    first[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
    m.extend_from_slice(&first);
    for (name, kind) in devs {
        let mut e = vec![0u8; ENTRY];
        e[..name.len()].copy_from_slice(name.as_bytes());
        e[68..72].copy_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(&e);
    }
    m
}

/// A stand-in tap: the device's end (non-blocking) and the host's end.
fn fake_tap() -> (Tap, UnixDatagram) {
    let (dev, host) = UnixDatagram::pair().unwrap();
    dev.set_nonblocking(true).unwrap();
    host.set_nonblocking(true).unwrap();
    (Tap { file: File::from(OwnedFd::from(dev)), mtu: MTU }, host)
}

/// Attaches `nets` to `m` with stand-in taps; the host ends come back
/// in the order the taps were opened, with the tap names asked for.
fn attach(
    m: &mut [u8],
    nets: &[(&str, &str)],
    macs: &[(&str, Mac)],
) -> Result<(Nets, Vec<(String, UnixDatagram)>), NetError> {
    let hosts = Mutex::new(Vec::new());
    let nets: Vec<(String, String)> = nets.iter().map(|&(n, t)| (n.into(), t.into())).collect();
    let macs: Vec<(String, Mac)> = macs.iter().map(|&(n, m)| (n.into(), m)).collect();
    let r = Nets::attach_with(m, &nets, &macs, |tap| {
        let (t, host) = fake_tap();
        hosts.lock().unwrap().push((tap.to_string(), host));
        Ok(t)
    })?;
    Ok((r, hosts.into_inner().unwrap()))
}

fn entry(m: &[u8], i: usize) -> &[u8] {
    &m[8 + i * ENTRY..8 + (i + 1) * ENTRY]
}

#[test]
fn attach_fills_each_declared_network_entry_where_solo5_spt_does() {
    let mut m = manifest(&[("disk", BLOCK_BASIC), ("service0", NET_BASIC), ("service1", NET_BASIC)]);
    let before = m.clone();
    let mac = Mac([0x02, 0, 0, 0, 0, 0x2a]);
    let (nets, hosts) = attach(&mut m, &[("service1", "tap1"), ("service0", "tap0")], &[("service0", mac)]).unwrap();
    assert!(!nets.is_empty());
    // Opened in manifest order, with the names given.
    assert_eq!(hosts.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["tap0", "tap1"]);
    // The block device's entry and the reserved one are untouched.
    assert_eq!(entry(&m, 0), entry(&before, 0));
    assert_eq!(entry(&m, 1), entry(&before, 1));
    for (i, fd) in [(2, FIRST_FD + 1), (3, FIRST_FD + 2)] {
        let e = entry(&m, i);
        assert_eq!(&e[..72], &entry(&before, i)[..72], "name and type kept");
        assert_eq!(u16::from_le_bytes([e[78], e[79]]), MTU);
        assert_eq!(&e[80..88], &[0; 8]);
        assert_eq!(i32::from_le_bytes(e[88..92].try_into().unwrap()), fd);
        assert_eq!(&e[92..96], &[0; 4]);
        assert_eq!(e[96], 1, "attached");
        assert_eq!(&e[97..], &[0; 7]);
    }
    assert_eq!(&entry(&m, 2)[72..78], &mac.0);
    let generated = &entry(&m, 3)[72..78];
    assert_eq!(generated[0] & 3, 2, "locally administered unicast: {generated:x?}");
}

#[test]
fn refusals_name_the_device_and_leave_the_manifest_alone() {
    let m0 = manifest(&[("disk", BLOCK_BASIC), ("service0", NET_BASIC)]);
    let mut m = m0.clone();
    let e = attach(&mut m, &[], &[]).unwrap_err();
    assert_eq!(e.to_string(), "device 'service0' declared but not attached (attach it with --net service0=TAP)");
    let e = attach(&mut m, &[("service0", "tap0"), ("disk", "tap1")], &[]).unwrap_err();
    assert!(matches!(&e, NetError::NotDeclared(n) if n == "disk"), "{e}");
    let e = attach(&mut m, &[("service0", "tap0")], &[("other", Mac([2, 0, 0, 0, 0, 1]))]).unwrap_err();
    assert_eq!(e.to_string(), "--net-mac other: the unikernel's manifest declares no network device 'other'");
    let busy = Nets::attach_with(&mut m, &[("service0".into(), "tap0".into())], &[], |t| Err(TapError::Busy(t.into())))
        .unwrap_err();
    assert_eq!(busy.to_string(), "network device 'service0': tap interface 'tap0' is in use by another process");
    assert_eq!(m, m0);
    // Nothing declared: nothing to do, and nothing may be given.
    let mut none = manifest(&[("disk", BLOCK_BASIC)]);
    assert!(attach(&mut none, &[], &[]).unwrap().0.is_empty());
    assert!(matches!(attach(&mut none, &[("x", "tap0")], &[]), Err(NetError::NotDeclared(_))));
}

/// A table with one network device (`service0`, descriptor FIRST_FD,
/// handle 1) and its host end.
fn with_net() -> (Table, UnixDatagram) {
    let mut m = manifest(&[("service0", NET_BASIC)]);
    let (nets, mut hosts) = attach(&mut m, &[("service0", "tap0")], &[]).unwrap();
    (Table::new(Devices::default(), nets), hosts.remove(0).1)
}

fn pending(host: &UnixDatagram) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = vec![0u8; 1 << 16];
    while let Ok(n) = host.recv(&mut b) {
        out.push(b[..n].to_vec());
    }
    out
}

fn killed() -> Outcome {
    Outcome { ret: 0, effects: Effects { exit_group: Some(SIGSYS_STATUS), ..Default::default() } }
}

#[test]
fn write_sends_one_whole_frame_and_refuses_malformed_ones() {
    let (hv, _) = setup();
    let (t, host) = with_net();
    let fd = FIRST_FD as u64;
    let frame: Vec<u8> = (0..FRAME_MAX).map(|i| (i * 7) as u8).collect();
    let buf = USER_VA + 0x1000 - 700; // straddles the two pages
    hv.copy_to_user(buf, &frame).unwrap();
    for len in [14, 60, FRAME_MAX] {
        assert_eq!(call(&t, &hv, nr::WRITE, [fd, buf, len as u64, 0, 0, 0]), Outcome::ret(len as i64));
        assert_eq!(pending(&host), vec![frame[..len].to_vec()]);
    }
    // Shorter than a header, longer than the MTU and the header: EINVAL,
    // and the tap sees nothing.
    for len in [0, 1, 13, FRAME_MAX + 1, 1 << 16, u64::MAX as usize] {
        assert_eq!(call(&t, &hv, nr::WRITE, [fd, buf, len as u64, 0, 0, 0]), Outcome::err(errno::EINVAL), "{len}");
    }
    // A read-only buffer may be sent; one not mapped may not.
    assert_eq!(call(&t, &hv, nr::WRITE, [fd, RO_VA, 64, 0, 0, 0]), Outcome::ret(64));
    assert_eq!(pending(&host), vec![vec![0u8; 64]]);
    assert_eq!(call(&t, &hv, nr::WRITE, [fd, UNMAPPED_VA - 32, 64, 0, 0, 0]), Outcome::err(errno::EFAULT));
    assert!(pending(&host).is_empty());
    assert_eq!(t.killed(), None);
    // Another descriptor: killed, as solo5-spt's filter kills it.
    for other in [fd + 1, FIRST_FD as u64 - 1, 0, 2] {
        let (t, host) = with_net();
        assert_eq!(call(&t, &hv, nr::WRITE, [other, buf, 60, 0, 0, 0]), killed(), "{other}");
        assert!(pending(&host).is_empty());
    }
}

#[test]
fn read_takes_one_frame_or_says_again() {
    let (hv, _) = setup();
    let (t, host) = with_net();
    let fd = FIRST_FD as u64;
    let buf = USER_VA + 0x800;
    // Nothing pending: EAGAIN (SOLO5_R_AGAIN), nothing written.
    hv.copy_to_user(buf, &[0xaa; 128]).unwrap();
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, FRAME_MAX as u64, 0, 0, 0]), Outcome::err(errno::EAGAIN));
    assert_eq!(hv.copy_from_user(buf, 64).unwrap(), vec![0xaa; 64]);
    // Two frames: one per read, whole.
    let a: Vec<u8> = (0..100u8).collect();
    let b: Vec<u8> = (0..FRAME_MAX).map(|i| (i % 253) as u8).collect();
    host.send(&a).unwrap();
    host.send(&b).unwrap();
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, FRAME_MAX as u64, 0, 0, 0]), Outcome::ret(100));
    assert_eq!(hv.copy_from_user(buf, 100).unwrap(), a);
    assert_eq!(hv.copy_from_user(buf + 100, 4).unwrap(), vec![0xaa; 4]);
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, 1 << 20, 0, 0, 0]), Outcome::ret(FRAME_MAX as i64));
    assert_eq!(hv.copy_from_user(buf, FRAME_MAX as u64).unwrap(), b);
    // A buffer smaller than the frame gets its start; the rest is gone.
    host.send(&b).unwrap();
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, 10, 0, 0, 0]), Outcome::ret(10));
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, 10, 0, 0, 0]), Outcome::err(errno::EAGAIN));
    // A buffer the unikernel may not write: EFAULT, and that frame is
    // lost (as under Linux); the next one comes through.
    host.send(&a).unwrap();
    host.send(&b[..60]).unwrap();
    assert_eq!(call(&t, &hv, nr::READ, [fd, RO_VA, 200, 0, 0, 0]), Outcome::err(errno::EFAULT));
    assert_eq!(call(&t, &hv, nr::READ, [fd, buf, 200, 0, 0, 0]), Outcome::ret(60));
    assert_eq!(t.killed(), None);
    for other in [fd + 1, 0, TIMER_FD as u64] {
        let (t, host) = with_net();
        host.send(&a).unwrap();
        assert_eq!(call(&t, &hv, nr::READ, [other, buf, 200, 0, 0, 0]), killed(), "{other}");
    }
}

/// `epoll_pwait(EPOLL_FD, events, maxevents, timeout)`.
fn epoll(t: &Table, hv: &HostedKernel, events: u64, maxevents: i32, timeout: i32) -> Outcome {
    call(t, hv, nr::EPOLL_PWAIT, [EPOLL_FD as u64, events, maxevents as u64, timeout as u64, 0, 0])
}

/// Arms the timer at the absolute `CLOCK_MONOTONIC` time `at` (ns).
fn arm_at(t: &Table, hv: &HostedKernel, at: u64) {
    let spec: Vec<u8> =
        [0, 0, at / 1_000_000_000, at % 1_000_000_000].iter().flat_map(|v: &u64| v.to_le_bytes()).collect();
    hv.copy_to_user(USER_VA, &spec).unwrap();
    assert_eq!(call(t, hv, nr::TIMERFD_SETTIME, [TIMER_FD as u64, 1, USER_VA, 0, 0, 0]), Outcome::ret(0));
}

const NET_EVENT: [u8; 12] = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
const TIMER_EVENT: [u8; 12] = [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0];

#[test]
fn the_yield_reports_a_pending_frame_by_handle_and_the_timer_after_it() {
    let (hv, _) = setup();
    let (t, host) = with_net();
    let ev = USER_VA + 0x100;
    // Nothing pending, no timer, no wait.
    assert_eq!(epoll(&t, &hv, ev, 2, 0), Outcome::ret(0));
    host.send(&[1; 60]).unwrap();
    hv.copy_to_user(ev, &[0xaa; 32]).unwrap();
    assert_eq!(epoll(&t, &hv, ev, 2, -1), Outcome::ret(1));
    let b = hv.copy_from_user(ev, 32).unwrap();
    assert_eq!(&b[..12], &NET_EVENT);
    assert_eq!(&b[12..], &[0xaa; 20]);
    // Level-triggered: still pending until read.
    assert_eq!(epoll(&t, &hv, ev, 2, 0), Outcome::ret(1));
    // Frame and due timer: both, the device first; with room for one,
    // the timer stays pending.
    arm_at(&t, &hv, 1);
    assert_eq!(epoll(&t, &hv, ev, 1, 0), Outcome::ret(1));
    assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &NET_EVENT);
    assert_eq!(epoll(&t, &hv, ev, 2, 0), Outcome::ret(2));
    let b = hv.copy_from_user(ev, 24).unwrap();
    assert_eq!((&b[..12], &b[12..]), (&NET_EVENT[..], &TIMER_EVENT[..]));
    // The timer was reported: cleared; the frame is still there.
    assert_eq!(epoll(&t, &hv, ev, 2, 0), Outcome::ret(1));
    assert_eq!(call(&t, &hv, nr::READ, [FIRST_FD as u64, USER_VA + 0x800, 100, 0, 0, 0]), Outcome::ret(60));
    assert_eq!(epoll(&t, &hv, ev, 2, 0), Outcome::ret(0));
    // Room for no event, or an events buffer that cannot be written.
    host.send(&[1; 60]).unwrap();
    assert_eq!(epoll(&t, &hv, ev, 0, 0), Outcome::err(errno::EINVAL));
    assert_eq!(epoll(&t, &hv, ev, -1, 0), Outcome::err(errno::EINVAL));
    assert_eq!(epoll(&t, &hv, RO_VA, 2, 0), Outcome::err(errno::EFAULT));
    assert_eq!(t.killed(), None);
}

#[test]
fn the_yield_waits_for_the_timer_or_a_frame_whichever_comes_first() {
    let (hv, _) = setup();
    let (t, host) = with_net();
    let ev = USER_VA + 0x100;
    // The timer, 60 ms out, with no frame: waited for.
    let start = Instant::now();
    arm_at(&t, &hv, mono_ns() + 60_000_000);
    assert_eq!(epoll(&t, &hv, ev, 2, -1), Outcome::ret(1));
    assert!(start.elapsed() >= Duration::from_millis(60), "{:?}", start.elapsed());
    assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &TIMER_EVENT);
    // A timeout of 30 ms with the timer far away: 0 events after it.
    arm_at(&t, &hv, mono_ns() + 60_000_000_000);
    let start = Instant::now();
    assert_eq!(epoll(&t, &hv, ev, 2, 30), Outcome::ret(0));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(30) && took < Duration::from_secs(5), "{took:?}");
    // A frame sent 50 ms into the wait ends it, long before the timer.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        host.send(&[2; 60]).unwrap();
        host
    });
    let start = Instant::now();
    assert_eq!(epoll(&t, &hv, ev, 2, -1), Outcome::ret(1));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(40) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &NET_EVENT);
    drop(sender.join().unwrap());
    assert_eq!(t.killed(), None);
}
