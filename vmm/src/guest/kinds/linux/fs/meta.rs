//! Metadata calls: `fstat`, `newfstatat`, `statfs`, `fstatfs`,
//! `readlinkat`, `faccessat`. Results are the guest's bytes
//! (`struct stat`, `struct statfs`) built by `stat`.

use std::os::unix::fs::MetadataExt;

use super::errno::{Errno, EACCES, EINVAL, ENOENT, ENOTDIR};
use super::fd_table::Fd;
use super::node::{Ino, Mount, NodeKind, Timespec};
use super::resolve::Lookup;
use super::stat::{Stat, StatFs, PROC_SUPER_MAGIC, STATFS_SIZE, STAT_SIZE, SYSFS_MAGIC, TMPFS_MAGIC};
use super::tmpfs::PAGE;
use super::vfs::{Vfs, MAY_EXEC, MAY_READ, MAY_WRITE};

/// `ST_NOSUID`, `ST_NODEV` and `ST_VALID`: what Linux reports for tmpfs
/// and proc mounts.
const MOUNT_FLAGS: i64 = 0x2 | 0x4 | 0x20;

/// `AT_*` flags `newfstatat` accepts.
const STAT_FLAGS: i32 = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;

impl Vfs {
    /// The `struct stat` fields of node `ino`.
    pub(super) fn stat_node(&self, ino: Ino) -> Result<Stat, Errno> {
        let node = self.node(ino)?;
        let mut st = Stat {
            dev: node.mount.dev(),
            ino: ino.0,
            nlink: u64::from(node.links),
            mode: node.mode(),
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            size: 0,
            blksize: PAGE as i64,
            blocks: 0,
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
        };
        match &node.kind {
            NodeKind::Dir(dir) => {
                let subdirs = dir
                    .children()
                    .filter(|&c| matches!(self.nodes.get(c).map(|n| &n.kind), Some(NodeKind::Dir(_))))
                    .count();
                st.nlink = if node.links == 0 { 0 } else { 2 + subdirs as u64 };
                if node.mount.is_tmpfs() || matches!(node.mount, Mount::Root | Mount::Dev) {
                    // tmpfs counts 20 bytes per entry, `.` and `..` included.
                    st.size = (dir.children().count() as i64 + 2) * 20;
                }
            }
            NodeKind::File(file) => {
                st.size = file.size() as i64;
                st.blocks = (file.pages() * (PAGE / 512)) as i64;
            }
            NodeKind::Synthetic(_) => {
                if node.mount == Mount::Sys {
                    st.size = PAGE as i64;
                }
            }
            NodeKind::Device(device) => st.rdev = device.rdev(),
            NodeKind::Special(_) => {}
            NodeKind::Host(host) => {
                let meta = std::fs::metadata(&host.path).map_err(|e| Errno::from_io(&e))?;
                st.size = meta.len() as i64;
                st.blocks = meta.blocks() as i64;
                st.mtime = Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() };
                st.atime = Timespec { sec: meta.atime(), nsec: meta.atime_nsec() };
                st.ctime = Timespec { sec: meta.ctime(), nsec: meta.ctime_nsec() };
            }
            NodeKind::Symlink(target) => st.size = target.len() as i64,
        }
        Ok(st)
    }

    /// `fstat(fd)`: the 144-byte `struct stat`.
    pub fn fstat(&self, fd: Fd) -> Result<[u8; STAT_SIZE], Errno> {
        let ino = self.desc(fd)?.node;
        Ok(self.stat_node(ino)?.to_bytes())
    }

    /// `newfstatat(dirfd, path, flags)`: `AT_EMPTY_PATH` with an empty
    /// path stats `dirfd` itself (the cwd for `AT_FDCWD`);
    /// `AT_SYMLINK_NOFOLLOW` stats a final symbolic link itself.
    pub fn newfstatat(&self, dirfd: Fd, path: &[u8], flags: i32) -> Result<[u8; STAT_SIZE], Errno> {
        if flags & !STAT_FLAGS != 0 {
            return Err(EINVAL);
        }
        let ino = self.lookup_existing(dirfd, path, flags & libc::AT_SYMLINK_NOFOLLOW == 0, flags)?;
        Ok(self.stat_node(ino)?.to_bytes())
    }

    /// The node `chmod` and its kin change (see [`Self::lookup_existing`]).
    pub(super) fn lookup_for_chmod(&self, dirfd: Fd, path: &[u8], flags: i32) -> Result<Ino, Errno> {
        self.lookup_existing(dirfd, path, flags & libc::AT_SYMLINK_NOFOLLOW == 0, flags)
    }

    /// The existing node `path` names (with `AT_EMPTY_PATH` in `flags`,
    /// an empty path names `dirfd`); `ENOENT` if missing, `ENOTDIR` for
    /// a trailing slash on a non-directory.
    fn lookup_existing(&self, dirfd: Fd, path: &[u8], follow: bool, flags: i32) -> Result<Ino, Errno> {
        if flags & libc::AT_EMPTY_PATH != 0 && path.first().is_none_or(|&b| b == 0) {
            return if dirfd == Fd::CWD { Ok(self.cwd) } else { Ok(self.desc(dirfd)?.node) };
        }
        let resolved = self.resolve_at(dirfd, path, follow)?;
        match resolved.lookup {
            Lookup::Missing { .. } => Err(ENOENT),
            Lookup::Found { ino, .. } => {
                if resolved.trailing_slash && !matches!(self.node(ino)?.kind, NodeKind::Dir(_)) {
                    return Err(ENOTDIR);
                }
                Ok(ino)
            }
        }
    }

    /// The `struct statfs` fields of the file system holding `ino`.
    fn statfs_node(&self, ino: Ino) -> Result<StatFs, Errno> {
        let mount = self.node(ino)?.mount;
        let mut st = StatFs {
            fs_type: TMPFS_MAGIC,
            bsize: PAGE as i64,
            namelen: super::path::NAME_MAX as i64,
            frsize: PAGE as i64,
            flags: MOUNT_FLAGS,
            ..StatFs::default()
        };
        match mount {
            Mount::Tmp | Mount::Shm => {
                st.blocks = self.budget.limit_pages();
                st.bfree = self.budget.free_pages();
                st.bavail = st.bfree;
                st.files = self.budget.limit_inodes;
                st.ffree = self.budget.limit_inodes.saturating_sub(self.budget.used_inodes);
            }
            Mount::Proc => st.fs_type = PROC_SUPER_MAGIC,
            Mount::Sys => st.fs_type = SYSFS_MAGIC,
            Mount::Root | Mount::Dev | Mount::Anon => {}
        }
        Ok(st)
    }

    /// `statfs(path)`: the 120-byte `struct statfs`.
    pub fn statfs(&self, path: &[u8]) -> Result<[u8; STATFS_SIZE], Errno> {
        let ino = self.lookup_existing(Fd::CWD, path, true, 0)?;
        Ok(self.statfs_node(ino)?.to_bytes())
    }

    /// `fstatfs(fd)`: the 120-byte `struct statfs`.
    pub fn fstatfs(&self, fd: Fd) -> Result<[u8; STATFS_SIZE], Errno> {
        let ino = self.desc(fd)?.node;
        Ok(self.statfs_node(ino)?.to_bytes())
    }

    /// `readlinkat(dirfd, path, bufsiz)`: the link's target, cut to
    /// `bufsiz` bytes, without a NUL; `EINVAL` for `bufsiz` 0 or a node
    /// that is not a symbolic link.
    pub fn readlinkat(&self, dirfd: Fd, path: &[u8], bufsiz: usize) -> Result<Vec<u8>, Errno> {
        if bufsiz == 0 {
            return Err(EINVAL);
        }
        let ino = self.lookup_existing(dirfd, path, false, 0)?;
        match &self.node(ino)?.kind {
            NodeKind::Symlink(target) => Ok(target[..target.len().min(bufsiz)].to_vec()),
            _ => Err(EINVAL),
        }
    }

    /// `faccessat(dirfd, path, mode)` / `faccessat2(..., flags)`: `F_OK`
    /// or any of `R_OK`, `W_OK`, `X_OK`, checked against the owner bits
    /// (`EACCES`).
    pub fn faccessat(&self, dirfd: Fd, path: &[u8], mode: i32, flags: i32) -> Result<(), Errno> {
        if mode & !(libc::R_OK | libc::W_OK | libc::X_OK) != 0 {
            return Err(EINVAL);
        }
        if flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(EINVAL);
        }
        let ino = self.lookup_existing(dirfd, path, flags & libc::AT_SYMLINK_NOFOLLOW == 0, flags)?;
        let mut want = 0;
        if mode & libc::R_OK != 0 {
            want |= MAY_READ;
        }
        if mode & libc::W_OK != 0 {
            want |= MAY_WRITE;
        }
        if mode & libc::X_OK != 0 {
            want |= MAY_EXEC;
        }
        self.check_perm(ino, want).map_err(|_| EACCES)
    }
}
