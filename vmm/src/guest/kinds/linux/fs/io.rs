//! Data calls: `read`, `write`, `pread64`, `pwrite64`, `readv`/`writev`
//! (and the positioned forms), `lseek`, `ftruncate`, `fallocate`.
//! Reads return at most the requested length (and at most [`IO_MAX`]);
//! nodes the kind serves are refused with `EINVAL` (see
//! [`Vfs::special`]).

use std::os::unix::fs::FileExt;

use super::errno::{Errno, EBADF, EFBIG, EINVAL, EISDIR, ENODEV, ENXIO, EOPNOTSUPP, ESPIPE};
use super::fd_table::Fd;
use super::node::{Ino, NodeKind, Special};
use super::open_file::{Content, DescId};
use super::tmpfs::MAX_FILE_SIZE;
use super::vfs::{Vfs, IO_MAX};

/// Most buffers one `readv`/`writev` takes (`IOV_MAX`).
pub const IOV_MAX: usize = 1024;

impl Vfs {
    /// The description of `fd`, refusing `O_PATH` ones (`EBADF`).
    fn io_desc(&self, fd: Fd) -> Result<DescId, Errno> {
        let id = self.fds.get(fd)?.desc;
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if desc.is_path() {
            return Err(EBADF);
        }
        Ok(id)
    }

