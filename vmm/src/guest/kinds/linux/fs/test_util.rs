//! Helpers shared by the call tests: a default [`Vfs`], opening by
//! string path, and reading fields out of `stat` bytes and
//! `getdents64` listings.

#![allow(clippy::unwrap_used)]

use super::*;

/// `O_RDWR | O_CREAT`.
pub const RW_CREAT: i32 = libc::O_RDWR | libc::O_CREAT;

/// The standard tree with the default budget.
pub fn vfs() -> Vfs {
    Vfs::new(&VfsConfig::default())
}

/// `openat(AT_FDCWD, path, flags, 0666)`.
pub fn open(v: &mut Vfs, path: &str, flags: i32) -> Result<Fd, Errno> {
    v.openat(Fd::CWD, path.as_bytes(), flags, 0o666)
}

/// The little-endian u64 at `at`.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The little-endian u32 at `at`.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// `st_mode` of `path`.
pub fn mode_of(v: &Vfs, path: &str) -> u32 {
    u32_at(&v.newfstatat(Fd::CWD, path.as_bytes(), 0).unwrap(), stat_offsets::MODE)
}

/// `st_size` of `fd`.
pub fn size_of_fd(v: &Vfs, fd: Fd) -> u64 {
    u64_at(&v.fstat(fd).unwrap(), stat_offsets::SIZE)
}

/// Every name `getdents64` lists in directory `path`, in order.
pub fn names(v: &mut Vfs, path: &str) -> Vec<String> {
    let fd = v.openat(Fd::CWD, path.as_bytes(), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
    let mut all = Vec::new();
    loop {
        let buf = v.getdents64(fd, 4096).unwrap();
        if buf.is_empty() {
            break;
        }
        all.extend(parse_records(&buf).unwrap().into_iter().map(|r| String::from_utf8(r.name).unwrap()));
    }
    v.close(fd).unwrap();
    all
}
