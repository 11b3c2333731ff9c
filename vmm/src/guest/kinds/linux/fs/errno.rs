//! The error every file call returns: a Linux errno number, as the guest
//! sees it (`-errno` in `rax`). Named constants for the values this
//! module uses, so call sites read like the man pages.

/// A Linux errno value (positive, as in `<errno.h>`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("errno {0}")]
pub struct Errno(pub i32);

impl Errno {
    /// The positive errno number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The value a system call returns for it: `-errno`.
    pub const fn to_return(self) -> i64 {
        -(self.0 as i64)
    }

    /// The errno of a host I/O error (`EIO` when it has none).
    pub fn from_io(err: &std::io::Error) -> Self {
        Errno(err.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Operation not permitted.
pub const EPERM: Errno = Errno(libc::EPERM);
/// No such file or directory.
pub const ENOENT: Errno = Errno(libc::ENOENT);
/// Input/output error.
pub const EIO: Errno = Errno(libc::EIO);
/// No such device or address (`SEEK_DATA`/`SEEK_HOLE` past the end).
pub const ENXIO: Errno = Errno(libc::ENXIO);
/// Bad file descriptor.
pub const EBADF: Errno = Errno(libc::EBADF);
/// Permission denied.
pub const EACCES: Errno = Errno(libc::EACCES);
/// Device or resource busy (removing a mount point).
pub const EBUSY: Errno = Errno(libc::EBUSY);
/// File exists.
pub const EEXIST: Errno = Errno(libc::EEXIST);
/// Not a directory.
pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
/// Is a directory.
pub const EISDIR: Errno = Errno(libc::EISDIR);
/// Invalid argument.
pub const EINVAL: Errno = Errno(libc::EINVAL);
/// Too many open files.
pub const EMFILE: Errno = Errno(libc::EMFILE);
/// File too large.
pub const EFBIG: Errno = Errno(libc::EFBIG);
/// No space left on device.
pub const ENOSPC: Errno = Errno(libc::ENOSPC);
/// Illegal seek.
pub const ESPIPE: Errno = Errno(libc::ESPIPE);
/// No such device (`fallocate` on a device).
pub const ENODEV: Errno = Errno(libc::ENODEV);
/// Result too large (`getcwd` buffer too small).
pub const ERANGE: Errno = Errno(libc::ERANGE);
/// File name too long.
pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
/// Directory not empty.
pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
/// Too many levels of symbolic links.
pub const ELOOP: Errno = Errno(libc::ELOOP);
/// Operation not supported.
pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
/// Value too large for defined data type.
pub const EOVERFLOW: Errno = Errno(libc::EOVERFLOW);
