//! Unit tests of the Solo5 `spt` system-call table ([`super::syscalls`])
//! over a real [`HostedKernel`] (guest memory, guest-mm page tables, no
//! KVM): every return value, errno, effect, kill reason and byte the
//! calls write into the unikernel's memory.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest_mm::{errno, GuestVirtAddr, Pfn};

use super::block::{Devices, FIRST_FD};
use super::layout::{EPOLL_FD, TIMER_FD};
use super::note::{BLOCK_BASIC, ENTRY};
use super::numbers::nr;
use super::syscalls::{Table, SIGSYS_STATUS};
use crate::hosted::hypercall::test_kernel::Buf;
use crate::hosted::hypercall::{Args, Block, Effects, HostedKernel, Outcome};
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::providers::Providers;
use crate::memory::create_guest_memory;

const MEM: u64 = 64 << 20;
/// Two user read/write pages, then one user read-only page, then
/// nothing mapped.
pub(super) const USER_VA: u64 = 0x40_0000;
pub(super) const RO_VA: u64 = USER_VA + 0x2000;
pub(super) const UNMAPPED_VA: u64 = USER_VA + 0x3000;
const NSEC: u64 = 1_000_000_000;
const ARCH_SET_FS: u64 = 0x1002;

pub(super) fn setup() -> (HostedKernel, Buf) {
    let mem = create_guest_memory(MEM).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    m.map_user_pages(GuestVirtAddr::try_new(USER_VA).unwrap(), &[Pfn(0x2000), Pfn(0x2001)], Access::RW).unwrap();
    m.map_user_pages(GuestVirtAddr::try_new(RO_VA).unwrap(), &[Pfn(0x2002)], Access::R).unwrap();
    let (hv, out, _) = crate::hosted::hypercall::test_kernel::kernel(mem, m, providers);
    (hv, out)
}

pub(super) fn call(t: &Table, hv: &HostedKernel, nr: u64, a: [u64; 6]) -> Outcome {
    t.call(hv, 0, &Args { nr, a })
}

fn err(e: i32) -> i64 {
    -i64::from(e)
}

