//! Each call of [`Vfs`], success and errno paths, against Linux's
//! behaviour: open flags, permissions, descriptor sharing and limits,
//! paths, directories and `getdents64` records parsed back, seeking,
//! truncation, `fallocate` and the budget, devices.

#![allow(clippy::unwrap_used)]

use super::errno::*;
use super::test_util::*;
use super::vfs::KERNEL_O_LARGEFILE;
use super::*;

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
