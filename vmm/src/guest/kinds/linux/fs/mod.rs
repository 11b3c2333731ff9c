//! The file layer of the `linux` kind: the file tree a Linux program
//! sees, its open files and descriptors, served as plain calls on
//! [`Vfs`] that take and return bytes. The syscall layer copies guest
//! memory in and out; nothing here touches guest memory or KVM.
//!
//! The tree: `/tmp` and `/dev/shm` hold in-memory files and directories
//! within one byte and inode budget (`ENOSPC`); `/dev/null`,
//! `/dev/zero`, `/dev/urandom` are served here; `/proc` and `/sys` hold
//! synthetic files whose contents a callback of the kind makes at open;
//! the kind also registers nodes it serves itself ([`Special`]: stdio,
//! `/dev/mem`, memfds, ...), which [`Vfs::special`] reports, and host
//! files by explicit name only (no host directory is ever walked).
//! `/proc/self/exe` is the one symbolic link the kind normally sets.
//! `memfd_create` gives in-memory files in no directory. Where a file's
//! bytes live is the kind's choice ([`Vfs::set_store_factory`]: guest
//! RAM, so that programs can map them); [`Vfs::map_file`] gives `mmap`
//! what it needs.
//!
//! Permissions: the process owns every node and only the owner bits
//! are checked; `/`, `/dev`, `/proc` and `/sys` are mode 0555, so
//! creating or removing there is `EACCES`.
//!
//! Not done: hard links, renames, `chmod`/`chown`, timestamps set by the
//! guest, permission checks beyond the owner bits (the process owns
//! every node), naming an `O_TMPFILE` file (`linkat`), file locks.

mod attrs;
mod devices;
mod dirent;
mod dirs;
pub mod errno;
mod fd_table;
mod file_store;
mod io;
mod map;
mod meta;
mod node;
mod open;
mod open_file;
mod path;
mod process_files;
mod resolve;
mod stat;
mod tmpfile;
mod tmpfs;
mod vfs;

pub use self::devices::Device;
pub use self::dirent::{parse_records, Record};
pub use self::errno::Errno;
pub use self::fd_table::{Fd, DEFAULT_NOFILE, NR_OPEN};
pub use self::file_store::{FileStore, StoreFactory};
pub use self::io::IOV_MAX;
pub use self::map::{MapContents, MapFile};
pub use self::node::Special;
pub use self::path::{NAME_MAX, PATH_MAX};
pub use self::process_files::FileContext;
pub use self::stat::{
    stat_offsets, statfs_offsets, Stat, StatFs, PROC_SUPER_MAGIC, STATFS_SIZE, STAT_SIZE, SYSFS_MAGIC, TMPFS_MAGIC,
};
pub use self::vfs::{SpecialFile, Vfs, VfsConfig, IO_MAX};

#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod kind_nodes_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tmpfile_tests;
