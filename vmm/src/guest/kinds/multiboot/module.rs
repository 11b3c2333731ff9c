//! Multiboot modules as the loader sees them: a length known before any
//! byte is read, a command line, and a source the bytes are copied from
//! into guest memory once everything has been placed
//! ([`super::load`]).
//!
//! A module given as a file ([`Module::open`]) is opened without blocking
//! and sized with `fstat` ([`crate::input_file::open_checked`]: a FIFO, a
//! device or a directory is an error at once, never a hang or a read that
//! does not end). Its bytes are read only by [`Module::write_to`], in
//! 64 KiB pieces straight into guest memory: no copy of a module is held
//! on the heap, and a module that does not fit in the machine is refused
//! before a byte of it is read.
//!
//! What it does not do: place modules or bound their number or total
//! size (that is [`super::load`], which knows the machine).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use crate::input_file::{open_checked, Accept, InputError};
use crate::memory::GuestMem;

/// Largest kernel or module file accepted (a kvm-unit-test is < 1 MiB).
pub const MAX_FILE: u64 = 256 << 20;
/// Bytes copied from a module file per read.
const CHUNK: usize = 64 << 10;

/// Errors opening a module or copying it into guest memory.
#[derive(Debug, Error)]
pub enum ModuleError {
    /// The file is not a regular file of at most [`MAX_FILE`] bytes, or
    /// cannot be opened.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Reading the file failed (it may have shrunk since it was opened).
    #[error("cannot read {path} at offset {offset:#x}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Where in the file.
        offset: u64,
        /// The error (`UnexpectedEof`: the file shrank).
        #[source]
        source: std::io::Error,
    },
    /// Writing guest memory failed (a bug: the placement was checked).
    #[error("cannot write guest memory at {0:#x}")]
    Write(u64),
}

/// Where a module's bytes come from.
#[derive(Debug)]
enum Source {
    /// Bytes already in memory (tests, fuzzing).
    Bytes(Vec<u8>),
    /// An open regular file, read at the offsets it is copied from.
    File {
        /// The file.
        file: File,
        /// Its path (messages).
        path: PathBuf,
    },
}

/// One module: its size, its command line and its bytes' source.
#[derive(Debug)]
pub struct Module {
    source: Source,
    len: u64,
    cmdline: String,
}

impl Module {
    /// A module of `bytes` with `cmdline`.
    pub fn from_bytes(bytes: Vec<u8>, cmdline: impl Into<String>) -> Self {
        let len = bytes.len() as u64;
        Module { source: Source::Bytes(bytes), len, cmdline: cmdline.into() }
    }

    /// Opens the module file `path` (its command line is the path, as boot
    /// loaders give it) without reading it: a regular file of at most
    /// [`MAX_FILE`] bytes, whose size is fixed now (a file that grows
    /// later is cut at it, one that shrinks is an error when copied).
    pub fn open(path: &Path) -> Result<Self, ModuleError> {
        let (file, len) = open_checked(path, false, Accept::Regular)?;
        if len > MAX_FILE {
            return Err(InputError::TooLarge { path: path.to_owned(), size: len, max: MAX_FILE }.into());
        }
        Ok(Module { source: Source::File { file, path: path.to_owned() }, len, cmdline: path.display().to_string() })
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The command line the kernel sees for it.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Copies the module to guest-physical `at` (`[at, at + len)` must
    /// lie in `mem`: the caller placed it).
    pub fn write_to(&self, mem: &GuestMem, at: u64) -> Result<(), ModuleError> {
        match &self.source {
            Source::Bytes(b) => mem.write_slice(b, GuestAddress(at)).map_err(|_| ModuleError::Write(at)),
            Source::File { file, path } => {
                let mut buf = vec![0u8; CHUNK];
                let mut off = 0u64;
                while off < self.len {
                    // At most CHUNK: fits usize.
                    let n = (self.len - off).min(CHUNK as u64) as usize;
                    file.read_exact_at(&mut buf[..n], off).map_err(|source| ModuleError::Read {
                        path: path.clone(),
                        offset: off,
                        source,
                    })?;
                    mem.write_slice(&buf[..n], GuestAddress(at + off)).map_err(|_| ModuleError::Write(at + off))?;
                    off += n as u64;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("vmm-module-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_file_is_sized_when_opened_and_copied_in_pieces() {
        let p = temp("ok");
        let data: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let m = Module::open(&p).unwrap();
        assert_eq!(m.len(), data.len() as u64);
        assert_eq!(m.cmdline(), p.display().to_string());
        let mem = create_guest_memory(4 << 20).unwrap();
        m.write_to(&mem, 0x1000).unwrap();
        let mut back = vec![0u8; data.len()];
        mem.read_slice(&mut back, GuestAddress(0x1000)).unwrap();
        assert_eq!(back, data);
        // A file that shrank after it was opened: an error naming where.
        std::fs::File::options().write(true).open(&p).unwrap().set_len(CHUNK as u64 + 1).unwrap();
        let e = m.write_to(&mem, 0x1000).unwrap_err();
        assert!(matches!(&e, ModuleError::Read { offset, .. } if *offset == CHUNK as u64), "{e}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn what_is_not_a_small_regular_file_is_refused_unread() {
        let e = Module::open(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero is a character device, not a regular file");
        let p = temp("big");
        std::fs::File::create(&p).unwrap().set_len(MAX_FILE + 1).unwrap();
        let e = Module::open(&p).unwrap_err();
        assert!(matches!(e, ModuleError::Input(InputError::TooLarge { size, .. }) if size == MAX_FILE + 1));
        std::fs::remove_file(&p).unwrap();
        let p = temp("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = Module::open(&p).unwrap_err();
        assert!(matches!(e, ModuleError::Input(InputError::NotRegular { kind: "a FIFO", .. })), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
