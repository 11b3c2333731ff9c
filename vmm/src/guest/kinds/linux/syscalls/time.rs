//! Clocks and sleeps. A sleep blocks the vCPU (it costs no CPU and ends
//! early when the run stops), or gives it to another process. It is a
//! call made again until its deadline (kept in `Proc::sleep`), so a
//! signal ends it: `EINTR` with the time left, also with `SA_RESTART`
//! (Linux's `ERESTART_RESTARTBLOCK`), and a signal from another process
//! wakes it at once (`kill`), as does `SIGALRM`.

use std::time::{Duration, Instant};

use super::ctx::{ret, Ctx, RESTART};
use crate::hosted::hypercall::{Block, Effects, Outcome};

const NSEC: u64 = 1_000_000_000;

fn now(clock: libc::clockid_t) -> Option<(u64, u64)> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec that clock_gettime only writes.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    (r == 0).then_some((ts.tv_sec as u64, ts.tv_nsec as u64))
}

/// Clocks a program may read (the host's, by the same numbers).
fn host_clock(id: u64) -> Result<libc::clockid_t, i32> {
    match id {
        0..=7 | 9 | 11 => Ok(id as libc::clockid_t),
        _ => Err(libc::EINVAL),
    }
}

fn timespec(sec: u64, nsec: u64) -> Vec<u8> {
    let mut b = sec.to_le_bytes().to_vec();
    b.extend_from_slice(&nsec.to_le_bytes());
    b
}

/// `clock_gettime(clock, tp)`.
pub fn clock_gettime(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = host_clock(a[0]).and_then(|clk| {
        let (s, ns) = now(clk).ok_or(libc::EINVAL)?;
        c.hv.write_user(c.vcpu, a[1], &timespec(s, ns)).map(|()| 0)
    });
    ret(r)
}

/// `clock_getres(clock, res)`.
pub fn clock_getres(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = host_clock(a[0]).and_then(|_| {
        if a[1] == 0 {
            Ok(0)
        } else {
            c.hv.write_user(c.vcpu, a[1], &timespec(0, 1)).map(|()| 0)
        }
    });
    ret(r)
}

/// `gettimeofday(tv, tz)`.
pub fn gettimeofday(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        if a[0] != 0 {
            let (s, ns) = now(libc::CLOCK_REALTIME).ok_or(libc::EINVAL)?;
            c.hv.write_user(c.vcpu, a[0], &timespec(s, ns / 1000))?;
        }
        if a[1] != 0 {
            c.hv.write_user(c.vcpu, a[1], &[0u8; 8])?;
        }
        Ok(0)
    })();
    ret(r)
}

/// `time(t)`.
pub fn time(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let s = now(libc::CLOCK_REALTIME).map_or(0, |t| t.0);
    if a[0] != 0 {
        if let Err(e) = c.hv.write_user(c.vcpu, a[0], &s.to_le_bytes()) {
            return Outcome::err(e);
        }
    }
    Outcome::ret(s as i64)
}

fn sleep(c: &Ctx<'_>, req: u64, rem: u64, abs_clock: Option<libc::clockid_t>) -> Outcome {
    let b = match c.hv.read_user(c.vcpu, req, 16) {
        Ok(b) => b,
        Err(e) => return Outcome::err(e),
    };
    let sec = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let nsec = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    if nsec >= NSEC || sec > i64::MAX as u64 {
        return Outcome::err(libc::EINVAL);
    }
    let now_i = Instant::now();
    let again = c.linux.proc().sleep.filter(|&(r, _)| r == req).map(|(_, d)| d);
    let deadline = match again {
        Some(d) => Some(d),
        None => {
            let want = Duration::new(sec, nsec as u32);
            let d = match abs_clock.and_then(now) {
                Some((s, ns)) => want.saturating_sub(Duration::new(s, ns as u32)),
                None => want,
            };
            now_i.checked_add(d)
        }
    };
    if super::super::signal::interrupting(c.linux).is_some() {
        c.linux.proc().sleep = None;
        if rem != 0 && abs_clock.is_none() {
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now_i));
            let left = timespec(left.as_secs().min(i64::MAX as u64), u64::from(left.subsec_nanos()));
            if let Err(e) = c.hv.write_user(c.vcpu, rem, &left) {
                return Outcome::err(e);
            }
        }
        return Outcome::err(libc::EINTR);
    }
    let Some(deadline) = deadline.filter(|&d| d > now_i) else {
        c.linux.proc().sleep = None;
        return Outcome::ret(0);
    };
    let wake = {
        let mut p = c.linux.proc();
        p.sleep = Some((req, deadline));
        p.itimer_real.map_or(deadline, |t| t.deadline.min(deadline))
    };
    Outcome { ret: RESTART, effects: Effects { block: Some(Block::Until(wake)), ..Default::default() } }
}

/// `nanosleep(req, rem)`.
pub fn nanosleep(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    sleep(c, a[0], a[1], None)
}

/// `clock_nanosleep(clock, flags, req, rem)`.
pub fn clock_nanosleep(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let clk = match host_clock(a[0]) {
        Ok(c) => c,
        Err(e) => return Outcome::err(e),
    };
    const TIMER_ABSTIME: u64 = 1;
    sleep(c, a[2], a[3], (a[1] & TIMER_ABSTIME != 0).then_some(clk))
}
