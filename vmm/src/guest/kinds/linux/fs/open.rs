//! Opening and descriptor calls: `openat`, `close`, `dup`, `dup2`,
//! `dup3`, `fcntl`. Flags and errno values follow Linux 6.12's
//! `do_sys_open`/`do_open`/`may_open` and `fs/fcntl.c`.

use std::fs::OpenOptions;

use super::errno::{Errno, EACCES, EBADF, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOTDIR};
use super::fd_table::{Fd, Slot};
use super::node::{Ino, Mount, Node, NodeKind};
use super::open_file::Content;
use super::resolve::Lookup;
use super::vfs::{Vfs, MAY_EXEC, MAY_READ, MAY_WRITE};

/// Status flags `F_SETFL` may change.
const SETFL_MASK: i32 = libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;

impl Vfs {
    /// `openat(dirfd, path, flags, mode)`: returns the new descriptor.
    ///
    /// `O_CREAT` makes an in-memory file with `mode & ~umask` (only in a
    /// writable directory: `/tmp`, `/dev/shm` and below); `O_EXCL`,
    /// `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`, `O_NOFOLLOW`, `O_CLOEXEC`
    /// and `O_NONBLOCK` act as in Linux; `O_PATH` opens for `fstat`,
    /// `fchdir`, `*at` and `fcntl` only; `O_TMPFILE` and `O_DIRECT` as
    /// `tmpfile.rs` says.
    pub fn openat(&mut self, dirfd: Fd, path: &[u8], flags: i32, mode: u32) -> Result<Fd, Errno> {
        if flags & super::tmpfile::O_TMPFILE_BIT != 0 {
            return self.open_tmpfile(dirfd, path, flags, mode);
        }
        let flags = if flags & libc::O_PATH != 0 {
            flags & (libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        } else {
            flags
        };
        let creat = flags & libc::O_CREAT != 0;
        if creat && flags & libc::O_DIRECTORY != 0 {
            return Err(EINVAL);
        }
        let excl = creat && flags & libc::O_EXCL != 0;
        // Linux reserves the descriptor before the lookup.
        self.fds.lowest_free(0)?;
        let follow = flags & libc::O_NOFOLLOW == 0 && !excl;
        let resolved = self.resolve_at(dirfd, path, follow)?;
        let (ino, created) = match resolved.lookup {
            Lookup::Missing { parent, name } => {
                if !creat {
                    return Err(ENOENT);
                }
                if resolved.trailing_slash {
                    return Err(EISDIR);
                }
                (self.create_file(parent, name, mode)?, true)
            }
            Lookup::Found { ino, .. } => {
                if excl {
                    return Err(EEXIST);
                }
                (ino, false)
            }
        };
        let path_only = flags & libc::O_PATH != 0;
        let acc = flags & libc::O_ACCMODE;
        let trunc = flags & libc::O_TRUNC != 0 && !path_only;
        let node = self.node(ino)?;
        match &node.kind {
            NodeKind::Dir(_) if creat || (!path_only && (acc != libc::O_RDONLY || trunc)) => return Err(EISDIR),
            NodeKind::Dir(_) => {}
            NodeKind::Symlink(_) if !path_only => return Err(ELOOP),
            _ if flags & libc::O_DIRECTORY != 0 || resolved.trailing_slash => return Err(ENOTDIR),
            _ => {}
        }
        if !path_only && !created {
            let mut want = 0;
            if acc == libc::O_RDONLY || acc == libc::O_RDWR {
                want |= MAY_READ;
            }
            if acc == libc::O_WRONLY || acc == libc::O_RDWR || trunc {
                want |= MAY_WRITE;
            }
            self.check_perm(ino, want)?;
        }
        self.check_direct(ino, flags)?;
        let content = if path_only { Content::Live } else { self.open_content(ino, acc, trunc)? };
        if trunc {
            match &content {
                Content::Host(file) => file.set_len(0).map_err(|e| Errno::from_io(&e))?,
                _ => self.truncate_node(ino, 0)?,
            }
        }
        self.install(ino, flags, content)
    }

    /// Creates an empty in-memory file `name` in `parent`.
    fn create_file(&mut self, parent: Ino, name: Vec<u8>, mode: u32) -> Result<Ino, Errno> {
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
        let perm = mode & 0o7777 & !self.umask;
        let store = match self.new_file_store(&name) {
            Ok(s) => s,
            Err(e) => {
                self.budget.put_inode();
                return Err(e);
            }
        };
        let ino = self.nodes.add(Node::new(NodeKind::File(store), perm, mount, parent, name.clone()));
        let dir = self.node_mut(parent)?;
        if let NodeKind::Dir(d) = &mut dir.kind {
            d.insert(name, ino);
        }
        dir.touch();
        Ok(ino)
    }

    /// What an open of `ino` fixes: a synthetic file's contents, a host
    /// file's handle.
    fn open_content(&self, ino: Ino, acc: i32, trunc: bool) -> Result<Content, Errno> {
        Ok(match &self.node(ino)?.kind {
            NodeKind::Synthetic(generate) => Content::Snapshot(generate()),
            NodeKind::Host(host) => {
                let write = acc == libc::O_WRONLY || acc == libc::O_RDWR || trunc;
                if write && !host.writable {
                    return Err(EACCES);
                }
                let file =
                    OpenOptions::new().read(true).write(write).open(&host.path).map_err(|e| Errno::from_io(&e))?;
                Content::Host(file)
            }
            _ => Content::Live,
        })
    }

    /// `close(fd)`.
    pub fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        let slot = self.fds.remove(fd)?;
        self.release_desc(slot.desc);
        Ok(())
    }

