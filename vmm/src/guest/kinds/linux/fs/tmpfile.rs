//! `O_TMPFILE` and `O_DIRECT` at open, as Linux 6.12 does them on tmpfs:
//! `open(dir, O_TMPFILE | O_RDWR, mode)` makes an unnamed in-memory file
//! on `dir`'s file system (`/tmp`, `/dev/shm` and below), freed at its
//! last close; `O_DIRECT` is accepted on in-memory and host files (tmpfs
//! takes it since 6.6, moving bytes as buffered I/O does) and refused
//! with `EINVAL` on every other node, as `do_dentry_open` refuses a file
//! without `FMODE_CAN_ODIRECT`.
//!
//! Not here: `linkat(fd, "", ..., AT_EMPTY_PATH)` giving the file a name
//! (there are no hard links in the tree).

use super::errno::{Errno, EINVAL, ENOENT, ENOTDIR, EOPNOTSUPP};
use super::fd_table::Fd;
use super::node::{Ino, Node, NodeKind, ROOT};
use super::open_file::Content;
use super::resolve::Lookup;
use super::vfs::{Vfs, MAY_EXEC, MAY_WRITE};

/// The kernel's `__O_TMPFILE` bit (`O_TMPFILE` is it with `O_DIRECTORY`).
pub(super) const O_TMPFILE_BIT: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;

impl Vfs {
    /// `openat(dirfd, path, flags, mode)` with `__O_TMPFILE` in `flags`:
    /// `EINVAL` without `O_DIRECTORY`, with `O_CREAT` or without write
    /// access (`build_open_flags`); `ENOENT`/`ENOTDIR` when `path` is no
    /// directory; `EOPNOTSUPP` outside tmpfs; `EACCES` without write and
    /// search permission on it. The file has mode `mode & ~umask` and no
    /// name.
    pub(super) fn open_tmpfile(&mut self, dirfd: Fd, path: &[u8], flags: i32, mode: u32) -> Result<Fd, Errno> {
        let mask = O_TMPFILE_BIT | libc::O_DIRECTORY | libc::O_CREAT;
        if flags & mask != libc::O_TMPFILE {
            return Err(EINVAL);
        }
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_WRONLY && acc != libc::O_RDWR {
            return Err(EINVAL);
        }
        self.fds.lowest_free(0)?;
        let dir = match self.resolve_at(dirfd, path, flags & libc::O_NOFOLLOW == 0)?.lookup {
            Lookup::Found { ino, .. } => ino,
            Lookup::Missing { .. } => return Err(ENOENT),
        };
        let node = self.node(dir)?;
        if !matches!(node.kind, NodeKind::Dir(_)) {
            return Err(ENOTDIR);
        }
        if node.links == 0 {
            return Err(ENOENT);
        }
        let mount = node.mount;
        if !mount.is_tmpfs() {
            return Err(EOPNOTSUPP);
        }
        self.check_perm(dir, MAY_WRITE | MAY_EXEC)?;
        self.budget.take_inode()?;
        let perm = mode & 0o7777 & !self.umask;
        let store = match self.new_file_store(b"#tmpfile") {
            Ok(s) => s,
            Err(e) => {
                self.budget.put_inode();
                return Err(e);
            }
        };
        let mut file = Node::new(NodeKind::File(store), perm, mount, ROOT, Vec::new());
        file.links = 0;
        let ino = self.nodes.add(file);
        let open = flags & !(O_TMPFILE_BIT | libc::O_DIRECTORY);
        self.install(ino, open, Content::Live)
    }

    /// `EINVAL` when `flags` asks for `O_DIRECT` on a node that cannot
    /// take it (anything but an in-memory or host file).
    pub(super) fn check_direct(&self, ino: Ino, flags: i32) -> Result<(), Errno> {
        if flags & libc::O_DIRECT == 0 || flags & libc::O_PATH != 0 {
            return Ok(());
        }
        match self.node(ino)?.kind {
            NodeKind::File(_) | NodeKind::Host(_) => Ok(()),
            _ => Err(EINVAL),
        }
    }
}
