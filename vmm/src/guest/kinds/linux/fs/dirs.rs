//! Directory calls: `mkdirat`, `unlinkat`, `chdir`, `fchdir`, `getcwd`,
//! `getdents64`. Entry positions are stable across removals, so a
//! listing resumed from the file offset never skips a surviving entry.

use super::dirent::{push_record, record_len};
use super::errno::{Errno, EACCES, EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY, ERANGE};
use super::fd_table::Fd;
use super::node::{Dir, Ino, Node, NodeKind, FIRST_ENTRY_POS, ROOT};
use super::path;
use super::resolve::Lookup;
use super::vfs::{Vfs, IO_MAX, MAY_EXEC, MAY_WRITE};

impl Vfs {
    /// `mkdirat(dirfd, path, mode)`: a new directory with
    /// `mode & 01777 & ~umask`; `EEXIST` if the path exists, `EACCES`
    /// outside the writable trees.
    pub fn mkdirat(&mut self, dirfd: Fd, path: &[u8], mode: u32) -> Result<(), Errno> {
        let (parent, name) = match self.resolve_at(dirfd, path, false)?.lookup {
            Lookup::Found { .. } => return Err(EEXIST),
            Lookup::Missing { parent, name } => (parent, name),
        };
        let dir = self.node(parent)?;
        if dir.links == 0 {
            return Err(ENOENT);
        }
        let mount = dir.mount;
        self.check_perm(parent, MAY_WRITE | MAY_EXEC)?;
        if !mount.is_tmpfs() {
            return Err(EACCES);
        }
        self.budget.take_inode()?;
        let perm = mode & 0o1777 & !self.umask;
        let ino = self.nodes.add(Node::new(NodeKind::Dir(Dir::default()), perm, mount, parent, name.clone()));
        let dir = self.node_mut(parent)?;
        if let NodeKind::Dir(d) = &mut dir.kind {
            d.insert(name, ino);
        }
        dir.touch();
        Ok(())
    }

    /// `unlinkat(dirfd, path, flags)`: removes a non-directory, or with
    /// `AT_REMOVEDIR` an empty directory. Errors as Linux: `EISDIR`
    /// (unlink of a directory), `ENOTDIR`, `ENOTEMPTY`, `EINVAL` (rmdir
    /// of `.`), `EBUSY` (a mount point), `EACCES` (read-only directory).
    /// A file still open lives on until its last close.
    pub fn unlinkat(&mut self, dirfd: Fd, path: &[u8], flags: i32) -> Result<(), Errno> {
        if flags & !libc::AT_REMOVEDIR != 0 {
            return Err(EINVAL);
        }
        let rmdir = flags & libc::AT_REMOVEDIR != 0;
        if rmdir {
            match path::parse(path)?.components.last().copied() {
                Some(b".") => return Err(EINVAL),
                Some(b"..") => return Err(ENOTEMPTY),
                _ => {}
            }
        }
        let resolved = self.resolve_at(dirfd, path, false)?;
        let (ino, parent, name) = match resolved.lookup {
            Lookup::Missing { .. } => return Err(ENOENT),
            Lookup::Found { ino, parent, name } => (ino, parent, name),
        };
        let node = self.node(ino)?;
        let is_dir = matches!(node.kind, NodeKind::Dir(_));
        if rmdir {
            let NodeKind::Dir(d) = &node.kind else { return Err(ENOTDIR) };
            if self.is_mount_root(ino)? || name.is_empty() {
                return Err(EBUSY);
            }
            if !d.is_empty() {
                return Err(ENOTEMPTY);
            }
        } else if is_dir {
            return Err(EISDIR);
        } else if resolved.trailing_slash {
            return Err(ENOTDIR);
        }
        self.check_perm(parent, MAY_WRITE | MAY_EXEC)?;
        let dir = self.node_mut(parent)?;
        if let NodeKind::Dir(d) = &mut dir.kind {
            d.remove(&name);
        }
        dir.touch();
        let node = self.node_mut(ino)?;
        node.links = 0;
        node.parent = ino;
        node.ctime = super::node::Timespec::now();
        self.maybe_free(ino);
        Ok(())
    }

