//! One benchmark figure: our measurement, the peer or floor measured in the
//! same repetitions, their ratio, and the targets it is checked against.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::BenchError;
use super::stats::Stat;

/// The unit a figure's values are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Nanoseconds per 4 KiB page.
    NsPerPage,
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// GiB per second.
    GibPerS,
    /// MiB.
    Mib,
}

impl Unit {
    /// The unit as printed.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::NsPerPage => "ns/page",
            Unit::Ns => "ns",
            Unit::Us => "µs",
            Unit::Ms => "ms",
            Unit::GibPerS => "GiB/s",
            Unit::Mib => "MiB",
        }
    }
}

/// How a ratio is formed from a repetition's pair of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// `peer / ours` for times: how many times faster we are.
    Speedup,
    /// `ours / peer` for times: how many times the peer's time we take.
    Times,
    /// `ours / peer` for bandwidths, printed as a percentage.
    Fraction,
    /// `ours / peer - 1` for times, printed as a percentage over the peer.
    Overhead,
}

impl RatioKind {
    fn of(self, ours: f64, peer: f64) -> f64 {
        match self {
            RatioKind::Speedup => peer / ours,
            RatioKind::Times | RatioKind::Fraction => ours / peer,
            RatioKind::Overhead => ours / peer - 1.0,
        }
    }

    /// Formats a ratio value of this kind.
    pub fn format(self, v: f64) -> String {
        match self {
            RatioKind::Speedup => format!("{v:.1}× faster"),
            RatioKind::Times => format!("{v:.2}×"),
            RatioKind::Fraction => format!("{:.0}%", v * 100.0),
            RatioKind::Overhead => format!("{:+.1}%", v * 100.0),
        }
    }
}

/// The peer or floor measured beside ours.
#[derive(Clone, Debug, Serialize)]
pub struct Peer {
    /// What it is.
    pub name: String,
    /// Its statistic over the repetitions.
    pub value: Stat,
    /// Its value in each repetition, in the figure's unit.
    pub samples: Vec<f64>,
}

/// The ratio of ours to the peer, formed per repetition.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ratio {
    /// How it is formed.
    pub kind: RatioKind,
    /// Its statistic over the repetitions.
    pub value: Stat,
}

/// A bound a target sets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
    /// The value must be exactly this (counts).
    Equal(f64),
}

impl Bound {
    fn holds(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(b) => v >= b,
            Bound::AtMost(b) => v <= b,
            Bound::Equal(b) => v == b,
        }
    }
}

/// A target from the issue, checked against this run.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// The target in words.
    pub text: String,
    /// What is checked: `"ratio"`, `"ours"` (medians) or a detail's name.
    pub on: String,
    /// The bound.
    pub bound: Bound,
    /// The value checked.
    pub value: f64,
    /// Whether this run met it.
    pub met: bool,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Stable key, e.g. `"map_kernel_pages.vs_x86_64"`.
    pub id: String,
    /// The suite item it belongs to (1–10).
    pub item: u8,
    /// What is measured.
    pub title: String,
    /// The unit of `ours`, the peer and the samples.
    pub unit: Unit,
    /// Our statistic over the repetitions.
    pub ours: Stat,
    /// Our value in each repetition.
    pub samples: Vec<f64>,
    /// The peer or floor, if the figure has one.
    pub peer: Option<Peer>,
    /// Ours against the peer, per repetition.
    pub ratio: Option<Ratio>,
    /// Exact counts that go with the figure (entries written, tables).
    pub details: BTreeMap<String, f64>,
    /// Targets checked on this figure.
    pub targets: Vec<Target>,
    /// Why a target is missed, or what to keep in mind.
    pub note: Option<String>,
}

impl Figure {
    /// A figure from our samples (one per repetition).
    pub fn new(item: u8, id: &str, title: &str, unit: Unit, samples: Vec<f64>) -> Result<Figure, BenchError> {
        let ours = Stat::of(&samples).ok_or_else(|| BenchError::NoSamples(id.to_string()))?;
        Ok(Figure {
            id: id.to_string(),
            item,
            title: title.to_string(),
            unit,
            ours,
            samples,
            peer: None,
            ratio: None,
            details: BTreeMap::new(),
            targets: Vec::new(),
            note: None,
        })
    }