/// `CLOCK_MONOTONIC` in nanoseconds, as the table reads it.
pub(super) fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec that clock_gettime
    // writes only into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * NSEC + ts.tv_nsec as u64
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A `struct itimerspec` { interval, value }, each { sec, nsec }.
fn itimerspec(isec: u64, insec: u64, sec: u64, nsec: u64) -> Vec<u8> {
    [isec, insec, sec, nsec].iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `timerfd_settime(TIMER_FD, flags, new at USER_VA, old)` with `new` =
/// the value `sec`.`nsec` and interval 0.
fn settime(t: &Table, hv: &HostedKernel, flags: u64, sec: u64, nsec: u64, old: u64) -> Outcome {
    hv.copy_to_user(USER_VA, &itimerspec(0, 0, sec, nsec)).unwrap();
    call(t, hv, nr::TIMERFD_SETTIME, [TIMER_FD as u64, flags, USER_VA, old, 0, 0])
}

/// The timer's time left, in nanoseconds, read back through `old`
/// (without changing it: the same deadline is set again, absolute).
fn time_left(t: &Table, hv: &HostedKernel) -> u64 {
    let old = USER_VA + 0x800;
    hv.copy_to_user(old, &[0xaa; 32]).unwrap();
    // Disarm to read the setting, then put it back.
    let r = settime(t, hv, 0, 0, 0, old);
    assert_eq!(r, Outcome::ret(0));
    let v = u64s(&hv.copy_from_user(old, 32).unwrap());
    assert_eq!(&v[..2], &[0, 0], "no interval");
    assert!(v[3] < NSEC, "{v:?}");
    let left = v[2] * NSEC + v[3];
    if left > 0 {
        let at = mono_ns().saturating_add(left);
        assert_eq!(settime(t, hv, 1, at / NSEC, at % NSEC, 0), Outcome::ret(0));
    }
    left
}

fn epoll(t: &Table, hv: &HostedKernel, events: u64, maxevents: i64, timeout: i64) -> Outcome {
    call(t, hv, nr::EPOLL_PWAIT, [EPOLL_FD as u64, events, maxevents as u64, timeout as u64, 0, 0])
}

fn killed_outcome() -> Outcome {
    Outcome { ret: 0, effects: Effects { exit_group: Some(SIGSYS_STATUS), ..Default::default() } }
}

fn reason(what: &str, nr: u64, a0: u64, a1: u64) -> String {
    format!("{what} (nr {nr}, arguments {a0:#x}, {a1:#x}) is not allowed by the spt policy")
}

/// Calls `a` on a fresh table and checks it kills the run for `why`.
fn assert_killed(nr: u64, a: [u64; 6], why: &str) {
    let (hv, out) = setup();
    let t = Table::default();
    assert_eq!(call(&t, &hv, nr, a), killed_outcome(), "{why}");
    assert_eq!(t.killed(), Some(reason(why, nr, a[0], a[1])));
    hv.console().flush(None).unwrap();
    assert!(out.0.lock().unwrap().is_empty());
}

#[test]
fn sigsys_is_128_plus_31() {
    assert_eq!(SIGSYS_STATUS, 159);
}

#[test]
fn write_to_stdout_reaches_the_console() {
    let (hv, out) = setup();
    let t = Table::default();
    hv.copy_to_user(USER_VA + 0xffd, b"hello").unwrap();
    let r = call(&t, &hv, nr::WRITE, [1, USER_VA + 0xffd, 5, 0, 0, 0]);
    assert_eq!(r, Outcome::ret(5));
    hv.console().flush(None).unwrap();
    assert_eq!(&*out.0.lock().unwrap(), b"hello");
    assert_eq!(call(&t, &hv, nr::WRITE, [1, UNMAPPED_VA, 5, 0, 0, 0]).ret, err(errno::EFAULT));
    assert_eq!(t.killed(), None);
}

#[test]
fn exit_group_ends_the_run_with_its_status() {
    let (hv, _) = setup();
    let t = Table::default();
    let r = call(&t, &hv, nr::EXIT_GROUP, [3, 0, 0, 0, 0, 0]);
    assert_eq!(r, Outcome { ret: 0, effects: Effects { exit_group: Some(3), ..Default::default() } });
    assert_eq!(t.killed(), None);
}

#[test]
fn arch_prctl_sets_fs_within_the_user_half() {
    let (hv, _) = setup();
    let t = Table::default();
    for base in [0, 0x1234_5678, (1 << 47) - 1] {
        let r = call(&t, &hv, nr::ARCH_PRCTL, [ARCH_SET_FS, base, 0, 0, 0, 0]);
        assert_eq!(r, Outcome { ret: 0, effects: Effects { fs_base: Some(base), ..Default::default() } });
    }
    for base in [1 << 47, 0xffff_8000_0000_0000, u64::MAX] {
        let r = call(&t, &hv, nr::ARCH_PRCTL, [ARCH_SET_FS, base, 0, 0, 0, 0]);
        assert_eq!(r, Outcome::err(errno::EPERM), "{base:#x}");
        assert_eq!(r.effects, Effects::default());
    }
    assert_eq!(t.killed(), None);
}

#[test]
fn clock_gettime_writes_both_clocks() {
    let (hv, _) = setup();
    let t = Table::default();
    let ts = USER_VA + 0xff8; // straddles the two pages
    hv.copy_to_user(ts, &[0xaa; 24]).unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(call(&t, &hv, nr::CLOCK_GETTIME, [0, ts, 0, 0, 0, 0]), Outcome::ret(0));
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let b = hv.copy_from_user(ts, 24).unwrap();
    let v = u64s(&b[..16]);
    assert!(v[1] < NSEC, "{v:?}");
    let got = Duration::new(v[0], v[1] as u32);
    assert!(before <= got && got <= after, "{before:?} {got:?} {after:?}");
    assert_eq!(&b[16..], &[0xaa; 8], "only 16 bytes written");

    let before = mono_ns();
    assert_eq!(call(&t, &hv, nr::CLOCK_GETTIME, [1, ts, 0, 0, 0, 0]), Outcome::ret(0));
    let after = mono_ns();
    let v = u64s(&hv.copy_from_user(ts, 16).unwrap());
    assert!(v[1] < NSEC, "{v:?}");
    let got = v[0] * NSEC + v[1];
    assert!(before <= got && got <= after, "{before} {got} {after}");

    for clock in [0, 1] {
        for bad in [UNMAPPED_VA, RO_VA, UNMAPPED_VA - 8] {
            let r = call(&t, &hv, nr::CLOCK_GETTIME, [clock, bad, 0, 0, 0, 0]);
            assert_eq!(r, Outcome::err(errno::EFAULT), "clock {clock} at {bad:#x}");
        }
    }
    assert_eq!(t.killed(), None);
}

#[test]
fn timerfd_settime_checks_its_arguments() {
    let (hv, _) = setup();
    let t = Table::default();
    let einval = Outcome::err(errno::EINVAL);
    // Flags other than TFD_TIMER_ABSTIME.
    for flags in [2, 3, 1 << 32] {
        assert_eq!(settime(&t, &hv, flags, 1, 0, 0), einval, "flags {flags:#x}");
    }
    assert_eq!(settime(&t, &hv, 0, 1, NSEC, 0), einval);
    assert_eq!(settime(&t, &hv, 1, 1, u64::MAX, 0), einval);
    assert_eq!(settime(&t, &hv, 0, i64::MAX as u64 + 1, 0, 0), einval);
    assert_eq!(time_left(&t, &hv), 0, "a refused call arms nothing");
    // The largest valid values are taken.
    assert_eq!(settime(&t, &hv, 0, 0, NSEC - 1, 0), Outcome::ret(0));
    assert_eq!(settime(&t, &hv, 0, i64::MAX as u64, 0, 0), Outcome::ret(0));
    assert!(time_left(&t, &hv) > 1 << 62);
    // `new` and `old` must be reachable: `new` readable, `old` writable.
    let r = call(&t, &hv, nr::TIMERFD_SETTIME, [TIMER_FD as u64, 0, UNMAPPED_VA, 0, 0, 0]);
    assert_eq!(r, Outcome::err(errno::EFAULT));
    hv.copy_to_user(USER_VA, &itimerspec(0, 0, 0, 0)).unwrap();
    for old in [UNMAPPED_VA, RO_VA] {
        let r = call(&t, &hv, nr::TIMERFD_SETTIME, [TIMER_FD as u64, 0, USER_VA, old, 0, 0]);
        assert_eq!(r, Outcome::err(errno::EFAULT));
    }
    // ... and a refused call changes nothing (the disarm did not happen).
    assert!(time_left(&t, &hv) > 1 << 62);
    assert_eq!(t.killed(), None);
}

#[test]
fn timerfd_settime_arms_relative_and_absolute_deadlines_and_disarms() {
    let (hv, _) = setup();
    let t = Table::default();
    // Relative: 10 s from now; the interval is ignored (one-shot).
    hv.copy_to_user(USER_VA, &itimerspec(7, 3, 10, 5)).unwrap();
    let before = mono_ns();
    assert_eq!(call(&t, &hv, nr::TIMERFD_SETTIME, [TIMER_FD as u64, 0, USER_VA, 0, 0, 0]), Outcome::ret(0));
    let left = time_left(&t, &hv);
    let after = mono_ns();
    let want = 10 * NSEC + 5;
    assert!(left <= want && left + (after - before) >= want, "{left}");
    // Absolute: a deadline 3.25 s from now on CLOCK_MONOTONIC.
    let at = mono_ns() + 3 * NSEC + NSEC / 4;
    assert_eq!(settime(&t, &hv, 1, at / NSEC, at % NSEC, 0), Outcome::ret(0));
    let now = mono_ns();
    let left = time_left(&t, &hv);
    assert!(left <= at - now && left + (mono_ns() - now) >= at - now, "{left}");
    // The old value comes back relative, interval 0, and a zero value
    // disarms.
    let old = USER_VA + 0x100;
    hv.copy_to_user(old, &[0xaa; 40]).unwrap();
    assert_eq!(settime(&t, &hv, 0, 0, 0, old), Outcome::ret(0));
    let b = hv.copy_from_user(old, 40).unwrap();
    let v = u64s(&b[..32]);
    assert_eq!(&v[..2], &[0, 0]);
    assert!(v[2] <= 3 && v[3] < NSEC && v[2] * NSEC + v[3] > 2 * NSEC, "{v:?}");
    assert_eq!(&b[32..], &[0xaa; 8], "only 32 bytes written");
    assert_eq!(time_left(&t, &hv), 0);
    // A disarmed timer reads back as zero.
    hv.copy_to_user(old, &[0xaa; 32]).unwrap();
    assert_eq!(settime(&t, &hv, 0, 1, 0, old), Outcome::ret(0));
    assert_eq!(hv.copy_from_user(old, 32).unwrap(), vec![0; 32]);
    // A deadline passed reads back as zero left.
    assert_eq!(settime(&t, &hv, 1, 0, 1, 0), Outcome::ret(0));
    assert_eq!(settime(&t, &hv, 0, 0, 0, old), Outcome::ret(0));
    assert_eq!(hv.copy_from_user(old, 32).unwrap(), vec![0; 32]);
    assert_eq!(t.killed(), None);
}

/// The one event `epoll_pwait` reports for the timer, packed as on
/// x86-64: `EPOLLIN`, then the data `SPT_INTERNAL_TIMERFD`.
const TIMER_EVENT: [u8; 12] = [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0];

#[test]
fn epoll_pwait_reports_a_passed_deadline_once() {
    let (hv, _) = setup();
    let t = Table::default();
    let ev = USER_VA + 0xffa; // straddles the two pages
    hv.copy_to_user(ev, &[0xaa; 16]).unwrap();
    assert_eq!(settime(&t, &hv, 1, 0, 1, 0), Outcome::ret(0));
    // Passed: reported at once, without blocking, whatever the timeout.
    assert_eq!(epoll(&t, &hv, ev, 1, 0), Outcome::ret(1));
    let b = hv.copy_from_user(ev, 16).unwrap();
    assert_eq!(&b[..12], &TIMER_EVENT);
    assert_eq!(&b[12..], &[0xaa; 4], "only 12 bytes written");
    // Reported once: the timer is cleared.
    hv.copy_to_user(ev, &[0xaa; 16]).unwrap();
    assert_eq!(epoll(&t, &hv, ev, 1, 0), Outcome::ret(0));
    assert_eq!(hv.copy_from_user(ev, 16).unwrap(), vec![0xaa; 16]);
    // Same with no timeout and more room than one event.
    assert_eq!(settime(&t, &hv, 1, 0, 1, 0), Outcome::ret(0));
    assert_eq!(epoll(&t, &hv, ev, 8, -1), Outcome::ret(1));
    assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &TIMER_EVENT);
    // An events buffer that cannot be written: EFAULT, and the event is
    // still pending.
    assert_eq!(settime(&t, &hv, 1, 0, 1, 0), Outcome::ret(0));
    for bad in [UNMAPPED_VA, RO_VA, UNMAPPED_VA - 4] {
        assert_eq!(epoll(&t, &hv, bad, 1, 0), Outcome::err(errno::EFAULT), "{bad:#x}");
    }
    hv.copy_to_user(ev, &[0xaa; 16]).unwrap();
    assert_eq!(epoll(&t, &hv, ev, 1, 0), Outcome::ret(1));
    assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &TIMER_EVENT);
    assert_eq!(t.killed(), None);
}