    /// `chdir(path)`: `ENOTDIR` for a non-directory, `EACCES` without
    /// search permission.
    pub fn chdir(&mut self, path: &[u8]) -> Result<(), Errno> {
        let resolved = self.resolve_at(Fd::CWD, path, true)?;
        let Lookup::Found { ino, .. } = resolved.lookup else { return Err(ENOENT) };
        self.set_cwd(ino)
    }

    /// `fchdir(fd)`.
    pub fn fchdir(&mut self, fd: Fd) -> Result<(), Errno> {
        let ino = self.desc(fd)?.node;
        self.set_cwd(ino)
    }

    fn set_cwd(&mut self, ino: Ino) -> Result<(), Errno> {
        if !matches!(self.node(ino)?.kind, NodeKind::Dir(_)) {
            return Err(ENOTDIR);
        }
        self.check_perm(ino, MAY_EXEC)?;
        self.node_mut(ino)?.opens += 1;
        let old = std::mem::replace(&mut self.cwd, ino);
        if let Some(node) = self.nodes.get_mut(old) {
            node.opens = node.opens.saturating_sub(1);
        }
        self.maybe_free(old);
        Ok(())
    }

    /// `getcwd(size)`: the working directory's path with its NUL (the
    /// syscall returns its length); `ERANGE` if longer than `size`,
    /// `ENOENT` once the directory was removed.
    pub fn getcwd(&self, size: usize) -> Result<Vec<u8>, Errno> {
        let mut names = Vec::new();
        let mut ino = self.cwd;
        while ino != ROOT {
            let node = self.node(ino)?;
            if node.links == 0 {
                return Err(ENOENT);
            }
            names.push(node.name.as_slice());
            ino = node.parent;
        }
        let mut out = Vec::new();
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out.push(0);
        if out.len() > size {
            return Err(ERANGE);
        }
        Ok(out)
    }

    /// `getdents64(fd, count)`: as many whole `linux_dirent64` records as
    /// fit in `count` bytes (`.` and `..` first), resuming from the file
    /// offset and advancing it; empty at the end; `EINVAL` if not even
    /// one fits, `ENOTDIR` for a non-directory, `ENOENT` for a removed
    /// directory.
    pub fn getdents64(&mut self, fd: Fd, count: usize) -> Result<Vec<u8>, Errno> {
        let id = self.fds.get(fd)?.desc;
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if desc.is_path() {
            return Err(EBADF);
        }
        let ino = desc.node;
        let mut pos = desc.offset;
        let node = self.node(ino)?;
        let NodeKind::Dir(dir) = &node.kind else { return Err(ENOTDIR) };
        if node.links == 0 {
            return Err(ENOENT);
        }
        let count = count.min(IO_MAX);
        let mut out = Vec::new();
        let fits = |out: &mut Vec<u8>, name: &[u8]| -> Result<bool, Errno> {
            if out.len() + record_len(name.len()) <= count {
                Ok(true)
            } else if out.is_empty() {
                Err(EINVAL)
            } else {
                Ok(false)
            }
        };
        let dot = [(0u64, &b"."[..], ino), (1, b"..", node.parent)];
        let mut full = false;
        let start = pos;
        for (p, name, child) in dot.into_iter().filter(|&(p, _, _)| p >= start) {
            if !fits(&mut out, name)? {
                full = true;
                break;
            }
            push_record(&mut out, child.0, p + 1, libc::DT_DIR, name);
            pos = p + 1;
        }
        if !full {
            for (p, name, child) in dir.entries_from(pos.max(FIRST_ENTRY_POS)) {
                if !fits(&mut out, name)? {
                    break;
                }
                let d_type = self.nodes.get(child).map_or(libc::DT_UNKNOWN, |n| n.kind.dirent_type());
                push_record(&mut out, child.0, p + 1, d_type, name);
                pos = p + 1;
            }
        }
        if let Some(desc) = self.descs.get_mut(id) {
            desc.offset = pos;
        }
        Ok(out)
    }
}
