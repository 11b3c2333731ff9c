//! `alarm`, `setitimer` and `getitimer` for `ITIMER_REAL`; the timer
//! itself and what its expiry does are in `signal::timer`.

use std::time::{Duration, Instant};

use super::ctx::{ret, Ctx};
use crate::guest::kinds::linux::signal::timer::RealTimer;
use crate::hosted::hypercall::Outcome;

/// `ITIMER_REAL`.
const ITIMER_REAL: u64 = 0;

/// `struct itimerval` of `(interval, value)`.
fn itimerval(interval: Duration, value: Duration) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    for d in [interval, value] {
        b.extend_from_slice(&d.as_secs().to_le_bytes());
        b.extend_from_slice(&u64::from(d.subsec_micros()).to_le_bytes());
    }
    b
}

/// A `struct timeval` read from the program: `EINVAL` for a negative
/// value or microseconds of a second or more.
fn timeval(b: &[u8]) -> Result<Duration, i32> {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    let sec = i64::from_le_bytes(w);
    w.copy_from_slice(&b[8..16]);
    let usec = i64::from_le_bytes(w);
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(libc::EINVAL);
    }
    Ok(Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64))
}

/// The timer now, as `(interval, value)`.
fn current(c: &Ctx<'_>, now: Instant) -> (Duration, Duration) {
    c.linux.proc().itimer_real.map_or((Duration::ZERO, Duration::ZERO), |t| (t.interval, t.left(now)))
}

fn arm(c: &Ctx<'_>, now: Instant, interval: Duration, value: Duration) {
    c.linux.proc().itimer_real = (!value.is_zero()).then(|| RealTimer { deadline: now + value, interval });
}

/// `alarm(seconds)`: the seconds left of the previous alarm (rounded as
/// Linux does: to the nearest second, at least 1 if any time was left).
pub fn alarm(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let now = Instant::now();
    let (_, left) = current(c, now);
    arm(c, now, Duration::ZERO, Duration::from_secs(a[0] & 0xffff_ffff));
    let mut secs = left.as_secs();
    if left.subsec_micros() >= 500_000 || (secs == 0 && !left.is_zero()) {
        secs += 1;
    }
    Outcome::ret(secs as i64)
}

/// `getitimer(which, value)`.
pub fn getitimer(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if a[0] != ITIMER_REAL {
        return Outcome::err(libc::EINVAL);
    }
    let (interval, value) = current(c, Instant::now());
    ret(c.hv.write_user(c.vcpu, a[1], &itimerval(interval, value)).map(|()| 0))
}

/// `setitimer(which, new, old)`.
pub fn setitimer(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [which, new, old, ..] = a;
    let r = (|| {
        if which != ITIMER_REAL {
            return Err(libc::EINVAL);
        }
        let want = if new != 0 {
            let b = c.hv.read_user(c.vcpu, new, 32)?;
            Some((timeval(&b[..16])?, timeval(&b[16..])?))
        } else {
            None
        };
        let now = Instant::now();
        let (interval, value) = current(c, now);
        if old != 0 {
            c.hv.write_user(c.vcpu, old, &itimerval(interval, value))?;
        }
        if let Some((interval, value)) = want {
            arm(c, now, interval, value);
        }
        Ok(0)
    })();
    ret(r)
}

/// `pause()` and `rt_sigsuspend(mask, size)` without the caller's
/// registers: served in `GuestKind::syscall_in`, which has them.
/// Reached only through `GuestKind::syscall`, where nothing can wake
/// them: `EINTR` at once.
pub fn wait_for_signal(_c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::err(libc::EINTR)
}
