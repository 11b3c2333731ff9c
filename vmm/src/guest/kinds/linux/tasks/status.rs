//! How a process ended, as `wait4` and `waitid` report it.

/// `CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED` (`si_code` of `SIGCHLD` and
/// `waitid`).
pub mod cld {
    /// Exited.
    pub const EXITED: i32 = 1;
    /// Killed by a signal.
    pub const KILLED: i32 = 2;
    /// Killed by a signal, core dumped.
    pub const DUMPED: i32 = 3;
}

/// The end of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// `exit`/`exit_group` with this status (its low 8 bits).
    Exited(u8),
    /// Killed by signal `sig`; `core` when a core was dumped (never
    /// here: `RLIMIT_CORE` is 0, and Linux then leaves the bit clear).
    Signaled {
        /// The signal.
        sig: u8,
        /// Whether a core was dumped.
        core: bool,
    },
}

impl ExitKind {
    /// The `wstatus` word of `wait4`: `status << 8` for an exit, the
    /// signal (with `0x80` for a core) for a kill.
    pub fn wstatus(self) -> i32 {
        match self {
            ExitKind::Exited(s) => i32::from(s) << 8,
            ExitKind::Signaled { sig, core } => i32::from(sig & 0x7f) | if core { 0x80 } else { 0 },
        }
    }

    /// `si_code` and `si_status` of a `waitid`/`SIGCHLD` siginfo.
    pub fn siginfo_code_status(self) -> (i32, i32) {
        match self {
            ExitKind::Exited(s) => (cld::EXITED, i32::from(s)),
            ExitKind::Signaled { sig, core: false } => (cld::KILLED, i32::from(sig)),
            ExitKind::Signaled { sig, core: true } => (cld::DUMPED, i32::from(sig)),
        }
    }

    /// What a shell reports for it: the status, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitKind::Exited(s) => i32::from(s),
            ExitKind::Signaled { sig, .. } => 128 + i32::from(sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wstatus_matches_the_libc_macros() {
        let e = ExitKind::Exited(42).wstatus();
        assert!(libc::WIFEXITED(e));
        assert_eq!(libc::WEXITSTATUS(e), 42);
        assert!(!libc::WIFSIGNALED(e));
        let k = ExitKind::Signaled { sig: 9, core: false }.wstatus();
        assert!(libc::WIFSIGNALED(k));
        assert_eq!(libc::WTERMSIG(k), 9);
        assert!(!libc::WCOREDUMP(k));
        let c = ExitKind::Signaled { sig: 11, core: true }.wstatus();
        assert!(libc::WCOREDUMP(c));
        assert_eq!(libc::WTERMSIG(c), 11);
        assert_eq!(ExitKind::Exited(0).wstatus(), 0);
    }

    #[test]
    fn siginfo_and_shell_status() {
        assert_eq!(ExitKind::Exited(3).siginfo_code_status(), (cld::EXITED, 3));
        assert_eq!(ExitKind::Signaled { sig: 9, core: false }.siginfo_code_status(), (cld::KILLED, 9));
        assert_eq!(ExitKind::Signaled { sig: 6, core: true }.siginfo_code_status(), (cld::DUMPED, 6));
        assert_eq!(ExitKind::Signaled { sig: 9, core: false }.shell_status(), 137);
        assert_eq!(ExitKind::Exited(7).shell_status(), 7);
    }
}
