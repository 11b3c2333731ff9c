//! `socketpair(AF_UNIX, ...)` and the socket calls on its ends:
//! `sendto`, `recvfrom`, `sendmsg`, `recvmsg` (no ancillary data),
//! `shutdown`. Any other descriptor is `ENOTSOCK`; sockets of other
//! families cannot be made (`socket` is not served).
//!
//! Addresses: both ends are unnamed, so a received message comes from
//! no address (`*addrlen` and `msg_namelen` become 0); `sendto` with an
//! address on a connected socket is `EISCONN` (streams), ignored
//! (packets), or looked up and not found (datagrams: there are no named
//! sockets). Ancillary data (`SCM_RIGHTS`, credentials) in `sendmsg` is
//! refused with `EINVAL`; `recvmsg` returns none (`msg_controllen` 0).

use super::super::fs::Fd;
use super::super::ipc::socket::MAX_DGRAM;
use super::super::ipc::{EndId, IpcError, MsgFlags, Object, Received, SockType};
use super::ctx::{ret, Ctx};
use super::iov::{iovecs, scatter, WRITE_MAX};
use super::wait::{end_of, finish};
use crate::hosted::hypercall::Outcome;

/// `MSG_*` flags.
mod msg {
    pub const OOB: u64 = 1;
    pub const PEEK: u64 = 2;
    pub const TRUNC: u64 = 0x20;
    pub const DONTWAIT: u64 = 0x40;
    pub const NOSIGNAL: u64 = 0x4000;
}
/// `SOCK_NONBLOCK`, `SOCK_CLOEXEC` in `socketpair`'s type.
const TYPE_FLAGS: i32 = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
/// Families Linux knows (`NPROTO`).
const NPROTO: u64 = 46;
/// `struct msghdr`'s size.
const MSGHDR_SIZE: u64 = 56;

/// The socket end `f` names: `ENOTSOCK` for any other open descriptor.
fn socket_of(c: &Ctx<'_>, f: u64) -> Result<(EndId, i32, SockType), i32> {
    let (end, fl) = end_of(c, Fd(f as i32))?.ok_or(libc::ENOTSOCK)?;
    let ty = c.linux.ipc().with(end, |o| match o {
        Object::Socket(s) => Some(s.ty),
        Object::Pipe(_) => None,
    });
    Ok((end, fl, ty.flatten().ok_or(libc::ENOTSOCK)?))
}

/// `socketpair(domain, type, protocol, sv)`.
pub fn socketpair(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [domain, ty, protocol, sv, ..] = a;
    let r = (|| {
        if domain >= NPROTO {
            return Err(libc::EAFNOSUPPORT);
        }
        let ty = ty as i32;
        let flags = ty & !0xf;
        if flags & !TYPE_FLAGS != 0 {
            return Err(libc::EINVAL);
        }
        match domain as i32 {
            libc::AF_UNIX => {}
            libc::AF_INET | libc::AF_INET6 => return Err(libc::EOPNOTSUPP),
            _ => return Err(libc::EAFNOSUPPORT),
        }
        if protocol != 0 && protocol != libc::AF_UNIX as u64 {
            return Err(libc::EPROTONOSUPPORT);
        }
        // SOCK_RAW is taken as SOCK_DGRAM, as af_unix does.
        let base = if ty & 0xf == libc::SOCK_RAW { libc::SOCK_DGRAM } else { ty & 0xf };
        let kind = SockType::from_linux(base).ok_or(libc::ESOCKTNOSUPPORT)?;
        let [x, y] = {
            let mut vfs = c.linux.vfs();
            c.linux.ipc().socketpair(&mut vfs, kind, flags)?
        };
        let mut b = x.0.to_le_bytes().to_vec();
        b.extend_from_slice(&y.0.to_le_bytes());
        if let Err(e) = c.hv.write_user(c.vcpu, sv, &b) {
            let mut vfs = c.linux.vfs();
            let _ = vfs.close(x);
            let _ = vfs.close(y);
            c.linux.ipc().release_unused(&vfs);
            return Err(e);
        }
        Ok(0)
    })();
    ret(r)
}