#[test]
fn epoll_pwait_refuses_no_room_for_events() {
    let (hv, _) = setup();
    let t = Table::default();
    assert_eq!(settime(&t, &hv, 1, 0, 1, 0), Outcome::ret(0));
    for maxevents in [0, -1, i64::from(i32::MIN)] {
        assert_eq!(epoll(&t, &hv, USER_VA, maxevents, 0), Outcome::err(errno::EINVAL), "{maxevents}");
    }
    // Nothing consumed.
    assert_eq!(epoll(&t, &hv, USER_VA, 1, 0), Outcome::ret(1));
}

fn blocked_until(o: &Outcome) -> Instant {
    match o.effects.block {
        Some(Block::Until(at)) => at,
        ref b => panic!("not a timed block: {b:?} in {o:?}"),
    }
}

#[test]
fn epoll_pwait_blocks_until_the_timer_or_the_timeout() {
    let (hv, _) = setup();
    let t = Table::default();
    let ev = USER_VA + 0x200;
    // No timer, no timeout: blocks until the run stops, reports nothing.
    hv.copy_to_user(ev, &[0xaa; 12]).unwrap();
    let r = epoll(&t, &hv, ev, 1, -1);
    assert_eq!(r, Outcome { ret: 0, effects: Effects { block: Some(Block::UntilStopped), ..Default::default() } });
    // No timer, timeout 0: returns at once.
    assert_eq!(epoll(&t, &hv, ev, 1, 0), Outcome::ret(0));
    // No timer, a timeout: blocks for it.
    let t0 = Instant::now();
    let r = epoll(&t, &hv, ev, 1, 20);
    let t1 = Instant::now();
    assert_eq!(r.ret, 0);
    let at = blocked_until(&r);
    let ms20 = Duration::from_millis(20);
    assert!(t0 + ms20 <= at && at <= t1 + ms20, "{:?}", at - t0);
    assert_eq!(hv.copy_from_user(ev, 12).unwrap(), vec![0xaa; 12]);
    // A timer later than the timeout: the timeout, nothing reported, the
    // timer kept.
    assert_eq!(settime(&t, &hv, 0, 10, 0, 0), Outcome::ret(0));
    let t0 = Instant::now();
    let r = epoll(&t, &hv, ev, 1, 30);
    let t1 = Instant::now();
    assert_eq!(r.ret, 0);
    let at = blocked_until(&r);
    let ms30 = Duration::from_millis(30);
    assert!(t0 + ms30 <= at && at <= t1 + ms30, "{:?}", at - t0);
    assert_eq!(hv.copy_from_user(ev, 12).unwrap(), vec![0xaa; 12]);
    assert!(time_left(&t, &hv) > 9 * NSEC);
    // A timer sooner than the timeout (or with none): blocks until the
    // timer, and reports it.
    for timeout in [60_000, -1] {
        let t0 = Instant::now();
        assert_eq!(settime(&t, &hv, 0, 5, 0, 0), Outcome::ret(0));
        let r = epoll(&t, &hv, ev, 1, timeout);
        let t1 = Instant::now();
        assert_eq!(r.ret, 1, "{timeout}");
        let at = blocked_until(&r);
        let s5 = Duration::from_secs(5);
        assert!(t0 + s5 <= at && at <= t1 + s5, "{:?}", at - t0);
        assert_eq!(&hv.copy_from_user(ev, 12).unwrap(), &TIMER_EVENT);
        hv.copy_to_user(ev, &[0xaa; 12]).unwrap();
        assert_eq!(time_left(&t, &hv), 0, "cleared once reported");
    }
    // A timer exactly at the timeout fires.
    let at = mono_ns() + 40_000_000;
    assert_eq!(settime(&t, &hv, 1, at / NSEC, at % NSEC, 0), Outcome::ret(0));
    // The timeout is counted from the call: a timer at most 40 ms away
    // is reported by a 40 ms wait.
    assert_eq!(epoll(&t, &hv, ev, 1, 40).ret, 1);
    assert_eq!(t.killed(), None);
}

