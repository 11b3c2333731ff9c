//! The file layer's state ([`Vfs`]): the node tree, the open file
//! descriptions, the descriptor table, the tmpfs budget, the working
//! directory and umask; how it is built (the standard tree) and what the
//! kind registers in it (synthetic `/proc` and `/sys` files, nodes it
//! serves itself, host files named explicitly, `/proc/self/exe`).
//!
//! The calls live beside it, one file per concern (`open`, `io`,
//! `meta`, `dirs`). Nothing here touches guest memory: arguments come in
//! already copied, results go out as bytes.

use std::path::PathBuf;
use std::sync::Arc;

use super::devices::Device;
use super::errno::{Errno, EACCES, EBADF, EEXIST, EINVAL, ENOENT, ENOTDIR};
use super::fd_table::{Fd, FdTable, Slot};
use super::file_store::{FileStore, StoreFactory};
use super::node::{Dir, Generator, HostFile, Ino, Mount, Node, NodeKind, Nodes, Special, ROOT};
use super::open_file::{Content, DescId, Description, Descriptions};
use super::path;
use super::tmpfs::{Budget, SparseFile};

/// The largest read served in one call; longer reads are short, as a
/// device or a signal may make them on Linux.
pub const IO_MAX: usize = 16 << 20;

/// How the tree is sized and who owns it.
#[derive(Debug, Clone)]
pub struct VfsConfig {
    /// Bytes of file data `/tmp` and `/dev/shm` may hold together.
    pub tmpfs_bytes: u64,
    /// Files and directories they may hold together.
    pub tmpfs_inodes: u64,
    /// `st_uid` of every node (the process owns everything).
    pub uid: u32,
    /// `st_gid` of every node.
    pub gid: u32,
}

impl Default for VfsConfig {
    fn default() -> Self {
        VfsConfig { tmpfs_bytes: 64 << 20, tmpfs_inodes: 16 << 10, uid: 0, gid: 0 }
    }
}

/// A descriptor on a node the kind serves, as [`Vfs::special`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialFile {
    /// Which node.
    pub special: Special,
    /// The shared file offset.
    pub offset: u64,
    /// Access mode and status flags.
    pub flags: i32,
}

/// The files and descriptors of one Linux process.
#[derive(Debug)]
pub struct Vfs {
    pub(super) nodes: Nodes,
    pub(super) descs: Descriptions,
    pub(super) fds: FdTable,
    pub(super) budget: Budget,
    pub(super) stores: Stores,
    pub(super) cwd: Ino,
    pub(super) umask: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// Where new in-memory files keep their bytes: the kind's factory once
/// it set one, host memory before.
#[derive(Clone, Default)]
pub(super) struct Stores(Option<StoreFactory>);

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Stores(kind)" } else { "Stores(host)" })
    }
}

/// The kernel's `O_LARGEFILE` on x86-64 (the libc crate says 0), which
/// `open` forces on 64-bit and `F_GETFL` shows.
pub const KERNEL_O_LARGEFILE: i32 = 0o100000;

/// Permission bits a caller asks for (owner class).
pub(super) const MAY_READ: u32 = 4;
pub(super) const MAY_WRITE: u32 = 2;
pub(super) const MAY_EXEC: u32 = 1;

impl Vfs {
    /// The standard tree: `/` with `/tmp` and `/dev/shm` (writable
    /// tmpfs), `/dev/null`, `/dev/zero`, `/dev/urandom`, empty `/proc`,
    /// `/proc/self` and `/sys`; the working directory `/`, umask 022;
    /// descriptors 0, 1, 2 open on [`Special::Stdin`], `Stdout`, `Stderr`.
    pub fn new(config: &VfsConfig) -> Self {
        let mut root = Node::new(NodeKind::Dir(Dir::default()), 0o555, Mount::Root, ROOT, Vec::new());
        root.opens = 1; // the cwd
        let mut nodes = Nodes::default();
        let ino = nodes.add(root);
        debug_assert_eq!(ino, ROOT);
        let mut vfs = Vfs {
            nodes,
            descs: Descriptions::default(),
            fds: FdTable::default(),
            budget: Budget::new(config.tmpfs_bytes, config.tmpfs_inodes),
            stores: Stores::default(),
            cwd: ROOT,
            umask: 0o022,
            uid: config.uid,
            gid: config.gid,
        };
        let dev = vfs.add_child(ROOT, b"dev", NodeKind::Dir(Dir::default()), 0o555, Mount::Dev);
        for (name, device) in [(&b"null"[..], Device::Null), (b"zero", Device::Zero), (b"urandom", Device::Urandom)] {
            vfs.add_child(dev, name, NodeKind::Device(device), 0o666, Mount::Dev);
        }
        vfs.add_child(dev, b"shm", NodeKind::Dir(Dir::default()), 0o1777, Mount::Shm);
        vfs.add_child(ROOT, b"tmp", NodeKind::Dir(Dir::default()), 0o1777, Mount::Tmp);
        let proc = vfs.add_child(ROOT, b"proc", NodeKind::Dir(Dir::default()), 0o555, Mount::Proc);
        vfs.add_child(proc, b"self", NodeKind::Dir(Dir::default()), 0o555, Mount::Proc);
        vfs.add_child(ROOT, b"sys", NodeKind::Dir(Dir::default()), 0o555, Mount::Sys);
        for special in [Special::Stdin, Special::Stdout, Special::Stderr] {
            // The table is empty and the limit is above 3: cannot fail.
            let _ = vfs.open_anonymous(special, libc::O_RDWR, 0o20620);
        }
        vfs
    }

