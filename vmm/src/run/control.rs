//! Run control shared by the vCPU threads and the event loop: how the run
//! ended (the first reason wins) and kicking every vCPU out of `KVM_RUN`
//! when it must stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::hosted::exception::ExceptionReport;
use crate::vstate::kick;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The guest wrote the exit port.
    ExitPort {
        /// Process exit status, `(value << 1) | 1`.
        status: i32,
    },
    /// The guest called `exit_group` (or every vCPU called `exit`).
    Exited {
        /// The status it passed.
        status: i32,
    },
    /// An exception the guest did not announce.
    Fault {
        /// What the stub reported.
        report: ExceptionReport,
    },
    /// `KVM_EXIT_SHUTDOWN`.
    TripleFault {
        /// The vCPU.
        vcpu: u8,
    },
    /// A vCPU stopped for another reason (KVM error, unhandled exit).
    VcpuError {
        /// The vCPU.
        vcpu: u8,
        /// What happened.
        message: String,
    },
    /// The watchdog fired.
    Timeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// The console's reader went away (a broken pipe): the run stops, as
    /// a writer killed by `SIGPIPE` would.
    OutputClosed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::ExitPort { status } => write!(f, "guest wrote the exit port (status {status})"),
            Outcome::Exited { status } => write!(f, "guest exited with status {status}"),
            Outcome::Fault { report } => write!(f, "unexpected exception: {report}"),
            Outcome::TripleFault { vcpu } => write!(f, "vCPU {vcpu}: triple fault (KVM_EXIT_SHUTDOWN)"),
            Outcome::VcpuError { vcpu, message } => write!(f, "vCPU {vcpu}: {message}"),
            Outcome::OutputClosed => write!(f, "the console's reader went away (broken pipe)"),
            Outcome::Timeout { secs } => {
                write!(f, "watchdog: the guest did not finish within {secs} s and was stopped")
            }
        }
    }
}

/// Shared stop state.
#[derive(Debug, Default)]
pub struct RunControl {
    stopping: AtomicBool,
    outcome: Mutex<Option<Outcome>>,
    threads: Mutex<Vec<libc::pthread_t>>,
    exit_status: Mutex<Option<i32>>,
}

impl RunControl {
    /// A run that is not stopping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a vCPU thread so it can be kicked.
    pub fn add_thread(&self, t: libc::pthread_t) {
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(t);
    }

    /// Ends the run with `outcome` (unless an earlier one was recorded)
    /// and kicks every vCPU.
    pub fn stop(&self, outcome: Outcome) {
        {
            let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
            if o.is_none() {
                log::info!("stopping: {outcome}");
                *o = Some(outcome);
            }
        }
        self.stopping.store(true, Ordering::Release);
        self.kick_all();
    }

    /// Kicks the vCPUs in `which` (indices in thread registration order).
    pub fn kick(&self, which: &[u8]) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for &i in which {
            if let Some(&t) = threads.get(i as usize) {
                kick::kick(t);
            }
        }
    }

    /// Remembers the status a vCPU passed to `exit`.
    pub fn note_exit_status(&self, status: i32) {
        *self.exit_status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    /// The last status passed to `exit`, if any.
    pub fn exit_status(&self) -> Option<i32> {
        *self.exit_status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kicks every vCPU out of `KVM_RUN`.
    pub fn kick_all(&self) {
        for &t in self.threads.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            kick::kick(t);
        }
    }

    /// Is the run stopping?
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The recorded outcome.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_outcome_wins() {
        let c = RunControl::new();
        assert!(!c.is_stopping());
        c.stop(Outcome::Timeout { secs: 3 });
        c.stop(Outcome::Exited { status: 0 });
        assert!(c.is_stopping());
        assert_eq!(c.outcome(), Some(Outcome::Timeout { secs: 3 }));
        assert_eq!(
            Outcome::Timeout { secs: 3 }.to_string(),
            "watchdog: the guest did not finish within 3 s and was stopped"
        );
    }
}
