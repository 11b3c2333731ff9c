//! The Linux system calls Solo5's `spt` bindings make, served with
//! Linux's numbers and semantics, each argument checked as a hypercall's
//! is. What `solo5-spt`'s seccomp filter would not allow (another call,
//! or an allowed call on another descriptor or clock) ends the run as
//! that filter does: killed by `SIGSYS`.
//!
//! `pread64`/`pwrite64` reach the unikernel's block devices (`block.rs`),
//! `read`/`write` its network devices (`net.rs`), under the same rules
//! `solo5-spt`'s filter sets for them.
//!
//! Yielding (`solo5_yield`) arms the unikernel's timer with
//! `timerfd_settime` and waits in `epoll_pwait`; here the timer is a
//! deadline and the wait blocks the vCPU until it, so a sleeping
//! unikernel costs no CPU. With network devices attached, the wait is a
//! `ppoll` of their taps on the vCPU thread (in slices, so that a run
//! that stops ends it), and `epoll_pwait` reports each device with a
//! frame pending by its manifest index, as `solo5-spt`'s epoll set does,
//! besides the timer once it is due.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use guest_mm::errno;

use super::block::Devices;
use super::clock::ClockPage;
use super::layout::{EPOLL_FD, TIMER_FD};
use super::net::Nets;
use super::numbers::nr;
use crate::hosted::hypercall::{Args, Block, Effects, HostedKernel, Outcome};

const ARCH_SET_FS: u64 = 0x1002;
const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const TFD_TIMER_ABSTIME: u64 = 1;
const EPOLLIN: u32 = 1;
/// `epoll_event.data` of the internal timer (`SPT_INTERNAL_TIMERFD`).
const TIMER_EVENT_DATA: u64 = 0xffff_fffe;
/// The exit status of a process killed by `SIGSYS` (128 + 31).
pub const SIGSYS_STATUS: i32 = 159;
const NSEC: u64 = 1_000_000_000;
/// The longest a wait on the network devices goes without checking
/// whether the run is stopping.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// The state behind the table: the timer, the block devices, and why
/// the run was killed.
#[derive(Debug, Default)]
pub struct Table {
    /// The attached block devices.
    blocks: Devices,
    /// The attached network devices.
    nets: Nets,
    /// Deadline of the armed timer, in `CLOCK_MONOTONIC` nanoseconds
    /// (when there is no clock page).
    timer: Mutex<Option<u64>>,
    /// The clock page, where the trampoline answers `clock_gettime` and
    /// `timerfd_settime` itself ([`super::fastcall`]): the timer lives
    /// there then.
    clock: OnceLock<ClockPage>,
    /// The call that killed the run, if one did.
    killed: Mutex<Option<String>>,
}

fn name(n: u64) -> &'static str {
    match n {
        nr::READ => "read",
        nr::WRITE => "write",
        nr::PREAD64 => "pread64",
        nr::PWRITE64 => "pwrite64",
        nr::ARCH_PRCTL => "arch_prctl",
        nr::CLOCK_GETTIME => "clock_gettime",
        nr::EPOLL_PWAIT => "epoll_pwait",
        nr::TIMERFD_SETTIME => "timerfd_settime",
        _ => "a system call spt does not allow",
    }
}

/// Reads a clock as nanoseconds.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes
    // only into it and cannot fail for these two clocks.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(NSEC).saturating_add(ts.tv_nsec as u64)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

impl Table {
    /// A table serving the block devices `blocks` and the network
    /// devices `nets`.
    pub fn new(blocks: Devices, nets: Nets) -> Self {
        Table { blocks, nets, ..Default::default() }
    }

    /// Serves the timer and clock from `page` from now on.
    pub fn use_clock_page(&self, page: ClockPage) {
        let _ = self.clock.set(page);
    }

