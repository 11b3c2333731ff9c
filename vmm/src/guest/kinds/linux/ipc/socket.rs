//! `socketpair(AF_UNIX, ...)`: two connected ends, each with the queue
//! of what the other sent it. `SOCK_STREAM` queues bytes;
//! `SOCK_DGRAM` and `SOCK_SEQPACKET` queue messages, each read whole
//! (a short buffer truncates it and the rest is dropped). The steps of
//! `send`, `recv` and `shutdown` are Linux's `af_unix` ones without
//! waiting; a step that would wait says so ([`Io::Wait`]).
//!
//! Differences from Linux: a queue is bounded by the bytes it holds
//! ([`SOCK_BUF`], each message also counting [`MSG_OVERHEAD`]) rather
//! than by the kernel's buffer accounting, so how much fits before a
//! sender waits is close to Linux's, not equal; no ancillary data
//! (`SCM_RIGHTS`, credentials) and no addresses: both ends are unnamed.

use std::collections::VecDeque;

use super::error::IpcError;
use super::wait::{Io, Want};

/// A socket's send buffer (`net.core.wmem_default`).
pub const SOCK_BUF: usize = 212_992;
/// What one queued message costs beyond its bytes (about a socket
/// buffer's own size in Linux).
pub const MSG_OVERHEAD: usize = 768;
/// The largest datagram (`sk_sndbuf - 32`).
pub const MAX_DGRAM: usize = SOCK_BUF - 32;

/// The socket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM`: bytes.
    Stream,
    /// `SOCK_DGRAM`: messages, no connection state.
    Dgram,
    /// `SOCK_SEQPACKET`: messages over a connection.
    SeqPacket,
}

impl SockType {
    /// The type of `socketpair`'s `type` argument (flags masked off).
    pub fn from_linux(t: i32) -> Option<Self> {
        match t {
            libc::SOCK_STREAM => Some(SockType::Stream),
            libc::SOCK_DGRAM => Some(SockType::Dgram),
            libc::SOCK_SEQPACKET => Some(SockType::SeqPacket),
            _ => None,
        }
    }

    /// Connected: a closed peer ends the stream.
    fn connected(self) -> bool {
        self != SockType::Dgram
    }
}

/// One end.
#[derive(Debug, Default)]
struct End {
    /// Some descriptor names it.
    open: bool,
    /// Bytes the peer sent (a stream).
    bytes: VecDeque<u8>,
    /// Messages the peer sent (datagrams, packets).
    msgs: VecDeque<Vec<u8>>,
    /// `SHUT_RD` (or the peer's `SHUT_WR`, or the peer closed).
    shut_rd: bool,
    /// `SHUT_WR` (or the peer's `SHUT_RD`, or the peer closed).
    shut_wr: bool,
    /// An error the next call reports (`ECONNRESET`: the peer closed
    /// with data unread).
    err: Option<i32>,
    /// A datagram end whose peer closed and which has been told so.
    peer_gone_told: bool,
}

impl End {
    fn queued(&self) -> usize {
        self.bytes.len() + self.msgs.iter().map(|m| m.len() + MSG_OVERHEAD).sum::<usize>()
    }

    fn has_data(&self) -> bool {
        !self.bytes.is_empty() || !self.msgs.is_empty()
    }
}

/// What a `recv` gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The bytes copied.
    pub data: Vec<u8>,
    /// The message's whole length (datagrams; the byte count for streams).
    pub full_len: usize,
}

/// A connected pair.
#[derive(Debug)]
pub struct SocketPair {
    /// Its type.
    pub ty: SockType,
    ends: [End; 2],
}

/// `send`/`recv` flags that matter here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgFlags {
    /// `MSG_DONTWAIT` or `O_NONBLOCK`.
    pub nonblock: bool,
    /// `MSG_PEEK`: leave what is read queued.
    pub peek: bool,
}

impl SocketPair {
    /// A new pair of type `ty`, both ends open.
    pub fn new(ty: SockType) -> Self {
        let end = || End { open: true, ..End::default() };
        SocketPair { ty, ends: [end(), end()] }
    }

    /// Whether end `side` is open.
    pub fn is_open(&self, side: usize) -> bool {
        self.ends[side & 1].open
    }

    /// The last descriptor of end `side` closed.
    pub fn close(&mut self, side: usize) {
        let (me, peer) = (side & 1, (side & 1) ^ 1);
        if !self.ends[me].open {
            return;
        }
        let unread = self.ends[me].has_data();
        self.ends[me] = End::default();
        if self.ty.connected() {
            let p = &mut self.ends[peer];
            p.shut_rd = true;
            p.shut_wr = true;
            if unread {
                p.err = Some(libc::ECONNRESET);
            }
        }
    }

