//! Each call of [`Vfs`], success and errno paths, against Linux's
//! behaviour: open flags, descriptor sharing, directories and
//! `getdents64` records parsed back, `stat` bytes, synthetic, special
//! and host files, limits.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::errno::*;
use super::vfs::KERNEL_O_LARGEFILE;
use super::*;

const RW_CREAT: i32 = libc::O_RDWR | libc::O_CREAT;

fn vfs() -> Vfs {
    Vfs::new(&VfsConfig::default())
}

fn open(v: &mut Vfs, path: &str, flags: i32) -> Result<Fd, Errno> {
    v.openat(Fd::CWD, path.as_bytes(), flags, 0o666)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn mode_of(v: &Vfs, path: &str) -> u32 {
    u32_at(&v.newfstatat(Fd::CWD, path.as_bytes(), 0).unwrap(), stat_offsets::MODE)
}

fn size_of_fd(v: &Vfs, fd: Fd) -> u64 {
    u64_at(&v.fstat(fd).unwrap(), stat_offsets::SIZE)
}

fn names(v: &mut Vfs, path: &str) -> Vec<String> {
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

#[test]
fn stdio_is_special_on_0_1_2() {
    let mut v = vfs();
    assert_eq!(v.special(Fd(0)).unwrap().unwrap().special, Special::Stdin);
    assert_eq!(v.special(Fd(1)).unwrap().unwrap().special, Special::Stdout);
    assert_eq!(v.special(Fd(2)).unwrap().unwrap().special, Special::Stderr);
    assert_eq!(v.special(Fd(3)), Err(EBADF));
    assert_eq!(v.write(Fd(1), b"x"), Err(EINVAL), "the kind serves stdio itself");
    assert_eq!(v.lseek(Fd(1), 0, libc::SEEK_CUR), Err(ESPIPE));
    assert_eq!(v.pread64(Fd(0), 1, 0), Err(ESPIPE));
    let fd = open(&mut v, "/dev/null", libc::O_RDONLY).unwrap();
    assert_eq!(fd, Fd(3), "lowest free descriptor");
    assert_eq!(v.special(fd), Ok(None));
    assert_eq!(v.dup2(fd, Fd(1)), Ok(Fd(1)));
    assert_eq!(v.special(Fd(1)), Ok(None), "dup2 replaced stdout");
}

#[test]
fn create_write_read_and_flags() {
    let mut v = vfs();
    assert_eq!(open(&mut v, "/tmp/a", libc::O_RDONLY), Err(ENOENT));
    let fd = open(&mut v, "/tmp/a", RW_CREAT | libc::O_EXCL).unwrap();
    assert_eq!(mode_of(&v, "/tmp/a"), libc::S_IFREG | 0o644, "0666 & ~022");
    assert_eq!(v.write(fd, b"hello world"), Ok(11));
    assert_eq!(v.read(fd, 10), Ok(vec![]), "offset at the end");
    assert_eq!(v.lseek(fd, 0, libc::SEEK_SET), Ok(0));
    assert_eq!(v.read(fd, 5), Ok(b"hello".to_vec()));
    assert_eq!(v.read(fd, 100), Ok(b" world".to_vec()));
    assert_eq!(v.pread64(fd, 3, 6), Ok(b"wor".to_vec()));
    assert_eq!(v.pread64(fd, 3, -1), Err(EINVAL));
    assert_eq!(v.pwrite64(fd, b"W", 6), Ok(1));
    assert_eq!(v.lseek(fd, 0, libc::SEEK_CUR), Ok(11), "pwrite does not move the offset");
    assert_eq!(open(&mut v, "/tmp/a", RW_CREAT | libc::O_EXCL), Err(EEXIST));
    assert_eq!(open(&mut v, "/tmp/a/", libc::O_RDONLY), Err(ENOTDIR));
    assert_eq!(open(&mut v, "/tmp/a", libc::O_RDONLY | libc::O_DIRECTORY), Err(ENOTDIR));
    assert_eq!(open(&mut v, "/tmp/a/b", RW_CREAT), Err(ENOTDIR));
    assert_eq!(open(&mut v, "/tmp/new/", RW_CREAT), Err(EISDIR));
    assert_eq!(open(&mut v, "/tmp/x", RW_CREAT | libc::O_DIRECTORY), Err(EINVAL));
    assert_eq!(open(&mut v, "/nope/x", RW_CREAT), Err(ENOENT));
    assert_eq!(open(&mut v, "/x", RW_CREAT), Err(EACCES), "/ is read-only");
    assert_eq!(open(&mut v, "/proc/x", RW_CREAT), Err(EACCES));

    let ro = open(&mut v, "/tmp/a", libc::O_RDONLY).unwrap();
    assert_eq!(v.write(ro, b"x"), Err(EBADF));
    let wo = open(&mut v, "/tmp/a", libc::O_WRONLY | libc::O_APPEND).unwrap();
    assert_eq!(v.read(wo, 1), Err(EBADF));
    assert_eq!(v.write(wo, b"!"), Ok(1));
    assert_eq!(v.pread64(ro, 100, 0), Ok(b"hello World!".to_vec()));
    assert_eq!(v.pwrite64(wo, b"?", 0), Ok(1), "O_APPEND pwrite appends, as Linux");
    assert_eq!(v.pread64(ro, 100, 0), Ok(b"hello World!?".to_vec()));
    let tr = open(&mut v, "/tmp/a", libc::O_WRONLY | libc::O_TRUNC).unwrap();
    assert_eq!(size_of_fd(&v, ro), 0);
    for fd in [fd, ro, wo, tr] {
        v.close(fd).unwrap();
    }
    assert_eq!(v.close(fd), Err(EBADF));
}

#[test]
fn permissions_and_umask() {
    let mut v = vfs();
    assert_eq!(v.umask(0o077), 0o022);
    let fd = v.openat(Fd::CWD, b"/tmp/ro", RW_CREAT, 0o444).unwrap();
    assert_eq!(v.write(fd, b"ok"), Ok(2), "the creating open may write");
    assert_eq!(mode_of(&v, "/tmp/ro"), libc::S_IFREG | 0o400);
    assert_eq!(open(&mut v, "/tmp/ro", libc::O_WRONLY), Err(EACCES));
    assert_eq!(open(&mut v, "/tmp/ro", libc::O_RDONLY | libc::O_TRUNC), Err(EACCES));
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/ro", libc::R_OK, 0), Ok(()));
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/ro", libc::W_OK, 0), Err(EACCES));
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/none", libc::F_OK, 0), Err(ENOENT));
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/ro", 8, 0), Err(EINVAL));
    assert_eq!(v.faccessat(Fd::CWD, b"/dev/null", libc::R_OK | libc::W_OK, 0), Ok(()));
    assert_eq!(v.faccessat(Fd::CWD, b"/proc", libc::W_OK, 0), Err(EACCES));
    v.mkdirat(Fd::CWD, b"/tmp/d", 0o777).unwrap();
    assert_eq!(mode_of(&v, "/tmp/d"), libc::S_IFDIR | 0o700);
    v.mkdirat(Fd::CWD, b"/tmp/nox", 0o600).unwrap();
    assert_eq!(open(&mut v, "/tmp/nox/f", RW_CREAT), Err(EACCES), "no search permission");
    assert_eq!(mode_of(&v, "/tmp"), libc::S_IFDIR | 0o1777);
}

#[test]
fn dup_shares_offset_and_flags_not_cloexec() {
    let mut v = vfs();
    let a = open(&mut v, "/tmp/f", RW_CREAT | libc::O_CLOEXEC).unwrap();
    v.write(a, b"0123456789").unwrap();
    v.lseek(a, 2, libc::SEEK_SET).unwrap();
    let b = v.dup(a).unwrap();
    assert_eq!(v.fcntl(a, libc::F_GETFD, 0), Ok(1));
    assert_eq!(v.fcntl(b, libc::F_GETFD, 0), Ok(0), "dup clears FD_CLOEXEC");
    assert_eq!(v.read(b, 3), Ok(b"234".to_vec()));
    assert_eq!(v.read(a, 2), Ok(b"56".to_vec()), "offset shared");
    v.fcntl(b, libc::F_SETFL, (libc::O_APPEND | libc::O_RDONLY) as u64).unwrap();
    let fl = v.fcntl(a, libc::F_GETFL, 0).unwrap() as i32;
    assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR, "F_SETFL cannot change the access mode");
    assert_ne!(fl & libc::O_APPEND, 0, "status flags shared");
    assert_ne!(fl & KERNEL_O_LARGEFILE, 0, "x86-64 Linux forces O_LARGEFILE");
    let c = v.fcntl(a, libc::F_DUPFD_CLOEXEC, 10).unwrap();
    assert_eq!(c, 10);
    assert_eq!(v.fcntl(Fd(10), libc::F_GETFD, 0), Ok(1));
    v.fcntl(Fd(10), libc::F_SETFD, 0).unwrap();
    assert_eq!(v.fcntl(Fd(10), libc::F_GETFD, 0), Ok(0));
    assert_eq!(v.fcntl(a, libc::F_DUPFD, 1024), Err(EINVAL));
    assert_eq!(v.fcntl(a, 9999, 0), Err(EINVAL));
    assert_eq!(v.fcntl(Fd(50), libc::F_GETFD, 0), Err(EBADF));
    v.close(a).unwrap();
    assert_eq!(v.read(b, 1), Ok(b"7".to_vec()), "the description outlives one close");
    assert_eq!(v.dup2(Fd(77), Fd(5)), Err(EBADF));
    assert_eq!(v.dup2(b, b), Ok(b));
    assert_eq!(v.dup2(b, Fd(1024)), Err(EBADF));
    assert_eq!(v.dup3(b, b, 0), Err(EINVAL));
    assert_eq!(v.dup3(b, Fd(20), libc::O_NONBLOCK), Err(EINVAL));
    assert_eq!(v.dup3(b, Fd(20), libc::O_CLOEXEC), Ok(Fd(20)));
    assert_eq!(v.fcntl(Fd(20), libc::F_GETFD, 0), Ok(1));
    assert_eq!(v.read(Fd(20), 1), Ok(b"8".to_vec()));
}

#[test]
fn nofile_limit_gives_emfile() {
    let mut v = vfs();
    assert_eq!(v.nofile(), DEFAULT_NOFILE);
    v.set_nofile(5).unwrap();
    assert_eq!(open(&mut v, "/dev/zero", libc::O_RDONLY), Ok(Fd(3)));
    assert_eq!(open(&mut v, "/dev/zero", libc::O_RDONLY), Ok(Fd(4)));
    assert_eq!(open(&mut v, "/dev/zero", libc::O_RDONLY), Err(EMFILE));
    assert_eq!(open(&mut v, "/tmp/never", RW_CREAT), Err(EMFILE));
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/never", 0, 0), Err(ENOENT), "EMFILE before creating");
    assert_eq!(v.dup(Fd(0)), Err(EMFILE));
    v.close(Fd(3)).unwrap();
    assert_eq!(v.dup(Fd(0)), Ok(Fd(3)));
}

#[test]
fn paths_relative_dots_and_limits() {
    let mut v = vfs();
    v.mkdirat(Fd::CWD, b"/tmp/d", 0o755).unwrap();
    v.mkdirat(Fd::CWD, b"/tmp/d/e/", 0o755).unwrap();
    v.chdir(b"/tmp//d/./e/..").unwrap();
    assert_eq!(v.getcwd(4096), Ok(b"/tmp/d\0".to_vec()));
    assert_eq!(v.getcwd(6), Err(ERANGE));
    let f = open(&mut v, "e/../f", RW_CREAT).unwrap();
    v.write(f, b"x").unwrap();
    assert_eq!(v.faccessat(Fd::CWD, b"/tmp/d/f", 0, 0), Ok(()));
    let dfd = open(&mut v, "/tmp/d/e", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let g = v.openat(dfd, b"g", RW_CREAT, 0o600).unwrap();
    assert_eq!(v.faccessat(Fd::CWD, b"e/g", 0, 0), Ok(()));
    assert_eq!(v.openat(f, b"g", libc::O_RDONLY, 0), Err(ENOTDIR), "dirfd not a directory");
    assert_eq!(v.openat(Fd(99), b"g", libc::O_RDONLY, 0), Err(EBADF));
    assert_eq!(v.openat(Fd(99), b"/tmp/d/f", libc::O_RDONLY, 0).map(|_| ()), Ok(()), "absolute ignores dirfd");
    assert_eq!(open(&mut v, "", libc::O_RDONLY), Err(ENOENT));
    let long_name = "n".repeat(NAME_MAX + 1);
    assert_eq!(open(&mut v, &long_name, RW_CREAT), Err(ENAMETOOLONG));
    assert!(open(&mut v, &"n".repeat(NAME_MAX), RW_CREAT).is_ok());
    let long_path = "./".repeat(PATH_MAX / 2) + "f";
    assert_eq!(open(&mut v, &long_path, libc::O_RDONLY), Err(ENAMETOOLONG));
    v.chdir(b"/").unwrap();
    assert_eq!(v.getcwd(2), Ok(b"/\0".to_vec()));
    assert_eq!(v.chdir(b"/tmp/d/f"), Err(ENOTDIR));
    assert_eq!(v.chdir(b"/tmp/zz"), Err(ENOENT));
    assert_eq!(open(&mut v, "/..//../tmp/d/f", libc::O_RDONLY).map(|_| ()), Ok(()), "/.. is /");
    v.fchdir(dfd).unwrap();
    assert_eq!(v.getcwd(100), Ok(b"/tmp/d/e\0".to_vec()));
    assert_eq!(v.fchdir(g), Err(ENOTDIR));
}

#[test]
fn mkdir_unlink_rmdir_errnos() {
    let mut v = vfs();
    assert_eq!(v.mkdirat(Fd::CWD, b"/tmp", 0o755), Err(EEXIST));
    assert_eq!(v.mkdirat(Fd::CWD, b"/tmp/.", 0o755), Err(EEXIST));
    assert_eq!(v.mkdirat(Fd::CWD, b"/tmp/a/b", 0o755), Err(ENOENT));
    assert_eq!(v.mkdirat(Fd::CWD, b"/newdir", 0o755), Err(EACCES));
    v.mkdirat(Fd::CWD, b"/tmp/a", 0o755).unwrap();
    let f = open(&mut v, "/tmp/a/f", RW_CREAT).unwrap();
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a", 0), Err(EISDIR));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a", libc::AT_REMOVEDIR), Err(ENOTEMPTY));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a/f", libc::AT_REMOVEDIR), Err(ENOTDIR));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a/f/", 0), Err(ENOTDIR));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a/.", libc::AT_REMOVEDIR), Err(EINVAL));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a/..", libc::AT_REMOVEDIR), Err(ENOTEMPTY));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/zz", 0), Err(ENOENT));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp/a/f", 0x4000), Err(EINVAL));
    assert_eq!(v.unlinkat(Fd::CWD, b"/tmp", libc::AT_REMOVEDIR), Err(EBUSY));
    assert_eq!(v.unlinkat(Fd::CWD, b"/dev/shm", libc::AT_REMOVEDIR), Err(EBUSY));
    assert_eq!(v.unlinkat(Fd::CWD, b"/", libc::AT_REMOVEDIR), Err(EBUSY));
    assert_eq!(v.unlinkat(Fd::CWD, b"/dev/null", 0), Err(EACCES));
    v.write(f, b"still here").unwrap();
    v.unlinkat(Fd::CWD, b"/tmp/a/f", 0).unwrap();
    assert_eq!(open(&mut v, "/tmp/a/f", libc::O_RDONLY), Err(ENOENT));
    assert_eq!(v.pread64(f, 100, 0), Ok(b"still here".to_vec()), "unlinked file lives while open");
    assert_eq!(u64_at(&v.fstat(f).unwrap(), stat_offsets::NLINK), 0);
    v.close(f).unwrap();
    v.chdir(b"/tmp/a").unwrap();
    v.unlinkat(Fd::CWD, b"/tmp/a", libc::AT_REMOVEDIR).unwrap();
    assert_eq!(v.getcwd(100), Err(ENOENT), "cwd removed");
    assert_eq!(open(&mut v, "new", RW_CREAT), Err(ENOENT), "cannot create in a removed directory");
}

