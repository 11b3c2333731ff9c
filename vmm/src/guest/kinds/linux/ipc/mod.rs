//! Inter-process communication objects of the Linux kind: pipes
//! (`pipe`, `pipe2`, `vmsplice`) and `AF_UNIX` socket pairs
//! (`socketpair`), as a single process uses them today (both ends in
//! one process) and as several will once there are processes: every
//! operation that would wait says what it waits for ([`Io::Wait`])
//! instead of waiting.
//!
//! The objects know nothing of guest memory or descriptors' numbers:
//! the syscall layer (`super::syscalls`) copies the bytes and turns a
//! wait into a sleep, an `EINTR`, or the end of the run.

mod error;
mod objects;
pub mod pipe;
pub mod ring;
pub mod socket;
mod wait;

pub use self::error::IpcError;
pub use self::objects::{EndId, Ipc, Object, IPC_BYTES_MAX, IPC_MAX, IPC_RAM_SHARE, IPC_TAG_BASE};
pub use self::pipe::Pipe;
pub use self::ring::{PipeRing, WriteMode, PIPE_BUF};
pub use self::socket::{MsgFlags, Received, SockType, SocketPair};
pub use self::wait::{Io, Want};

#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod socket_tests;
