//! A pipe: its ring and whether each end is still open, and the steps
//! of `read` and `write` on it as Linux's `pipe_read`/`pipe_write` take
//! them without waiting: each says what it did, or that the caller
//! would wait ([`Io::Wait`]) and for what.
//!
//! Not here: descriptors (an end is open while a descriptor names it,
//! `super::objects`), signals (the caller posts `SIGPIPE` on
//! [`IpcError::BrokenPipe`]), or waiting itself.

use super::error::IpcError;
use super::ring::{PipeRing, WriteMode};
use super::wait::{Io, Want};

/// One pipe.
#[derive(Debug, Default)]
pub struct Pipe {
    /// The data in flight.
    pub ring: PipeRing,
    /// Some descriptor still names the read end.
    pub reader: bool,
    /// Some descriptor still names the write end.
    pub writer: bool,
}

impl Pipe {
    /// A new pipe, both ends open.
    pub fn new() -> Self {
        Pipe { ring: PipeRing::default(), reader: true, writer: true }
    }

    /// `read(len)` on the read end (`nonblock`: `O_NONBLOCK`): the
    /// bytes; empty at the end of the data (no writer) or for `len` 0.
    pub fn read(&mut self, len: usize, nonblock: bool) -> Result<Io<Vec<u8>>, IpcError> {
        if len == 0 {
            return Ok(Io::Ready(Vec::new()));
        }
        if self.ring.is_empty() {
            if !self.writer {
                return Ok(Io::Ready(Vec::new()));
            }
            if nonblock {
                return Err(IpcError::WouldBlock);
            }
            return Ok(Io::Wait { want: Want::Readable, done: 0 });
        }
        Ok(Io::Ready(self.ring.read(len)))
    }

    /// `write(data)` on the write end: the bytes taken. With
    /// `nonblock`, what fits (`EAGAIN` when nothing does); without it,
    /// all of it, or a wait after `done` bytes. No reader is
    /// [`IpcError::BrokenPipe`] (a write of nothing returns 0 first).
    pub fn write(&mut self, data: &[u8], mode: WriteMode, nonblock: bool) -> Result<Io<usize>, IpcError> {
        if data.is_empty() {
            return Ok(Io::Ready(0));
        }
        if !self.reader {
            return Err(IpcError::BrokenPipe);
        }
        let done = self.ring.write(data, mode, 0);
        if done == data.len() {
            return Ok(Io::Ready(done));
        }
        match (nonblock, done) {
            (true, 0) => Err(IpcError::WouldBlock),
            (true, n) => Ok(Io::Ready(n)),
            (false, n) => Ok(Io::Wait { want: Want::Writable, done: n }),
        }
    }

    /// `vmsplice` into the write end: after waiting for one free slot,
    /// one buffer per user page of each segment (its bytes and where
    /// they start in their first page) while slots are free; the bytes
    /// taken.
    pub fn splice_in(&mut self, segs: &[(Vec<u8>, usize)], nonblock: bool) -> Result<Io<usize>, IpcError> {
        if !self.reader {
            return Err(IpcError::BrokenPipe);
        }
        if self.ring.is_full() {
            if nonblock {
                return Err(IpcError::WouldBlock);
            }
            return Ok(Io::Wait { want: Want::Writable, done: 0 });
        }
        let mut done = 0;
        for (data, page_off) in segs {
            let n = self.ring.write(data, WriteMode::Spliced, *page_off);
            done += n;
            if n < data.len() {
                break;
            }
        }
        Ok(Io::Ready(done))
    }

    /// `poll` bits of the read end.
    pub fn poll_read(&self) -> i16 {
        let mut m = 0;
        if !self.ring.is_empty() {
            m |= libc::POLLIN | libc::POLLRDNORM;
        }
        if !self.writer {
            m |= libc::POLLHUP;
        }
        m
    }

    /// `poll` bits of the write end.
    pub fn poll_write(&self) -> i16 {
        let mut m = 0;
        if !self.ring.is_full() {
            m |= libc::POLLOUT | libc::POLLWRNORM;
        }
        if !self.reader {
            m |= libc::POLLERR;
        }
        m
    }
}
