//! Descriptors and files: the calls copy guest memory in and out and
//! hand bytes to the file layer ([`super::super::fs::Vfs`]), which owns
//! the tree, the open files and the descriptor table.
//!
//! The standard streams are nodes the kind serves itself: fd 1 is the
//! VMM's standard output (only the program writes there), fd 2 its
//! standard error; both are streamed: one call moves at most
//! [`WRITE_MAX`] bytes (a short write, which every libc continues), so a
//! 1 GiB `write` is never buffered whole. Standard input reads as at its
//! end for now.
//!
//! Before a `/proc/self` file is opened, the kind renders it from the
//! address space as it is at that moment (`super::super::proc_files`).

use super::super::fs::{Errno, Fd, Special, PATH_MAX};
use super::super::memfd::{self, tag_of};
use super::ctx::{ret, Ctx, RESTART};
use super::iov::{iovecs, WRITE_MAX};
use super::pipes;
use super::wait::end_of;
use crate::hosted::hypercall::Outcome;

/// `AT_FDCWD`.
const AT_FDCWD: i64 = -100;

fn fd(v: u64) -> Fd {
    Fd(v as i32)
}

fn dirfd(v: u64) -> Fd {
    if v as i64 == AT_FDCWD || v as i32 == AT_FDCWD as i32 {
        Fd::CWD
    } else {
        Fd(v as i32)
    }
}

fn e(err: Errno) -> i32 {
    err.raw()
}

fn path(c: &Ctx<'_>, va: u64) -> Result<Vec<u8>, i32> {
    c.hv.read_user_cstr(c.vcpu, va, PATH_MAX)
}

/// Sends `bytes` to the program's standard output or error.
fn emit(c: &Ctx<'_>, s: Special, bytes: &[u8]) -> Result<u64, i32> {
    match s {
        Special::Stdout => c.hv.console().write(bytes),
        Special::Stderr => match c.linux.stderr() {
            Some(o) => o.write(bytes),
            None => c.hv.console().write(bytes),
        },
        _ => return Err(libc::EBADF),
    }
    Ok(bytes.len() as u64)
}

/// Writes `data` to `fd`: a standard stream or a file.
fn write_bytes(c: &Ctx<'_>, fd: Fd, data: &[u8]) -> Result<u64, i32> {
    let special = c.linux.vfs().special(fd).map_err(e)?;
    match special.map(|s| s.special) {
        Some(s @ (Special::Stdout | Special::Stderr)) => emit(c, s, data),
        Some(Special::Stdin) => Err(libc::EBADF),
        Some(Special::Tag(t)) => match c.linux.memfds().get(t) {
            Some(obj) => {
                let at = special_offset(c, fd)?;
                let n = obj.write_at(at, data).map_err(memfd::errno)?;
                c.linux.vfs().set_offset(fd, at + n as u64).map_err(e)?;
                Ok(n as u64)
            }
            None => c.linux.write_special(c.hv, c.vcpu, fd, t, data, None).map(|n| n as u64),
        },
        None => c.linux.vfs().write(fd, data).map(|n| n as u64).map_err(e),
    }
}

/// The offset of a descriptor the kind serves.
fn special_offset(c: &Ctx<'_>, fd: Fd) -> Result<u64, i32> {
    Ok(c.linux.vfs().special(fd).map_err(e)?.map_or(0, |s| s.offset))
}

/// Reads from a memfd at `at` (the descriptor's offset when `None`,
/// which then moves).
fn memfd_read(c: &Ctx<'_>, fd: Fd, tag: u32, len: usize, at: Option<u64>) -> Result<Vec<u8>, i32> {
    let off = match at {
        Some(o) => o,
        None => special_offset(c, fd)?,
    };
    let buf = if let Some(f) = c.linux.memfds().get_huge(tag) {
        super::huge_memfd::read(&f, off, len)?
    } else {
        let obj = c.linux.memfds().get(tag).ok_or(libc::EBADF)?;
        let mut buf = vec![0u8; len.min(obj.len().saturating_sub(off) as usize)];
        let n = obj.read_at(off, &mut buf).map_err(memfd::errno)?;
        buf.truncate(n);
        buf
    };
    let n = buf.len();
    if at.is_none() {
        c.linux.vfs().set_offset(fd, off + n as u64).map_err(e)?;
    }
    Ok(buf)
}