    /// Adds a node named `name` in directory `parent` (which the caller
    /// knows to be a directory without that name).
    fn add_child(&mut self, parent: Ino, name: &[u8], kind: NodeKind, perm: u32, mount: Mount) -> Ino {
        let ino = self.nodes.add(Node::new(kind, perm, mount, parent, name.to_vec()));
        if let Some(NodeKind::Dir(dir)) = self.nodes.get_mut(parent).map(|n| &mut n.kind) {
            dir.insert(name.to_vec(), ino);
        }
        ino
    }

    /// Registers a node at absolute `path`, making missing directories
    /// (mode 0555, on their parent's file system); `EEXIST` if the path
    /// exists, `ENOTDIR` if a component is not a directory.
    fn register(&mut self, path: &str, kind: NodeKind, perm: u32) -> Result<Ino, Errno> {
        let parsed = path::parse(path.as_bytes())?;
        let Some((last, dirs)) = parsed.components.split_last() else {
            return Err(EEXIST);
        };
        let mut dir = ROOT;
        for comp in dirs {
            let node = self.node(dir)?;
            let NodeKind::Dir(d) = &node.kind else {
                return Err(ENOTDIR);
            };
            dir = match d.get(comp) {
                Some(ino) => ino,
                None => {
                    let mount = node.mount;
                    self.add_child(dir, comp, NodeKind::Dir(Dir::default()), 0o555, mount)
                }
            };
        }
        let node = self.node(dir)?;
        let NodeKind::Dir(d) = &node.kind else {
            return Err(ENOTDIR);
        };
        if d.get(last).is_some() || *last == b"." || *last == b".." {
            return Err(EEXIST);
        }
        let mount = node.mount;
        if mount.is_tmpfs() {
            self.budget.take_inode()?;
        }
        Ok(self.add_child(dir, last, kind, perm, mount))
    }

