//! The one error of the IPC objects, with the errno the program sees.

/// Why an operation on a pipe or socket failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpcError {
    /// Nothing to read or no room, and the caller may not wait (`EAGAIN`).
    #[error("the operation would block")]
    WouldBlock,
    /// Writing where nobody can read (`EPIPE`; the caller sends
    /// `SIGPIPE` unless told not to).
    #[error("no reader: broken pipe")]
    BrokenPipe,
    /// Writing on a datagram socket whose peer is gone (`ECONNREFUSED`).
    #[error("the peer is gone")]
    ConnRefused,
    /// The peer closed with data unread (`ECONNRESET`).
    #[error("connection reset by the peer")]
    ConnReset,
    /// A datagram socket with no peer left (`ENOTCONN`).
    #[error("not connected")]
    NotConnected,
    /// A datagram larger than the send buffer (`EMSGSIZE`).
    #[error("message too long")]
    MsgSize,
    /// The descriptor's end cannot do this (`EBADF`: reading a write end).
    #[error("wrong end for this operation")]
    WrongEnd,
    /// A bad argument (`EINVAL`).
    #[error("invalid argument")]
    Invalid,
}

impl IpcError {
    /// The errno the program sees.
    pub fn errno(self) -> i32 {
        match self {
            IpcError::WouldBlock => libc::EAGAIN,
            IpcError::BrokenPipe => libc::EPIPE,
            IpcError::ConnRefused => libc::ECONNREFUSED,
            IpcError::NotConnected => libc::ENOTCONN,
            IpcError::ConnReset => libc::ECONNRESET,
            IpcError::MsgSize => libc::EMSGSIZE,
            IpcError::WrongEnd => libc::EBADF,
            IpcError::Invalid => libc::EINVAL,
        }
    }
}