/// Most bytes one read of standard input takes.
const STDIN_MAX: usize = 64 << 10;
/// How long one read of standard input waits before the call is made
/// again (so a stopping run never waits on it).
const STDIN_SLICE_MS: i32 = 20;
/// `read_bytes`'s error for "nothing yet: make the call again".
const WOULD_RESTART: i32 = -RESTART as i32;

/// Reads the VMM's standard input (the program's): what is there, `0` at
/// its end; nothing there yet is [`WOULD_RESTART`].
fn stdin_read(len: usize, wait_ms: i32) -> Result<Vec<u8>, i32> {
    let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
    if n == 0 {
        return Err(WOULD_RESTART);
    }
    if n < 0 {
        return Err(WOULD_RESTART);
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; len.min(STDIN_MAX)];
    // SAFETY: `buf` is valid for `buf.len()` bytes, which read only writes.
    let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    match got {
        n if n >= 0 => {
            buf.truncate(n as usize);
            Ok(buf)
        }
        _ => match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => Err(WOULD_RESTART),
            Some(err) => Err(err),
            None => Err(libc::EIO),
        },
    }
}

/// Reads up to `len` bytes from `fd`.
fn read_bytes(c: &Ctx<'_>, fd: Fd, len: usize) -> Result<Vec<u8>, i32> {
    let special = c.linux.vfs().special(fd).map_err(e)?;
    match special.map(|s| s.special) {
        // With several vCPUs the kind's lock is not held across a wait:
        // the call is made again after the vCPU's own short block.
        Some(Special::Stdin) => stdin_read(len, if c.linux.smp() { 0 } else { STDIN_SLICE_MS }),
        Some(Special::Stdout | Special::Stderr) => Err(libc::EBADF),
        Some(Special::Tag(t)) if tag_of(Special::Tag(t)).is_some() => memfd_read(c, fd, t, len, None),
        Some(Special::Tag(t)) => c.linux.read_special(c.hv, c.vcpu, fd, t, len, None),
        None => {
            c.linux.before_read(c.hv, fd)?;
            c.linux.vfs().read(fd, len).map_err(e)
        }
    }
}

/// `write(fd, buf, count)`.
pub fn write(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, count, ..] = a;
    if let Some(o) = on_ipc_end(c, fd(f), |end, fl| {
        pipes::write_end(c, end, fl, || c.hv.read_user(c.vcpu, buf, count.min(WRITE_MAX)))
    }) {
        return o;
    }
    let r = (|| {
        // The descriptor first: EBADF before EFAULT, as Linux.
        c.linux.vfs().special(fd(f)).map_err(e)?;
        let bytes = c.hv.read_user(c.vcpu, buf, count.min(WRITE_MAX))?;
        write_bytes(c, fd(f), &bytes)
    })();
    ret(r)
}

/// `read(fd, buf, count)`.
pub fn read(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, count, ..] = a;
    if let Some(o) = on_ipc_end(c, fd(f), |end, fl| pipes::read_end(c, end, fl, &[(buf, count)])) {
        return o;
    }
    let r = (|| {
        // A file of the tree (no special node: tmpfs, host files, /dev)
        // is read in full, as Linux reads up to MAX_RW_COUNT, through a
        // bounded host buffer; anything else (stdin, memfds, /proc) one
        // buffer at a time, a short read the caller continues.
        let regular = c.linux.vfs().special(fd(f)).map_err(e)?.is_none();
        let count = count.min(MAX_RW_COUNT);
        let mut total = 0u64;
        loop {
            let want = (count - total).min(WRITE_MAX) as usize;
            let step = read_bytes(c, fd(f), want)
                .and_then(|bytes| c.hv.write_user(c.vcpu, buf.wrapping_add(total), &bytes).map(|()| bytes.len()));
            let n = match step {
                Ok(n) => n,
                // What was read before an error is the result, as Linux.
                Err(_) if total > 0 => break,
                Err(err) => return Err(err),
            };
            total += n as u64;
            if !regular || n < want || total >= count {
                break;
            }
        }
        Ok(total)
    })();
    ret(r)
}

