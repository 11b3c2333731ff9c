//! `pipe`, `pipe2`, `vmsplice`, and the descriptor calls on pipe and
//! socket ends (`read`, `write`, `readv`, `writev`, `F_GETPIPE_SZ`,
//! `F_SETPIPE_SZ`): bytes are copied between guest memory and the
//! objects of `super::super::ipc`; a step that would wait goes to
//! [`super::wait`].
//!
//! `vmsplice` copies: Linux puts references to the caller's pages in
//! the pipe (later writes to those pages before the read show in what
//! is read, and `SPLICE_F_GIFT` may move them); here the bytes are
//! copied when the call is made. The slots they take are Linux's (one
//! per page touched), and a read gives the same bytes as long as the
//! program does not change them before reading.
//!
//! All pipes and sockets together hold at most
//! [`IPC_BYTES_MAX`](super::super::ipc::IPC_BYTES_MAX) bytes on the host, and no more than a quarter of
//! guest RAM (`Ipc::limit`); a write past that waits (or is `EAGAIN`) as
//! on a full pipe.

use super::super::fs::Fd;
use super::super::ipc::{EndId, Io, IpcError, MsgFlags, Object, Want, WriteMode};
use super::ctx::{ret, Ctx};
use super::iov::{iovecs, scatter, WRITE_MAX};
use super::wait::{finish, is_socket};
use crate::hosted::hypercall::Outcome;

/// `CAP_SYS_RESOURCE`: sizes past `pipe-max-size`.
const CAP_SYS_RESOURCE: u32 = 24;
/// `F_SETPIPE_SZ`, `F_GETPIPE_SZ`.
pub const F_SETPIPE_SZ: i32 = 1031;
/// See [`F_SETPIPE_SZ`].
pub const F_GETPIPE_SZ: i32 = 1032;
/// `SPLICE_F_NONBLOCK`.
const SPLICE_F_NONBLOCK: u64 = 2;
/// Every `SPLICE_F_*` flag (`MOVE`, `NONBLOCK`, `MORE`, `GIFT`).
const SPLICE_F_ALL: u64 = 0xf;

/// The total length of `bufs`, at most [`WRITE_MAX`].
fn total(bufs: &[(u64, u64)]) -> usize {
    bufs.iter().map(|b| b.1).fold(0u64, u64::saturating_add).min(WRITE_MAX) as usize
}

/// What a call on `end` is called in the report.
fn name(c: &Ctx<'_>, call: &str, end: EndId) -> String {
    let obj = if is_socket(c, end) { "a socket" } else { "a pipe" };
    format!("{call} on {obj}")
}

/// `read`/`readv` on an IPC end: what there is, scattered over `bufs`.
pub fn read_end(c: &Ctx<'_>, end: EndId, flags: i32, bufs: &[(u64, u64)]) -> Outcome {
    if flags & libc::O_ACCMODE == libc::O_WRONLY {
        return Outcome::err(libc::EBADF);
    }
    let len = total(bufs);
    let nonblock = flags & libc::O_NONBLOCK != 0;
    let r = c
        .linux
        .ipc()
        .with(end, |o| match o {
            Object::Pipe(p) => p.read(len, nonblock),
            Object::Socket(s) => s.recv(end.side, len, MsgFlags { nonblock, peek: false }).map(|io| io.map(|r| r.data)),
        })
        .unwrap_or(Err(IpcError::WrongEnd));
    finish(c, &name(c, "read", end), r, false, |data| scatter(c, bufs, &data))
}

/// `write`/`writev` on an IPC end: `gather` copies the bytes in (after
/// the access check, as Linux's order gives `EBADF` before `EFAULT`).
pub fn write_end(c: &Ctx<'_>, end: EndId, flags: i32, gather: impl FnOnce() -> Result<Vec<u8>, i32>) -> Outcome {
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Outcome::err(libc::EBADF);
    }
    let data = match gather() {
        Ok(d) => d,
        Err(e) => return Outcome::err(e),
    };
    let data = &data[..];
    let nonblock = flags & libc::O_NONBLOCK != 0;
    let mode = if flags & libc::O_DIRECT != 0 { WriteMode::Packet } else { WriteMode::Stream };
    if !c.linux.ipc().fits(data.len()) {
        return over_budget(c, end, nonblock);
    }
    let r = c
        .linux
        .ipc()
        .with(end, |o| match o {
            Object::Pipe(p) => p.write(data, mode, nonblock),
            Object::Socket(s) => s.send(end.side, data, MsgFlags { nonblock, peek: false }),
        })
        .unwrap_or(Err(IpcError::WrongEnd));
    finish(c, &name(c, "write", end), r, true, |n| Ok(n as u64))
}