#[test]
fn getdents64_records_and_resume() {
    let mut v = vfs();
    v.mkdirat(Fd::CWD, b"/tmp/d", 0o755).unwrap();
    v.mkdirat(Fd::CWD, b"/tmp/d/sub", 0o755).unwrap();
    for i in 0..50 {
        let fd = open(&mut v, &format!("/tmp/d/file{i:02}"), RW_CREAT).unwrap();
        v.close(fd).unwrap();
    }
    let dir = open(&mut v, "/tmp/d", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let dir_ino = u64_at(&v.fstat(dir).unwrap(), stat_offsets::INO);
    let tmp_ino = u64_at(&v.newfstatat(Fd::CWD, b"/tmp", 0).unwrap(), stat_offsets::INO);
    assert_eq!(v.getdents64(dir, 10), Err(EINVAL), "buffer too small for one record");
    let first = v.getdents64(dir, 100).unwrap();
    assert!(first.len() <= 100);
    let recs = parse_records(&first).unwrap();
    assert_eq!(recs[0].name, b".");
    assert_eq!((recs[0].ino, recs[0].d_type), (dir_ino, libc::DT_DIR));
    assert_eq!(recs[1].name, b"..");
    assert_eq!(recs[1].ino, tmp_ino);
    let mut all = recs;
    // Remove entries already read and one not yet read: the rest are
    // neither skipped nor repeated.
    v.unlinkat(Fd::CWD, b"/tmp/d/sub", libc::AT_REMOVEDIR).unwrap();
    v.unlinkat(Fd::CWD, b"/tmp/d/file49", 0).unwrap();
    loop {
        let buf = v.getdents64(dir, 200).unwrap();
        if buf.is_empty() {
            break;
        }
        all.extend(parse_records(&buf).unwrap());
    }
    let listed: Vec<String> = all.iter().map(|r| String::from_utf8(r.name.clone()).unwrap()).collect();
    let mut expected = vec![".".to_string(), "..".to_string(), "sub".to_string()];
    expected.extend((0..49).map(|i| format!("file{i:02}")));
    assert_eq!(listed, expected);
    assert!(all.iter().skip(3).all(|r| r.d_type == libc::DT_REG));
    // d_off of a record resumes right after it.
    let d_off = all[10].off as i64;
    assert_eq!(v.lseek(dir, d_off, libc::SEEK_SET), Ok(d_off as u64));
    let again = parse_records(&v.getdents64(dir, 4096).unwrap()).unwrap();
    assert_eq!(again[0].name, all[11].name);
    assert_eq!(v.lseek(dir, 0, libc::SEEK_END), Err(EINVAL));
    let f = open(&mut v, "/tmp/d/file00", libc::O_RDONLY).unwrap();
    assert_eq!(v.getdents64(f, 4096), Err(ENOTDIR));
    assert_eq!(v.read(dir, 10), Err(EISDIR));
    assert_eq!(open(&mut v, "/tmp/d", libc::O_RDWR), Err(EISDIR));
    assert_eq!(open(&mut v, "/tmp/d", RW_CREAT), Err(EISDIR));
    let root = names(&mut v, "/");
    assert_eq!(root, vec![".", "..", "dev", "tmp", "proc", "sys"]);
    assert_eq!(names(&mut v, "/dev"), vec![".", "..", "null", "zero", "urandom", "shm"]);
}

#[test]
fn lseek_whences() {
    let mut v = vfs();
    let fd = open(&mut v, "/tmp/s", RW_CREAT).unwrap();
    v.write(fd, b"abc").unwrap();
    assert_eq!(v.lseek(fd, -1, libc::SEEK_END), Ok(2));
    assert_eq!(v.lseek(fd, -3, libc::SEEK_CUR), Err(EINVAL));
    assert_eq!(v.lseek(fd, 10, libc::SEEK_CUR), Ok(12));
    assert_eq!(v.write(fd, b"z"), Ok(1));
    assert_eq!(v.pread64(fd, 100, 0), Ok(b"abc\0\0\0\0\0\0\0\0\0z".to_vec()), "a gap reads zeros");
    assert_eq!(v.lseek(fd, i64::MAX, libc::SEEK_CUR), Err(EINVAL));
    assert_eq!(v.lseek(fd, 0, 7), Err(EINVAL));
    v.ftruncate(fd, 3 * 4096).unwrap();
    assert_eq!(v.lseek(fd, 0, libc::SEEK_DATA), Ok(0));
    assert_eq!(v.lseek(fd, 0, libc::SEEK_HOLE), Ok(4096));
    assert_eq!(v.lseek(fd, 5000, libc::SEEK_DATA), Err(ENXIO));
    assert_eq!(v.lseek(fd, 3 * 4096, libc::SEEK_HOLE), Err(ENXIO));
    let null = open(&mut v, "/dev/null", libc::O_RDWR).unwrap();
    assert_eq!(v.lseek(null, 100, libc::SEEK_SET), Ok(0), "null_lseek");
}

#[test]
fn truncate_fallocate_and_budget() {
    let mut v = Vfs::new(&VfsConfig { tmpfs_bytes: 8 * 4096, tmpfs_inodes: 4, ..VfsConfig::default() });
    let fd = open(&mut v, "/tmp/t", RW_CREAT).unwrap();
    assert_eq!(v.ftruncate(fd, -1), Err(EINVAL));
    v.ftruncate(fd, 1 << 40).unwrap();
    assert_eq!(size_of_fd(&v, fd), 1 << 40, "a sparse file costs nothing");
    let st = v.fstat(fd).unwrap();
    assert_eq!(u64_at(&st, stat_offsets::BLOCKS), 0);
    assert_eq!(v.pread64(fd, 4, (1 << 40) - 2), Ok(vec![0, 0]));
    v.ftruncate(fd, 0).unwrap();
    let big = vec![1u8; 10 * 4096];
    assert_eq!(v.write(fd, &big), Ok(8 * 4096), "short write at the budget");
    assert_eq!(v.write(fd, b"x"), Err(ENOSPC));
    assert_eq!(u64_at(&v.fstat(fd).unwrap(), stat_offsets::BLOCKS), 64);
    let sfs = v.fstatfs(fd).unwrap();
    assert_eq!(u64_at(&sfs, statfs_offsets::TYPE) as i64, TMPFS_MAGIC);
    assert_eq!(u64_at(&sfs, statfs_offsets::BLOCKS), 8);
    assert_eq!(u64_at(&sfs, statfs_offsets::BFREE), 0);
    v.fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 4096, 2 * 4096).unwrap();
    assert_eq!(size_of_fd(&v, fd), 8 * 4096);
    assert_eq!(v.pread64(fd, 2, 4096 - 1), Ok(vec![1, 0]));
    assert_eq!(u64_at(&v.fstatfs(fd).unwrap(), statfs_offsets::BFREE), 2);
    assert_eq!(v.fallocate(fd, 0, 0, 20 * 4096), Err(ENOSPC));
    assert_eq!(u64_at(&v.fstatfs(fd).unwrap(), statfs_offsets::BFREE), 2, "nothing allocated on ENOSPC");
    v.fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, 0, 3 * 4096).unwrap();
    assert_eq!(size_of_fd(&v, fd), 8 * 4096);
    assert_eq!(u64_at(&v.fstatfs(fd).unwrap(), statfs_offsets::BFREE), 0);
    assert_eq!(v.fallocate(fd, libc::FALLOC_FL_PUNCH_HOLE, 0, 1), Err(EOPNOTSUPP));
    assert_eq!(v.fallocate(fd, 0, -1, 1), Err(EINVAL));
    assert_eq!(v.fallocate(fd, 0, 0, 0), Err(EINVAL));
    v.ftruncate(fd, 0).unwrap();
    v.fallocate(fd, 0, 100, 10).unwrap();
    assert_eq!(size_of_fd(&v, fd), 110, "mode 0 grows the size");
    let ro = open(&mut v, "/tmp/t", libc::O_RDONLY).unwrap();
    assert_eq!(v.ftruncate(ro, 0), Err(EINVAL));
    assert_eq!(v.fallocate(ro, 0, 0, 1), Err(EBADF));
    let null = open(&mut v, "/dev/null", libc::O_WRONLY).unwrap();
    assert_eq!(v.fallocate(null, 0, 0, 1), Err(ENODEV));
    // Inodes: 4 allowed, 1 used.
    v.mkdirat(Fd::CWD, b"/dev/shm/a", 0o755).unwrap();
    v.mkdirat(Fd::CWD, b"/dev/shm/b", 0o755).unwrap();
    v.mkdirat(Fd::CWD, b"/dev/shm/c", 0o755).unwrap();
    assert_eq!(v.mkdirat(Fd::CWD, b"/dev/shm/d", 0o755), Err(ENOSPC));
    v.unlinkat(Fd::CWD, b"/dev/shm/c", libc::AT_REMOVEDIR).unwrap();
    v.mkdirat(Fd::CWD, b"/dev/shm/d", 0o755).unwrap();
    // Unlinking an open file frees its pages only at the last close.
    v.ftruncate(fd, 0).unwrap();
    v.write(fd, &[1; 4096]).unwrap();
    v.unlinkat(Fd::CWD, b"/tmp/t", 0).unwrap();
    assert_eq!(u64_at(&v.fstatfs(fd).unwrap(), statfs_offsets::BFREE), 7);
    v.close(fd).unwrap();
    assert_eq!(u64_at(&v.statfs(b"/tmp").unwrap(), statfs_offsets::BFREE), 7, "ro still open");
    v.close(ro).unwrap();
    assert_eq!(u64_at(&v.statfs(b"/tmp").unwrap(), statfs_offsets::BFREE), 8);
    assert_eq!(u64_at(&v.statfs(b"/tmp").unwrap(), statfs_offsets::FFREE), 1);
}