/// Linux's `MAX_RW_COUNT`: the most one `read` or `write` moves.
const MAX_RW_COUNT: u64 = 0x7fff_f000;

/// `pread64(fd, buf, count, off)`.
pub fn pread64(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, count, off, ..] = a;
    let r = (|| {
        let special = c.linux.vfs().special(fd(f)).map_err(e)?;
        if special.is_some_and(|s| super::super::ipc::EndId::of(s.special).is_some()) {
            return Err(libc::ESPIPE);
        }
        let len = count.min(WRITE_MAX) as usize;
        let bytes = match special.map(|s| s.special) {
            Some(Special::Tag(t)) if tag_of(Special::Tag(t)).is_some() => memfd_read(c, fd(f), t, len, Some(off))?,
            Some(Special::Tag(_)) if (off as i64) < 0 => return Err(libc::EINVAL),
            Some(Special::Tag(t)) => c.linux.read_special(c.hv, c.vcpu, fd(f), t, len, Some(off))?,
            Some(_) => return Err(libc::ESPIPE),
            None => c.linux.vfs().pread64(fd(f), len, off as i64).map_err(e)?,
        };
        c.hv.write_user(c.vcpu, buf, &bytes)?;
        Ok(bytes.len() as u64)
    })();
    ret(r)
}

/// `pwrite64(fd, buf, count, off)`.
pub fn pwrite64(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, buf, count, off, ..] = a;
    let r = (|| {
        let special = c.linux.vfs().special(fd(f)).map_err(e)?;
        let bytes = c.hv.read_user(c.vcpu, buf, count.min(WRITE_MAX))?;
        if let Some(t) = special.and_then(|s| tag_of(s.special)) {
            // A hugetlbfs memfd cannot be written (Linux's EINVAL).
            let obj = c.linux.memfds().get(t).ok_or(libc::EINVAL)?;
            return obj.write_at(off, &bytes).map(|n| n as u64).map_err(memfd::errno);
        }
        if let Some(Special::Tag(t)) = special.map(|s| s.special) {
            if (off as i64) < 0 {
                return Err(libc::EINVAL);
            }
            return c.linux.write_special(c.hv, c.vcpu, fd(f), t, &bytes, Some(off)).map(|n| n as u64);
        }
        if special.is_some() {
            return Err(libc::ESPIPE);
        }
        c.linux.vfs().pwrite64(fd(f), &bytes, off as i64).map(|n| n as u64).map_err(e)
    })();
    ret(r)
}

/// `writev(fd, iov, iovcnt)`: gathered, at most [`WRITE_MAX`] bytes.
pub fn writev(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, iov, cnt, ..] = a;
    let gather = || {
        let mut out = Vec::new();
        for (base, len) in iovecs(c, iov, cnt)? {
            let room = WRITE_MAX - out.len() as u64;
            if room == 0 {
                break;
            }
            out.extend(c.hv.read_user(c.vcpu, base, len.min(room))?);
        }
        Ok(out)
    };
    if let Some(o) = on_ipc_end(c, fd(f), |end, fl| pipes::write_end(c, end, fl, gather)) {
        return o;
    }
    let r = (|| {
        c.linux.vfs().special(fd(f)).map_err(e)?;
        write_bytes(c, fd(f), &gather()?)
    })();
    ret(r)
}

/// Serves a call on `f` with `on` if `f` names a pipe or socket end;
/// `None` for other files (and for a descriptor that is not open, which
/// the caller refuses in its own order).
fn on_ipc_end(c: &Ctx<'_>, f: Fd, on: impl FnOnce(super::super::ipc::EndId, i32) -> Outcome) -> Option<Outcome> {
    match end_of(c, f) {
        Ok(Some((end, fl))) => Some(on(end, fl)),
        _ => None,
    }
}