/// A manifest (`struct mft`) with the reserved entry and one block
/// device `disk`.
fn manifest() -> Vec<u8> {
    let mut m = vec![1, 0, 0, 0];
    m.extend_from_slice(&2u32.to_le_bytes());
    let mut first = vec![0u8; ENTRY];
    first[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
    m.extend_from_slice(&first);
    let mut e = vec![0u8; ENTRY];
    e[..4].copy_from_slice(b"disk");
    e[68..72].copy_from_slice(&BLOCK_BASIC.to_le_bytes());
    m.extend_from_slice(&e);
    m
}

/// A table with a 1 KiB `disk` (two 512-byte blocks, bytes `i % 251`).
fn with_disk(tag: &str) -> (Table, PathBuf) {
    let p = std::env::temp_dir().join(format!("vmm-solo5-syscalls-{}-{tag}", std::process::id()));
    std::fs::write(&p, (0..1024).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    let devs = Devices::attach(&mut manifest(), &[("disk".into(), p.clone())], &[]).unwrap();
    (Table::new(devs, Default::default()), p)
}

#[test]
fn pread64_and_pwrite64_reach_the_block_device() {
    let (hv, _) = setup();
    let (t, path) = with_disk("rw");
    let fd = FIRST_FD as u64;
    let buf = USER_VA + 0xf00; // straddles the two pages
    let r = call(&t, &hv, nr::PREAD64, [fd, buf, 512, 512, 0, 0]);
    assert_eq!(r, Outcome::ret(512));
    let want: Vec<u8> = (512..1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(hv.copy_from_user(buf, 512).unwrap(), want);
    // Unaligned offsets pass the filter.
    assert_eq!(call(&t, &hv, nr::PREAD64, [fd, buf, 512, 3, 0, 0]), Outcome::ret(512));
    assert_eq!(hv.copy_from_user(buf, 512).unwrap(), (3..515).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    hv.copy_to_user(buf, &[0x5a; 512]).unwrap();
    assert_eq!(call(&t, &hv, nr::PWRITE64, [fd, buf, 512, 0, 0, 0]), Outcome::ret(512));
    let file = std::fs::read(&path).unwrap();
    assert_eq!(&file[..512], &[0x5a; 512]);
    assert_eq!(&file[512..], &want[..]);
    // Buffers that cannot be reached: EFAULT, and nothing moved.
    assert_eq!(call(&t, &hv, nr::PREAD64, [fd, RO_VA, 512, 0, 0, 0]), Outcome::err(errno::EFAULT));
    assert_eq!(call(&t, &hv, nr::PWRITE64, [fd, UNMAPPED_VA - 8, 512, 512, 0, 0]), Outcome::err(errno::EFAULT));
    assert_eq!(std::fs::read(&path).unwrap(), file);
    assert_eq!(t.killed(), None);
    let _ = std::fs::remove_file(path);
}

#[test]
fn block_calls_the_filter_refuses_are_killed() {
    let fd = FIRST_FD as u64;
    for (n, what) in [(nr::PREAD64, "pread64"), (nr::PWRITE64, "pwrite64")] {
        for (i, a) in [
            [fd, USER_VA, 256, 0, 0, 0],
            [fd, USER_VA, 512, 513, 0, 0],
            [fd, USER_VA, 512, u64::MAX, 0, 0],
            [fd + 1, USER_VA, 512, 0, 0, 0],
            [1, USER_VA, 512, 0, 0, 0],
        ]
        .into_iter()
        .enumerate()
        {
            let (hv, _) = setup();
            let (t, path) = with_disk(&format!("kill-{n}-{i}"));
            assert_eq!(call(&t, &hv, n, a), killed_outcome(), "{what} {a:x?}");
            assert_eq!(t.killed(), Some(reason(what, n, a[0], a[1])));
            assert_eq!(std::fs::read(&path).unwrap(), (0..1024).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            let _ = std::fs::remove_file(path);
        }
    }
    // No device at all.
    assert_killed(nr::PREAD64, [fd, USER_VA, 512, 0, 0, 0], "pread64");
}

#[test]
fn allowed_calls_on_other_descriptors_or_clocks_are_killed() {
    assert_killed(nr::WRITE, [2, USER_VA, 5, 0, 0, 0], "write");
    assert_killed(nr::WRITE, [0, USER_VA, 5, 0, 0, 0], "write");
    assert_killed(nr::ARCH_PRCTL, [0x1003, USER_VA, 0, 0, 0, 0], "arch_prctl");
    assert_killed(nr::ARCH_PRCTL, [0x1001, 0, 0, 0, 0, 0], "arch_prctl");
    for clock in [2, 3, 4, 7, u64::MAX] {
        assert_killed(nr::CLOCK_GETTIME, [clock, USER_VA, 0, 0, 0, 0], "clock_gettime");
    }
    assert_killed(nr::TIMERFD_SETTIME, [EPOLL_FD as u64, 0, USER_VA, 0, 0, 0], "timerfd_settime");
    assert_killed(nr::TIMERFD_SETTIME, [TIMER_FD as u64 + 1, 0, USER_VA, 0, 0, 0], "timerfd_settime");
    assert_killed(nr::EPOLL_PWAIT, [TIMER_FD as u64, USER_VA, 1, 0, 0, 0], "epoll_pwait");
    assert_killed(nr::EPOLL_PWAIT, [EPOLL_FD as u64 - 1, USER_VA, 1, 0, 0, 0], "epoll_pwait");
}

#[test]
fn other_calls_are_killed_and_the_first_reason_kept() {
    assert_killed(nr::READ, [0, USER_VA, 0, 0, 0, 0], "read");
    for n in [2, 9, 39, 60, 157, 232, 285, 287, 1 << 32, u64::MAX] {
        assert_killed(n, [n ^ 0x55, 7, 0, 0, 0, 0], "a system call spt does not allow");
    }
    let (hv, _) = setup();
    let t = Table::default();
    assert_eq!(call(&t, &hv, 39, [1, 2, 3, 4, 5, 6]), killed_outcome());
    assert_eq!(call(&t, &hv, nr::READ, [0, 0, 0, 0, 0, 0]), killed_outcome());
    assert_eq!(
        t.killed().as_deref(),
        Some("a system call spt does not allow (nr 39, arguments 0x1, 0x2) is not allowed by the spt policy")
    );
}
