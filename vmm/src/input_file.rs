//! Reading a file the user names (`--config`, `--guest`, and any future
//! loader: kernels, unikernels, modules) without trusting what it is.
//!
//! [`read_input`] opens the path with `O_NONBLOCK` (so a FIFO with no
//! writer cannot hang the open), checks with `fstat` that it is a regular
//! file no larger than the cap its caller gives, and reads exactly that
//! many bytes (a file that grows meanwhile is cut at the size it had). A
//! device (`/dev/zero`), a FIFO, a socket or a directory is a clear error,
//! never a read that grows without bound or blocks forever.
//!
//! [`open_checked`] is the same open and check for files the VMM maps
//! rather than reads (BAR backings), where character devices are allowed.
//!
//! What it does not do: decide the cap (each caller states its own; see
//! the `*_MAX` constants beside each loader), or parse anything.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors opening or reading an input file.
#[derive(Debug, Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The path names something that is not a regular file.
    #[error("{path} is {kind}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is ("a FIFO", "a character device", ...).
        kind: &'static str,
    },
    /// The file is over the caller's cap.
    #[error("{path} is larger than {max} bytes ({size} bytes)")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        max: u64,
    },
}

/// What kinds of file [`open_checked`] accepts besides regular files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Regular files only.
    Regular,
    /// Regular files and character devices (device memory to map).
    RegularOrCharDevice,
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}

/// Opens `path` without blocking (read-only, or read-write with `write`)
/// and checks its kind. Returns the file and its size.
pub fn open_checked(path: &Path, write: bool, accept: Accept) -> Result<(File, u64), InputError> {
    let io = |source| InputError::Io { path: path.to_owned(), source };
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let t = meta.file_type();
    let ok = t.is_file() || (accept == Accept::RegularOrCharDevice && t.is_char_device());
    if !ok {
        return Err(InputError::NotRegular { path: path.to_owned(), kind: kind_of(t) });
    }
    Ok((file, meta.len()))
}

/// Reads the regular file `path`, refusing anything else and any file
/// over `max` bytes before reading a byte of it.
pub fn read_input(path: &Path, max: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_checked(path, false, Accept::Regular)?;
    if size > max {
        return Err(InputError::TooLarge { path: path.to_owned(), size, max });
    }
    // `size <= max`, and callers' caps are far below `usize::MAX`.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size).read_to_end(&mut bytes).map_err(|source| InputError::Io { path: path.to_owned(), source })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("vmm-input-{}-{name}", std::process::id()))
    }

    #[test]
    fn regular_files_are_read_exactly() {
        let p = temp("ok");
        std::fs::File::create(&p).unwrap().write_all(b"hello").unwrap();
        assert_eq!(read_input(&p, 5).unwrap(), b"hello");
        assert!(matches!(read_input(&p, 4), Err(InputError::TooLarge { size: 5, max: 4, .. })));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(read_input(&p, 4), Err(InputError::Io { .. })));
    }

    #[test]
    fn other_kinds_are_refused() {
        let e = read_input(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(e, InputError::NotRegular { kind: "a character device", .. }), "{e}");
        assert_eq!(e.to_string(), "/dev/zero is a character device, not a regular file");
        let e = read_input(Path::new("/"), 1 << 20).unwrap_err();
        assert!(matches!(e, InputError::NotRegular { kind: "a directory", .. }), "{e}");
        // A FIFO with no writer: refused at once, not waited on.
        let p = temp("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_input(&p, 1 << 20).unwrap_err();
        assert!(matches!(e, InputError::NotRegular { kind: "a FIFO", .. }), "{e}");
        std::fs::remove_file(&p).unwrap();
        // Devices may be mapped where the caller allows them.
        assert!(open_checked(Path::new("/dev/zero"), false, Accept::RegularOrCharDevice).is_ok());
    }
}