/// `readv(fd, iov, iovcnt)`: scattered over the buffers in order.
pub fn readv(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, iov, cnt, ..] = a;
    if let Some(o) = on_ipc_end(c, fd(f), |end, fl| match iovecs(c, iov, cnt) {
        Ok(bufs) => pipes::read_end(c, end, fl, &bufs),
        Err(err) => Outcome::err(err),
    }) {
        return o;
    }
    let r = (|| {
        let vecs = iovecs(c, iov, cnt)?;
        let total: u64 = vecs.iter().map(|v| v.1).fold(0u64, u64::saturating_add).min(WRITE_MAX);
        let bytes = read_bytes(c, fd(f), total as usize)?;
        let mut done = 0usize;
        for (base, len) in vecs {
            if done >= bytes.len() {
                break;
            }
            let n = (len as usize).min(bytes.len() - done);
            c.hv.write_user(c.vcpu, base, &bytes[done..done + n])?;
            done += n;
        }
        Ok(done as u64)
    })();
    ret(r)
}

/// `open(path, flags, mode)`.
pub fn open(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    openat(c, [AT_FDCWD as u64, a[0], a[1], a[2], 0, 0])
}

/// `creat(path, mode)`.
pub fn creat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    openat(c, [AT_FDCWD as u64, a[0], (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64, a[1], 0, 0])
}

/// `openat(dirfd, path, flags, mode)`.
pub fn openat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [d, p, flags, mode, ..] = a;
    let r = (|| {
        let p = c.linux.proc_open(c.hv, path(c, p)?)?;
        c.linux.vfs().openat(dirfd(d), &p, flags as i32, mode as u32).map(|f| f.0 as u64).map_err(e)
    })();
    ret(r)
}

/// `close(fd)`.
pub fn close(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let mut vfs = c.linux.vfs();
    let was_memfd = vfs.special(fd(a[0])).ok().flatten().and_then(|s| tag_of(s.special)).is_some();
    let was_ipc = vfs.special(fd(a[0])).ok().flatten().and_then(|s| super::super::ipc::EndId::of(s.special));
    let r = vfs.close(fd(a[0])).map(|()| 0).map_err(e);
    if was_memfd {
        c.linux.memfds().release_unused(&vfs);
    }
    if was_ipc.is_some() {
        c.linux.ipc().release_unused(&vfs);
    }
    ret(r)
}

/// After a call that may have closed a descriptor (`dup2`, `dup3` over
/// an open one): the objects nothing names any more are let go.
fn released(c: &Ctx<'_>, r: Result<u64, i32>) -> Outcome {
    let vfs = c.linux.vfs();
    c.linux.memfds().release_unused(&vfs);
    c.linux.ipc().release_unused(&vfs);
    ret(r)
}

/// The hugetlbfs memfd behind `fd`, if it is one.
fn huge_memfd_of(c: &Ctx<'_>, f: Fd) -> Result<Option<guest_mm::providers::HugetlbFile<crate::memory::GuestMem>>, i32> {
    let s = c.linux.vfs().special(f).map_err(e)?;
    Ok(s.and_then(|s| tag_of(s.special)).and_then(|t| c.linux.memfds().get_huge(t)))
}

/// The memfd object behind `fd`, if it is one.
fn memfd_of(c: &Ctx<'_>, f: Fd) -> Result<Option<guest_mm::providers::ShmemObject<crate::memory::GuestMem>>, i32> {
    let s = c.linux.vfs().special(f).map_err(e)?;
    Ok(s.and_then(|s| tag_of(s.special)).and_then(|t| c.linux.memfds().get(t)))
}

/// `dup(fd)`.
pub fn dup(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.linux.vfs().dup(fd(a[0])).map(|f| f.0 as u64).map_err(e))
}

/// `dup2(old, new)`.
pub fn dup2(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = c.linux.vfs().dup2(fd(a[0]), fd(a[1])).map(|f| f.0 as u64).map_err(e);
    released(c, r)
}

/// `dup3(old, new, flags)`.
pub fn dup3(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = c.linux.vfs().dup3(fd(a[0]), fd(a[1]), a[2] as i32).map(|f| f.0 as u64).map_err(e);
    released(c, r)
}

/// `fcntl(fd, cmd, arg)`.
pub fn fcntl(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if matches!(a[1] as i32, pipes::F_GETPIPE_SZ | pipes::F_SETPIPE_SZ) {
        return pipes::pipe_size(c, fd(a[0]), a[1] as i32, a[2]);
    }
    ret(c.linux.vfs().fcntl(fd(a[0]), a[1] as i32, a[2]).map(|v| v as u64).map_err(e))
}