    /// Adds the peer measured in the same repetitions (paired by index).
    pub fn vs(mut self, name: &str, samples: Vec<f64>, kind: RatioKind) -> Result<Figure, BenchError> {
        let value = Stat::of(&samples).ok_or_else(|| BenchError::NoSamples(format!("{} peer", self.id)))?;
        if samples.len() != self.samples.len() {
            return Err(BenchError::Unpaired(self.id.clone()));
        }
        let ratios: Vec<f64> = self.samples.iter().zip(&samples).map(|(o, p)| kind.of(*o, *p)).collect();
        let ratio = Stat::of(&ratios).ok_or_else(|| BenchError::NoSamples(format!("{} ratio", self.id)))?;
        self.peer = Some(Peer { name: name.to_string(), value, samples });
        self.ratio = Some(Ratio { kind, value: ratio });
        Ok(self)
    }

    /// Records an exact count.
    pub fn detail(mut self, name: &str, v: f64) -> Figure {
        self.details.insert(name.to_string(), v);
        self
    }

    /// Checks the median ratio against `bound`.
    pub fn target_ratio(self, bound: Bound, text: &str) -> Figure {
        let v = self.ratio.map_or(f64::NAN, |r| r.value.median);
        self.target("ratio", v, bound, text)
    }

    /// Checks our median against `bound`.
    pub fn target_ours(self, bound: Bound, text: &str) -> Figure {
        let v = self.ours.median;
        self.target("ours", v, bound, text)
    }

    /// Checks a recorded detail against `bound`.
    pub fn target_detail(self, name: &str, bound: Bound, text: &str) -> Figure {
        let v = self.details.get(name).copied().unwrap_or(f64::NAN);
        self.target(name, v, bound, text)
    }

    fn target(mut self, on: &str, value: f64, bound: Bound, text: &str) -> Figure {
        let met = value.is_finite() && bound.holds(value);
        self.targets.push(Target { text: text.to_string(), on: on.to_string(), bound, value, met });
        self
    }

    /// Adds a note.
    pub fn note(mut self, text: impl Into<String>) -> Figure {
        self.note = Some(text.into());
        self
    }

    /// Adds a note only if a target was missed (the likely reason).
    pub fn note_if_missed(self, text: impl Into<String>) -> Figure {
        if self.all_met() {
            self
        } else {
            self.note(text)
        }
    }

    /// Whether every target on this figure was met.
    pub fn all_met(&self) -> bool {
        self.targets.iter().all(|t| t.met)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_formed_per_repetition() {
        // Pairs (ours, peer): (1, 10), (2, 10), (4, 10) → speed-ups 10, 5, 2.5.
        let f = Figure::new(1, "t", "t", Unit::Ns, vec![1.0, 2.0, 4.0])
            .unwrap()
            .vs("p", vec![10.0, 10.0, 10.0], RatioKind::Speedup)
            .unwrap();
        let r = f.ratio.unwrap().value;
        assert_eq!((r.median, r.min, r.max), (5.0, 2.5, 10.0));
    }

    #[test]
    fn targets_are_checked_on_the_median() {
        let f = Figure::new(1, "t", "t", Unit::Ns, vec![1.0, 2.0, 30.0])
            .unwrap()
            .vs("p", vec![2.0, 2.0, 2.0], RatioKind::Times)
            .unwrap()
            .target_ratio(Bound::AtMost(1.0), "at most the peer")
            .target_ours(Bound::AtLeast(3.0), "at least 3")
            .detail("entries", 1.0)
            .target_detail("entries", Bound::Equal(1.0), "one entry")
            .target_detail("missing", Bound::Equal(0.0), "absent detail fails");
        let met: Vec<bool> = f.targets.iter().map(|t| t.met).collect();
        assert_eq!(met, [true, false, true, false]);
        assert!(!f.all_met());
    }

    #[test]
    fn unpaired_peer_is_an_error() {
        let f = Figure::new(1, "t", "t", Unit::Ns, vec![1.0, 2.0]).unwrap();
        assert!(matches!(f.vs("p", vec![1.0], RatioKind::Times), Err(BenchError::Unpaired(_))));
    }
}
