//! Rate-limited log lines, for anything a guest can trigger over and over
//! (an unclaimed port, an unsupported register access, a full FIFO): each
//! call site may log [`BURST`] lines per [`PERIOD`]; further lines are
//! counted, not written, and the first line of a later period says how
//! many were suppressed. A guest hammering a port thus costs a few hundred
//! bytes of log per period, not one line per access.
//!
//! Use [`warn_limited!`](crate::warn_limited) (one limiter per call site,
//! keyed by the macro's expansion) or a [`LogLimiter`] of your own.
//!
//! What it does not do: deduplicate by message text (two call sites never
//! share a budget), or buffer lines (a suppressed line is gone; only its
//! count survives).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a call site may log per period.
pub const BURST: u32 = 10;
/// The period.
pub const PERIOD: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// One call site's budget.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    period: Duration,
    state: Mutex<State>,
}

/// What [`LogLimiter::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `suppressed` lines were dropped since the last one
    /// written; `last` says this is the last line of the period's budget.
    Log {
        /// Lines dropped before this one.
        suppressed: u64,
        /// No more lines will be written this period.
        last: bool,
    },
    /// Drop the line (it is counted).
    Suppress,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    /// A limiter of [`BURST`] lines per [`PERIOD`].
    pub const fn new() -> Self {
        Self::with(BURST, PERIOD)
    }

    /// A limiter of `burst` lines per `period`.
    pub const fn with(burst: u32, period: Duration) -> Self {
        LogLimiter { burst, period, state: Mutex::new(State { window: None, logged: 0, suppressed: 0 }) }
    }

    /// Decides about one line at time `now`.
    pub fn admit_at(&self, now: Instant) -> Admit {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = s.window.is_none_or(|w| now.saturating_duration_since(w) >= self.period);
        if expired {
            s.window = Some(now);
            s.logged = 0;
        }
        if s.logged >= self.burst {
            s.suppressed += 1;
            return Admit::Suppress;
        }
        s.logged += 1;
        let suppressed = std::mem::take(&mut s.suppressed);
        Admit::Log { suppressed, last: s.logged == self.burst }
    }

    /// Decides about one line now.
    pub fn admit(&self) -> Admit {
        self.admit_at(Instant::now())
    }

    /// Logs `args` at `level` for `target` if the budget allows, with a
    /// note of what was suppressed before and whether more will be.
    pub fn log(&self, target: &str, level: log::Level, args: fmt::Arguments<'_>) {
        if level > log::max_level() {
            return;
        }
        match self.admit() {
            Admit::Suppress => {}
            Admit::Log { suppressed, last } => {
                let before = if suppressed > 0 {
                    format!(" ({suppressed} similar lines suppressed before this one)")
                } else {
                    String::new()
                };
                let after = if last {
                    format!(" (similar lines suppressed for the next {} s)", self.period.as_secs())
                } else {
                    String::new()
                };
                log::log!(target: target, level, "{args}{before}{after}");
            }
        }
    }
}

/// `log::warn!` with a [`LogLimiter`] per call site.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimiter = $crate::log_limit::LogLimiter::new();
        LIMIT.log(module_path!(), ::log::Level::Warn, format_args!($($arg)+));
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_suppressed_then_counted() {
        let l = LogLimiter::with(3, Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(l.admit_at(t0), Admit::Log { suppressed: 0, last: false });
        assert_eq!(l.admit_at(t0), Admit::Log { suppressed: 0, last: false });
        assert_eq!(l.admit_at(t0), Admit::Log { suppressed: 0, last: true });
        for _ in 0..1000 {
            assert_eq!(l.admit_at(t0 + Duration::from_secs(4)), Admit::Suppress);
        }
        // A new period: the first line carries the count.
        assert_eq!(l.admit_at(t0 + Duration::from_secs(5)), Admit::Log { suppressed: 1000, last: false });
        assert_eq!(l.admit_at(t0 + Duration::from_secs(5)), Admit::Log { suppressed: 0, last: false });
    }

    #[test]
    fn call_sites_have_their_own_budget() {
        fn site_a() {
            crate::warn_limited!("a");
        }
        // Without a logger installed this only exercises the macro: it
        // must compile at any call site and never panic.
        for _ in 0..100 {
            site_a();
            crate::warn_limited!("b {}", 1);
        }
    }
}