/// `lseek(fd, off, whence)`.
pub fn lseek(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        if end_of(c, fd(a[0]))?.is_some() {
            return Err(libc::ESPIPE);
        }
        let size = match (memfd_of(c, fd(a[0]))?, huge_memfd_of(c, fd(a[0]))?) {
            (Some(obj), _) => Some(obj.len()),
            (None, Some(f)) => Some(f.len()),
            (None, None) => None,
        };
        if let Some(size) = size {
            let cur = special_offset(c, fd(a[0]))? as i64;
            let base = match a[2] {
                0 => 0,
                1 => cur,
                2 => size as i64,
                _ => return Err(libc::EINVAL),
            };
            let to = base.checked_add(a[1] as i64).filter(|&t| t >= 0).ok_or(libc::EINVAL)?;
            c.linux.vfs().set_offset(fd(a[0]), to as u64).map_err(e)?;
            return Ok(to as u64);
        }
        c.linux.vfs().lseek(fd(a[0]), a[1] as i64, a[2] as i32).map_err(e)
    })();
    ret(r)
}

/// `ftruncate(fd, len)`.
pub fn ftruncate(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    match huge_memfd_of(c, fd(a[0])) {
        Ok(Some(f)) => return super::huge_memfd::ftruncate(c, &f, a[1]),
        Ok(None) => {}
        Err(err) => return Outcome::err(err),
    }
    let r = (|| {
        if let Some(obj) = memfd_of(c, fd(a[0]))? {
            if (a[1] as i64) < 0 {
                return Err(libc::EINVAL);
            }
            let old = obj.len();
            obj.set_len(a[1]).map_err(memfd::errno)?;
            if a[1] < old {
                c.linux.file_zaps().truncated(&obj, a[1]);
            }
            return Ok(0);
        }
        c.linux.vfs().ftruncate(fd(a[0]), a[1] as i64).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `fallocate(fd, mode, off, len)`.
pub fn fallocate(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [f, mode, off, len, ..] = a;
    match huge_memfd_of(c, fd(f)) {
        Ok(Some(h)) => return super::huge_memfd::fallocate(c, &h, mode, off, len),
        Ok(None) => {}
        Err(err) => return Outcome::err(err),
    }
    let r = (|| {
        if let Some(obj) = memfd_of(c, fd(f))? {
            const KEEP_SIZE: u64 = 1;
            const PUNCH_HOLE: u64 = 2;
            let end = off.checked_add(len).filter(|_| (off as i64) >= 0 && (len as i64) > 0).ok_or(libc::EINVAL)?;
            return match mode {
                0 | KEEP_SIZE => {
                    if mode == 0 && end > obj.len() {
                        obj.set_len(end).map_err(memfd::errno)?;
                    }
                    Ok(0)
                }
                m if m == PUNCH_HOLE | KEEP_SIZE => {
                    c.linux.file_zaps().punch(&obj, off, len).map(|()| 0).map_err(memfd::errno)
                }
                _ => Err(libc::EOPNOTSUPP),
            };
        }
        c.linux.vfs().fallocate(fd(f), mode as i32, off as i64, len as i64).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `fstat(fd, statbuf)`.
pub fn fstat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let mut st = c.linux.vfs().fstat(fd(a[0])).map_err(e)?;
        if let Some(obj) = memfd_of(c, fd(a[0]))? {
            // st_size and st_blocks (512-byte units) are the object's.
            st[48..56].copy_from_slice(&obj.len().to_le_bytes());
            st[64..72].copy_from_slice(&(obj.resident_pages() * 8).to_le_bytes());
        } else if let Some(f) = huge_memfd_of(c, fd(a[0]))? {
            // hugetlbfs: st_blksize is the huge page size.
            let huge = guest_mm::providers::HUGE_PAGE_SIZE;
            st[48..56].copy_from_slice(&f.len().to_le_bytes());
            st[56..64].copy_from_slice(&huge.to_le_bytes());
            st[64..72].copy_from_slice(&(f.resident_pages() * (huge / 512)).to_le_bytes());
        }
        c.hv.write_user(c.vcpu, a[1], &st).map(|()| 0)
    })();
    ret(r)
}

fn stat_common(c: &Ctx<'_>, d: u64, p: u64, buf: u64, flags: i32) -> Outcome {
    let r = (|| {
        let p = path(c, p)?;
        if p.is_empty() && flags & libc::AT_EMPTY_PATH != 0 && d as i32 != libc::AT_FDCWD {
            // The descriptor itself (glibc's fstat is this call).
            return ret_value(fstat(c, [d, buf, 0, 0, 0, 0]));
        }
        let st = c.linux.vfs().newfstatat(dirfd(d), &p, flags).map_err(e)?;
        c.hv.write_user(c.vcpu, buf, &st).map(|()| 0)
    })();
    ret(r)
}

/// An outcome's value back as a result.
fn ret_value(o: Outcome) -> Result<u64, i32> {
    if o.ret < 0 {
        Err(-o.ret as i32)
    } else {
        Ok(o.ret as u64)
    }
}

/// `newfstatat(dirfd, path, statbuf, flags)`.
pub fn newfstatat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    stat_common(c, a[0], a[1], a[2], a[3] as i32)
}

/// `stat(path, statbuf)`.
pub fn stat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    stat_common(c, AT_FDCWD as u64, a[0], a[1], 0)
}

/// `lstat(path, statbuf)`.
pub fn lstat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    stat_common(c, AT_FDCWD as u64, a[0], a[1], libc::AT_SYMLINK_NOFOLLOW)
}