/// The flags of one call on a descriptor with status flags `fl`.
fn msg_flags(flags: u64, fl: i32) -> MsgFlags {
    MsgFlags { nonblock: flags & msg::DONTWAIT != 0 || fl & libc::O_NONBLOCK != 0, peek: flags & msg::PEEK != 0 }
}

/// What a destination address does on a connected socket of type `ty`
/// (`addr` non-null, `len` bytes): `Ok` to send as if none was given.
fn check_dest(c: &Ctx<'_>, ty: SockType, addr: u64, len: u64) -> Result<(), i32> {
    if addr == 0 || len == 0 {
        return Ok(());
    }
    if len > 128 {
        return Err(libc::EINVAL);
    }
    let sa = c.hv.read_user(c.vcpu, addr, len)?;
    match ty {
        SockType::Stream => Err(libc::EISCONN),
        SockType::SeqPacket => Ok(()),
        SockType::Dgram => {
            if sa.len() < 2 || u16::from_le_bytes([sa[0], sa[1]]) != libc::AF_UNIX as u16 {
                return Err(libc::EINVAL);
            }
            // No socket has a name: a path is not there, an abstract
            // name refuses.
            Err(if sa.get(2).is_some_and(|&b| b != 0) { libc::ENOENT } else { libc::ECONNREFUSED })
        }
    }
}

/// Sends `gather()`'s bytes on `f` with `flags`.
fn send_common(
    c: &Ctx<'_>,
    f: u64,
    flags: u64,
    dest: (u64, u64),
    gather: impl FnOnce(SockType) -> Result<Vec<u8>, i32>,
) -> Outcome {
    let r = (|| {
        let (end, fl, ty) = socket_of(c, f)?;
        if flags & msg::OOB != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        check_dest(c, ty, dest.0, dest.1)?;
        Ok((end, fl, gather(ty)?))
    })();
    let (end, fl, data) = match r {
        Ok(v) => v,
        Err(e) => return Outcome::err(e),
    };
    let mf = msg_flags(flags, fl);
    if !c.linux.ipc().fits(data.len()) {
        return super::pipes::over_budget(c, end, mf.nonblock);
    }
    let r = c
        .linux
        .ipc()
        .with(end, |o| match o {
            Object::Socket(s) => s.send(end.side, &data, mf),
            Object::Pipe(_) => Err(IpcError::WrongEnd),
        })
        .unwrap_or(Err(IpcError::WrongEnd));
    finish(c, "send on a socket", r, flags & msg::NOSIGNAL == 0, |n| Ok(n as u64))
}

/// The bytes of one send: at most [`WRITE_MAX`] (a datagram past
/// [`MAX_DGRAM`] is refused before it is read).
fn send_len(ty: SockType, len: u64) -> Result<u64, i32> {
    if ty != SockType::Stream && len > MAX_DGRAM as u64 {
        return Err(libc::EMSGSIZE);
    }
    Ok(len.min(WRITE_MAX))
}

/// `sendto(fd, buf, len, flags, dest, addrlen)`.
pub fn sendto(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, len, flags, dest, dlen] = a;
    send_common(c, f, flags, (dest, dlen), |ty| c.hv.read_user(c.vcpu, buf, send_len(ty, len)?))
}

/// Reads a `struct msghdr`: (name, namelen, iov, iovlen, control, controllen).
fn msghdr(c: &Ctx<'_>, at: u64) -> Result<[u64; 6], i32> {
    let b = c.hv.read_user(c.vcpu, at, MSGHDR_SIZE)?;
    let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    Ok([w(0), w(8) & 0xffff_ffff, w(16), w(24), w(32), w(40)])
}

/// `sendmsg(fd, msg, flags)`.
pub fn sendmsg(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, m, flags, ..] = a;
    let hdr = match socket_of(c, f).and_then(|_| msghdr(c, m)) {
        Ok(h) => h,
        Err(e) => return Outcome::err(e),
    };
    let [name, namelen, iov, iovlen, _control, controllen] = hdr;
    if controllen != 0 {
        return Outcome::err(libc::EINVAL);
    }
    send_common(c, f, flags, (name, namelen), |ty| {
        let bufs = iovecs(c, iov, iovlen)?;
        let total = bufs.iter().map(|b| b.1).fold(0u64, u64::saturating_add);
        let mut room = send_len(ty, total)?;
        let mut out = Vec::new();
        for (base, len) in bufs {
            let n = len.min(room);
            out.extend(c.hv.read_user(c.vcpu, base, n)?);
            room -= n;
        }
        Ok(out)
    })
}