#[test]
fn devices() {
    let mut v = vfs();
    let z = open(&mut v, "/dev/zero", libc::O_RDWR).unwrap();
    assert_eq!(v.read(z, 5), Ok(vec![0; 5]));
    assert_eq!(v.write(z, b"gone"), Ok(4));
    let n = open(&mut v, "/dev/null", libc::O_RDWR).unwrap();
    assert_eq!(v.read(n, 5), Ok(vec![]));
    let r = open(&mut v, "/dev/urandom", libc::O_RDONLY).unwrap();
    let a = v.read(r, 32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, v.read(r, 32).unwrap());
    assert_eq!(v.read(z, usize::MAX).unwrap().len(), IO_MAX, "reads are bounded");
    let st = v.fstat(n).unwrap();
    assert_eq!(u32_at(&st, stat_offsets::MODE), libc::S_IFCHR | 0o666);
    assert_eq!(u64_at(&st, stat_offsets::RDEV), 0x103);
    assert_eq!(u64_at(&v.statfs(b"/dev/shm").unwrap(), statfs_offsets::TYPE) as i64, TMPFS_MAGIC);
}

#[test]
fn synthetic_files_made_once_per_open_and_read_in_pieces() {
    let mut v = vfs();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    v.register_synthetic("/proc/self/maps", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        (0..65_000).flat_map(|i| format!("{i:08x}-line\n").into_bytes()).collect()
    })
    .unwrap();
    v.register_synthetic("/sys/devices/system/cpu/online", || b"0\n".to_vec()).unwrap();
    assert_eq!(v.register_synthetic("/proc/self/maps", Vec::new), Err(EEXIST));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing made before open");
    let fd = open(&mut v, "/proc/self/maps", libc::O_RDONLY).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut all = Vec::new();
    loop {
        let piece = v.read(fd, 4000).unwrap();
        assert!(piece.len() <= 4000);
        if piece.is_empty() {
            break;
        }
        all.extend(piece);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "made once, read in pieces");
    assert_eq!(all.len(), 65_000 * 14);
    assert_eq!(&all[14 * 64_999..], b"0000fde7-line\n");
    assert_eq!(v.pread64(fd, 5, 14), Ok(b"00000".to_vec()));
    assert_eq!(v.lseek(fd, 0, libc::SEEK_END), Err(EINVAL), "seq files take SET and CUR only");
    assert_eq!(v.lseek(fd, 14, libc::SEEK_SET), Ok(14));
    assert_eq!(open(&mut v, "/proc/self/maps", libc::O_WRONLY), Err(EACCES));
    assert_eq!(u64_at(&v.fstat(fd).unwrap(), stat_offsets::SIZE), 0, "proc files show size 0");
    assert_eq!(u64_at(&v.fstatfs(fd).unwrap(), statfs_offsets::TYPE) as i64, PROC_SUPER_MAGIC);
    let cpu = open(&mut v, "/sys/devices/system/cpu/online", libc::O_RDONLY).unwrap();
    assert_eq!(v.read(cpu, 100), Ok(b"0\n".to_vec()));
    assert_eq!(u64_at(&v.fstatfs(cpu).unwrap(), statfs_offsets::TYPE) as i64, SYSFS_MAGIC);
    let p = open(&mut v, "/proc/self/maps", libc::O_PATH).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "O_PATH does not generate");
    assert_eq!(v.read(p, 1), Err(EBADF));
    assert_eq!(names(&mut v, "/proc/self"), vec![".", "..", "maps"]);
}

