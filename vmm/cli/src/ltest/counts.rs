//! The totals a test program reports: kselftest's six counters
//! (`pass fail xfail xpass skip error`) and LTP's two more (`broken`,
//! `warn`), in one record, and the names the expectations and the host
//! results use for them. It does not parse anything ([`super::tap`],
//! [`super::ltp`] and [`super::baseline`] do).

use std::fmt;

use serde::Serialize;

/// One counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// kselftest `pass`, LTP `passed` (TPASS).
    Pass,
    /// kselftest `fail`, LTP `failed` (TFAIL).
    Fail,
    /// kselftest `xfail`: an expected failure.
    Xfail,
    /// kselftest `xpass`: an unexpected pass.
    Xpass,
    /// kselftest `skip`, LTP `skipped` (TCONF).
    Skip,
    /// kselftest `error`.
    Error,
    /// LTP `broken` (TBROK).
    Broken,
    /// LTP `warnings` (TWARN).
    Warn,
}

impl Key {
    /// Every key, in the order they are printed.
    pub const ALL: [Key; 8] =
        [Key::Pass, Key::Fail, Key::Xfail, Key::Xpass, Key::Skip, Key::Error, Key::Broken, Key::Warn];

    /// The name in the expectations file and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Key::Pass => "pass",
            Key::Fail => "fail",
            Key::Xfail => "xfail",
            Key::Xpass => "xpass",
            Key::Skip => "skip",
            Key::Error => "error",
            Key::Broken => "broken",
            Key::Warn => "warn",
        }
    }

    /// Counters that mean something went wrong.
    pub const BAD: [Key; 4] = [Key::Fail, Key::Xpass, Key::Error, Key::Broken];
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The counters of one program's run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub pass: u64,
    /// Failed.
    pub fail: u64,
    /// Expected failures.
    pub xfail: u64,
    /// Unexpected passes.
    pub xpass: u64,
    /// Skipped (LTP: TCONF).
    pub skip: u64,
    /// kselftest errors.
    pub error: u64,
    /// LTP TBROK.
    pub broken: u64,
    /// LTP TWARN.
    pub warn: u64,
}

impl Counts {
    /// The counter `k`.
    pub fn get(&self, k: Key) -> u64 {
        match k {
            Key::Pass => self.pass,
            Key::Fail => self.fail,
            Key::Xfail => self.xfail,
            Key::Xpass => self.xpass,
            Key::Skip => self.skip,
            Key::Error => self.error,
            Key::Broken => self.broken,
            Key::Warn => self.warn,
        }
    }

    /// The counter `k`, to change.
    pub fn get_mut(&mut self, k: Key) -> &mut u64 {
        match k {
            Key::Pass => &mut self.pass,
            Key::Fail => &mut self.fail,
            Key::Xfail => &mut self.xfail,
            Key::Xpass => &mut self.xpass,
            Key::Skip => &mut self.skip,
            Key::Error => &mut self.error,
            Key::Broken => &mut self.broken,
            Key::Warn => &mut self.warn,
        }
    }

    /// Adds one to `k` (saturating: the input decides how many).
    pub fn bump(&mut self, k: Key) {
        let c = self.get_mut(k);
        *c = c.saturating_add(1);
    }

    /// kselftest's spelling: `pass:P fail:F xfail:X xpass:Y skip:S error:E`.
    pub fn kselftest(&self) -> String {
        format!(
            "pass:{} fail:{} xfail:{} xpass:{} skip:{} error:{}",
            self.pass, self.fail, self.xfail, self.xpass, self.skip, self.error
        )
    }

    /// LTP's: `passed=P failed=F broken=B skipped=S warnings=W`.
    pub fn ltp(&self) -> String {
        format!(
            "passed={} failed={} broken={} skipped={} warnings={}",
            self.pass, self.fail, self.broken, self.skip, self.warn
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_address_their_own_counter() {
        let mut c = Counts::default();
        for (i, k) in Key::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                c.bump(k);
            }
        }
        for (i, k) in Key::ALL.into_iter().enumerate() {
            assert_eq!(c.get(k), i as u64 + 1, "{k}");
        }
        assert_eq!(c.kselftest(), "pass:1 fail:2 xfail:3 xpass:4 skip:5 error:6");
        assert_eq!(c.ltp(), "passed=1 failed=2 broken=7 skipped=5 warnings=8");
        *c.get_mut(Key::Pass) = u64::MAX;
        c.bump(Key::Pass);
        assert_eq!(c.pass, u64::MAX);
    }
}