/// `statfs(path, buf)`.
pub fn statfs(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[0])?;
        let st = c.linux.vfs().statfs(&p).map_err(e)?;
        c.hv.write_user(c.vcpu, a[1], &st).map(|()| 0)
    })();
    ret(r)
}

/// `fstatfs(fd, buf)`.
pub fn fstatfs(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let st = c.linux.vfs().fstatfs(fd(a[0])).map_err(e)?;
        c.hv.write_user(c.vcpu, a[1], &st).map(|()| 0)
    })();
    ret(r)
}

fn readlink_common(c: &Ctx<'_>, d: u64, p: u64, buf: u64, size: u64) -> Outcome {
    let r = (|| {
        if size as i64 <= 0 {
            return Err(libc::EINVAL);
        }
        let p = path(c, p)?;
        let target = c.linux.vfs().readlinkat(dirfd(d), &p, size.min(PATH_MAX as u64) as usize).map_err(e)?;
        c.hv.write_user(c.vcpu, buf, &target)?;
        Ok(target.len() as u64)
    })();
    ret(r)
}

/// `readlink(path, buf, size)`.
pub fn readlink(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    readlink_common(c, AT_FDCWD as u64, a[0], a[1], a[2])
}

/// `readlinkat(dirfd, path, buf, size)`.
pub fn readlinkat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    readlink_common(c, a[0], a[1], a[2], a[3])
}

/// `access(path, mode)`.
pub fn access(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    faccessat(c, [AT_FDCWD as u64, a[0], a[1], 0, 0, 0])
}

/// `faccessat(dirfd, path, mode)` and `faccessat2(..., flags)`.
pub fn faccessat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[1])?;
        c.linux.vfs().faccessat(dirfd(a[0]), &p, a[2] as i32, a[3] as i32).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `chmod(path, mode)`.
pub fn chmod(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    fchmodat(c, [AT_FDCWD as u64, a[0], a[1], 0, 0, 0])
}

/// `fchmod(fd, mode)`.
pub fn fchmod(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.linux.vfs().fchmod(fd(a[0]), a[1] as u32).map(|()| 0).map_err(e))
}

/// `fchmodat(dirfd, path, mode)` and `fchmodat2(..., flags)`.
pub fn fchmodat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[1])?;
        c.linux.vfs().fchmodat(dirfd(a[0]), &p, a[2] as u32, a[3] as i32).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `chown(path, uid, gid)`.
pub fn chown(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    fchownat(c, [AT_FDCWD as u64, a[0], a[1], a[2], 0, 0])
}

