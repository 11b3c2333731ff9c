//! What an in-memory file's contents offer the file layer
//! ([`FileStore`]), wherever its bytes live: host memory
//! ([`super::tmpfs::SparseFile`], for a tree with no guest behind it) or
//! guest RAM (the kind's store, whose pages programs may map). Every
//! store counts its pages in the tmpfs budget's quota, so `ENOSPC` and
//! `statfs` are the same either way.
//!
//! Not here: which store a new file gets (the [`StoreFactory`] the kind
//! sets on the tree), mapping (the kind's).

use std::any::Any;
use std::sync::Arc;

use super::errno::Errno;

/// The bytes of one in-memory file. Offsets are bytes; sizes are below
/// `MAX_LFS_FILESIZE`, which the callers check.
pub trait FileStore: Send + Sync {
    /// The size in bytes.
    fn size(&self) -> u64;

    /// Pages it holds (`st_blocks / 8`).
    fn pages(&self) -> u64;

    /// Up to `len` bytes from `offset` (fewer at the end, none past it).
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Errno>;

    /// Writes `data` at `offset`, growing the file: a short count when
    /// the budget runs out part way, `ENOSPC` when not one byte fits,
    /// `EFBIG` at or past the size limit.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<usize, Errno>;

    /// Sets the size: pages past it are dropped and the tail of the last
    /// one zeroed, so growing again reads zeros.
    fn truncate(&mut self, size: u64) -> Result<(), Errno>;

    /// `fallocate` mode 0 or `KEEP_SIZE`: all pages of the range, or
    /// nothing and `ENOSPC`.
    fn allocate(&mut self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno>;

    /// `FALLOC_FL_PUNCH_HOLE`: the range reads zeros, whole pages in it
    /// are dropped, the size stays.
    fn punch_hole(&mut self, offset: u64, len: u64) -> Result<(), Errno>;

    /// `SEEK_DATA` (`ENXIO` when no data is before the end).
    fn seek_data(&self, offset: u64) -> Result<u64, Errno>;

    /// `SEEK_HOLE` (the end counts as a hole; `ENXIO` past it).
    fn seek_hole(&self, offset: u64) -> Result<u64, Errno>;

    /// The file is gone: its pages go back to the budget (a guest-RAM
    /// store's pages once no mapping holds them either).
    fn release(&mut self);

    /// What the kind maps (its own type, which it downcasts); `None` for
    /// contents that cannot be mapped.
    fn mappable(&self) -> Option<Box<dyn Any + Send>> {
        None
    }
}

/// Makes the store of a new in-memory file, given the file's name for
/// reports.
pub type StoreFactory = Arc<dyn Fn(&[u8]) -> Result<Box<dyn FileStore>, Errno> + Send + Sync>;
