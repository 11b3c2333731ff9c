//! The process's pipes and socket pairs, and the descriptors naming
//! their ends: each end is a node the kind serves ([`Special::Tag`]
//! from [`IPC_TAG_BASE`], two tags per object), opened with the access
//! mode and flags Linux gives it. An end is open while a descriptor
//! names it: after every close (or `dup2`/`dup3` over a descriptor) the
//! syscall layer calls [`Ipc::release_unused`], which closes the ends no
//! descriptor names, as the last `fput` does in Linux.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::pipe::Pipe;
use super::socket::{SockType, SocketPair};
use crate::guest::kinds::linux::fs::{Fd, Special, Vfs};

/// The first tag of an IPC end (memfds have the tags below it).
pub const IPC_TAG_BASE: u32 = 0x8000_0000;
/// Most objects alive at once (each costs a little host memory, and a
/// full pipe 64 KiB or more).
pub const IPC_MAX: usize = 4096;
/// Most bytes all objects together hold on the host: a write that would
/// go past it waits (or is `EAGAIN`) as on a full pipe, whatever the
/// object's own size (a root program may make a pipe 2 GiB). A smaller
/// guest gets less ([`Ipc::set_ram`]).
pub const IPC_BYTES_MAX: usize = 256 << 20;
/// What share of guest RAM pipes and sockets may hold on the host
/// (1/this): their bytes are host memory that Linux would take from the
/// guest's RAM, so the VMM's memory stays within twice the guest's.
pub const IPC_RAM_SHARE: u64 = 4;
/// `fstat`'s mode of a pipe end.
const FIFO_MODE: u32 = libc::S_IFIFO | 0o600;
/// `fstat`'s mode of a socket.
const SOCK_MODE: u32 = libc::S_IFSOCK | 0o777;

/// One end of an object: the object's number and which end (a pipe's
/// read end is 0, its write end 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndId {
    /// The object.
    pub obj: u32,
    /// The end: 0 or 1.
    pub side: usize,
}

impl EndId {
    /// The end a special node is, if it is one.
    pub fn of(s: Special) -> Option<EndId> {
        match s {
            Special::Tag(t) if t >= IPC_TAG_BASE => {
                let n = t - IPC_TAG_BASE;
                Some(EndId { obj: n / 2, side: (n % 2) as usize })
            }
            _ => None,
        }
    }

    fn special(self) -> Special {
        Special::Tag(IPC_TAG_BASE + self.obj * 2 + self.side as u32)
    }
}

/// A pipe or a socket pair.
#[derive(Debug)]
pub enum Object {
    /// `pipe`, `pipe2`.
    Pipe(Pipe),
    /// `socketpair`.
    Socket(SocketPair),
}

/// Every object of the process.
pub struct Ipc {
    objects: Mutex<Objects>,
    /// Most bytes all objects hold ([`IPC_BYTES_MAX`] or less).
    limit: AtomicUsize,
}

impl Default for Ipc {
    fn default() -> Self {
        Ipc { objects: Mutex::default(), limit: AtomicUsize::new(IPC_BYTES_MAX) }
    }
}

#[derive(Default)]
struct Objects {
    by_id: BTreeMap<u32, Object>,
    next: u32,
}

impl Ipc {
    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the object of `end` (`None` if it is gone).
    pub fn with<R>(&self, end: EndId, f: impl FnOnce(&mut Object) -> R) -> Option<R> {
        self.lock().by_id.get_mut(&end.obj).map(f)
    }

    /// Adds `obj` and opens its two ends with `flags[i]` and `mode`
    /// (`EMFILE` when two descriptors are not free, `ENFILE` past
    /// [`IPC_MAX`] objects): the two descriptors.
    fn add(&self, vfs: &mut Vfs, obj: Object, flags: [i32; 2], mode: u32) -> Result<[Fd; 2], i32> {
        let mut objs = self.lock();
        if objs.by_id.len() >= IPC_MAX {
            collect(vfs, &mut objs);
            if objs.by_id.len() >= IPC_MAX {
                return Err(libc::ENFILE);
            }
        }
        let mut id = objs.next;
        while objs.by_id.contains_key(&id) {
            id = (id + 1) % (u32::MAX - IPC_TAG_BASE).div_ceil(2);
        }
        objs.next = (id + 1) % (u32::MAX - IPC_TAG_BASE).div_ceil(2);
        let a = vfs.open_anonymous(EndId { obj: id, side: 0 }.special(), flags[0], mode).map_err(|e| e.raw())?;
        let b = match vfs.open_anonymous(EndId { obj: id, side: 1 }.special(), flags[1], mode) {
            Ok(b) => b,
            Err(e) => {
                let _ = vfs.close(a);
                return Err(e.raw());
            }
        };
        objs.by_id.insert(id, obj);
        Ok([a, b])
    }

