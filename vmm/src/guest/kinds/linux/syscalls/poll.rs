//! `poll` and `ppoll` over the process's descriptors: pipe and socket
//! ends report what their objects would let a read or write do, the
//! standard input what the VMM's standard input has, every other file
//! is always ready (`DEFAULT_POLLMASK`), as Linux's regular files are.
//!
//! Waiting: with nothing ready, a finite timeout sleeps it out and
//! returns 0 (nothing in one process can make a pipe ready meanwhile;
//! the real-time timer cuts the sleep short with `EINTR`); an infinite
//! one waits for the standard input if it is polled, for the timer if
//! it is armed, and otherwise ends the run as blocked forever. `ppoll`'s
//! signal mask is checked, not applied.

use std::time::{Duration, Instant};

use super::super::fs::{Fd, Special};
use super::super::ipc::{EndId, Object};
use super::ctx::{Ctx, RESTART};
use super::wait::would_wait;
use crate::hosted::hypercall::{Block, Effects, Outcome};

/// Always-ready files.
const DEFAULT_POLLMASK: i16 = libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM;
/// How long one wait for the standard input lasts before the call is
/// made again.
const STDIN_SLICE: Duration = Duration::from_millis(20);

/// Whether the VMM's standard input has something (or its end) now.
fn stdin_ready() -> i16 {
    let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call, timeout 0.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 {
        return 0;
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        // No standard input: reads see its end.
        return libc::POLLIN | libc::POLLRDNORM | libc::POLLHUP;
    }
    pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR)
        | if pfd.revents & libc::POLLIN != 0 { libc::POLLRDNORM } else { 0 }
}

/// What `fd` is ready for (`POLLNVAL` if it is not open).
fn mask_of(c: &Ctx<'_>, fd: i32) -> i16 {
    let special = match c.linux.vfs().special(Fd(fd)) {
        Err(_) => return libc::POLLNVAL,
        Ok(s) => s,
    };
    let Some(s) = special else { return DEFAULT_POLLMASK };
    if let Some(end) = EndId::of(s.special) {
        return c
            .linux
            .ipc()
            .with(end, |o| match o {
                Object::Pipe(p) if end.side == 0 => p.poll_read(),
                Object::Pipe(p) => p.poll_write(),
                Object::Socket(sp) => sp.poll(end.side),
            })
            .unwrap_or(libc::POLLNVAL);
    }
    match s.special {
        Special::Stdin => stdin_ready(),
        Special::Stdout | Special::Stderr => libc::POLLOUT | libc::POLLWRNORM,
        Special::Tag(_) => DEFAULT_POLLMASK,
    }
}

/// Fills the `revents` of the `nfds` entries at `fds`: how many are
/// ready, and whether the standard input is polled for reading.
fn scan(c: &Ctx<'_>, fds: u64, nfds: u64) -> Result<(u64, bool), i32> {
    if nfds > c.linux.vfs().nofile() {
        return Err(libc::EINVAL);
    }
    let mut b = c.hv.read_user(c.vcpu, fds, nfds * 8)?;
    let mut ready = 0;
    let mut stdin = false;
    for e in b.chunks_exact_mut(8) {
        let fd = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let events = i16::from_le_bytes([e[4], e[5]]);
        let revents = if fd < 0 {
            0
        } else {
            if events & libc::POLLIN != 0
                && matches!(c.linux.vfs().special(Fd(fd)), Ok(Some(s)) if s.special == Special::Stdin)
            {
                stdin = true;
            }
            mask_of(c, fd) & (events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL)
        };
        e[6..8].copy_from_slice(&revents.to_le_bytes());
        if revents != 0 {
            ready += 1;
        }
    }
    c.hv.write_user(c.vcpu, fds, &b)?;
    Ok((ready, stdin))
}

/// The common part: `timeout` `None` waits without end.
fn poll_common(c: &Ctx<'_>, fds: u64, nfds: u64, timeout: Option<Duration>) -> Outcome {
    let (ready, stdin) = match scan(c, fds, nfds) {
        Ok(v) => v,
        Err(e) => return Outcome::err(e),
    };
    if ready > 0 || timeout == Some(Duration::ZERO) {
        return Outcome::ret(ready as i64);
    }
    let now = Instant::now();
    let timer = c.linux.proc().itimer_real.map(|t| t.deadline);
    match (timeout, timer) {
        (Some(t), Some(alarm)) if alarm < now + t => restart_until(alarm),
        (Some(t), _) => {
            Outcome { ret: 0, effects: Effects { block: Some(Block::Until(now + t)), ..Default::default() } }
        }
        (None, _) if stdin => restart_until(now + STDIN_SLICE),
        (None, _) => would_wait(c, "poll", super::super::ipc::Want::Readable, 0),
    }
}

/// Sleep until `t`, then make the call again (or be interrupted).
fn restart_until(t: Instant) -> Outcome {
    Outcome { ret: RESTART, effects: Effects { block: Some(Block::Until(t)), ..Default::default() } }
}

/// `poll(fds, nfds, timeout_ms)`.
pub fn poll(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let ms = a[2] as i32;
    let timeout = (ms >= 0).then(|| Duration::from_millis(ms as u64));
    poll_common(c, a[0], a[1], timeout)
}

/// `ppoll(fds, nfds, tmo, sigmask, sigsetsize)`.
pub fn ppoll(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [fds, nfds, tmo, mask, size, _] = a;
    if mask != 0 && size != 8 {
        return Outcome::err(libc::EINVAL);
    }
    let timeout = if tmo == 0 {
        None
    } else {
        let b = match c.hv.read_user(c.vcpu, tmo, 16) {
            Ok(b) => b,
            Err(e) => return Outcome::err(e),
        };
        let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let nsec = i64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Outcome::err(libc::EINVAL);
        }
        Some(Duration::new(sec as u64, nsec as u32))
    };
    let out = poll_common(c, fds, nfds, timeout);
    if tmo != 0 && out.ret == 0 && out.effects.block.is_some() {
        // The whole timeout passes: none of it is left.
        if let Err(e) = c.hv.write_user(c.vcpu, tmo, &[0u8; 16]) {
            return Outcome::err(e);
        }
    }
    out
}
