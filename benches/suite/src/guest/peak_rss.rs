//! A child process's peak resident set, read exactly at its exit.
//!
//! `VmHWM` in `/proc/<pid>/status` is the peak of the process's own
//! memory, but it is gone once the process has exited, and sampling it
//! while the process runs misses a short one (a Solo5 launch under
//! `solo5-spt` lasts about a millisecond) or sees it early. `wait4`'s
//! `ru_maxrss` is no substitute: it keeps the peak of the memory the child
//! was forked from (the bench's). So the child runs traced (it asks for
//! `PTRACE_TRACEME` between fork and exec), and the tracer asks to be
//! stopped at its exit (`PTRACE_O_TRACEEXIT`): at that stop the process's
//! memory still exists, and its `VmHWM` is read then. A later exec (a
//! wrapper script that execs the program) is reported to the tracer, not
//! as a signal, and signal stops are passed on as they were; the child's own threads are
//! not traced, and an exit of the whole group stops the traced main
//! thread before its memory goes.
//!
//! The `unsafe` here is `ptrace` and `waitpid` on the child's own pid,
//! and the `pre_exec` hook, which only makes the one `ptrace` call.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` (no stdio) to its end; returns its peak resident memory
/// (`VmHWM`, KiB, read at its exit; 0 if the process was killed before
/// its exit stop could be seen) and how it ended.
pub fn run(cmd: &mut Command) -> std::io::Result<(u64, ExitStatus)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec the hook makes one async-signal-safe
    // system call and touches no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| std::io::Error::other("child pid out of range"))?;
    let mut hwm = 0u64;
    let mut first = true;
    loop {
        let mut st = 0;
        // SAFETY: waits for our own child `pid` (never waited on through
        // `child`); `st` is a live local.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
            return Ok((hwm, ExitStatus::from_raw(st)));
        }
        if !libc::WIFSTOPPED(st) {
            continue;
        }
        let sig = libc::WSTOPSIG(st);
        let event = (st >> 16) & 0xff;
        let mut pass = 0;
        if first && sig == libc::SIGTRAP {
            // The stop after exec: ask for the exit stop (and the child's
            // death with the tracer's), then let it run.
            first = false;
            let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
            // SAFETY: our own stopped tracee.
            if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) } == -1 {
                return Err(kill_and_reap(pid, std::io::Error::last_os_error()));
            }
        } else if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXIT {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            hwm = hwm.max(super::launch::vm_hwm_kib(&status).unwrap_or(0));
        } else if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXEC {
            // A later exec (a wrapper script exec'ing the program): the
            // peak of the memory it replaced is not the program's.
            hwm = 0;
        } else {
            pass = sig;
        }
        // SAFETY: our own stopped tracee; `pass` is the signal it stopped
        // with (0 for the tracer's own stops).
        if unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, pass) } == -1 {
            let e = std::io::Error::last_os_error();
            // Killed meanwhile (SIGKILL needs no continue): reaped above.
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(kill_and_reap(pid, e));
            }
        }
    }
}

/// Ends the traced child `pid` on an error of the tracer (a stopped
/// tracee would otherwise stay behind) and returns `e`.
fn kill_and_reap(pid: libc::pid_t, e: std::io::Error) -> std::io::Error {
    let mut st = 0;
    // SAFETY: our own child, killed and then reaped (never waited on
    // elsewhere); `st` is a live local.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut st, 0);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_childs_own_read_at_its_exit() {
        // 64 MiB touched, then freed before the exit: the peak stays.
        let script =
            "import mmap; m = mmap.mmap(-1, 64 << 20); m.write(b'x' * (64 << 20)); m.close(); raise SystemExit(3)";
        let (hwm, status) = run(Command::new("python3").args(["-c", script])).expect("python3 runs");
        assert_eq!(status.code(), Some(3), "{status:?}");
        assert!(hwm > 64 << 10, "peak {hwm} KiB below the 64 MiB touched");
        // A tiny program: not the bench's memory, which forked it.
        let (hwm, status) = run(&mut Command::new("true")).expect("true runs");
        assert!(status.success());
        assert!(hwm > 0 && hwm < 16 << 10, "peak of `true`: {hwm} KiB");
    }

    #[test]
    fn signals_reach_the_child_and_a_kill_is_its_status() {
        let (_, status) =
            run(Command::new("sh").args(["-c", "trap 'exit 7' USR1; kill -USR1 $$; sleep 5"])).expect("sh");
        assert_eq!(status.code(), Some(7), "the signal was passed on");
        let (_, status) = run(Command::new("sh").args(["-c", "kill -KILL $$"])).expect("sh");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
