//! The file descriptor table: numbers to open file descriptions, lowest
//! free number first, bounded by the soft `RLIMIT_NOFILE`, with the
//! per-descriptor close-on-exec flag. Knows nothing of files: the
//! caller counts references on the descriptions.

use super::errno::{Errno, EBADF, EINVAL, EMFILE};
use super::open_file::DescId;

/// A file descriptor number as the guest passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fd(pub i32);

impl Fd {
    /// `AT_FDCWD`: paths relative to the working directory.
    pub const CWD: Fd = Fd(libc::AT_FDCWD);
}

/// The default soft `RLIMIT_NOFILE`.
pub const DEFAULT_NOFILE: u64 = 1024;
/// The largest limit accepted (Linux's default `fs.nr_open`).
pub const NR_OPEN: u64 = 1 << 20;

/// One descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Its open file description.
    pub desc: DescId,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// The table.
#[derive(Debug, Clone)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
    limit: u64,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable { slots: Vec::new(), limit: DEFAULT_NOFILE }
    }
}

impl FdTable {
    /// The soft `RLIMIT_NOFILE`.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Sets the soft `RLIMIT_NOFILE` (`EINVAL` past [`NR_OPEN`]); open
    /// descriptors above it stay open, as in Linux.
    pub fn set_limit(&mut self, limit: u64) -> Result<(), Errno> {
        if limit > NR_OPEN {
            return Err(EINVAL);
        }
        self.limit = limit;
        Ok(())
    }

    /// The descriptor `fd`, or `EBADF`.
    pub fn get(&self, fd: Fd) -> Result<Slot, Errno> {
        usize::try_from(fd.0).ok().and_then(|i| self.slots.get(i).copied().flatten()).ok_or(EBADF)
    }

    /// Sets `fd`'s close-on-exec flag (`EBADF` if not open).
    pub fn set_cloexec(&mut self, fd: Fd, cloexec: bool) -> Result<(), Errno> {
        let slot = usize::try_from(fd.0).ok().and_then(|i| self.slots.get_mut(i)).and_then(Option::as_mut);
        slot.ok_or(EBADF)?.cloexec = cloexec;
        Ok(())
    }

    /// The lowest free number `>= min`; `EMFILE` when none is below
    /// the limit.
    pub fn lowest_free(&self, min: u64) -> Result<usize, Errno> {
        let start = usize::try_from(min).map_err(|_| EMFILE)?;
        let free = (start..self.slots.len()).find(|&i| self.slots[i].is_none()).unwrap_or(self.slots.len().max(start));
        if free as u64 >= self.limit {
            return Err(EMFILE);
        }
        Ok(free)
    }

    /// Installs `slot` at the lowest free number `>= min`; `EMFILE`
    /// when none is below the limit.
    pub fn install_lowest(&mut self, min: u64, slot: Slot) -> Result<Fd, Errno> {
        let free = self.lowest_free(min)?;
        let fd = i32::try_from(free).map_err(|_| EMFILE)?;
        if free >= self.slots.len() {
            self.slots.resize(free + 1, None);
        }
        self.slots[free] = Some(slot);
        Ok(Fd(fd))
    }

    /// Installs `slot` at `fd` exactly (`dup2`), returning what was
    /// there; `EBADF` when `fd` is negative or not below the limit.
    pub fn install_at(&mut self, fd: Fd, slot: Slot) -> Result<Option<Slot>, Errno> {
        let i = usize::try_from(fd.0).map_err(|_| EBADF)?;
        if i as u64 >= self.limit {
            return Err(EBADF);
        }
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        Ok(self.slots[i].replace(slot))
    }

    /// Removes `fd`, returning it (`EBADF` if not open).
    pub fn remove(&mut self, fd: Fd) -> Result<Slot, Errno> {
        let i = usize::try_from(fd.0).map_err(|_| EBADF)?;
        let slot = self.slots.get_mut(i).and_then(Option::take).ok_or(EBADF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(slot)
    }

    /// Every open descriptor.
    pub fn open_fds(&self) -> impl Iterator<Item = (Fd, Slot)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.map(|s| (Fd(i as i32), s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(n: usize) -> Slot {
        Slot { desc: DescId(n), cloexec: false }
    }

    #[test]
    fn lowest_free_and_limit() {
        let mut t = FdTable::default();
        t.set_limit(3).unwrap();
        assert_eq!(t.install_lowest(0, slot(0)), Ok(Fd(0)));
        assert_eq!(t.install_lowest(0, slot(1)), Ok(Fd(1)));
        assert_eq!(t.install_lowest(0, slot(2)), Ok(Fd(2)));
        assert_eq!(t.install_lowest(0, slot(3)), Err(EMFILE));
        assert_eq!(t.remove(Fd(1)), Ok(slot(1)));
        assert_eq!(t.remove(Fd(1)), Err(EBADF));
        assert_eq!(t.install_lowest(0, slot(4)), Ok(Fd(1)));
        assert_eq!(t.install_lowest(3, slot(5)), Err(EMFILE));
        assert_eq!(t.install_at(Fd(3), slot(5)), Err(EBADF));
        assert_eq!(t.install_at(Fd(-1), slot(5)), Err(EBADF));
        assert_eq!(t.get(Fd(-100)), Err(EBADF));
        assert_eq!(t.set_limit(NR_OPEN + 1), Err(EINVAL));
    }
}