/// Receives into `bufs` on `f`: `deliver` writes what goes beside the
/// bytes (addresses, `msghdr` fields) and makes the return value.
fn recv_common(
    c: &Ctx<'_>,
    f: u64,
    flags: u64,
    bufs: &[(u64, u64)],
    deliver: impl FnOnce(&Received, SockType) -> Result<u64, i32>,
) -> Outcome {
    let (end, fl, ty) = match socket_of(c, f) {
        Ok(v) => v,
        Err(e) => return Outcome::err(e),
    };
    if flags & msg::OOB != 0 {
        return Outcome::err(libc::EOPNOTSUPP);
    }
    let len = bufs.iter().map(|b| b.1).fold(0u64, u64::saturating_add).min(WRITE_MAX) as usize;
    let mf = msg_flags(flags, fl);
    let r = c
        .linux
        .ipc()
        .with(end, |o| match o {
            Object::Socket(s) => s.recv(end.side, len, mf),
            Object::Pipe(_) => Err(IpcError::WrongEnd),
        })
        .unwrap_or(Err(IpcError::WrongEnd));
    finish(c, "receive on a socket", r, false, |got| {
        scatter(c, bufs, &got.data)?;
        let n = deliver(&got, ty)?;
        // MSG_TRUNC: a datagram's whole length.
        Ok(if flags & msg::TRUNC != 0 && ty != SockType::Stream { got.full_len as u64 } else { n })
    })
}

/// Writes 0 to the `socklen_t` at `lenp` (no address), after checking
/// it as `move_addr_to_user` does.
fn no_address(c: &Ctx<'_>, lenp: u64) -> Result<(), i32> {
    let b = c.hv.read_user(c.vcpu, lenp, 4)?;
    if i32::from_le_bytes(b[..4].try_into().unwrap_or_default()) < 0 {
        return Err(libc::EINVAL);
    }
    c.hv.write_user(c.vcpu, lenp, &0u32.to_le_bytes())
}

/// `recvfrom(fd, buf, len, flags, src, addrlen)`.
pub fn recvfrom(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, len, flags, src, lenp] = a;
    recv_common(c, f, flags, &[(buf, len)], |got, _| {
        if src != 0 && lenp != 0 {
            no_address(c, lenp)?;
        }
        Ok(got.data.len() as u64)
    })
}

/// `recvmsg(fd, msg, flags)`.
pub fn recvmsg(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, m, flags, ..] = a;
    let r = socket_of(c, f).and_then(|_| msghdr(c, m)).and_then(|h| Ok((h, iovecs(c, h[2], h[3])?)));
    let ([name, ..], bufs) = match r {
        Ok(v) => v,
        Err(e) => return Outcome::err(e),
    };
    recv_common(c, f, flags, &bufs, |got, ty| {
        if name != 0 {
            c.hv.write_user(c.vcpu, m + 8, &0u32.to_le_bytes())?;
        }
        c.hv.write_user(c.vcpu, m + 40, &0u64.to_le_bytes())?;
        let truncated = ty != SockType::Stream && got.data.len() < got.full_len;
        let out_flags: u32 = if truncated { msg::TRUNC as u32 } else { 0 };
        c.hv.write_user(c.vcpu, m + 48, &out_flags.to_le_bytes())?;
        Ok(got.data.len() as u64)
    })
}

/// `shutdown(fd, how)`.
pub fn shutdown(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let (end, _, _) = socket_of(c, a[0])?;
        let how = a[1] as i32;
        c.linux
            .ipc()
            .with(end, |o| match o {
                Object::Socket(s) => s.shutdown(end.side, how).map_err(|e| e.errno()),
                Object::Pipe(_) => Err(libc::ENOTSOCK),
            })
            .unwrap_or(Err(libc::EBADF))
            .map(|()| 0)
    })();
    ret(r)
}