#[test]
fn special_nodes_report_their_tag() {
    let mut v = vfs();
    v.register_special("/dev/mem", Special::Tag(7), libc::S_IFCHR | 0o640).unwrap();
    let fd = open(&mut v, "/dev/mem", libc::O_RDWR).unwrap();
    let sp = v.special(fd).unwrap().unwrap();
    assert_eq!(sp.special, Special::Tag(7));
    assert_eq!(sp.flags & libc::O_ACCMODE, libc::O_RDWR);
    assert_eq!(v.read(fd, 4), Err(EINVAL), "served by the kind");
    assert_eq!(v.lseek(fd, 4096, libc::SEEK_SET), Ok(4096));
    let d = v.dup(fd).unwrap();
    assert_eq!(v.special(d).unwrap().unwrap().offset, 4096);
    v.set_offset(d, 10).unwrap();
    assert_eq!(v.special(fd).unwrap().unwrap().offset, 10);
    assert_eq!(u32_at(&v.fstat(fd).unwrap(), stat_offsets::MODE), libc::S_IFCHR | 0o640);
    let m = v.open_anonymous(Special::Tag(9), libc::O_RDWR | libc::O_CLOEXEC, libc::S_IFREG | 0o777).unwrap();
    assert_eq!(v.special(m).unwrap().unwrap().special, Special::Tag(9));
    assert_eq!(v.fcntl(m, libc::F_GETFD, 0), Ok(1));
    assert_eq!(v.fallocate(m, 0, 0, 1), Err(ENODEV));
    v.close(m).unwrap();
}

