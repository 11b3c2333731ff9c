//! `chmod`, `fchmod`, `fchmodat` (the permission bits of a node in the
//! in-memory tree) and `chown`, `fchown`, `lchown`, `fchownat`.
//!
//! Owners are not modelled: every node belongs to the program's user and
//! group (`VfsConfig::uid`, `gid`), so a `chown` to those (or to -1, "keep")
//! succeeds and changes nothing, and a `chown` to anyone else is `EPERM`,
//! even for root (where Linux would change the owner).
//! Every node there belongs to the program's own user,
//! so the owner check `chmod_common` makes always passes; what cannot
//! change is what Linux refuses too: nodes of `/proc` and `/sys` (`EPERM`
//! there, as their owner is root and the program may not be) and the
//! device nodes under `/dev` (likewise root's).

use super::errno::{Errno, EINVAL, EPERM};
use super::fd_table::Fd;
use super::node::{Ino, NodeKind};
use super::vfs::Vfs;

impl Vfs {
    /// Sets the permission bits of `ino` to `mode & 0o7777` (ctime moves).
    fn chmod_node(&mut self, ino: Ino, mode: u32) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        let own = node.mount.is_tmpfs() && matches!(node.kind, NodeKind::File(_) | NodeKind::Dir(_));
        if !own {
            return Err(EPERM);
        }
        node.perm = mode & 0o7777;
        node.ctime = super::node::Timespec::now();
        Ok(())
    }

    /// `fchmod(fd, mode)`.
    pub fn fchmod(&mut self, fd: Fd, mode: u32) -> Result<(), Errno> {
        let ino = self.desc(fd)?.node;
        self.chmod_node(ino, mode)
    }

    /// `fchmodat(dirfd, path, mode)` and `fchmodat2(..., flags)`
    /// (`AT_SYMLINK_NOFOLLOW` is `EOPNOTSUPP` on Linux for a symbolic
    /// link; here no symbolic link is mode-changeable either).
    pub fn fchmodat(&mut self, dirfd: Fd, path: &[u8], mode: u32, flags: i32) -> Result<(), Errno> {
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(EINVAL);
        }
        let ino = self.lookup_for_chmod(dirfd, path, flags)?;
        if flags & libc::AT_SYMLINK_NOFOLLOW != 0 && matches!(self.node(ino)?.kind, NodeKind::Symlink(_)) {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        self.chmod_node(ino, mode)
    }
}

impl Vfs {
    /// The owner change `uid`, `gid` (-1: keep) asks for on `ino`.
    fn chown_node(&mut self, ino: Ino, uid: u32, gid: u32) -> Result<(), Errno> {
        self.node(ino)?;
        let keep_or_same = |want: u32, have: u32| want == u32::MAX || want == have;
        if !keep_or_same(uid, self.uid) || !keep_or_same(gid, self.gid) {
            return Err(EPERM);
        }
        if uid != u32::MAX || gid != u32::MAX {
            self.node_mut(ino)?.ctime = super::node::Timespec::now();
        }
        Ok(())
    }

    /// `fchown(fd, uid, gid)`.
    pub fn fchown(&mut self, fd: Fd, uid: u32, gid: u32) -> Result<(), Errno> {
        let ino = self.desc(fd)?.node;
        self.chown_node(ino, uid, gid)
    }

    /// `fchownat(dirfd, path, uid, gid, flags)` (`chown`, `lchown` with
    /// `AT_SYMLINK_NOFOLLOW`).
    pub fn fchownat(&mut self, dirfd: Fd, path: &[u8], uid: u32, gid: u32, flags: i32) -> Result<(), Errno> {
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(EINVAL);
        }
        let ino = self.lookup_for_chmod(dirfd, path, flags)?;
        self.chown_node(ino, uid, gid)
    }
}

#[cfg(test)]
mod tests {
    use super::super::vfs::VfsConfig;
    use super::*;

    #[test]
    fn chmod_changes_the_mode_of_own_files_only() {
        let mut v = Vfs::new(&VfsConfig::default());
        let fd = v.openat(Fd::CWD, b"/tmp/f", libc::O_CREAT | libc::O_RDWR, 0o600).expect("open");
        v.fchmodat(Fd::CWD, b"/tmp/f", 0o4666, 0).expect("chmod");
        let st = v.fstat(fd).expect("fstat");
        let mode = u32::from_le_bytes(st[24..28].try_into().unwrap());
        assert_eq!(mode, libc::S_IFREG | 0o4666);
        v.fchmod(fd, 0o640).expect("fchmod");
        let st = v.fstat(fd).expect("fstat");
        assert_eq!(u32::from_le_bytes(st[24..28].try_into().unwrap()), libc::S_IFREG | 0o640);
        assert_eq!(v.fchmodat(Fd::CWD, b"/tmp/missing", 0o600, 0), Err(Errno(libc::ENOENT)));
        assert_eq!(v.fchmodat(Fd::CWD, b"/proc", 0o600, 0), Err(EPERM));
        assert_eq!(v.fchmodat(Fd::CWD, b"/dev/null", 0o600, 0), Err(EPERM));
        assert_eq!(v.fchmodat(Fd::CWD, b"/tmp/f", 0o600, 0x1000_0000), Err(EINVAL));
    }

    #[test]
    fn chown_keeps_the_one_owner() {
        let mut v = Vfs::new(&VfsConfig { uid: 1000, gid: 100, ..VfsConfig::default() });
        let fd = v.openat(Fd::CWD, b"/tmp/f", libc::O_CREAT | libc::O_RDWR, 0o600).expect("open");
        assert_eq!(v.fchownat(Fd::CWD, b"/tmp", u32::MAX, 100, 0), Ok(()));
        assert_eq!(v.fchownat(Fd::CWD, b"/tmp/f", 1000, u32::MAX, 0), Ok(()));
        assert_eq!(v.fchown(fd, u32::MAX, u32::MAX), Ok(()));
        assert_eq!(v.fchown(fd, 0, u32::MAX), Err(EPERM));
        assert_eq!(v.fchownat(Fd::CWD, b"/tmp/f", u32::MAX, 0, 0), Err(EPERM));
        assert_eq!(v.fchownat(Fd::CWD, b"/tmp/none", u32::MAX, 100, 0), Err(Errno(libc::ENOENT)));
    }
}
