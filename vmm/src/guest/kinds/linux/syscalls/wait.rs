//! What the calls on pipes and sockets share: finding the IPC end a
//! descriptor names, sending `SIGPIPE`, and turning a step that would
//! wait ([`Io::Wait`]) into what one process can do about it.
//!
//! With other processes, the caller is parked until one of them
//! changes something (the scheduler's event wait), then the call is made
//! again. With one process, only a signal can end such a wait: with the
//! real-time timer armed the call sleeps until it expires and is then
//! interrupted (`EINTR`, or made again with `SA_RESTART`: the kind's
//! [`RESTART`] path); otherwise nothing ever could, and the run ends as
//! blocked forever (`Linux::blocked_forever`) instead of hanging. A
//! write that moved bytes before it would wait returns that count at
//! once when a timer could end the wait (Linux returns it when the
//! signal comes).

use super::super::fs::Fd;
use super::super::ipc::{EndId, Io, IpcError, Object, Want};
use super::super::signal::{self, info};
use super::ctx::{Ctx, RESTART};
use crate::hosted::hypercall::{Block, Effects, Outcome};

/// The IPC end `fd` names and the descriptor's status flags; `None`
/// for any other file, `EBADF` if `fd` is not open.
pub fn end_of(c: &Ctx<'_>, fd: Fd) -> Result<Option<(EndId, i32)>, i32> {
    let s = c.linux.vfs().special(fd).map_err(|e| e.raw())?;
    Ok(s.and_then(|s| EndId::of(s.special).map(|e| (e, s.flags))))
}

/// Whether `end` is a socket's.
pub fn is_socket(c: &Ctx<'_>, end: EndId) -> bool {
    c.linux.ipc().with(end, |o| matches!(o, Object::Socket(_))).unwrap_or(false)
}

/// Makes `SIGPIPE` pending, as `send_sig(SIGPIPE, current, 0)`.
pub fn sigpipe(c: &Ctx<'_>) {
    let mut p = c.linux.proc();
    let uid = p.uid;
    let sender = info::Fields::Sender { pid: c.linux.pid(), uid };
    signal::post(&mut p, info::SigInfo { signo: info::sig::SIGPIPE, code: info::code::SI_USER, fields: sender });
}

/// An error of a write step as the call returns it, with `SIGPIPE` for
/// a broken pipe when `signal` says so.
pub fn write_error(c: &Ctx<'_>, e: IpcError, signal: bool) -> Outcome {
    if e == IpcError::BrokenPipe && signal {
        sigpipe(c);
    }
    Outcome::err(e.errno())
}

/// What the call does when the object would make it wait for `want`
/// after moving `done` bytes (`what` names the call for the report).
pub fn would_wait(c: &Ctx<'_>, what: &str, want: Want, done: usize) -> Outcome {
    if c.linux.tasks().len() > 1 {
        // Another process may end the wait: a write that moved bytes
        // returns them; otherwise the process is parked until another
        // process changes something, then the call is made again (the
        // scheduler reports a deadlock if nobody can run).
        if done > 0 {
            return Outcome::ret(done as i64);
        }
        c.linux.wait_for_event();
        return Outcome { ret: RESTART, effects: Effects::default() };
    }
    let timer = c.linux.proc().itimer_real.map(|t| t.deadline);
    match timer {
        Some(_) if done > 0 => Outcome::ret(done as i64),
        Some(deadline) => {
            Outcome { ret: RESTART, effects: Effects { block: Some(Block::Until(deadline)), ..Default::default() } }
        }
        None => {
            let why = match want {
                Want::Readable => "nothing to read",
                Want::Writable => "no room to write",
            };
            c.linux.blocked_forever(&format!("{what} ({why})"))
        }
    }
}

/// A step's result as the call's outcome: `ok` makes the value.
pub fn finish<T>(
    c: &Ctx<'_>,
    what: &str,
    r: Result<Io<T>, IpcError>,
    signal: bool,
    ok: impl FnOnce(T) -> Result<u64, i32>,
) -> Outcome {
    match r {
        Ok(Io::Ready(v)) => super::ctx::ret(ok(v)),
        Ok(Io::Wait { want, done }) => would_wait(c, what, want, done),
        Err(e) => write_error(c, e, signal),
    }
}