    /// Reads up to `len` bytes at `offset` of description `id`.
    fn read_at(&self, id: DescId, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if !desc.readable() {
            return Err(EBADF);
        }
        let len = len.min(IO_MAX);
        match (&self.node(desc.node)?.kind, &desc.content) {
            (NodeKind::Dir(_), _) => Err(EISDIR),
            (NodeKind::File(file), _) => file.read(offset, len),
            (NodeKind::Device(device), _) => device.read(len),
            (NodeKind::Synthetic(_), Content::Snapshot(bytes)) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let end = start + len.min(bytes.len() - start);
                Ok(bytes[start..end].to_vec())
            }
            (NodeKind::Host(_), Content::Host(file)) => {
                let size = file.metadata().map_err(|e| Errno::from_io(&e))?.len();
                let len = len.min(size.saturating_sub(offset) as usize);
                let mut buf = vec![0; len];
                let mut done = 0;
                while done < len {
                    match file.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Errno::from_io(&e)),
                    }
                }
                buf.truncate(done);
                Ok(buf)
            }
            _ => Err(EINVAL),
        }
    }

    /// Writes `data` at `offset` (at the end for `O_APPEND`) of
    /// description `id`; returns the bytes written and where they ended.
    fn write_at(&mut self, id: DescId, offset: u64, data: &[u8]) -> Result<(usize, u64), Errno> {
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if !desc.writable() {
            return Err(EBADF);
        }
        let append = desc.flags & libc::O_APPEND != 0;
        let ino = desc.node;
        let host = match &desc.content {
            Content::Host(file) => Some(file.try_clone().map_err(|e| Errno::from_io(&e))?),
            _ => None,
        };
        let node = self.nodes.get_mut(ino).ok_or(EBADF)?;
        match (&mut node.kind, host) {
            (NodeKind::File(file), _) => {
                let at = if append { file.size() } else { offset };
                let n = file.write(at, data)?;
                node.touch();
                Ok((n, at + n as u64))
            }
            (NodeKind::Device(_), _) => Ok((data.len(), offset)),
            (NodeKind::Host(_), Some(file)) => {
                let at = if append { file.metadata().map_err(|e| Errno::from_io(&e))?.len() } else { offset };
                if at >= MAX_FILE_SIZE {
                    return Err(EFBIG);
                }
                file.write_all_at(data, at).map_err(|e| Errno::from_io(&e))?;
                Ok((data.len(), at + data.len() as u64))
            }
            _ => Err(EINVAL),
        }
    }

    /// `EINVAL` for a negative offset, `ESPIPE` for a node without
    /// positions (the standard streams).
    fn check_positioned(&self, id: DescId, offset: i64) -> Result<u64, Errno> {
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if let NodeKind::Special(Special::Stdin | Special::Stdout | Special::Stderr) = self.node(desc.node)?.kind {
            return Err(ESPIPE);
        }
        u64::try_from(offset).map_err(|_| EINVAL)
    }

    /// `read(fd, len)`: up to `len` bytes from the file offset, which
    /// advances by what was read.
    pub fn read(&mut self, fd: Fd, len: usize) -> Result<Vec<u8>, Errno> {
        let id = self.io_desc(fd)?;
        let offset = self.descs.get(id).ok_or(EBADF)?.offset;
        // A synthetic file read from its start is made anew, as Linux's
        // seq_file makes it at read time (a file opened early, then
        // rewound and read, shows the current state).
        if offset == 0 {
            let node = self.descs.get(id).ok_or(EBADF)?.node;
            if let NodeKind::Synthetic(generate) = &self.node(node)?.kind {
                let fresh = generate();
                if let Some(desc) = self.descs.get_mut(id) {
                    desc.content = Content::Snapshot(fresh);
                }
            }
        }
        let data = self.read_at(id, offset, len)?;
        if let Some(desc) = self.descs.get_mut(id) {
            desc.offset = offset + data.len() as u64;
        }
        Ok(data)
    }

    /// `pread64(fd, len, offset)`: as `read` at `offset`; the file
    /// offset does not move.
    pub fn pread64(&self, fd: Fd, len: usize, offset: i64) -> Result<Vec<u8>, Errno> {
        let id = self.io_desc(fd)?;
        let offset = self.check_positioned(id, offset)?;
        self.read_at(id, offset, len)
    }

    /// `write(fd, data)`: writes at the file offset (at the end with
    /// `O_APPEND`), which moves past what was written. In-memory files
    /// may take fewer bytes than given when the budget runs out, and
    /// `ENOSPC` when it is already out.
    pub fn write(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        let id = self.io_desc(fd)?;
        let offset = self.descs.get(id).ok_or(EBADF)?.offset;
        let (n, end) = self.write_at(id, offset, data)?;
        if let Some(desc) = self.descs.get_mut(id) {
            desc.offset = end;
        }
        Ok(n)
    }

    /// `pwrite64(fd, data, offset)`: as `write` at `offset` (at the end
    /// with `O_APPEND`, as Linux does); the file offset does not move.
    pub fn pwrite64(&mut self, fd: Fd, data: &[u8], offset: i64) -> Result<usize, Errno> {
        let id = self.io_desc(fd)?;
        let offset = self.check_positioned(id, offset)?;
        self.write_at(id, offset, data).map(|(n, _)| n)
    }

    /// `readv(fd, iov)` given the buffer lengths: one read of their sum,
    /// split back into one piece per buffer (later ones may be short or
    /// empty).
    pub fn readv(&mut self, fd: Fd, lens: &[usize]) -> Result<Vec<Vec<u8>>, Errno> {
        let total = iov_total(lens)?;
        let data = self.read(fd, total)?;
        Ok(split(&data, lens))
    }

    /// `preadv(fd, iov, offset)` given the buffer lengths.
    pub fn preadv(&self, fd: Fd, lens: &[usize], offset: i64) -> Result<Vec<Vec<u8>>, Errno> {
        let total = iov_total(lens)?;
        let data = self.pread64(fd, total, offset)?;
        Ok(split(&data, lens))
    }

    /// `writev(fd, iov)` given the buffers: one write of them in order.
    pub fn writev(&mut self, fd: Fd, bufs: &[&[u8]]) -> Result<usize, Errno> {
        iov_total(&bufs.iter().map(|b| b.len()).collect::<Vec<_>>())?;
        self.write(fd, &bufs.concat())
    }

    /// `pwritev(fd, iov, offset)` given the buffers.
    pub fn pwritev(&mut self, fd: Fd, bufs: &[&[u8]], offset: i64) -> Result<usize, Errno> {
        iov_total(&bufs.iter().map(|b| b.len()).collect::<Vec<_>>())?;
        self.pwrite64(fd, &bufs.concat(), offset)
    }

    /// `lseek(fd, offset, whence)`: `SEEK_SET`, `SEEK_CUR`, `SEEK_END`
    /// and, on in-memory and host files, `SEEK_DATA`/`SEEK_HOLE`.
    /// Directories, synthetic files and the kind's nodes take `SET` and
    /// `CUR` only; devices always seek to 0 (as `/dev/null`); the
    /// standard streams are `ESPIPE`.
    pub fn lseek(&mut self, fd: Fd, offset: i64, whence: i32) -> Result<u64, Errno> {
        let id = self.io_desc(fd)?;
        let desc = self.descs.get(id).ok_or(EBADF)?;
        let current = desc.offset;
        let size: Option<u64> = match (&self.node(desc.node)?.kind, &desc.content) {
            (NodeKind::Special(Special::Stdin | Special::Stdout | Special::Stderr), _) => return Err(ESPIPE),
            (NodeKind::Device(_), _) => {
                if let Some(desc) = self.descs.get_mut(id) {
                    desc.offset = 0;
                }
                return Ok(0);
            }
            (NodeKind::File(file), _) => Some(file.size()),
            (NodeKind::Host(_), Content::Host(file)) => Some(file.metadata().map_err(|e| Errno::from_io(&e))?.len()),
            _ => None,
        };
        let new = match whence {
            libc::SEEK_SET => Some(offset),
            libc::SEEK_CUR => i64::try_from(current).ok().and_then(|c| c.checked_add(offset)),
            libc::SEEK_END => {
                let size = size.ok_or(EINVAL)?;
                i64::try_from(size).ok().and_then(|s| s.checked_add(offset))
            }
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                let size = size.ok_or(EINVAL)?;
                let from = u64::try_from(offset).map_err(|_| ENXIO)?;
                let found = match &self.node(desc.node)?.kind {
                    NodeKind::File(file) if whence == libc::SEEK_DATA => file.seek_data(from)?,
                    NodeKind::File(file) => file.seek_hole(from)?,
                    _ if from >= size => return Err(ENXIO),
                    _ if whence == libc::SEEK_DATA => from,
                    _ => size,
                };
                i64::try_from(found).ok()
            }
            _ => return Err(EINVAL),
        };
        let new = new.and_then(|n| u64::try_from(n).ok()).ok_or(EINVAL)?;
        if let Some(desc) = self.descs.get_mut(id) {
            desc.offset = new;
        }
        Ok(new)
    }

    /// Sets in-memory file `ino`'s size (other nodes: nothing).
    pub(super) fn truncate_node(&mut self, ino: Ino, size: u64) -> Result<(), Errno> {
        let node = self.nodes.get_mut(ino).ok_or(EBADF)?;
        if let NodeKind::File(file) = &mut node.kind {
            file.truncate(size)?;
            node.touch();
        }
        Ok(())
    }

    /// `ftruncate(fd, length)`: `EINVAL` for a negative length or a
    /// descriptor not open for writing on a regular file, `EFBIG` past
    /// the size limit. Never allocates.
    pub fn ftruncate(&mut self, fd: Fd, length: i64) -> Result<(), Errno> {
        let id = self.io_desc(fd)?;
        let length = u64::try_from(length).map_err(|_| EINVAL)?;
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if !desc.writable() {
            return Err(EINVAL);
        }
        if length > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        match (&self.node(desc.node)?.kind, &desc.content) {
            (NodeKind::File(_), _) => self.truncate_node(desc.node, length),
            (NodeKind::Host(_), Content::Host(file)) => file.set_len(length).map_err(|e| Errno::from_io(&e)),
            _ => Err(EINVAL),
        }
    }

    /// `fallocate(fd, mode, offset, len)` on in-memory files: mode 0
    /// allocates (and grows the size), `FALLOC_FL_KEEP_SIZE` allocates
    /// only, `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` frees the range
    /// (it reads zeros). Other modes are `EOPNOTSUPP`; `ENOSPC` when the
    /// budget lacks the pages (nothing is allocated then).
    pub fn fallocate(&mut self, fd: Fd, mode: i32, offset: i64, len: i64) -> Result<(), Errno> {
        let id = self.io_desc(fd)?;
        if offset < 0 || len <= 0 {
            return Err(EINVAL);
        }
        let desc = self.descs.get(id).ok_or(EBADF)?;
        if !desc.writable() {
            return Err(EBADF);
        }
        let (offset, len) = (offset as u64, len as u64);
        if offset.checked_add(len).is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(EFBIG);
        }
        let ino = desc.node;
        let node = self.nodes.get_mut(ino).ok_or(EBADF)?;
        let file = match &mut node.kind {
            NodeKind::File(file) => file,
            NodeKind::Dir(_) => return Err(EISDIR),
            NodeKind::Special(Special::Stdin | Special::Stdout | Special::Stderr) => return Err(ESPIPE),
            NodeKind::Device(_) | NodeKind::Special(_) => return Err(ENODEV),
            _ => return Err(EOPNOTSUPP),
        };
        const KEEP: i32 = libc::FALLOC_FL_KEEP_SIZE;
        const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE;
        match mode {
            0 | KEEP => file.allocate(offset, len, mode == KEEP)?,
            m if m == PUNCH | KEEP => file.punch_hole(offset, len)?,
            _ => return Err(EOPNOTSUPP),
        }
        node.touch();
        Ok(())
    }
}

/// The sum of `readv`/`writev` buffer lengths; `EINVAL` for more than
/// [`IOV_MAX`] buffers or a sum past `isize::MAX`.
fn iov_total(lens: &[usize]) -> Result<usize, Errno> {
    if lens.len() > IOV_MAX {
        return Err(EINVAL);
    }
    lens.iter().try_fold(0usize, |acc, &l| acc.checked_add(l)).filter(|&t| t <= isize::MAX as usize).ok_or(EINVAL)
}

/// Splits `data` into consecutive pieces of at most `lens[i]` bytes.
fn split(mut data: &[u8], lens: &[usize]) -> Vec<Vec<u8>> {
    lens.iter()
        .map(|&len| {
            let (piece, rest) = data.split_at(len.min(data.len()));
            data = rest;
            piece.to_vec()
        })
        .collect()
}