    /// Registers a read-only synthetic file at absolute `path` (under
    /// `/proc` or `/sys`, e.g. `/proc/self/maps`): `generate` makes its
    /// contents once per `open`, and reads are served from that copy.
    pub fn register_synthetic(
        &mut self,
        path: &str,
        generate: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Result<(), Errno> {
        let generate: Generator = Arc::new(generate);
        self.register(path, NodeKind::Synthetic(generate), 0o444).map(|_| ())
    }

    /// Registers a node the kind serves itself at absolute `path` (e.g.
    /// `/dev/mem`, `/proc/self/pagemap`), with `mode` as `stat` shows it
    /// (type and permission bits; the owner bits decide which opens are
    /// allowed). Its descriptors are reported by [`Vfs::special`].
    pub fn register_special(&mut self, path: &str, special: Special, mode: u32) -> Result<(), Errno> {
        let ino = self.register(path, NodeKind::Special(special), mode & 0o7777)?;
        if let Some(node) = self.nodes.get_mut(ino) {
            node.special_mode = Some(mode);
        }
        Ok(())
    }

    /// Makes host file `host_path` visible at absolute `guest_path`. It
    /// is opened (with `std::fs`) when the guest opens it, read-only
    /// unless `writable`; nothing else of the host is ever reachable.
    pub fn add_host_file(
        &mut self,
        guest_path: &str,
        host_path: impl Into<PathBuf>,
        writable: bool,
    ) -> Result<(), Errno> {
        let perm = if writable { 0o644 } else { 0o444 };
        let host = HostFile { path: host_path.into(), writable };
        self.register(guest_path, NodeKind::Host(host), perm).map(|_| ())
    }

    /// Adds a symbolic link at absolute `path` pointing to `target`.
    pub fn add_symlink(&mut self, path: &str, target: &[u8]) -> Result<(), Errno> {
        self.register(path, NodeKind::Symlink(target.to_vec()), 0o777).map(|_| ())
    }

    /// Sets what `/proc/self/exe` points to (the program's path).
    pub fn set_exe(&mut self, program: &[u8]) -> Result<(), Errno> {
        let proc_self = self.lookup_registered("/proc/self")?;
        if let Some(NodeKind::Dir(d)) = self.nodes.get_mut(proc_self).map(|n| &mut n.kind) {
            if let Some(old) = d.remove(b"exe") {
                self.nodes.remove(old);
            }
        }
        self.add_symlink("/proc/self/exe", program)
    }

    /// The node at absolute `path`, without permission checks.
    fn lookup_registered(&self, path: &str) -> Result<Ino, Errno> {
        let parsed = path::parse(path.as_bytes())?;
        let mut ino = ROOT;
        for comp in parsed.components {
            let NodeKind::Dir(d) = &self.node(ino)?.kind else {
                return Err(ENOTDIR);
            };
            ino = d.get(comp).ok_or(ENOENT)?;
        }
        Ok(ino)
    }

    /// Opens a new node the kind serves, in no directory (a memfd, a
    /// pipe end, ...), with `flags` (access mode, `O_CLOEXEC`, status
    /// flags) and `mode` as `fstat` shows it. `EMFILE` when the table
    /// is full.
    pub fn open_anonymous(&mut self, special: Special, flags: i32, mode: u32) -> Result<Fd, Errno> {
        self.fds.lowest_free(0)?;
        let mut node = Node::new(NodeKind::Special(special), mode & 0o7777, Mount::Anon, ROOT, Vec::new());
        node.links = 0;
        node.special_mode = Some(mode);
        let ino = self.nodes.add(node);
        self.install(ino, flags, Content::Live)
    }

    /// Makes every in-memory file created from now on keep its bytes
    /// where `factory` says (the kind: guest RAM, so it can be mapped).
    /// Files made before keep theirs in host memory.
    pub fn set_store_factory(&mut self, factory: StoreFactory) {
        self.stores = Stores(Some(factory));
    }

    /// The page quota of the tmpfs budget, which every store charges.
    pub fn tmpfs_quota(&self) -> guest_mm::providers::ShmemQuota {
        self.budget.pages.clone()
    }

    /// The store of a new in-memory file named `name`.
    pub(super) fn new_file_store(&self, name: &[u8]) -> Result<Box<dyn FileStore>, Errno> {
        match &self.stores.0 {
            Some(factory) => factory(name),
            None => Ok(Box::new(SparseFile::new(self.budget.pages.clone()))),
        }
    }

    /// `memfd_create(name, flags)`: an in-memory file in no directory,
    /// open read-write (mode 0777, counted in the tmpfs budget), freed at
    /// its last close. `MFD_CLOEXEC` and `MFD_ALLOW_SEALING` are taken
    /// (sealing itself is not done); other flags, or a name longer than
    /// 249 bytes, are `EINVAL`. The kind maps it by reading it.
    pub fn memfd_create(&mut self, name: &[u8], flags: u32) -> Result<Fd, Errno> {
        /// `MFD_NAME_MAX_LEN`: `NAME_MAX` less `"memfd:"`.
        const NAME_MAX_LEN: usize = 249;
        if flags & !(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) != 0 || name.len() > NAME_MAX_LEN {
            return Err(EINVAL);
        }
        self.fds.lowest_free(0)?;
        let mut full_name = b"memfd:".to_vec();
        full_name.extend_from_slice(name);
        let store = self.new_file_store(&full_name)?;
        self.budget.take_inode()?;
        let mut node = Node::new(NodeKind::File(store), 0o777, Mount::Shm, ROOT, full_name);
        node.links = 0;
        let ino = self.nodes.add(node);
        let cloexec = if flags & libc::MFD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
        self.install(ino, libc::O_RDWR | cloexec, Content::Live)
    }

    /// If `fd` is open on a node the kind serves, which one, with the
    /// shared offset and flags; `None` for nodes served here, `EBADF` if
    /// `fd` is not open. The kind calls this before `read`/`write`/...,
    /// which refuse special nodes with `EINVAL`.
    pub fn special(&self, fd: Fd) -> Result<Option<SpecialFile>, Errno> {
        let desc = self.desc(fd)?;
        Ok(match self.node(desc.node)?.kind {
            NodeKind::Special(special) => Some(SpecialFile { special, offset: desc.offset, flags: desc.flags }),
            _ => None,
        })
    }

    /// The special node of every open description, whichever process's
    /// descriptors name it (a description lives while any descriptor of
    /// any process does).
    pub fn open_specials(&self) -> Vec<Special> {
        self.descs
            .iter()
            .filter_map(|d| match self.node(d.node).ok()?.kind {
                NodeKind::Special(special) => Some(special),
                _ => None,
            })
            .collect()
    }

    /// Sets the shared offset of `fd` (for the kind serving a special node).
    pub fn set_offset(&mut self, fd: Fd, offset: u64) -> Result<(), Errno> {
        let id = self.fds.get(fd)?.desc;
        self.descs.get_mut(id).ok_or(EBADF)?.offset = offset;
        Ok(())
    }

    /// The soft `RLIMIT_NOFILE`.
    pub fn nofile(&self) -> u64 {
        self.fds.limit()
    }

    /// Sets the soft `RLIMIT_NOFILE` (`EINVAL` above 2^20).
    pub fn set_nofile(&mut self, limit: u64) -> Result<(), Errno> {
        self.fds.set_limit(limit)
    }

    /// `umask(2)`: sets the mask, returns the old one.
    pub fn umask(&mut self, mask: u32) -> u32 {
        std::mem::replace(&mut self.umask, mask & 0o777)
    }

    /// Every open descriptor with its close-on-exec flag.
    pub fn open_fds(&self) -> Vec<(Fd, bool)> {
        self.fds.open_fds().map(|(fd, slot)| (fd, slot.cloexec)).collect()
    }

    /// The node `ino` (`ENOENT` if gone, which a live reference prevents).
    pub(super) fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(ino).ok_or(ENOENT)
    }

