//! A pipe's buffer as Linux keeps it: a ring of page-sized buffers
//! ("slots", 16 by default: 64 KiB), each holding the unread part of
//! one page. A write first tops up the last buffer with the part of
//! its length below a page (if that buffer may take more: not a packet,
//! not spliced in), then fills fresh pages while slots are free; a read
//! takes bytes from the oldest buffers, and a packet buffer (written
//! through an `O_DIRECT` end) is read whole or its rest dropped. So a
//! write of at most `PIPE_BUF` bytes is never split: it merges whole,
//! or goes into one page, or waits.
//!
//! Not here: who may read or write, blocking, signals (`super::pipe`).
//! Nothing here counts bytes against a limit other than the slots.

use std::collections::VecDeque;

/// The page size the ring is counted in.
pub const PAGE: usize = 4096;
/// `PIPE_BUF`: writes of at most this many bytes are atomic.
pub const PIPE_BUF: usize = 4096;
/// Slots of a new pipe (`PIPE_DEF_BUFFERS`: 64 KiB).
pub const DEFAULT_SLOTS: usize = 16;
/// `/proc/sys/fs/pipe-max-size`: the largest size an unprivileged
/// `F_SETPIPE_SZ` may set.
pub const PIPE_MAX_SIZE: u64 = 1 << 20;

/// One slot: the unread bytes of one page.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    /// The page's bytes from the start of its data.
    data: Vec<u8>,
    /// Bytes already read from the front of `data`.
    read: usize,
    /// Written by a plain write: later writes may top it up.
    can_merge: bool,
    /// Written through an `O_DIRECT` end: read whole, its rest dropped.
    packet: bool,
}

impl Slot {
    fn unread(&self) -> usize {
        self.data.len() - self.read
    }
}

/// How a buffer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// A plain `write`: merges with the last buffer.
    #[default]
    Stream,
    /// Through an `O_DIRECT` end: one packet per page, never merged.
    Packet,
    /// `vmsplice`: one buffer per user page touched, never merged.
    Spliced,
}

/// The ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeRing {
    slots: VecDeque<Slot>,
    max_slots: usize,
}

impl Default for PipeRing {
    fn default() -> Self {
        PipeRing { slots: VecDeque::new(), max_slots: DEFAULT_SLOTS }
    }
}

/// Why a size cannot be set (`F_SETPIPE_SZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The size is 0 after rounding or past 2 GiB (`EINVAL`).
    #[error("pipe size out of range")]
    Invalid,
    /// More than `pipe-max-size` without `CAP_SYS_RESOURCE` (`EPERM`).
    #[error("pipe size above pipe-max-size")]
    NotPermitted,
    /// The data held needs more slots than the new size has (`EBUSY`).
    #[error("pipe holds more than the new size")]
    Busy,
}

impl SizeError {
    /// The errno the program sees.
    pub fn errno(self) -> i32 {
        match self {
            SizeError::Invalid => libc::EINVAL,
            SizeError::NotPermitted => libc::EPERM,
            SizeError::Busy => libc::EBUSY,
        }
    }
}

/// Linux's `round_pipe_size`: at least a page, a power of two; `None`
/// past 2 GiB.
pub fn round_size(size: u64) -> Option<u64> {
    if size > 1 << 31 {
        return None;
    }
    Some(size.max(PAGE as u64).next_power_of_two())
}

impl PipeRing {
    /// Unread bytes.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Slot::unread).sum()
    }

    /// Nothing to read.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every slot is in use: a write that cannot merge waits.
    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.max_slots
    }

    /// Slots in use.
    pub fn used_slots(&self) -> usize {
        self.slots.len()
    }

    /// The size `F_GETPIPE_SZ` reports.
    pub fn size(&self) -> u64 {
        (self.max_slots * PAGE) as u64
    }

    /// `F_SETPIPE_SZ(size)` (`privileged`: `CAP_SYS_RESOURCE`): the size
    /// set, in bytes.
    pub fn set_size(&mut self, size: u64, privileged: bool) -> Result<u64, SizeError> {
        let bytes = round_size(size).ok_or(SizeError::Invalid)?;
        let slots = usize::try_from(bytes / PAGE as u64).map_err(|_| SizeError::Invalid)?;
        if slots > self.max_slots && bytes > PIPE_MAX_SIZE && !privileged {
            return Err(SizeError::NotPermitted);
        }
        if slots < self.slots.len() {
            return Err(SizeError::Busy);
        }
        self.max_slots = slots;
        Ok(self.size())
    }

    /// Writes what fits of `data` now, as one step of Linux's
    /// `pipe_write` (a plain or packet write) or `vmsplice` (spliced,
    /// `page_off` the offset of `data` in its first user page): returns
    /// the bytes taken, 0 when the ring is full (and, for a plain write,
    /// the short tail could not merge).
    pub fn write(&mut self, data: &[u8], mode: WriteMode, page_off: usize) -> usize {
        let mut done = 0;
        if mode == WriteMode::Stream {
            // The part below a page merges into the last buffer if all of
            // it fits there.
            let chars = data.len() % PAGE;
            if let Some(last) = self.slots.back_mut() {
                if chars > 0 && last.can_merge && last.data.len() + chars <= PAGE {
                    last.data.extend_from_slice(&data[..chars]);
                    done = chars;
                }
            }
        }
        while done < data.len() && !self.is_full() {
            let room = match mode {
                WriteMode::Spliced if done == 0 => PAGE - page_off % PAGE,
                _ => PAGE,
            };
            let n = room.min(data.len() - done);
            self.slots.push_back(Slot {
                data: data[done..done + n].to_vec(),
                read: 0,
                can_merge: mode == WriteMode::Stream,
                packet: mode == WriteMode::Packet,
            });
            done += n;
        }
        done
    }

    /// Reads up to `len` bytes, oldest first; a packet buffer ends the
    /// read, and what of it was not taken is dropped.
    pub fn read(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len.min(self.len()));
        while out.len() < len {
            let Some(front) = self.slots.front_mut() else { break };
            let n = front.unread().min(len - out.len());
            out.extend_from_slice(&front.data[front.read..front.read + n]);
            front.read += n;
            let packet = front.packet;
            if packet || front.unread() == 0 {
                self.slots.pop_front();
            }
            if packet {
                break;
            }
        }
        out
    }
}
