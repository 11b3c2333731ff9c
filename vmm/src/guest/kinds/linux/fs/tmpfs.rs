//! The byte/inode budget all in-memory (`/tmp`, `/dev/shm`) files share
//! (the `size=` and `nr_inodes=` of a tmpfs mount), and [`SparseFile`],
//! the contents of such a file kept in host memory: a sparse set of
//! 4 KiB pages. A page is allocated only when a byte in it is written or
//! `fallocate`d; holes read as zeros and cost nothing, so `ftruncate` to
//! a large size allocates nothing. The pages are counted in the budget's
//! [`ShmemQuota`], which the guest-RAM store of the kind (mappable files)
//! charges too.
//!
//! Not here: file names, modes and descriptors (`node`, `vfs`); the
//! interface a file's contents offer (`file_store`).

use std::collections::BTreeMap;

use guest_mm::providers::ShmemQuota;

use super::errno::{Errno, EFBIG, ENOSPC, ENXIO};
use super::file_store::FileStore;

/// The page size of in-memory files.
pub const PAGE: u64 = 4096;
/// The largest file size (`MAX_LFS_FILESIZE` on 64-bit Linux).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// What every in-memory file and directory shares.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The pages: charged by every file's contents, wherever they live.
    pub pages: ShmemQuota,
    /// Inodes (files and directories) allowed.
    pub limit_inodes: u64,
    /// Inodes in use now.
    pub used_inodes: u64,
}

impl Budget {
    /// A budget of `limit_bytes` bytes and `limit_inodes` inodes, all free.
    pub fn new(limit_bytes: u64, limit_inodes: u64) -> Self {
        Budget { pages: ShmemQuota::new(limit_bytes / PAGE), limit_inodes, used_inodes: 0 }
    }

    /// Pages the byte limit allows.
    pub fn limit_pages(&self) -> u64 {
        self.pages.limit()
    }

    /// Pages allocated now.
    #[cfg(test)]
    pub fn used_pages(&self) -> u64 {
        self.pages.used()
    }

    /// Pages still free.
    pub fn free_pages(&self) -> u64 {
        self.pages.free()
    }

    /// Takes one inode, or `ENOSPC`.
    pub fn take_inode(&mut self) -> Result<(), Errno> {
        if self.used_inodes >= self.limit_inodes {
            return Err(ENOSPC);
        }
        self.used_inodes += 1;
        Ok(())
    }

    /// Gives one inode back.
    pub fn put_inode(&mut self) {
        self.used_inodes = self.used_inodes.saturating_sub(1);
    }
}

/// The bytes of one in-memory file, in host memory.
#[derive(Debug)]
pub struct SparseFile {
    size: u64,
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
    quota: ShmemQuota,
}

impl SparseFile {
    /// An empty file whose pages `quota` counts.
    pub fn new(quota: ShmemQuota) -> Self {
        SparseFile { size: 0, pages: BTreeMap::new(), quota }
    }

    /// Pages allocated.
    pub fn pages(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file).
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        if offset >= self.size {
            return Vec::new();
        }
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = vec![0u8; (end - offset) as usize];
        for (&index, page) in self.pages.range(offset / PAGE..end.div_ceil(PAGE)) {
            let start = (index * PAGE).max(offset);
            let stop = ((index + 1) * PAGE).min(end);
            out[(start - offset) as usize..(stop - offset) as usize]
                .copy_from_slice(&page[(start % PAGE) as usize..(stop - index * PAGE) as usize]);
        }
        out
    }

    /// Writes `data` at `offset`, growing the file. Stops early at the
    /// first page the budget cannot give: returns the bytes written, or
    /// `ENOSPC` when none could be. `EFBIG` at or past the size limit;
    /// a write that would cross it is shortened, as Linux does.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let data = &data[..data.len().min((MAX_FILE_SIZE - offset) as usize)];
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = (PAGE as usize - in_page).min(data.len() - done);
            let page = match self.pages.get_mut(&index) {
                Some(page) => page,
                None => {
                    if !self.quota.try_charge(1) {
                        break;
                    }
                    self.pages.entry(index).or_insert_with(|| Box::new([0u8; PAGE as usize]))
                }
            };
            page[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        if done == 0 {
            return Err(ENOSPC);
        }
        self.size = self.size.max(offset + done as u64);
        Ok(done)
    }

    /// Sets the size: pages past it are freed and the tail of the last
    /// page zeroed, so that growing again reads zeros.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let doomed: Vec<u64> = self.pages.range(size.div_ceil(PAGE)..).map(|(&i, _)| i).collect();
            for index in doomed {
                self.pages.remove(&index);
                self.quota.uncharge(1);
            }
            if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                page[(size % PAGE) as usize..].fill(0);
            }
        }
        self.size = size;
    }

    /// Allocates every page of `[offset, offset + len)` (`fallocate`
    /// mode 0 or `KEEP_SIZE`): all or nothing, `ENOSPC` when the budget
    /// lacks them. Grows the size to `offset + len` unless `keep_size`.
    pub fn allocate(&mut self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno> {
        let end = offset.checked_add(len).filter(|&e| e <= MAX_FILE_SIZE).ok_or(EFBIG)?;
        let first = offset / PAGE;
        let last = end.div_ceil(PAGE);
        let present = self.pages.range(first..last).count() as u64;
        let missing = (last - first) - present;
        if !self.quota.try_charge(missing) {
            return Err(ENOSPC);
        }
        for index in first..last {
            self.pages.entry(index).or_insert_with(|| Box::new([0u8; PAGE as usize]));
        }
        if !keep_size {
            self.size = self.size.max(end);
        }
        Ok(())
    }

    /// Deallocates `[offset, offset + len)` (`FALLOC_FL_PUNCH_HOLE`): the
    /// range reads zeros after, whole pages in it are freed, the size
    /// does not change.
    pub fn punch_hole(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        self.zero_range(offset, end);
    }

    /// Zeroes `[start, end)`: frees whole pages, clears partial ones.
    fn zero_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let first_whole = start.div_ceil(PAGE);
        let last_whole = end / PAGE;
        if first_whole < last_whole {
            let doomed: Vec<u64> = self.pages.range(first_whole..last_whole).map(|(&i, _)| i).collect();
            for index in doomed {
                self.pages.remove(&index);
                self.quota.uncharge(1);
            }
        }
        for index in [start / PAGE, (end - 1) / PAGE] {
            let page_start = index * PAGE;
            if let Some(page) = self.pages.get_mut(&index) {
                let from = start.max(page_start) - page_start;
                let to = end.min(page_start + PAGE) - page_start;
                if from < to {
                    page[from as usize..to as usize].fill(0);
                }
            }
        }
    }

    /// `SEEK_DATA`: the first offset at or after `offset` in an allocated
    /// page, `ENXIO` when none is before the end.
    pub fn seek_data(&self, offset: u64) -> Result<u64, Errno> {
        if offset >= self.size {
            return Err(ENXIO);
        }
        match self.pages.range(offset / PAGE..).next() {
            Some((&index, _)) if index * PAGE < self.size => Ok((index * PAGE).max(offset)),
            _ => Err(ENXIO),
        }
    }

    /// `SEEK_HOLE`: the first offset at or after `offset` not in an
    /// allocated page (the end of the file counts as a hole).
    pub fn seek_hole(&self, offset: u64) -> Result<u64, Errno> {
        if offset >= self.size {
            return Err(ENXIO);
        }
        let mut index = offset / PAGE;
        while self.pages.contains_key(&index) {
            index += 1;
        }
        Ok((index * PAGE).max(offset).min(self.size))
    }

    /// Frees every page (the file is gone).
    pub fn release(&mut self) {
        self.quota.uncharge(self.pages.len() as u64);
        self.pages.clear();
        self.size = 0;
    }
}

