//! `waitid(idtype, id, infop, options, rusage)` as Linux 6.12's
//! `kernel_waitid` and the `waitid` syscall wrapper: the id type and
//! options checked first (`EINVAL`), then the children looked at;
//! `infop` written whatever the result (zeros when nothing was reaped,
//! as Linux writes `si_signo = 0` and `si_pid = 0` for `WNOHANG`, and
//! also for an error), `rusage` only when a child was found.
//!
//! Not here: stopped and continued children (no process is ever stopped:
//! `WSTOPPED` and `WCONTINUED` alone wait for nothing that can come) and
//! pidfds (none exist: `P_PIDFD` of any descriptor is `EBADF`, as Linux
//! answers for one that is not a pidfd; of a negative one `EINVAL`).

use super::super::tasks::status::ExitKind;
use super::super::tasks::table::{Waited, Which};
use super::ctx::{Ctx, RESTART};
use crate::hosted::hypercall::Outcome;

/// `idtype_t` values.
mod idtype {
    /// Any child.
    pub const P_ALL: u64 = 0;
    /// The child with this pid.
    pub const P_PID: u64 = 1;
    /// Any child in this process group (0: the caller's).
    pub const P_PGID: u64 = 2;
    /// The child this pidfd names.
    pub const P_PIDFD: u64 = 3;
}

/// `waitid` option bits.
mod opt {
    /// Do not wait.
    pub const WNOHANG: u64 = 1;
    /// Report stopped children.
    pub const WSTOPPED: u64 = 2;
    /// Report ended children.
    pub const WEXITED: u64 = 4;
    /// Report continued children.
    pub const WCONTINUED: u64 = 8;
    /// Leave the child waitable.
    pub const WNOWAIT: u64 = 0x0100_0000;
    /// `__WNOTHREAD`, `__WALL`, `__WCLONE`.
    pub const THREAD_BITS: u64 = 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
    /// Every bit Linux accepts.
    pub const KNOWN: u64 = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | THREAD_BITS;
}

/// `SIGCHLD`.
const SIGCHLD: i32 = 17;
/// `sizeof(struct rusage)`.
const RUSAGE_SIZE: usize = 144;

/// The six fields Linux writes of a `waitid` siginfo: `si_signo`,
/// `si_errno`, `si_code`, `si_pid`, `si_uid`, `si_status` (offsets 0, 4,
/// 8, 16, 20, 24 of x86-64's `siginfo_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitInfo {
    /// `SIGCHLD` when a child was found, else 0.
    pub signo: i32,
    /// `CLD_*`.
    pub code: i32,
    /// The child.
    pub pid: u32,
    /// Its uid.
    pub uid: u32,
    /// Its exit status or signal.
    pub status: i32,
}

impl WaitInfo {
    /// What a wait that found `pid` ended as `how` reports.
    pub fn found(pid: u32, uid: u32, how: ExitKind) -> Self {
        let (code, status) = how.siginfo_code_status();
        WaitInfo { signo: SIGCHLD, code, pid, uid, status }
    }

