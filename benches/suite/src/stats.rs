//! Summary statistics over repetitions: median and the min–max range.

use serde::Serialize;

/// Median, minimum and maximum of a set of repetitions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest repetition.
    pub min: f64,
    /// The largest repetition.
    pub max: f64,
    /// How many repetitions.
    pub reps: usize,
}

impl Stat {
    /// Summarises `samples`; `None` if there are none or any is not finite.
    pub fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stat { median, min: v[0], max: v[n - 1], reps: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.reps), (3.0, 1.0, 5.0, 3));
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn empty_or_non_finite_is_none() {
        assert!(Stat::of(&[]).is_none());
        assert!(Stat::of(&[1.0, f64::NAN]).is_none());
        assert!(Stat::of(&[f64::INFINITY]).is_none());
    }
}
