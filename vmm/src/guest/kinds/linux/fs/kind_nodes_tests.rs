//! The nodes the kind adds and the remaining calls: synthetic
//! `/proc`/`/sys` files, special nodes, `/proc/self/exe`, `fstatat`
//! forms, `readv`/`writev`, host files, memfds.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::errno::*;
use super::test_util::*;
use super::*;

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
    assert_eq!(calls.load(Ordering::SeqCst), 2, "made at open and by the read from the start, read in pieces");
    // Read again from the start (rewind), it is made anew, as seq_file.
    assert_eq!(v.lseek(fd, 0, libc::SEEK_SET), Ok(0));
    assert_eq!(v.read(fd, 14).unwrap(), b"00000000-line\n".to_vec());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "a rewound read renders again");
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
    assert_eq!(calls.load(Ordering::SeqCst), 3, "O_PATH does not generate");
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
