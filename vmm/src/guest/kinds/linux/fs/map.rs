//! What a mapping of a descriptor needs from the file layer
//! ([`Vfs::map_file`]): the open mode that limits it, the file's path,
//! device and inode (`/proc/self/maps`), and the contents to map: an
//! in-memory file's mappable store, or a host file's handle.
//!
//! The mapping itself (providers, `mmap`'s checks) is the kind's; nothing
//! here touches guest memory.

use std::any::Any;
use std::fs::File;

use super::errno::{Errno, EBADF, ENODEV};
use super::fd_table::Fd;
use super::node::{Ino, Mount, NodeKind, ROOT};
use super::open_file::Content;
use super::vfs::Vfs;

/// The contents a mapping maps.
pub enum MapContents {
    /// An in-memory file's store, as [`super::file_store::FileStore::mappable`]
    /// gave it (the kind knows its type).
    Store(Box<dyn Any + Send>),
    /// A host file given with `--file`, opened as the descriptor is.
    Host(File),
}

/// A descriptor as `mmap` sees it.
pub struct MapFile {
    /// Open for reading (`FMODE_READ`).
    pub readable: bool,
    /// Open for writing (`FMODE_WRITE`).
    pub writable: bool,
    /// The file's absolute path now (`NAME (deleted)` once unlinked).
    pub path: String,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// What to map.
    pub contents: MapContents,
}

impl Vfs {
    /// The file `fd` names, for `mmap`: `EBADF` if not open (or
    /// `O_PATH`), `ENODEV` for what cannot be mapped (directories,
    /// synthetic files, nodes the kind serves, in-memory files kept in
    /// host memory).
    pub fn map_file(&self, fd: Fd) -> Result<MapFile, Errno> {
        let desc = self.desc(fd)?;
        if desc.is_path() {
            return Err(EBADF);
        }
        let node = self.node(desc.node)?;
        let contents = match (&node.kind, &desc.content) {
            (NodeKind::File(store), _) => MapContents::Store(store.mappable().ok_or(ENODEV)?),
            (NodeKind::Host(_), Content::Host(file)) => {
                MapContents::Host(file.try_clone().map_err(|e| Errno::from_io(&e))?)
            }
            _ => return Err(ENODEV),
        };
        Ok(MapFile {
            readable: desc.readable(),
            writable: desc.writable(),
            path: self.path_of(desc.node),
            dev: node.mount.dev(),
            ino: desc.node.0,
            contents,
        })
    }

    /// The absolute path of `ino` as `/proc/self/maps` prints it.
    fn path_of(&self, ino: Ino) -> String {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut at = ino;
        let mut deleted = false;
        while at != ROOT {
            let Ok(node) = self.node(at) else { break };
            names.push(&node.name);
            if node.links == 0 {
                // Unlinked: the directory is forgotten; the mount's root
                // is where tmpfs files usually were.
                deleted = true;
                match node.mount {
                    Mount::Tmp => names.push(b"tmp"),
                    Mount::Shm => names.extend([&b"shm"[..], b"dev"]),
                    _ => {}
                }
                break;
            }
            at = node.parent;
        }
        let mut out = String::new();
        for name in names.iter().rev() {
            out.push('/');
            out.push_str(&String::from_utf8_lossy(name));
        }
        if deleted {
            out.push_str(" (deleted)");
        }
        out
    }
}
