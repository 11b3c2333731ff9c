//! The inodes of the tree: what each node is (directory, in-memory file,
//! synthetic file, device, host file, symlink, or a node the kind serves
//! itself), its mode and times, and the directories' entries with the
//! stable positions `getdents64` resumes from.
//!
//! Not here: path walking (`resolve`) and the calls (`vfs`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::devices::Device;
use super::file_store::FileStore;

/// An inode number (`st_ino`); the root is 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

/// The root directory.
pub const ROOT: Ino = Ino(1);

/// Produces a synthetic file's contents, called once per `open`.
pub type Generator = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// A node the kind serves itself; the fd table hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// Standard input (fd 0 at start).
    Stdin,
    /// Standard output (fd 1 at start).
    Stdout,
    /// Standard error (fd 2 at start).
    Stderr,
    /// Anything else the kind registered (`/dev/mem`, memfds, ...),
    /// told apart by its own tag.
    Tag(u32),
}

/// The file system a node belongs to (its `st_dev` and `statfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// `/` and the directories under it that are not mounts.
    Root,
    /// `/dev` (a devtmpfs).
    Dev,
    /// `/tmp` (tmpfs, writable).
    Tmp,
    /// `/dev/shm` (tmpfs, writable).
    Shm,
    /// `/proc`.
    Proc,
    /// `/sys`.
    Sys,
    /// Nodes in no directory: stdio and anonymous kind objects.
    Anon,
}

impl Mount {
    /// Its device number (`st_dev`).
    pub fn dev(self) -> u64 {
        match self {
            Mount::Root => 0x1,
            Mount::Dev => 0x5,
            Mount::Tmp => 0x20,
            Mount::Shm => 0x18,
            Mount::Proc => 0x16,
            Mount::Sys => 0x15,
            Mount::Anon => 0xd,
        }
    }

    /// Files here count against the tmpfs budget.
    pub fn is_tmpfs(self) -> bool {
        matches!(self, Mount::Tmp | Mount::Shm)
    }
}

/// A time stamp (seconds and nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

impl Timespec {
    /// The host's wall clock now.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timespec { sec: d.as_secs() as i64, nsec: i64::from(d.subsec_nanos()) }
    }
}

/// A directory's entries.
#[derive(Debug, Default)]
pub struct Dir {
    by_name: BTreeMap<Vec<u8>, (Ino, u64)>,
    by_pos: BTreeMap<u64, Vec<u8>>,
    next_pos: u64,
}

/// The first position of a directory's own entries; 0 is `.`, 1 `..`.
pub const FIRST_ENTRY_POS: u64 = 2;

impl Dir {
    /// The node named `name`.
    pub fn get(&self, name: &[u8]) -> Option<Ino> {
        self.by_name.get(name).map(|&(ino, _)| ino)
    }

    /// Adds `name` (which must be absent) at a position after all others.
    pub fn insert(&mut self, name: Vec<u8>, ino: Ino) {
        let pos = self.next_pos.max(FIRST_ENTRY_POS);
        self.next_pos = pos + 1;
        self.by_pos.insert(pos, name.clone());
        self.by_name.insert(name, (ino, pos));
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &[u8]) -> Option<Ino> {
        let (ino, pos) = self.by_name.remove(name)?;
        self.by_pos.remove(&pos);
        Some(ino)
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The entries from position `pos` on, with their positions.
    pub fn entries_from(&self, pos: u64) -> impl Iterator<Item = (u64, &[u8], Ino)> {
        self.by_pos.range(pos..).filter_map(|(&p, name)| self.get(name).map(|ino| (p, name.as_slice(), ino)))
    }

    /// Every child node.
    pub fn children(&self) -> impl Iterator<Item = Ino> + '_ {
        self.by_name.values().map(|&(ino, _)| ino)
    }
}

/// A file on the host, named explicitly by the kind.
#[derive(Debug, Clone)]
pub struct HostFile {
    /// Where it is on the host.
    pub path: PathBuf,
    /// The guest may open it for writing.
    pub writable: bool,
}

