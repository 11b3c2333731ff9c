//! A child process's wall time and CPU time, from spawn to exit.
//!
//! CPU time is user + system time of the child and all its threads, as
//! `wait4` reports it for that child alone (`ru_utime + ru_stime`): on a
//! host shared with other work it is the steadier measure of what a
//! launch costs, since waiting for a CPU is not counted. (`ru_maxrss`
//! from the same call is not used: it keeps the resident set of the
//! process the child was forked from.)
//!
//! The `unsafe` here is the one `wait4` call on the child's own pid.

use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use std::os::unix::process::ExitStatusExt as _;

/// One finished child.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// Spawn to exit, ms.
    pub wall_ms: f64,
    /// User + system CPU time of the child's threads, ms.
    pub cpu_ms: f64,
    /// How it ended.
    pub status: ExitStatus,
}

/// Spawns `cmd` with no stdio, waits for it with `wait4`, and returns its
/// times and status.
pub fn run(cmd: &mut Command) -> std::io::Result<Timed> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| std::io::Error::other("child pid out of range"))?;
    let mut raw_status = 0;
    // SAFETY: all-zero is a valid `rusage` (plain integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child `pid` (not yet reaped: `child`
        // is never waited on); both pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut raw_status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let tv_ms = |tv: libc::timeval| tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3;
    let cpu_ms = tv_ms(usage.ru_utime) + tv_ms(usage.ru_stime);
    Ok(Timed { wall_ms, cpu_ms, status: ExitStatus::from_raw(raw_status) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_has_cpu_time_and_its_status() {
        // A shell loop that spins for a while, then exits 3.
        let t = run(Command::new("sh").args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3"]))
            .expect("sh runs");
        assert_eq!(t.status.code(), Some(3));
        assert!(t.cpu_ms > 1.0, "spinning took no CPU: {t:?}");
        assert!(t.wall_ms >= t.cpu_ms * 0.5, "{t:?}");
    }

    #[test]
    fn a_sleeping_child_takes_wall_time_not_cpu_time() {
        let t = run(Command::new("sleep").arg("0.2")).expect("sleep runs");
        assert!(t.status.success());
        assert!(t.wall_ms >= 190.0, "{t:?}");
        assert!(t.cpu_ms < 100.0, "{t:?}");
    }
}
