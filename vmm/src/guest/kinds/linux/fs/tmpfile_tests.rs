//! `O_TMPFILE` and `O_DIRECT` at open (`tmpfile.rs`) against Linux 6.12:
//! the flag checks of `build_open_flags`, the directory checks of
//! `do_tmpfile`, the unnamed file's life (its bytes, mode and budget,
//! freed at the last close), and which nodes take `O_DIRECT`.

#![allow(clippy::unwrap_used)]

use super::errno::*;
use super::test_util::*;
use super::vfs::KERNEL_O_LARGEFILE;
use super::*;

const TMPFILE_RW: i32 = libc::O_TMPFILE | libc::O_RDWR;

#[test]
fn tmpfile_flags_are_checked_first() {
    let mut v = vfs();
    let bit = libc::O_TMPFILE & !libc::O_DIRECTORY;
    assert_eq!(open(&mut v, "/tmp", bit | libc::O_RDWR), Err(EINVAL), "without O_DIRECTORY");
    assert_eq!(open(&mut v, "/tmp", TMPFILE_RW | libc::O_CREAT), Err(EINVAL), "with O_CREAT");
    assert_eq!(open(&mut v, "/tmp", libc::O_TMPFILE | libc::O_RDONLY), Err(EINVAL), "without write access");
    assert_eq!(open(&mut v, "/nowhere", TMPFILE_RW), Err(ENOENT));
    let fd = open(&mut v, "/tmp/f", RW_CREAT).unwrap();
    v.close(fd).unwrap();
    assert_eq!(open(&mut v, "/tmp/f", TMPFILE_RW), Err(ENOTDIR));
    assert_eq!(open(&mut v, "/proc", TMPFILE_RW), Err(EOPNOTSUPP), "not tmpfs");
    assert_eq!(open(&mut v, "/", TMPFILE_RW), Err(EOPNOTSUPP));
    assert_eq!(v.mkdirat(Fd::CWD, b"/tmp/ro", 0o500), Ok(()));
    assert_eq!(open(&mut v, "/tmp/ro", TMPFILE_RW), Err(EACCES), "no write permission on the directory");
}

#[test]
fn a_tmpfile_is_an_unnamed_file_freed_at_its_last_close() {
    let mut v = vfs();
    let before = names(&mut v, "/tmp");
    let st0 = v.statfs(b"/tmp").unwrap();
    let fd = v.openat(Fd::CWD, b"/tmp", TMPFILE_RW | libc::O_DIRECT, 0o764).unwrap();
    assert_eq!(names(&mut v, "/tmp"), before, "no name in the directory");
    assert_eq!(v.fcntl(fd, libc::F_GETFL, 0), Ok(i64::from(libc::O_RDWR | libc::O_DIRECT | KERNEL_O_LARGEFILE)));
    let st = v.fstat(fd).unwrap();
    assert_eq!(u32_at(&st, stat_offsets::MODE), libc::S_IFREG | 0o744, "0764 & ~022");
    assert_eq!(u64_at(&st, stat_offsets::NLINK), 0);
    assert_eq!(v.write(fd, b"direct bytes"), Ok(12));
    assert_eq!(v.pread64(fd, 6, 0), Ok(b"direct".to_vec()));
    assert_eq!(size_of_fd(&v, fd), 12);
    // The budget counts its inode and page until the last descriptor goes.
    let dup = v.dup(fd).unwrap();
    v.close(fd).unwrap();
    assert_eq!(v.pread64(dup, 5, 7), Ok(b"bytes".to_vec()));
    assert_ne!(v.statfs(b"/tmp").unwrap(), st0);
    v.close(dup).unwrap();
    assert_eq!(v.statfs(b"/tmp").unwrap(), st0, "freed");
    // In /dev/shm and a directory below /tmp too, through a dirfd.
    v.mkdirat(Fd::CWD, b"/tmp/d", 0o755).unwrap();
    let d = open(&mut v, "/tmp/d", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let fd = v.openat(d, b".", libc::O_TMPFILE | libc::O_WRONLY, 0o600).unwrap();
    assert_eq!(v.write(fd, b"x"), Ok(1));
    assert_eq!(v.read(fd, 1), Err(EBADF), "write-only");
    assert!(open(&mut v, "/dev/shm", TMPFILE_RW).is_ok());
}

#[test]
fn o_direct_is_taken_by_files_only() {
    let mut v = vfs();
    let fd = open(&mut v, "/tmp/f", RW_CREAT | libc::O_DIRECT).unwrap();
    assert_eq!(v.write(fd, b"abc"), Ok(3), "any alignment: tmpfs moves bytes as buffered I/O does");
    assert_eq!(v.fcntl(fd, libc::F_SETFL, libc::O_DIRECT as u64), Ok(0));
    assert_eq!(open(&mut v, "/dev/null", libc::O_RDONLY | libc::O_DIRECT), Err(EINVAL));
    assert_eq!(open(&mut v, "/tmp", libc::O_RDONLY | libc::O_DIRECT), Err(EINVAL), "a directory");
    let null = open(&mut v, "/dev/null", libc::O_RDONLY).unwrap();
    assert_eq!(v.fcntl(null, libc::F_SETFL, libc::O_DIRECT as u64), Err(EINVAL));
    assert_eq!(v.fcntl(null, libc::F_GETFL, 0), Ok(i64::from(libc::O_RDONLY | KERNEL_O_LARGEFILE)), "unchanged");
    // O_PATH drops O_DIRECT.
    assert!(open(&mut v, "/dev/null", libc::O_PATH | libc::O_DIRECT).is_ok());
}