    /// `dup(fd)`: the lowest free descriptor, sharing the description.
    pub fn dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        self.dup_from(fd, 0, false)
    }

    fn dup_from(&mut self, fd: Fd, min: u64, cloexec: bool) -> Result<Fd, Errno> {
        let desc = self.fds.get(fd)?.desc;
        let new = self.fds.install_lowest(min, Slot { desc, cloexec })?;
        self.descs.retain(desc);
        Ok(new)
    }

    /// `dup2(old, new)`: `new` (closed first if open) shares `old`'s
    /// description; `new` itself when they are equal and `old` is open.
    pub fn dup2(&mut self, old: Fd, new: Fd) -> Result<Fd, Errno> {
        let slot = self.fds.get(old)?;
        if old == new {
            return Ok(new);
        }
        self.replace(slot, new, false)
    }

    /// `dup3(old, new, flags)`: as `dup2`, `EINVAL` when equal or for
    /// flags other than `O_CLOEXEC`.
    pub fn dup3(&mut self, old: Fd, new: Fd, flags: i32) -> Result<Fd, Errno> {
        if flags & !libc::O_CLOEXEC != 0 || old == new {
            return Err(EINVAL);
        }
        let slot = self.fds.get(old)?;
        self.replace(slot, new, flags & libc::O_CLOEXEC != 0)
    }

    fn replace(&mut self, slot: Slot, new: Fd, cloexec: bool) -> Result<Fd, Errno> {
        let previous = self.fds.install_at(new, Slot { desc: slot.desc, cloexec })?;
        self.descs.retain(slot.desc);
        if let Some(previous) = previous {
            self.release_desc(previous.desc);
        }
        Ok(new)
    }

    /// `fcntl(fd, cmd, arg)` for `F_DUPFD`, `F_DUPFD_CLOEXEC`,
    /// `F_GETFD`, `F_SETFD`, `F_GETFL`, `F_SETFL`; other commands are
    /// `EINVAL`. On an `O_PATH` descriptor `F_SETFL` is `EBADF`.
    pub fn fcntl(&mut self, fd: Fd, cmd: i32, arg: u64) -> Result<i64, Errno> {
        let slot = self.fds.get(fd)?;
        match cmd {
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                // The argument is an int.
                let min = i64::from(arg as u32 as i32);
                if min < 0 || min as u64 >= self.fds.limit() {
                    return Err(EINVAL);
                }
                self.dup_from(fd, min as u64, cmd == libc::F_DUPFD_CLOEXEC).map(|f| i64::from(f.0))
            }
            libc::F_GETFD => Ok(i64::from(slot.cloexec)),
            libc::F_SETFD => {
                self.fds.set_cloexec(fd, arg & libc::FD_CLOEXEC as u64 != 0)?;
                Ok(0)
            }
            libc::F_GETFL => Ok(i64::from(self.desc(fd)?.flags)),
            libc::F_SETFL => {
                let node = self.desc(fd)?.node;
                if !self.desc(fd)?.is_path() {
                    self.check_direct(node, arg as i32 & libc::O_DIRECT)?;
                }
                let desc = self.descs.get_mut(slot.desc).ok_or(EBADF)?;
                if desc.is_path() {
                    return Err(EBADF);
                }
                desc.flags = (desc.flags & !SETFL_MASK) | (arg as i32 & SETFL_MASK);
                Ok(0)
            }
            _ => Err(EINVAL),
        }
    }

    /// Whether `ino` is a mount point (or the root): not removable.
    pub(super) fn is_mount_root(&self, ino: Ino) -> Result<bool, Errno> {
        let node = self.node(ino)?;
        Ok(node.parent == ino || node.mount != self.node(node.parent)?.mount || node.mount == Mount::Anon)
    }
}