    /// The armed timer's deadline.
    fn timer(&self, hv: &HostedKernel) -> Option<u64> {
        match self.clock.get() {
            Some(c) => c.timer(hv),
            None => *self.timer.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Arms or disarms the timer.
    fn set_timer(&self, hv: &HostedKernel, deadline: Option<u64>) {
        match self.clock.get() {
            Some(c) => c.set_timer(hv, deadline),
            None => *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = deadline,
        }
    }

    /// The unikernel's `CLOCK_MONOTONIC` and `CLOCK_REALTIME` now: the
    /// host's, or with a clock page the page's re-anchored time (never
    /// behind what the trampoline gave it).
    fn clocks(&self, hv: &HostedKernel) -> (u64, u64) {
        match self.clock.get() {
            Some(c) => {
                let (mono, real_minus_mono) = c.refresh(hv);
                (mono, mono.wrapping_add(real_minus_mono))
            }
            None => (clock_ns(libc::CLOCK_MONOTONIC), clock_ns(libc::CLOCK_REALTIME)),
        }
    }

    /// Why the run was killed by `SIGSYS`, if it was.
    pub fn killed(&self) -> Option<String> {
        self.killed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ends the run as a seccomp kill would.
    fn kill(&self, args: &Args) -> Outcome {
        let what = format!(
            "{} (nr {}, arguments {:#x}, {:#x}) is not allowed by the spt policy",
            name(args.nr),
            args.nr,
            args.a[0],
            args.a[1]
        );
        log::warn!("solo5: killed by SIGSYS: {what}");
        self.killed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(what);
        Outcome { ret: 0, effects: Effects { exit_group: Some(SIGSYS_STATUS), ..Default::default() } }
    }

    /// Serves one system call.
    pub fn call(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> Outcome {
        let [a0, a1, a2, a3, _, _] = args.a;
        match args.nr {
            nr::WRITE if a0 == 1 => hv.dispatch(vcpu, args),
            nr::WRITE => self.nets.write(hv, args).unwrap_or_else(|| self.kill(args)),
            nr::READ => self.nets.read(hv, args).unwrap_or_else(|| self.kill(args)),
            nr::EXIT_GROUP => hv.dispatch(vcpu, args),
            nr::ARCH_PRCTL if a0 == ARCH_SET_FS => {
                // Linux refuses a base outside the user half.
                if a1 >= 1 << 47 {
                    return Outcome::err(errno::EPERM);
                }
                Outcome { ret: 0, effects: Effects { fs_base: Some(a1), ..Default::default() } }
            }
            nr::CLOCK_GETTIME if a0 == CLOCK_REALTIME || a0 == CLOCK_MONOTONIC => {
                let (mono, real) = self.clocks(hv);
                let ns = if a0 == CLOCK_REALTIME { real } else { mono };
                let mut ts = (ns / NSEC).to_le_bytes().to_vec();
                ts.extend_from_slice(&(ns % NSEC).to_le_bytes());
                match hv.copy_to_user(a1, &ts) {
                    Ok(()) => Outcome::ret(0),
                    Err(e) => Outcome::err(e),
                }
            }
            nr::TIMERFD_SETTIME if a0 == TIMER_FD as u64 => self.timerfd_settime(hv, a1, a2, a3),
            nr::EPOLL_PWAIT if a0 == EPOLL_FD as u64 && self.nets.is_empty() => {
                self.epoll_pwait(hv, a1, a2 as i32, a3 as i32)
            }
            nr::EPOLL_PWAIT if a0 == EPOLL_FD as u64 => self.epoll_pwait_nets(hv, a1, a2 as i32, a3 as i32),
            nr::PREAD64 | nr::PWRITE64 => self.blocks.call(hv, args).unwrap_or_else(|| self.kill(args)),
            _ => self.kill(args),
        }
    }

    /// `timerfd_settime(timerfd, flags, new, old)`: arms (or, with a zero
    /// value, disarms) the one-shot timer.
    fn timerfd_settime(&self, hv: &HostedKernel, flags: u64, new: u64, old: u64) -> Outcome {
        if flags & !TFD_TIMER_ABSTIME != 0 {
            return Outcome::err(errno::EINVAL);
        }
        let spec = match hv.copy_from_user(new, 32) {
            Ok(b) => b,
            Err(e) => return Outcome::err(e),
        };
        let (sec, nsec) = (u64_at(&spec, 16), u64_at(&spec, 24));
        if nsec >= NSEC || sec > i64::MAX as u64 {
            return Outcome::err(errno::EINVAL);
        }
        if old != 0 {
            // The previous setting, as a relative time: nothing is
            // periodic here, so the interval is zero.
            let left = self.timer(hv).map_or(0, |d| d.saturating_sub(self.clocks(hv).0));
            let mut b = vec![0u8; 16];
            b.extend_from_slice(&(left / NSEC).to_le_bytes());
            b.extend_from_slice(&(left % NSEC).to_le_bytes());
            if let Err(e) = hv.copy_to_user(old, &b) {
                return Outcome::err(e);
            }
        }
        let value = sec.saturating_mul(NSEC).saturating_add(nsec);
        let deadline = match value {
            0 => None,
            v if flags & TFD_TIMER_ABSTIME != 0 => Some(v),
            v => Some(self.clocks(hv).0.saturating_add(v)),
        };
        self.set_timer(hv, deadline);
        Outcome::ret(0)
    }

    /// `epoll_pwait(epollfd, events, maxevents, timeout, ...)`: the only
    /// descriptor in the set is the timer, so this waits for it (or for
    /// `timeout` milliseconds, `-1` for ever) and reports it.
    fn epoll_pwait(&self, hv: &HostedKernel, events: u64, maxevents: i32, timeout: i32) -> Outcome {
        if maxevents <= 0 {
            return Outcome::err(errno::EINVAL);
        }
        let now = self.clocks(hv).0;
        let timer = self.timer(hv);
        let limit = (timeout >= 0).then(|| now.saturating_add(u64::try_from(timeout).unwrap_or(0) * 1_000_000));
        let fires = match (timer, limit) {
            (Some(t), Some(l)) => t <= l,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wake = if fires { timer } else { limit };
        let block = match wake {
            Some(at) if at > now => Some(Block::Until(Instant::now() + Duration::from_nanos(at - now))),
            Some(_) => None,
            None => Some(Block::UntilStopped),
        };
        if !fires {
            return Outcome { ret: 0, effects: Effects { block, ..Default::default() } };
        }
        // One event: { u32 events; u64 data } packed, as on x86-64.
        let mut ev = EPOLLIN.to_le_bytes().to_vec();
        ev.extend_from_slice(&TIMER_EVENT_DATA.to_le_bytes());
        if let Err(e) = hv.copy_to_user(events, &ev) {
            return Outcome::err(e);
        }
        self.set_timer(hv, None);
        Outcome { ret: 1, effects: Effects { block, ..Default::default() } }
    }

    /// `epoll_pwait` with network devices in the set: waits (polling
    /// their taps, in slices of at most [`POLL_SLICE`]) until a frame is
    /// pending, the timer is due, `timeout` milliseconds pass (`-1`:
    /// never) or the run stops; reports the ready devices (by manifest
    /// index) and then the timer, at most `maxevents` of them.
    fn epoll_pwait_nets(&self, hv: &HostedKernel, events: u64, maxevents: i32, timeout: i32) -> Outcome {
        let Ok(max) = usize::try_from(maxevents) else {
            return Outcome::err(errno::EINVAL);
        };
        if max == 0 {
            return Outcome::err(errno::EINVAL);
        }
        let start = self.clocks(hv).0;
        let limit = u64::try_from(timeout).ok().map(|ms| start.saturating_add(ms.saturating_mul(1_000_000)));
        let timer = self.timer(hv);
        loop {
            let now = clock_ns(libc::CLOCK_MONOTONIC);
            let wake = [timer, limit].into_iter().flatten().min();
            let wait = wake.map_or(POLL_SLICE, |w| Duration::from_nanos(w.saturating_sub(now)).min(POLL_SLICE));
            let ready = self.nets.ready(wait);
            let now = clock_ns(libc::CLOCK_MONOTONIC);
            let timer_due = timer.is_some_and(|t| t <= now);
            if ready.is_empty() && !timer_due {
                if limit.is_some_and(|l| l <= now) || hv.is_stopping() {
                    return Outcome::ret(0);
                }
                continue;
            }
            let mut list: Vec<(u32, u64)> = ready.into_iter().map(|(handle, ev)| (ev, handle)).collect();
            if timer_due {
                list.push((EPOLLIN, TIMER_EVENT_DATA));
            }
            list.truncate(max);
            // { u32 events; u64 data } packed, as on x86-64.
            let bytes: Vec<u8> =
                list.iter().flat_map(|&(ev, data)| ev.to_le_bytes().into_iter().chain(data.to_le_bytes())).collect();
            if let Err(e) = hv.copy_to_user(events, &bytes) {
                return Outcome::err(e);
            }
            if list.iter().any(|&(_, data)| data == TIMER_EVENT_DATA) {
                self.set_timer(hv, None);
            }
            return Outcome::ret(list.len() as i64);
        }
    }
}