    /// `shutdown(how)` on end `side` (`SHUT_RD` 0, `SHUT_WR` 1,
    /// `SHUT_RDWR` 2); a connected peer sees the mirror.
    pub fn shutdown(&mut self, side: usize, how: i32) -> Result<(), IpcError> {
        let (rd, wr) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(IpcError::Invalid),
        };
        let (me, peer) = (side & 1, (side & 1) ^ 1);
        self.ends[me].shut_rd |= rd;
        self.ends[me].shut_wr |= wr;
        if self.ty.connected() && self.ends[peer].open {
            self.ends[peer].shut_wr |= rd;
            self.ends[peer].shut_rd |= wr;
        }
        Ok(())
    }

    /// `send(data)` from end `side`: the bytes taken (a datagram whole).
    /// [`IpcError::BrokenPipe`] is where Linux also sends `SIGPIPE`
    /// (streams and packets, unless `MSG_NOSIGNAL`).
    pub fn send(&mut self, side: usize, data: &[u8], f: MsgFlags) -> Result<Io<usize>, IpcError> {
        let (me, peer) = (side & 1, (side & 1) ^ 1);
        if let Some(e) = self.ends[me].err.take() {
            return Err(match e {
                libc::ECONNRESET => IpcError::ConnReset,
                _ => IpcError::Invalid,
            });
        }
        if self.ends[me].shut_wr {
            return Err(IpcError::BrokenPipe);
        }
        if !self.ends[peer].open || (self.ty.connected() && self.ends[peer].shut_rd) {
            if self.ty.connected() {
                return Err(IpcError::BrokenPipe);
            }
            let told = std::mem::replace(&mut self.ends[me].peer_gone_told, true);
            return Err(if told { IpcError::NotConnected } else { IpcError::ConnRefused });
        }
        let room = SOCK_BUF.saturating_sub(self.ends[peer].queued());
        match self.ty {
            SockType::Stream => {
                if data.is_empty() {
                    return Ok(Io::Ready(0));
                }
                let n = room.min(data.len());
                self.ends[peer].bytes.extend(&data[..n]);
                Ok(match (n == data.len(), f.nonblock, n) {
                    (true, _, _) => Io::Ready(n),
                    (false, true, 0) => return Err(IpcError::WouldBlock),
                    (false, true, n) => Io::Ready(n),
                    (false, false, n) => Io::Wait { want: Want::Writable, done: n },
                })
            }
            SockType::Dgram | SockType::SeqPacket => {
                if data.len() > MAX_DGRAM {
                    return Err(IpcError::MsgSize);
                }
                if room < data.len() + MSG_OVERHEAD && self.ends[peer].has_data() {
                    if f.nonblock {
                        return Err(IpcError::WouldBlock);
                    }
                    return Ok(Io::Wait { want: Want::Writable, done: 0 });
                }
                self.ends[peer].msgs.push_back(data.to_vec());
                Ok(Io::Ready(data.len()))
            }
        }
    }

    /// `recv(len)` on end `side`: a stream gives up to `len` bytes (0 at
    /// its end); a message type gives one message cut to `len`.
    pub fn recv(&mut self, side: usize, len: usize, f: MsgFlags) -> Result<Io<Received>, IpcError> {
        let me = &mut self.ends[side & 1];
        if me.has_data() {
            let got = match self.ty {
                SockType::Stream => {
                    let n = len.min(me.bytes.len());
                    let data: Vec<u8> = me.bytes.iter().take(n).copied().collect();
                    if !f.peek {
                        me.bytes.drain(..n);
                    }
                    Received { full_len: data.len(), data }
                }
                SockType::Dgram | SockType::SeqPacket => {
                    let msg = if f.peek { me.msgs.front().cloned() } else { me.msgs.pop_front() };
                    let msg = msg.unwrap_or_default();
                    Received { full_len: msg.len(), data: msg[..len.min(msg.len())].to_vec() }
                }
            };
            return Ok(Io::Ready(got));
        }
        if let Some(e) = me.err.take() {
            return Err(if e == libc::ECONNRESET { IpcError::ConnReset } else { IpcError::Invalid });
        }
        if me.shut_rd || len == 0 && self.ty == SockType::Stream {
            return Ok(Io::Ready(Received { data: Vec::new(), full_len: 0 }));
        }
        if f.nonblock {
            return Err(IpcError::WouldBlock);
        }
        Ok(Io::Wait { want: Want::Readable, done: 0 })
    }

    /// Bytes queued in both directions (what the host holds for it).
    pub fn held(&self) -> usize {
        self.ends.iter().map(End::queued).sum()
    }

    /// `poll` bits of end `side`.
    pub fn poll(&self, side: usize) -> i16 {
        let (me, peer) = (&self.ends[side & 1], &self.ends[(side & 1) ^ 1]);
        let mut m = 0;
        if me.err.is_some() {
            m |= libc::POLLERR;
        }
        if me.shut_rd {
            m |= libc::POLLRDHUP | libc::POLLIN | libc::POLLRDNORM;
        }
        if me.shut_rd && me.shut_wr {
            m |= libc::POLLHUP;
        }
        if me.has_data() {
            m |= libc::POLLIN | libc::POLLRDNORM;
        }
        if peer.queued() < SOCK_BUF {
            m |= libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND;
        }
        m
    }
}