/// What a node is.
pub enum NodeKind {
    /// A directory.
    Dir(Dir),
    /// An in-memory file.
    File(Box<dyn FileStore>),
    /// A file whose contents a callback makes at `open`.
    Synthetic(Generator),
    /// `/dev/null` and friends.
    Device(Device),
    /// A node the kind serves.
    Special(Special),
    /// A host file.
    Host(HostFile),
    /// A symbolic link to this path.
    Symlink(Vec<u8>),
}

impl std::fmt::Debug for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeKind::Dir(d) => f.debug_tuple("Dir").field(d).finish(),
            NodeKind::File(file) => f.debug_tuple("File").field(&file.size()).finish(),
            NodeKind::Synthetic(_) => f.write_str("Synthetic"),
            NodeKind::Device(d) => f.debug_tuple("Device").field(d).finish(),
            NodeKind::Special(s) => f.debug_tuple("Special").field(s).finish(),
            NodeKind::Host(h) => f.debug_tuple("Host").field(h).finish(),
            NodeKind::Symlink(t) => f.debug_tuple("Symlink").field(&String::from_utf8_lossy(t)).finish(),
        }
    }
}

impl NodeKind {
    /// The `S_IFMT` bits of its mode.
    pub fn file_type(&self) -> u32 {
        match self {
            NodeKind::Dir(_) => libc::S_IFDIR,
            NodeKind::File(_) | NodeKind::Synthetic(_) | NodeKind::Host(_) => libc::S_IFREG,
            NodeKind::Device(_) | NodeKind::Special(_) => libc::S_IFCHR,
            NodeKind::Symlink(_) => libc::S_IFLNK,
        }
    }

    /// The `d_type` of a directory entry for it.
    pub fn dirent_type(&self) -> u8 {
        match self {
            NodeKind::Dir(_) => libc::DT_DIR,
            NodeKind::File(_) | NodeKind::Synthetic(_) | NodeKind::Host(_) => libc::DT_REG,
            NodeKind::Device(_) | NodeKind::Special(_) => libc::DT_CHR,
            NodeKind::Symlink(_) => libc::DT_LNK,
        }
    }
}

/// One inode.
#[derive(Debug)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits (`0o7777`), without the type.
    pub perm: u32,
    /// Its file system.
    pub mount: Mount,
    /// Names it has (0 once unlinked; at most 1: there are no hard links).
    pub links: u32,
    /// Open file descriptions on it, plus one if it is the cwd.
    pub opens: u32,
    /// The directory holding it (itself for the root and unlinked nodes).
    pub parent: Ino,
    /// Its name in `parent`.
    pub name: Vec<u8>,
    /// Last data modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
    /// Last access (set at creation only).
    pub atime: Timespec,
    /// For `Special` nodes: the mode the kind gave (type and bits).
    pub special_mode: Option<u32>,
}

impl Node {
    /// A new node, stamped now.
    pub fn new(kind: NodeKind, perm: u32, mount: Mount, parent: Ino, name: Vec<u8>) -> Self {
        let now = Timespec::now();
        Node {
            kind,
            perm,
            mount,
            links: 1,
            opens: 0,
            parent,
            name,
            mtime: now,
            ctime: now,
            atime: now,
            special_mode: None,
        }
    }

    /// `st_mode`.
    pub fn mode(&self) -> u32 {
        self.special_mode.unwrap_or(self.kind.file_type() | self.perm)
    }

    /// Marks data and status changed now.
    pub fn touch(&mut self) {
        let now = Timespec::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// Every node, by number.
#[derive(Debug, Default)]
pub struct Nodes {
    map: HashMap<Ino, Node>,
    next: u64,
}

impl Nodes {
    /// Adds a node; returns its number.
    pub fn add(&mut self, node: Node) -> Ino {
        self.next = self.next.max(ROOT.0);
        let ino = Ino(self.next);
        self.next += 1;
        self.map.insert(ino, node);
        ino
    }

    /// The node `ino`.
    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.map.get(&ino)
    }

    /// The node `ino`, to change.
    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.map.get_mut(&ino)
    }

    /// Removes `ino`.
    pub fn remove(&mut self, ino: Ino) -> Option<Node> {
        self.map.remove(&ino)
    }
}
