//! Standard input, output and error, and what a libc asks about them at
//! start-up (`fstat`, `ioctl(TIOCGWINSZ)`, `readlink("/proc/self/exe")`).
//!
//! fd 1 is the VMM's standard output (only the program writes there), fd
//! 2 its standard error; both are streamed: one call moves at most
//! [`WRITE_MAX`] bytes (a short write, which every libc continues), so a
//! 1 GiB `write` is never buffered whole.

use super::{ret, Ctx};
use crate::hosted::hypercall::Outcome;

/// Most bytes one `write`/`writev` moves.
pub const WRITE_MAX: u64 = 1 << 20;
/// Most entries of one `writev` (`IOV_MAX`).
const IOV_MAX: u64 = 1024;
/// `ioctl` request: window size.
const TIOCGWINSZ: u64 = 0x5413;
/// `ioctl` request: terminal attributes.
const TCGETS: u64 = 0x5401;
/// `AT_EMPTY_PATH`.
const AT_EMPTY_PATH: u64 = 0x1000;
/// Longest path (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

fn is_stdio(fd: u64) -> bool {
    fd <= 2
}

/// Sends `bytes` to the program's fd `fd` (1 or 2).
fn emit(c: &Ctx<'_>, fd: u64, bytes: &[u8]) -> Result<u64, i32> {
    match fd {
        1 => c.hv.console().write(bytes),
        2 => match c.linux.stderr() {
            Some(o) => o.write(bytes),
            None => c.hv.console().write(bytes),
        },
        _ => return Err(libc::EBADF),
    }
    Ok(bytes.len() as u64)
}

/// `write(fd, buf, count)`.
pub fn write(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [fd, buf, count, ..] = a;
    if fd != 1 && fd != 2 {
        return Outcome::err(libc::EBADF);
    }
    let n = count.min(WRITE_MAX);
    ret(c.hv.read_user(c.vcpu, buf, n).and_then(|b| emit(c, fd, &b)))
}

/// `writev(fd, iov, iovcnt)`.
pub fn writev(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [fd, iov, cnt, ..] = a;
    if fd != 1 && fd != 2 {
        return Outcome::err(libc::EBADF);
    }
    if cnt > IOV_MAX {
        return Outcome::err(libc::EINVAL);
    }
    let r = (|| {
        let vec = c.hv.read_user(c.vcpu, iov, cnt * 16)?;
        let mut out = Vec::new();
        for e in vec.chunks_exact(16) {
            let base = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(e[8..].try_into().unwrap_or_default());
            if len > i64::MAX as u64 {
                return Err(libc::EINVAL);
            }
            let room = WRITE_MAX - out.len() as u64;
            if room == 0 {
                break;
            }
            out.extend(c.hv.read_user(c.vcpu, base, len.min(room))?);
        }
        emit(c, fd, &out)
    })();
    ret(r)
}

/// `read(fd, buf, count)`: standard input is at its end.
pub fn read(_c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    match a[0] {
        0 => Outcome::ret(0),
        1 | 2 => Outcome::err(libc::EBADF),
        _ => Outcome::err(libc::EBADF),
    }
}

/// `close(fd)`.
pub fn close(_c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if is_stdio(a[0]) {
        Outcome::ret(0)
    } else {
        Outcome::err(libc::EBADF)
    }
}

/// `ioctl(fd, request, arg)`: nothing is a terminal.
pub fn ioctl(_c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    match (is_stdio(a[0]), a[1]) {
        (true, TIOCGWINSZ | TCGETS) => Outcome::err(libc::ENOTTY),
        (true, _) => Outcome::err(libc::ENOTTY),
        (false, _) => Outcome::err(libc::EBADF),
    }
}

/// The `struct stat` (144 bytes) of a standard stream: a character
/// device, as a terminal or `/dev/null` would be.
fn stdio_stat(fd: u64) -> Vec<u8> {
    let mut s = vec![0u8; 144];
    s[8..16].copy_from_slice(&(fd + 3).to_le_bytes()); // st_ino
    s[16..24].copy_from_slice(&1u64.to_le_bytes()); // st_nlink
    s[24..28].copy_from_slice(&(libc::S_IFCHR | 0o620).to_le_bytes()); // st_mode
    s[40..48].copy_from_slice(&0x8800u64.to_le_bytes()); // st_rdev
    s[56..64].copy_from_slice(&1024u64.to_le_bytes()); // st_blksize
    s
}

/// `fstat(fd, statbuf)`.
pub fn fstat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    if !is_stdio(a[0]) {
        return Outcome::err(libc::EBADF);
    }
    ret(c.hv.write_user(c.vcpu, a[1], &stdio_stat(a[0])).map(|()| 0))
}

/// `newfstatat(dirfd, path, statbuf, flags)`: `AT_EMPTY_PATH` on a
/// standard stream; no file system yet, so any path is `ENOENT`.
pub fn newfstatat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [dirfd, path, buf, flags, ..] = a;
    let r = (|| {
        let p = c.hv.read_user_cstr(c.vcpu, path, PATH_MAX)?;
        if p.is_empty() {
            if flags & AT_EMPTY_PATH == 0 {
                return Err(libc::ENOENT);
            }
            if !is_stdio(dirfd) {
                return Err(libc::EBADF);
            }
            c.hv.write_user(c.vcpu, buf, &stdio_stat(dirfd))?;
            return Ok(0);
        }
        Err(libc::ENOENT)
    })();
    ret(r)
}

/// `readlink(path, buf, size)` / `readlinkat(dirfd, path, buf, size)`:
/// `/proc/self/exe` is the program's path.
fn readlink_common(c: &Ctx<'_>, path: u64, buf: u64, size: u64) -> Outcome {
    let r = (|| {
        if size as i64 <= 0 {
            return Err(libc::EINVAL);
        }
        let p = c.hv.read_user_cstr(c.vcpu, path, PATH_MAX)?;
        if p != b"/proc/self/exe" {
            return Err(libc::ENOENT);
        }
        let target = c.linux.exe().as_bytes();
        let n = target.len().min(size as usize);
        c.hv.write_user(c.vcpu, buf, &target[..n])?;
        Ok(n as u64)
    })();
    ret(r)
}

/// `readlink(path, buf, size)`.
pub fn readlink(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    readlink_common(c, a[0], a[1], a[2])
}

/// `readlinkat(dirfd, path, buf, size)`.
pub fn readlinkat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    readlink_common(c, a[1], a[2], a[3])
}

/// `openat(dirfd, path, flags, mode)`: no file system yet.
pub fn openat(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.hv.read_user_cstr(c.vcpu, a[1], PATH_MAX).and(Err(libc::ENOENT)))
}

/// `open(path, flags, mode)`.
pub fn open(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    ret(c.hv.read_user_cstr(c.vcpu, a[0], PATH_MAX).and(Err(libc::ENOENT)))
}

/// `lseek(fd, off, whence)`: the standard streams do not seek.
pub fn lseek(_c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    Outcome::err(if is_stdio(a[0]) { libc::ESPIPE } else { libc::EBADF })
}
