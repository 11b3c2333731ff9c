//! The process's real-time interval timer (`ITIMER_REAL`, which `alarm`
//! sets too): when it expires, `SIGALRM` becomes pending. It is looked
//! at whenever a system call returns, and a `pause`, `rt_sigsuspend` or
//! `nanosleep` sleeps until it expires at most (the sleep then ends with
//! `EINTR`).
//!
//! What this does not do: interrupt a program that makes no system call
//! (nothing kicks the vCPU when the timer expires).
//! `ITIMER_VIRTUAL` and `ITIMER_PROF` are not kept.

use std::time::{Duration, Instant};

use super::info::{code, Fields, SigInfo};

/// `SIGALRM`.
pub const SIGALRM: u32 = 14;

/// An armed `ITIMER_REAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealTimer {
    /// When it expires next.
    pub deadline: Instant,
    /// Its period (zero: once).
    pub interval: Duration,
}

impl RealTimer {
    /// Time left at `now` (zero once expired).
    pub fn left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

/// The `SIGALRM` a timer sends (from the kernel: `SI_KERNEL`).
pub fn alarm_info() -> SigInfo {
    SigInfo { signo: SIGALRM, code: code::SI_KERNEL, fields: Fields::Sender { pid: 0, uid: 0 } }
}

/// If `t` expired at `now`: `true`, and `t` rearmed for its next period
/// after `now` (or disarmed).
pub fn expire(t: &mut Option<RealTimer>, now: Instant) -> bool {
    let Some(r) = t else { return false };
    if r.deadline > now {
        return false;
    }
    if r.interval.is_zero() {
        *t = None;
    } else {
        // Periods missed while nobody looked expire as one signal (a
        // pending signal is pending once).
        let late = now.duration_since(r.deadline).as_nanos();
        let periods = late / r.interval.as_nanos() + 1;
        let step = r.interval.saturating_mul(u32::try_from(periods).unwrap_or(u32::MAX));
        r.deadline += step;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_shot_timer_expires_once_and_a_periodic_one_rearms_after_now() {
        let t0 = Instant::now();
        let mut once = Some(RealTimer { deadline: t0 + Duration::from_millis(10), interval: Duration::ZERO });
        assert!(!expire(&mut once, t0));
        assert!(expire(&mut once, t0 + Duration::from_millis(10)));
        assert_eq!(once, None);
        assert!(!expire(&mut once, t0 + Duration::from_secs(1)));
        let ms = Duration::from_millis;
        let mut per = Some(RealTimer { deadline: t0 + ms(10), interval: ms(10) });
        assert!(expire(&mut per, t0 + ms(35)));
        assert_eq!(per.map(|r| r.deadline), Some(t0 + ms(40)));
        assert_eq!(per.map(|r| r.left(t0 + ms(35))), Some(ms(5)));
    }
}
