//! The host's side of the Solo5 clock page ([`super::fastcall`]): the
//! anchor the trampoline extrapolates the time from, kept true against
//! the host's clocks, and the timer deadline stored there.
//!
//! The trampoline computes `MONO_BASE + ((tsc - TSC_BASE) * MULT) >> 32`.
//! The host sets the first anchor at load with `MULT = 0` (every
//! `clock_gettime` exits), and at each exit that reads the time
//! ([`ClockPage::refresh`]): re-anchors at the current TSC, with
//! `MONO_BASE` the larger of the host's `CLOCK_MONOTONIC` and what the
//! unikernel would read now (so its monotonic clock never goes back, and
//! never falls behind the host's for longer than one span between exits),
//! and sets `MULT` from the TSC and host clock over the whole run since
//! the first anchor once that span is at least [`CALIBRATION_SPAN_NS`]
//! (so the rate gets more exact the longer the run).
//!
//! The page is in the unikernel's memory: every value read back from it
//! is treated as the guest's (no trust, no panic).

use std::sync::Mutex;

use super::fastcall::{field, CLOCK_PAGE_VA, DISARMED};
use crate::hosted::hypercall::HostedKernel;

/// The shortest span of TSC against host clock a rate is taken from.
pub const CALIBRATION_SPAN_NS: u64 = 1_000_000;

const NSEC: u64 = 1_000_000_000;

