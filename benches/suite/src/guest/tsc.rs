//! The time stamp counter: reading it on the host, calibrating its rate
//! against the host's monotonic clock, and turning guest cycle counts
//! into nanoseconds and bandwidths.
//!
//! Guest programs time themselves with `rdtsc` at CPL 3 (nothing in the
//! machine sets CR4.TSD). The rate is measured here, on the host, over a
//! short busy window; [`Calibration`] keeps it with the spread of several
//! windows so a report can show how steady it was. That the guest's
//! counter runs at the host's rate is checked per run in
//! [`super::session`] (the guest's first and last readings must fall
//! between the host's readings around the run) rather than assumed.
//!
//! This module does not decide what is measured.

use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Reads the TSC (`lfence; rdtsc`, as the guest programs do).
pub fn now() -> u64 {
    // SAFETY: `lfence` and `rdtsc` read no memory and change nothing but
    // the returned value; both exist on every x86-64 CPU this VMM runs on.
    unsafe {
        std::arch::x86_64::_mm_lfence();
        std::arch::x86_64::_rdtsc()
    }
}

/// The TSC rate of this machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Cycles per second (median of the windows).
    pub hz: f64,
    /// Smallest and largest window's rate, cycles per second.
    pub spread: (f64, f64),
}

/// Rate of one window: `cycles` over `elapsed`.
pub fn rate(cycles: u64, elapsed: Duration) -> Option<f64> {
    let s = elapsed.as_secs_f64();
    (s > 0.0 && cycles > 0).then(|| cycles as f64 / s)
}

/// Median, min and max of window rates; `None` when there are none.
pub fn combine(mut rates: Vec<f64>) -> Option<Calibration> {
    rates.retain(|r| r.is_finite() && *r > 0.0);
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let n = rates.len();
    let hz = if n % 2 == 1 { rates[n / 2] } else { (rates[n / 2 - 1] + rates[n / 2]) / 2.0 };
    Some(Calibration { hz, spread: (rates[0], rates[n - 1]) })
}

/// Measures the rate over `windows` busy windows of `each`.
pub fn calibrate(windows: usize, each: Duration) -> Result<Calibration, BenchError> {
    let mut rates = Vec::with_capacity(windows);
    for _ in 0..windows {
        let (t0, c0) = (Instant::now(), now());
        while t0.elapsed() < each {
            std::hint::spin_loop();
        }
        let (c1, t1) = (now(), Instant::now());
        if let Some(r) = rate(c1.wrapping_sub(c0), t1 - t0) {
            rates.push(r);
        }
    }
    combine(rates).ok_or_else(|| BenchError::Guest {
        item: "TSC calibration".into(),
        reason: "the time stamp counter did not advance".into(),
    })
}

impl Calibration {
    /// Nanoseconds in `cycles`.
    pub fn ns(&self, cycles: f64) -> f64 {
        cycles * 1e9 / self.hz
    }

    /// Nanoseconds per operation for `ops` operations in `cycles`.
    pub fn ns_per_op(&self, cycles: u64, ops: u64) -> f64 {
        if ops == 0 {
            return f64::NAN;
        }
        self.ns(cycles as f64) / ops as f64
    }

    /// GiB per second for `bytes` read in `cycles`.
    pub fn gib_per_s(&self, bytes: u64, cycles: u64) -> f64 {
        if cycles == 0 {
            return f64::NAN;
        }
        let secs = cycles as f64 / self.hz;
        bytes as f64 / secs / f64::from(1u32 << 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ2: Calibration = Calibration { hz: 2e9, spread: (2e9, 2e9) };

    #[test]
    fn conversions_at_a_known_rate() {
        assert_eq!(GHZ2.ns(2000.0), 1000.0);
        assert_eq!(GHZ2.ns_per_op(2_000_000, 1000), 1000.0);
        assert!(GHZ2.ns_per_op(1, 0).is_nan());
        // 2 GiB in one second (2e9 cycles) is 2 GiB/s.
        assert_eq!(GHZ2.gib_per_s(2 << 30, 2_000_000_000), 2.0);
        assert!(GHZ2.gib_per_s(1, 0).is_nan());
    }

    #[test]
    fn windows_combine_to_the_median_with_their_spread() {
        assert_eq!(rate(3_000_000, Duration::from_millis(1)), Some(3e9));
        assert_eq!(rate(0, Duration::from_millis(1)), None);
        assert_eq!(rate(5, Duration::ZERO), None);
        let c = combine(vec![3e9, 1e9, 2e9, f64::NAN]).unwrap();
        assert_eq!((c.hz, c.spread), (2e9, (1e9, 3e9)));
        assert_eq!(combine(vec![1e9, 3e9]).unwrap().hz, 2e9);
        assert!(combine(vec![]).is_none());
    }

    #[test]
    fn the_host_counter_runs() {
        let c = calibrate(3, Duration::from_millis(2)).unwrap();
        // Any x86-64 TSC runs between 100 MHz and 10 GHz.
        assert!(c.hz > 1e8 && c.hz < 1e10, "{c:?}");
        assert!(c.spread.0 <= c.hz && c.hz <= c.spread.1);
    }
}