impl FileStore for SparseFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn pages(&self) -> u64 {
        self.pages()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        Ok(self.read(offset, len))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.write(offset, data)
    }

    fn truncate(&mut self, size: u64) -> Result<(), Errno> {
        self.truncate(size);
        Ok(())
    }

    fn allocate(&mut self, offset: u64, len: u64, keep_size: bool) -> Result<(), Errno> {
        self.allocate(offset, len, keep_size)
    }

    fn punch_hole(&mut self, offset: u64, len: u64) -> Result<(), Errno> {
        self.punch_hole(offset, len);
        Ok(())
    }

    fn seek_data(&self, offset: u64) -> Result<u64, Errno> {
        self.seek_data(offset)
    }

    fn seek_hole(&self, offset: u64) -> Result<u64, Errno> {
        self.seek_hole(offset)
    }

    fn release(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_across_pages_and_holes() {
        let b = Budget::new(16 * PAGE, 10);
        let mut f = SparseFile::new(b.pages.clone());
        assert_eq!(f.write(PAGE - 2, b"abcd"), Ok(4));
        assert_eq!(b.used_pages(), 2);
        assert_eq!(f.size(), PAGE + 2);
        assert_eq!(f.read(PAGE - 3, 10), b"\0abcd");
        f.truncate(10 * PAGE);
        assert_eq!(b.used_pages(), 2);
        assert_eq!(f.read(5 * PAGE, 3), vec![0, 0, 0]);
        f.truncate(PAGE - 1);
        assert_eq!(b.used_pages(), 1);
        f.truncate(PAGE + 2);
        assert_eq!(f.read(PAGE - 2, 4), b"a\0\0\0");
        f.truncate(10);
        assert_eq!(b.used_pages(), 1, "the partial first page stays");
        f.truncate(0);
        assert_eq!(b.used_pages(), 0, "a page wholly past the end is freed");
    }

    #[test]
    fn budget_short_write_and_enospc() {
        let b = Budget::new(2 * PAGE, 10);
        let mut f = SparseFile::new(b.pages.clone());
        let data = vec![7u8; 3 * PAGE as usize];
        assert_eq!(f.write(0, &data), Ok(2 * PAGE as usize));
        assert_eq!(f.write(2 * PAGE, b"x"), Err(ENOSPC));
        assert_eq!(f.allocate(8 * PAGE, 1, false), Err(ENOSPC));
        assert_eq!(f.size(), 2 * PAGE);
        f.release();
        assert_eq!(b.used_pages(), 0);
    }

    #[test]
    fn punch_hole_and_seek() {
        let b = Budget::new(16 * PAGE, 10);
        let mut f = SparseFile::new(b.pages.clone());
        f.allocate(0, 4 * PAGE, false).unwrap();
        f.write(0, &vec![1u8; 4 * PAGE as usize]).unwrap();
        f.punch_hole(PAGE / 2, 2 * PAGE);
        assert_eq!(f.size(), 4 * PAGE);
        assert_eq!(b.used_pages(), 3);
        assert_eq!(f.read(PAGE / 2 - 1, 2), vec![1, 0]);
        assert_eq!(f.read(PAGE * 5 / 2 - 1, 2), vec![0, 1]);
        assert_eq!(f.seek_hole(0), Ok(PAGE));
        assert_eq!(f.seek_data(PAGE), Ok(2 * PAGE));
        assert_eq!(f.seek_data(4 * PAGE), Err(ENXIO));
        assert_eq!(f.seek_hole(3 * PAGE), Ok(4 * PAGE));
        assert_eq!(f.write(MAX_FILE_SIZE, b"x"), Err(EFBIG));
    }
}