    /// The node `ino`, to change.
    pub(super) fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(ino).ok_or(ENOENT)
    }

    /// The description `fd` refers to.
    pub(super) fn desc(&self, fd: Fd) -> Result<&Description, Errno> {
        let id = self.fds.get(fd)?.desc;
        self.descs.get(id).ok_or(EBADF)
    }

    /// `EACCES` unless the owner bits of `ino` grant all of `want`.
    pub(super) fn check_perm(&self, ino: Ino, want: u32) -> Result<(), Errno> {
        let perm = self.node(ino)?.perm;
        if (perm >> 6) & want == want {
            Ok(())
        } else {
            Err(EACCES)
        }
    }

    /// Opens a description on `ino` and installs it at the lowest free
    /// descriptor (`O_CLOEXEC` in `flags` sets close-on-exec).
    pub(super) fn install(&mut self, ino: Ino, flags: i32, content: Content) -> Result<Fd, Errno> {
        let keep = libc::O_ACCMODE
            | libc::O_APPEND
            | libc::O_NONBLOCK
            | libc::O_PATH
            | libc::O_DIRECT
            | libc::O_NOATIME
            | libc::O_ASYNC
            | libc::O_SYNC
            | libc::O_DSYNC;
        let desc = Description { node: ino, offset: 0, flags: (flags & keep) | KERNEL_O_LARGEFILE, refs: 1, content };
        let id = self.descs.add(desc);
        match self.fds.install_lowest(0, Slot { desc: id, cloexec: flags & libc::O_CLOEXEC != 0 }) {
            Ok(fd) => {
                self.node_mut(ino)?.opens += 1;
                Ok(fd)
            }
            Err(e) => {
                self.descs.release(id);
                self.maybe_free(ino);
                Err(e)
            }
        }
    }

    /// Drops one descriptor's reference to `id`; the last one closes it.
    pub(super) fn release_desc(&mut self, id: DescId) {
        if let Some(desc) = self.descs.release(id) {
            if let Some(node) = self.nodes.get_mut(desc.node) {
                node.opens = node.opens.saturating_sub(1);
            }
            self.maybe_free(desc.node);
        }
    }

    /// Frees `ino` if it has no name and nothing refers to it, giving
    /// its pages and inode back to the budget.
    pub(super) fn maybe_free(&mut self, ino: Ino) {
        let Some(node) = self.nodes.get(ino) else { return };
        if node.links > 0 || node.opens > 0 || ino == ROOT {
            return;
        }
        if let Some(mut node) = self.nodes.remove(ino) {
            if let NodeKind::File(file) = &mut node.kind {
                file.release();
            }
            if node.mount.is_tmpfs() {
                self.budget.put_inode();
            }
        }
    }
}