#[test]
fn exe_symlink_and_readlink() {
    let mut v = vfs();
    v.set_exe(b"/tmp/prog").unwrap();
    assert_eq!(v.readlinkat(Fd::CWD, b"/proc/self/exe", 4096), Ok(b"/tmp/prog".to_vec()));
    assert_eq!(v.readlinkat(Fd::CWD, b"/proc/self/exe", 4), Ok(b"/tmp".to_vec()));
    assert_eq!(v.readlinkat(Fd::CWD, b"/proc/self/exe", 0), Err(EINVAL));
    assert_eq!(v.readlinkat(Fd::CWD, b"/tmp", 10), Err(EINVAL));
    assert_eq!(v.readlinkat(Fd::CWD, b"/nope", 10), Err(ENOENT));
    assert_eq!(open(&mut v, "/proc/self/exe", libc::O_RDONLY), Err(ENOENT), "dangling until the program exists");
    let f = open(&mut v, "/tmp/prog", RW_CREAT).unwrap();
    v.write(f, b"\x7fELF").unwrap();
    let e = open(&mut v, "/proc/self/exe", libc::O_RDONLY).unwrap();
    assert_eq!(v.read(e, 4), Ok(b"\x7fELF".to_vec()));
    let lst = v.newfstatat(Fd::CWD, b"/proc/self/exe", libc::AT_SYMLINK_NOFOLLOW).unwrap();
    assert_eq!(u32_at(&lst, stat_offsets::MODE) & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(u64_at(&lst, stat_offsets::SIZE), 9);
    assert_eq!(open(&mut v, "/proc/self/exe", libc::O_RDONLY | libc::O_NOFOLLOW), Err(ELOOP));
    v.set_exe(b"/other").unwrap();
    assert_eq!(v.readlinkat(Fd::CWD, b"/proc/self/exe", 100), Ok(b"/other".to_vec()));
    v.add_symlink("/tmp/loop", b"/tmp/loop").unwrap();
    assert_eq!(open(&mut v, "/tmp/loop", libc::O_RDONLY), Err(ELOOP));
}

#[test]
fn fstatat_forms() {
    let mut v = vfs();
    let f = open(&mut v, "/tmp/s", RW_CREAT).unwrap();
    v.write(f, &[5; 5000]).unwrap();
    let by_fd = v.fstat(f).unwrap();
    let by_path = v.newfstatat(Fd::CWD, b"/tmp/s", 0).unwrap();
    let empty = v.newfstatat(f, b"", libc::AT_EMPTY_PATH).unwrap();
    assert_eq!(by_fd, by_path);
    assert_eq!(by_fd, empty);
    assert_eq!(u64_at(&by_fd, stat_offsets::SIZE), 5000);
    assert_eq!(u64_at(&by_fd, stat_offsets::BLKSIZE), 4096);
    assert_eq!(u64_at(&by_fd, stat_offsets::BLOCKS), 16);
    assert_eq!(u64_at(&by_fd, stat_offsets::NLINK), 1);
    assert_eq!(v.newfstatat(f, b"", 0), Err(ENOENT), "empty path needs AT_EMPTY_PATH");
    assert_eq!(v.newfstatat(Fd::CWD, b"/tmp/s", 0x1), Err(EINVAL));
    assert_eq!(v.newfstatat(Fd::CWD, b"/tmp/s/", 0), Err(ENOTDIR));
    let cwd = v.newfstatat(Fd::CWD, b"", libc::AT_EMPTY_PATH).unwrap();
    assert_eq!(u64_at(&cwd, stat_offsets::INO), 1, "the root");
    let root = v.newfstatat(Fd::CWD, b"/", 0).unwrap();
    assert_eq!(u32_at(&root, stat_offsets::MODE), libc::S_IFDIR | 0o555);
    assert_eq!(u64_at(&root, stat_offsets::NLINK), 6, "2 + dev, tmp, proc, sys");
    let p = open(&mut v, "/tmp/s", libc::O_PATH).unwrap();
    assert_eq!(v.fstat(p).unwrap(), by_fd, "O_PATH allows fstat");
    assert_eq!(v.write(p, b"x"), Err(EBADF));
    assert_eq!(v.lseek(p, 0, libc::SEEK_SET), Err(EBADF));
    assert_eq!(v.fcntl(p, libc::F_SETFL, 0), Err(EBADF));
}

#[test]
fn readv_writev_split_and_join() {
    let mut v = vfs();
    let f = open(&mut v, "/tmp/v", RW_CREAT).unwrap();
    assert_eq!(v.writev(f, &[b"ab", b"", b"cdef"]), Ok(6));
    v.lseek(f, 0, libc::SEEK_SET).unwrap();
    assert_eq!(v.readv(f, &[1, 3, 10]), Ok(vec![b"a".to_vec(), b"bcd".to_vec(), b"ef".to_vec()]));
    assert_eq!(v.preadv(f, &[2, 2], 3), Ok(vec![b"de".to_vec(), b"f".to_vec()]));
    assert_eq!(v.pwritev(f, &[b"X", b"Y"], 1), Ok(2));
    assert_eq!(v.pread64(f, 10, 0), Ok(b"aXYdef".to_vec()));
    assert_eq!(v.readv(f, &vec![1; IOV_MAX + 1]), Err(EINVAL));
    assert_eq!(v.readv(f, &[usize::MAX, 1]), Err(EINVAL));
}

#[test]
fn host_files_by_explicit_name_only() {
    let dir = std::env::temp_dir().join(format!("vmm-linux-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ro_path = dir.join("ro");
    let rw_path = dir.join("rw");
    std::fs::write(&ro_path, b"host bytes").unwrap();
    std::fs::write(&rw_path, b"0123456789").unwrap();
    let mut v = vfs();
    v.add_host_file("/data/ro", &ro_path, false).unwrap();
    v.add_host_file("/data/rw", &rw_path, true).unwrap();
    v.add_host_file("/data/missing", dir.join("missing"), false).unwrap();
    let ro = open(&mut v, "/data/ro", libc::O_RDONLY).unwrap();
    assert_eq!(v.read(ro, 4), Ok(b"host".to_vec()));
    assert_eq!(v.read(ro, 100), Ok(b" bytes".to_vec()));
    assert_eq!(size_of_fd(&v, ro), 10);
    assert_eq!(mode_of(&v, "/data/ro"), libc::S_IFREG | 0o444);
    assert_eq!(open(&mut v, "/data/ro", libc::O_RDWR), Err(EACCES));
    assert_eq!(open(&mut v, "/data/missing", libc::O_RDONLY), Err(ENOENT));
    assert_eq!(open(&mut v, "/data/other", libc::O_RDONLY), Err(ENOENT), "no walking of the host");
    assert_eq!(open(&mut v, "/data/x", RW_CREAT), Err(EACCES));
    let rw = open(&mut v, "/data/rw", libc::O_RDWR).unwrap();
    assert_eq!(v.pwrite64(rw, b"AB", 2), Ok(2));
    assert_eq!(v.lseek(rw, 0, libc::SEEK_END), Ok(10));
    v.ftruncate(rw, 4).unwrap();
    assert_eq!(std::fs::read(&rw_path).unwrap(), b"01AB");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn memfd_is_an_anonymous_tmpfs_file() {
    let mut v = Vfs::new(&VfsConfig { tmpfs_bytes: 4 * 4096, tmpfs_inodes: 2, ..VfsConfig::default() });
    let m = v.memfd_create(b"heap", libc::MFD_CLOEXEC).unwrap();
    assert_eq!(v.fcntl(m, libc::F_GETFD, 0), Ok(1));
    assert_eq!(v.special(m), Ok(None));
    v.ftruncate(m, 8192).unwrap();
    assert_eq!(v.pwrite64(m, b"data", 4096), Ok(4));
    assert_eq!(v.pread64(m, 6, 4094), Ok(b"\0\0data".to_vec()));
    let st = v.fstat(m).unwrap();
    assert_eq!(u32_at(&st, stat_offsets::MODE), libc::S_IFREG | 0o777);
    assert_eq!(u64_at(&st, stat_offsets::NLINK), 0);
    assert_eq!(names(&mut v, "/dev/shm"), vec![".", ".."], "in no directory");
    assert_eq!(v.memfd_create(b"x", 0x100), Err(EINVAL));
    assert_eq!(v.memfd_create(&[b'n'; 250], 0), Err(EINVAL));
    let m2 = v.memfd_create(b"two", 0).unwrap();
    assert_eq!(v.memfd_create(b"three", 0), Err(ENOSPC), "inodes counted");
    v.close(m2).unwrap();
    let d = v.dup(m).unwrap();
    v.close(m).unwrap();
    assert_eq!(u64_at(&v.statfs(b"/dev/shm").unwrap(), statfs_offsets::BFREE), 3, "alive through the dup");
    v.close(d).unwrap();
    assert_eq!(u64_at(&v.statfs(b"/dev/shm").unwrap(), statfs_offsets::BFREE), 4);
    assert_eq!(u64_at(&v.statfs(b"/dev/shm").unwrap(), statfs_offsets::FFREE), 2);
}

#[test]
fn vfs_can_live_in_a_guest_kind() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Vfs>();
}
