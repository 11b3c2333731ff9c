//! Calls between processes: `wait4`, `getppid`, the `fork` family's
//! table rows (served with the registers by the kind), process groups
//! and sessions.

use super::super::tasks::table::{Waited, Which};
use super::ctx::{ret, Ctx, RESTART};
use crate::hosted::hypercall::Outcome;

/// `WNOHANG`, `WUNTRACED`, `WCONTINUED`, `__WNOTHREAD`, `__WALL`,
/// `__WCLONE`.
const WAIT4_KNOWN: u64 = 1 | 2 | 8 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000;

/// `fork`, `vfork`, `clone` without the caller's registers: reached only
/// through `GuestKind::syscall`, where no child can be made.
pub fn fork_needs_regs(_c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::err(libc::ENOSYS)
}

/// `wait4(pid, wstatus, options, rusage)`.
pub fn wait4(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [pid, wstatus, options, rusage, ..] = a;
    let pid = pid as i32;
    if options & !WAIT4_KNOWN != 0 || pid == i32::MIN {
        return Outcome::err(libc::EINVAL);
    }
    let me = c.linux.pid();
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Group(c.linux.tasks().get(me).map_or(0, |t| t.pgid)),
        p if p > 0 => Which::Pid(p as u32),
        p => Which::Group(p.unsigned_abs()),
    };
    let found = c.linux.tasks().wait(me, which, true);
    match found {
        Waited::Ended(child, how) => {
            if wstatus != 0 {
                if let Err(e) = c.hv.write_user(c.vcpu, wstatus, &how.wstatus().to_le_bytes()) {
                    return Outcome::err(e);
                }
            }
            if rusage != 0 {
                if let Err(e) = c.hv.write_user(c.vcpu, rusage, &[0u8; 144]) {
                    return Outcome::err(e);
                }
            }
            Outcome::ret(i64::from(child))
        }
        Waited::NotYet if options & 1 != 0 => Outcome::ret(0),
        Waited::NotYet => {
            c.linux.wait_for_event();
            Outcome::ret(RESTART)
        }
        Waited::NoChild => Outcome::err(libc::ECHILD),
    }
}

/// `getppid()`.
pub fn getppid(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    Outcome::ret(i64::from(c.linux.ppid()))
}

/// `getpgid(pid)` (0: the caller).
pub fn getpgid(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let t = c.linux.tasks();
    let pid = if a[0] == 0 { t.current() } else { a[0] as u32 };
    ret(t.get(pid).map(|x| u64::from(x.pgid)).ok_or(libc::ESRCH))
}

/// `getpgrp()`.
pub fn getpgrp(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    getpgid(c, [0; 6])
}

/// `getsid(pid)` (0: the caller).
pub fn getsid(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let t = c.linux.tasks();
    let pid = if a[0] == 0 { t.current() } else { a[0] as u32 };
    ret(t.get(pid).map(|x| u64::from(x.sid)).ok_or(libc::ESRCH))
}

/// `setpgid(pid, pgid)`.
pub fn setpgid(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if (a[0] as i32) < 0 || (a[1] as i32) < 0 {
        return Outcome::err(libc::EINVAL);
    }
    ret(c.linux.tasks().setpgid(a[0] as u32, a[1] as u32).map(|()| 0).map_err(|e| e.errno()))
}

/// `setsid()`.
pub fn setsid(c: &Ctx<'_>, _a: [u64; 6]) -> Outcome {
    ret(c.linux.tasks().setsid().map(u64::from).map_err(|e| e.errno()))
}