    /// `pipe2(flags)`: the read and the write descriptor. `O_CLOEXEC`
    /// and `O_NONBLOCK` go to both, `O_DIRECT` (packets) to the write
    /// end, as in Linux.
    pub fn pipe(&self, vfs: &mut Vfs, flags: i32) -> Result<[Fd; 2], i32> {
        if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
            return Err(libc::EINVAL);
        }
        let common = flags & (libc::O_CLOEXEC | libc::O_NONBLOCK);
        let fl = [libc::O_RDONLY | common, libc::O_WRONLY | common | (flags & libc::O_DIRECT)];
        self.add(vfs, Object::Pipe(Pipe::new()), fl, FIFO_MODE)
    }

    /// `socketpair(AF_UNIX, ty, ...)` with `flags` (`O_CLOEXEC`,
    /// `O_NONBLOCK`, already checked): the two descriptors.
    pub fn socketpair(&self, vfs: &mut Vfs, ty: SockType, flags: i32) -> Result<[Fd; 2], i32> {
        let fl = libc::O_RDWR | (flags & (libc::O_CLOEXEC | libc::O_NONBLOCK));
        self.add(vfs, Object::Socket(SocketPair::new(ty)), [fl, fl], SOCK_MODE)
    }

    /// Closes the ends no open description of `vfs` (of any process)
    /// names, and drops the
    /// objects with no end open.
    pub fn release_unused(&self, vfs: &Vfs) {
        collect(vfs, &mut self.lock());
    }

    /// Sizes the limit for a guest of `ram` bytes: 1/[`IPC_RAM_SHARE`]
    /// of it, at most [`IPC_BYTES_MAX`].
    pub fn set_ram(&self, ram: u64) {
        let share = usize::try_from(ram / IPC_RAM_SHARE).unwrap_or(usize::MAX);
        self.limit.store(share.min(IPC_BYTES_MAX), Ordering::Relaxed);
    }

    /// Most bytes all objects together may hold.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Whether `more` bytes still fit within [`Ipc::limit`].
    pub fn fits(&self, more: usize) -> bool {
        let held: usize = self
            .lock()
            .by_id
            .values()
            .map(|o| match o {
                Object::Pipe(p) => p.ring.len(),
                Object::Socket(s) => s.held(),
            })
            .sum();
        held.saturating_add(more) <= self.limit()
    }

    /// Objects alive (for tests and leak checks).
    pub fn count(&self) -> usize {
        self.lock().by_id.len()
    }
}

fn collect(vfs: &Vfs, objs: &mut Objects) {
    // Open descriptions, not the current process's descriptors: after a
    // fork another process's table may be the only one naming an end.
    let live: BTreeSet<EndId> = vfs.open_specials().into_iter().filter_map(EndId::of).collect();
    objs.by_id.retain(|&obj, o| {
        let open = |side| live.contains(&EndId { obj, side });
        match o {
            Object::Pipe(p) => {
                p.reader &= open(0);
                p.writer &= open(1);
                p.reader || p.writer
            }
            Object::Socket(s) => {
                for side in 0..2 {
                    if !open(side) {
                        s.close(side);
                    }
                }
                s.is_open(0) || s.is_open(1)
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::super::fs::{Fd, Vfs, VfsConfig};
    use super::super::WriteMode;
    use super::*;

    fn ends(ipc: &Ipc, vfs: &Vfs, fd: Fd) -> (bool, bool) {
        let end = vfs.special(fd).ok().flatten().and_then(|s| EndId::of(s.special)).expect("a pipe end");
        ipc.with(end, |o| match o {
            Object::Pipe(p) => (p.reader, p.writer),
            Object::Socket(_) => (false, false),
        })
        .unwrap_or((false, false))
    }

    /// Pipe bytes are host memory: a 64 MiB guest's pipes hold 16 MiB
    /// (they held 256 MiB whatever the guest, four times its RAM).
    #[test]
    fn the_byte_limit_follows_guest_ram() {
        let ipc = Ipc::default();
        assert!(ipc.fits(IPC_BYTES_MAX) && !ipc.fits(IPC_BYTES_MAX + 1));
        ipc.set_ram(64 << 20);
        assert_eq!(ipc.limit(), 16 << 20);
        assert!(ipc.fits(16 << 20) && !ipc.fits((16 << 20) + 1));
        let mut vfs = Vfs::new(&VfsConfig::default());
        let [_, w] = ipc.pipe(&mut vfs, 0).expect("pipe");
        let end = vfs.special(w).ok().flatten().and_then(|s| EndId::of(s.special)).expect("a pipe end");
        let wrote = ipc.with(end, |o| match o {
            Object::Pipe(p) => p.write(&[7; 4096], WriteMode::Stream, true).is_ok(),
            Object::Socket(_) => false,
        });
        assert_eq!(wrote, Some(true));
        assert!(ipc.fits((16 << 20) - 4096) && !ipc.fits((16 << 20) - 4095), "held bytes count");
        // A large guest keeps the fixed ceiling.
        ipc.set_ram(64 << 30);
        assert_eq!(ipc.limit(), IPC_BYTES_MAX);
    }

    /// After a fork, a child that closes its copy of a pipe's read end
    /// must not close the parent's: the end lives while any process's
    /// open description names it (it was released from the child's
    /// descriptor table alone, and the parent's read got `EBADF`).
    #[test]
    fn an_end_lives_while_another_process_names_it() {
        let ipc = Ipc::default();
        let mut vfs = Vfs::new(&VfsConfig::default());
        let [r, w] = ipc.pipe(&mut vfs, 0).expect("pipe");
        let child = vfs.fork_files();
        let parent = vfs.swap_files(child);
        vfs.close(r).expect("the child closes its read end");
        ipc.release_unused(&vfs);
        let child = vfs.swap_files(parent);
        assert_eq!(ends(&ipc, &vfs, r), (true, true), "the parent's read end is still open");
        // The child ends: its write end goes with it, the parent's stays.
        vfs.drop_files(child);
        ipc.release_unused(&vfs);
        assert_eq!(ends(&ipc, &vfs, r), (true, true));
        // The parent closes its writer: now no process names it.
        vfs.close(w).expect("close");
        ipc.release_unused(&vfs);
        assert_eq!(ends(&ipc, &vfs, r), (true, false), "EOF for the reader");
    }
}