/// A write past `Ipc::limit`: as on a full pipe.
pub fn over_budget(c: &Ctx<'_>, end: EndId, nonblock: bool) -> Outcome {
    log::debug!("linux: pipes and sockets hold {} bytes: a write waits", c.linux.ipc().limit());
    let r: Result<Io<usize>, IpcError> =
        if nonblock { Err(IpcError::WouldBlock) } else { Ok(Io::Wait { want: Want::Writable, done: 0 }) };
    finish(c, &name(c, "write", end), r, false, |n| Ok(n as u64))
}

/// `pipe2(fds, flags)`.
pub fn pipe2(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [fds, flags, ..] = a;
    let r = (|| {
        let flags = i32::try_from(flags).map_err(|_| libc::EINVAL)?;
        let [r, w] = {
            let mut vfs = c.linux.vfs();
            c.linux.ipc().pipe(&mut vfs, flags)?
        };
        let mut b = r.0.to_le_bytes().to_vec();
        b.extend_from_slice(&w.0.to_le_bytes());
        if let Err(e) = c.hv.write_user(c.vcpu, fds, &b) {
            // Linux installs the descriptors only once they are copied out.
            let mut vfs = c.linux.vfs();
            let _ = vfs.close(r);
            let _ = vfs.close(w);
            c.linux.ipc().release_unused(&vfs);
            return Err(e);
        }
        Ok(0)
    })();
    ret(r)
}

/// `pipe(fds)`.
pub fn pipe(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    pipe2(c, [a[0], 0, 0, 0, 0, 0])
}

/// `fcntl(fd, F_GETPIPE_SZ | F_SETPIPE_SZ, arg)`: `EBADF` on anything
/// but a pipe.
pub fn pipe_size(c: &Ctx<'_>, f: Fd, cmd: i32, arg: u64) -> Outcome {
    let r = (|| {
        let (end, _) = super::wait::end_of(c, f)?.ok_or(libc::EBADF)?;
        let privileged = c.linux.proc().has_cap(CAP_SYS_RESOURCE);
        c.linux
            .ipc()
            .with(end, |o| match o {
                Object::Pipe(p) if cmd == F_GETPIPE_SZ => Ok(p.ring.size()),
                // The argument is an unsigned int.
                Object::Pipe(p) => p.ring.set_size(u64::from(arg as u32), privileged).map_err(|e| e.errno()),
                Object::Socket(_) => Err(libc::EBADF),
            })
            .unwrap_or(Err(libc::EBADF))
    })();
    ret(r)
}

/// `vmsplice(fd, iov, nr_segs, flags)` on a pipe: into the write end
/// (one slot per page touched), or out of the read end as `readv`.
pub fn vmsplice(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, iov, nr, flags, ..] = a;
    if flags & !SPLICE_F_ALL != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let (end, fl) = match super::wait::end_of(c, Fd(f as i32)) {
        Ok(Some(e)) if !is_socket(c, e.0) => e,
        Ok(_) => return Outcome::err(libc::EBADF),
        Err(e) => return Outcome::err(e),
    };
    let bufs = match iovecs(c, iov, nr) {
        Ok(b) => b,
        Err(e) => return Outcome::err(e),
    };
    if total(&bufs) == 0 {
        return Outcome::ret(0);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0 || fl & libc::O_NONBLOCK != 0;
    if fl & libc::O_ACCMODE == libc::O_RDONLY {
        let fl = if nonblock { fl | libc::O_NONBLOCK } else { fl };
        return read_end(c, end, fl, &bufs);
    }
    let mut segs = Vec::with_capacity(bufs.len());
    let mut room = WRITE_MAX;
    for &(base, len) in &bufs {
        let n = len.min(room);
        match c.hv.read_user(c.vcpu, base, n) {
            Ok(d) => segs.push((d, (base % 4096) as usize)),
            Err(e) => return Outcome::err(e),
        }
        room -= n;
    }
    if !c.linux.ipc().fits(segs.iter().map(|s| s.0.len()).sum()) {
        return over_budget(c, end, nonblock);
    }
    let r = c
        .linux
        .ipc()
        .with(end, |o| match o {
            Object::Pipe(p) => p.splice_in(&segs, nonblock),
            Object::Socket(_) => Err(IpcError::WrongEnd),
        })
        .unwrap_or(Err(IpcError::WrongEnd));
    finish(c, "vmsplice on a pipe", r, true, |n: usize| Ok(n as u64))
}