    /// The 28 bytes from `si_signo` to `si_status` (the four at 12, the
    /// union's padding, zero).
    pub fn bytes(self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        b[16..20].copy_from_slice(&self.pid.to_le_bytes());
        b[20..24].copy_from_slice(&self.uid.to_le_bytes());
        b[24..28].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

/// The children `idtype`/`id` name, or the errno of a bad pair.
fn which(c: &Ctx<'_>, idtype: u64, id: u64) -> Result<Which, i32> {
    let id = id as i32;
    match idtype {
        idtype::P_ALL => Ok(Which::Any),
        idtype::P_PID if id > 0 => Ok(Which::Pid(id.unsigned_abs())),
        idtype::P_PGID if id > 0 => Ok(Which::Group(id.unsigned_abs())),
        idtype::P_PGID if id == 0 => {
            let t = c.linux.tasks();
            Ok(Which::Group(t.get(t.current()).map_or(0, |x| x.pgid)))
        }
        // No descriptor is a pidfd here: Linux's `pidfd_pid` answers
        // EBADF for an open descriptor that is not one, as for a closed one.
        idtype::P_PIDFD if id >= 0 => Err(libc::EBADF),
        _ => Err(libc::EINVAL),
    }
}

/// What the wait itself answers: a child found, 0 (nothing yet, with
/// `WNOHANG`), or an errno; `RESTART` (parked) when it must wait.
fn wait(c: &Ctx<'_>, a: [u64; 6]) -> Result<Option<WaitInfo>, i32> {
    let [idtype, id, _, options, ..] = a;
    if options & !opt::KNOWN != 0 || options & (opt::WEXITED | opt::WSTOPPED | opt::WCONTINUED) == 0 {
        return Err(libc::EINVAL);
    }
    let which = which(c, idtype, id)?;
    let me = c.linux.pid();
    let exited = options & opt::WEXITED != 0;
    let reap = options & opt::WNOWAIT == 0;
    let found = if exited {
        c.linux.tasks().wait(me, which, reap)
    } else if c.linux.tasks().has_live_child(me, which) {
        // Without WEXITED an ended child is not a child to wait for (Linux:
        // `wait_task_zombie` leaves `notask_error`).
        Waited::NotYet
    } else {
        Waited::NoChild
    };
    match found {
        Waited::Ended(pid, how) => Ok(Some(WaitInfo::found(pid, c.linux.proc().uid, how))),
        Waited::NotYet if options & opt::WNOHANG != 0 => Ok(None),
        Waited::NotYet => {
            c.linux.wait_for_event();
            Err(RESTART_ERRNO)
        }
        Waited::NoChild => Err(libc::ECHILD),
    }
}

/// Stands for `RESTART` inside [`wait`] (no errno is this large).
const RESTART_ERRNO: i32 = i32::MAX;

/// `waitid(idtype, id, infop, options, rusage)`.
pub fn waitid(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let (infop, rusage) = (a[2], a[4]);
    let r = wait(c, a);
    if r == Err(RESTART_ERRNO) {
        return Outcome::ret(RESTART);
    }
    if let (Ok(Some(_)), true) = (&r, rusage != 0) {
        if let Err(e) = c.hv.write_user(c.vcpu, rusage, &[0u8; RUSAGE_SIZE]) {
            return Outcome::err(e);
        }
    }
    if infop != 0 {
        let info = r.ok().flatten().unwrap_or_default();
        if let Err(e) = c.hv.write_user(c.vcpu, infop, &info.bytes()) {
            return Outcome::err(e);
        }
    }
    match r {
        Ok(_) => Outcome::ret(0),
        Err(e) => Outcome::err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_siginfo_bytes_are_where_x86_64_linux_puts_them() {
        let i = WaitInfo::found(42, 7, ExitKind::Exited(3));
        let b = i.bytes();
        let word = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        assert_eq!(word(0), libc::SIGCHLD);
        assert_eq!(word(4), 0);
        assert_eq!(word(8), libc::CLD_EXITED);
        assert_eq!(word(12), 0);
        assert_eq!(word(16), 42);
        assert_eq!(word(20), 7);
        assert_eq!(word(24), 3);
        let k = WaitInfo::found(5, 0, ExitKind::Signaled { sig: 9, core: false });
        assert_eq!((k.code, k.status), (libc::CLD_KILLED, 9));
        assert_eq!(WaitInfo::default().bytes(), [0u8; 28]);
    }

    #[test]
    fn the_option_mask_is_linuxs() {
        assert_eq!(opt::KNOWN, 0xe100_000f);
        assert_eq!(opt::WNOWAIT, libc::WNOWAIT as u64);
        assert_eq!(opt::WEXITED, libc::WEXITED as u64);
        assert_eq!(opt::WSTOPPED, libc::WSTOPPED as u64);
        assert_eq!(opt::WCONTINUED, libc::WCONTINUED as u64);
    }
}