/// `lchown(path, uid, gid)`.
pub fn lchown(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    fchownat(c, [AT_FDCWD as u64, a[0], a[1], a[2], libc::AT_SYMLINK_NOFOLLOW as u64, 0])
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.linux.vfs().fchown(fd(a[0]), a[1] as u32, a[2] as u32).map(|()| 0).map_err(e))
}

/// `fchownat(dirfd, path, uid, gid, flags)`.
pub fn fchownat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[1])?;
        c.linux.vfs().fchownat(dirfd(a[0]), &p, a[2] as u32, a[3] as u32, a[4] as i32).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `mkdir(path, mode)`.
pub fn mkdir(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    mkdirat(c, [AT_FDCWD as u64, a[0], a[1], 0, 0, 0])
}

/// `mkdirat(dirfd, path, mode)`.
pub fn mkdirat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[1])?;
        c.linux.vfs().mkdirat(dirfd(a[0]), &p, a[2] as u32).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `unlink(path)`.
pub fn unlink(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    unlinkat(c, [AT_FDCWD as u64, a[0], 0, 0, 0, 0])
}

/// `rmdir(path)`.
pub fn rmdir(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    unlinkat(c, [AT_FDCWD as u64, a[0], libc::AT_REMOVEDIR as u64, 0, 0, 0])
}

/// `unlinkat(dirfd, path, flags)`.
pub fn unlinkat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[1])?;
        c.linux.vfs().unlinkat(dirfd(a[0]), &p, a[2] as i32).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `chdir(path)`.
pub fn chdir(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let p = path(c, a[0])?;
        c.linux.vfs().chdir(&p).map(|()| 0).map_err(e)
    })();
    ret(r)
}

/// `fchdir(fd)`.
pub fn fchdir(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.linux.vfs().fchdir(fd(a[0])).map(|()| 0).map_err(e))
}

/// `getcwd(buf, size)`.
pub fn getcwd(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let cwd = c.linux.vfs().getcwd(a[1].min(PATH_MAX as u64) as usize).map_err(e)?;
        c.hv.write_user(c.vcpu, a[0], &cwd)?;
        Ok(cwd.len() as u64)
    })();
    ret(r)
}

/// `getdents64(fd, dirp, count)`.
pub fn getdents64(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let b = c.linux.vfs().getdents64(fd(a[0]), a[2].min(WRITE_MAX) as usize).map_err(e)?;
        c.hv.write_user(c.vcpu, a[1], &b)?;
        Ok(b.len() as u64)
    })();
    ret(r)
}

/// `memfd_create(name, flags)`.
pub fn memfd_create(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let r = (|| {
        let huge = memfd::check_flags(a[1] as u32)?;
        let name =
            c.hv.read_user_cstr(c.vcpu, a[0], 249)
                .map_err(|x| if x == libc::ENAMETOOLONG { libc::EINVAL } else { x })?;
        let anon = c.linux.anon().ok_or(libc::ENOMEM)?;
        let label = format!("memfd:{}", String::from_utf8_lossy(&name));
        let obj = if huge {
            memfd::MemfdObject::Huge(c.linux.hugetlb().ok_or(libc::ENOMEM)?.file(&label))
        } else {
            let o = guest_mm::providers::ShmemObject::new(&label, anon.frames.clone(), anon.mem.clone(), 0)
                .map_err(memfd::errno)?;
            memfd::MemfdObject::Shmem(o)
        };
        c.linux.memfds().create(&mut c.linux.vfs(), obj, a[1] as u32).map(|f| f.0 as u64)
    })();
    ret(r)
}

/// `ioctl(fd, request, arg)`: nothing is a terminal; a userfaultfd's
/// requests go to [`super::uffd::ioctl`].
pub fn ioctl(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let special = c.linux.vfs().special(fd(a[0]));
    match special {
        Err(err) => Outcome::err(err.raw()),
        Ok(Some(s)) => match super::super::userfaultfd::tag_of(s.special) {
            Some(t) => super::uffd::ioctl(c, t, a[1] & 0xffff_ffff, a[2]),
            None => Outcome::err(libc::ENOTTY),
        },
        Ok(None) => Outcome::err(libc::ENOTTY),
    }
}
