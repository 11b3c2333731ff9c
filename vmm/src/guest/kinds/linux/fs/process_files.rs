//! What of the file layer belongs to one process: its descriptor table,
//! working directory and umask ([`FileContext`]). The tree and the open
//! file descriptions are shared by every process. A fork copies the
//! table (each copied descriptor takes a reference on its description,
//! so parent and child share offsets, as Linux's `dup_fd`); a process
//! switch swaps contexts; an exit releases every descriptor.

use super::fd_table::FdTable;
use super::node::Ino;
use super::vfs::Vfs;

/// One process's descriptors, working directory and umask.
#[derive(Debug)]
pub struct FileContext {
    fds: FdTable,
    cwd: Ino,
    umask: u32,
}

impl Vfs {
    /// A copy of the current context for a child (`fork`).
    pub fn fork_files(&mut self) -> FileContext {
        let fds = self.fds.clone();
        for (_, slot) in fds.open_fds() {
            self.descs.retain(slot.desc);
        }
        FileContext { fds, cwd: self.cwd, umask: self.umask }
    }

    /// Makes `next` the current context; returns the one it replaces.
    pub fn swap_files(&mut self, next: FileContext) -> FileContext {
        let fds = std::mem::replace(&mut self.fds, next.fds);
        let cwd = std::mem::replace(&mut self.cwd, next.cwd);
        let umask = std::mem::replace(&mut self.umask, next.umask);
        FileContext { fds, cwd, umask }
    }

    /// Releases every descriptor of `ctx` (a process that ended).
    pub fn drop_files(&mut self, ctx: FileContext) {
        let descs: Vec<_> = ctx.fds.open_fds().map(|(_, s)| s.desc).collect();
        for d in descs {
            self.release_desc(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fd_table::Fd;
    use super::super::vfs::VfsConfig;
    use super::*;

    #[test]
    fn a_forked_table_shares_offsets_and_closes_apart() {
        let mut v = Vfs::new(&VfsConfig::default());
        let fd = v.openat(Fd::CWD, b"/tmp/f", libc::O_CREAT | libc::O_RDWR, 0o600).expect("open");
        v.write(fd, b"hello").expect("write");
        let child = v.fork_files();
        // The child closes its copy: the parent's stays open.
        let parent = v.swap_files(child);
        v.close(fd).expect("child close");
        assert!(v.close(fd).is_err());
        let child = v.swap_files(parent);
        // The parent's offset is where the write left it (shared).
        assert_eq!(v.lseek(fd, 0, libc::SEEK_CUR), Ok(5));
        v.drop_files(child);
        assert_eq!(v.lseek(fd, 0, libc::SEEK_CUR), Ok(5));
    }
}