/// The anchor fields of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// TSC at the anchor.
    pub tsc_base: u64,
    /// `CLOCK_MONOTONIC` at the anchor, ns.
    pub mono_base: u64,
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC`, ns (wrapping).
    pub real_minus_mono: u64,
    /// ns per tick, 32.32; 0 = not calibrated.
    pub mult: u64,
}

impl Anchor {
    /// What the trampoline computes for `CLOCK_MONOTONIC` at `tsc`
    /// (`None` while uncalibrated: it exits then).
    pub fn extrapolate(&self, tsc: u64) -> Option<u64> {
        if self.mult == 0 {
            return None;
        }
        let delta = tsc.saturating_sub(self.tsc_base);
        // As `mul` then `shrd rax, rdx, 32`: the low 64 bits of the
        // 128-bit product shifted right by 32.
        Some((((u128::from(delta) * u128::from(self.mult)) >> 32) as u64).wrapping_add(self.mono_base))
    }
}

/// One reading of the host's clocks and TSC, taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The TSC.
    pub tsc: u64,
    /// `CLOCK_MONOTONIC`, ns.
    pub mono: u64,
    /// `CLOCK_REALTIME`, ns.
    pub real: u64,
}

/// The next anchor after `prev` (as read from the page), given the first
/// anchor `first` (`(tsc, mono)`) and the host's `now`.
pub fn next_anchor(prev: Anchor, first: (u64, u64), now: Now) -> Anchor {
    let guest_now = prev.extrapolate(now.tsc).unwrap_or(0);
    let mono_base = now.mono.max(guest_now);
    let (span_tsc, span_ns) = (now.tsc.saturating_sub(first.0), now.mono.saturating_sub(first.1));
    let mult = if span_ns >= CALIBRATION_SPAN_NS && span_tsc > 0 {
        u64::try_from((u128::from(span_ns) << 32) / u128::from(span_tsc)).unwrap_or(0)
    } else {
        prev.mult
    };
    Anchor { tsc_base: now.tsc, mono_base, real_minus_mono: now.real.wrapping_sub(now.mono), mult }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes
    // only into it and cannot fail for the clocks used here.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(NSEC).saturating_add(ts.tv_nsec as u64)
}

/// The host's clocks and TSC now.
pub fn now() -> Now {
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    // SAFETY: `rdtsc` reads the time stamp counter and nothing else.
    let tsc = unsafe { std::arch::x86_64::_rdtsc() };
    let real = clock_ns(libc::CLOCK_REALTIME);
    Now { tsc, mono, real }
}

/// The first anchor, written into the page at load.
pub fn first_anchor(now: Now) -> Anchor {
    Anchor { tsc_base: now.tsc, mono_base: now.mono, real_minus_mono: now.real.wrapping_sub(now.mono), mult: 0 }
}

/// The page of a running unikernel, seen from the host.
#[derive(Debug)]
pub struct ClockPage {
    /// The first anchor: `(tsc, mono)`.
    first: (u64, u64),
    /// Serializes refreshes (one vCPU; kept for soundness).
    lock: Mutex<()>,
}

impl ClockPage {
    /// The page whose first anchor was `first`.
    pub fn new(first: Anchor) -> Self {
        ClockPage { first: (first.tsc_base, first.mono_base), lock: Mutex::new(()) }
    }

    fn read(hv: &HostedKernel, off: u64) -> u64 {
        hv.copy_from_user(CLOCK_PAGE_VA + off, 8).ok().and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
    }

    fn write(hv: &HostedKernel, off: u64, v: u64) {
        // The page is mapped for the whole run; a failure would mean the
        // unikernel has no clock page, and its fast paths then fault.
        let _ = hv.copy_to_user(CLOCK_PAGE_VA + off, &v.to_le_bytes());
    }

    /// Re-anchors the page at the host's time now; returns the
    /// unikernel's `CLOCK_MONOTONIC` now (never below what it could have
    /// read before) and `CLOCK_REALTIME - CLOCK_MONOTONIC`.
    pub fn refresh(&self, hv: &HostedKernel) -> (u64, u64) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let prev = Anchor {
            tsc_base: Self::read(hv, field::TSC_BASE),
            mono_base: Self::read(hv, field::MONO_BASE),
            real_minus_mono: Self::read(hv, field::REAL_MINUS_MONO),
            mult: Self::read(hv, field::MULT),
        };
        let a = next_anchor(prev, self.first, now());
        Self::write(hv, field::TSC_BASE, a.tsc_base);
        Self::write(hv, field::MONO_BASE, a.mono_base);
        Self::write(hv, field::REAL_MINUS_MONO, a.real_minus_mono);
        Self::write(hv, field::MULT, a.mult);
        (a.mono_base, a.real_minus_mono)
    }

    /// The armed timer's deadline, if one is armed.
    pub fn timer(&self, hv: &HostedKernel) -> Option<u64> {
        Some(Self::read(hv, field::TIMER)).filter(|&t| t != DISARMED)
    }

    /// Arms (`Some`) or disarms the timer.
    pub fn set_timer(&self, hv: &HostedKernel, deadline: Option<u64>) {
        Self::write(hv, field::TIMER, deadline.map_or(DISARMED, |d| d.min(DISARMED - 1)));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn uncalibrated_until_a_millisecond_has_passed_then_the_rate_of_the_span() {
        let first = first_anchor(Now { tsc: 1_000, mono: 5_000, real: 9_000 });
        let a = next_anchor(first, (1_000, 5_000), Now { tsc: 2_000, mono: 5_500, real: 9_500 });
        assert_eq!(a.mult, 0);
        assert_eq!(a.extrapolate(3_000), None);
        // 3 GHz: 3,000,000 ticks in 1 ms.
        let b = next_anchor(a, (1_000, 5_000), Now { tsc: 3_001_000, mono: 1_005_000, real: 1_009_000 });
        assert_eq!(b.mult, (1u64 << 32) / 3);
        // One more millisecond later the trampoline reads about +1 ms.
        let t = b.extrapolate(6_001_000).unwrap();
        assert!(t.abs_diff(2_005_000) <= 1, "{t}");
        assert_eq!(b.real_minus_mono, 4_000);
    }

    proptest! {
        /// Whatever the host's clock does against the TSC (a rate error,
        /// a reading late or early), the unikernel's monotonic clock read
        /// just before a re-anchor is never above what it reads just
        /// after it, and never behind the host's.
        #[test]
        fn the_unikernels_clock_never_goes_back(
            steps in proptest::collection::vec((1u64..50_000_000, 0u64..2_000_000, 0u64..4_000_000), 1..40),
            khz in 500_000u64..5_000_000,
        ) {
            let start = Now { tsc: 77, mono: 1_000_000_000, real: 5 };
            let mut a = first_anchor(start);
            let (mut tsc, mut mono) = (start.tsc, start.mono);
            for (ticks, jitter, host_ns_extra) in steps {
                tsc += ticks;
                // The host clock follows the TSC at `khz`, give or take.
                mono = mono.max(start.mono + (tsc - start.tsc) * 1_000_000 / khz + host_ns_extra - jitter.min(host_ns_extra));
                let before = a.extrapolate(tsc);
                a = next_anchor(a, (start.tsc, start.mono), Now { tsc, mono, real: mono });
                let after = a.extrapolate(tsc).unwrap_or(a.mono_base);
                if let Some(b) = before {
                    prop_assert!(after >= b, "went back: {b} -> {after}");
                }
                prop_assert!(a.mono_base >= mono);
            }
        }
    }
}
