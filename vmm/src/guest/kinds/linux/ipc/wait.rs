//! What an operation that would wait says instead of waiting: the
//! effect a scheduler parks the caller on. Today one process runs, so
//! nothing but a signal can end such a wait; the syscall layer turns it
//! into a sleep until the real-time timer (then `EINTR`, or a restart
//! with `SA_RESTART`), or ends the run as blocked forever.
//!
//! A later scheduler parks the process on the object ([`super::EndId`]
//! and [`Want`]) and makes the same call again when the object changes;
//! a write that took `done` bytes before it would wait is continued
//! with the rest (and returns the whole count).

/// What the caller waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Data to read (or the writers to go).
    Readable,
    /// Room to write (or the readers to go).
    Writable,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Io<T> {
    /// Done: the value the call returns.
    Ready(T),
    /// The caller would wait for `want`, after `done` bytes.
    Wait {
        /// What would end the wait.
        want: Want,
        /// Bytes already moved by this call.
        done: usize,
    },
}

impl<T> Io<T> {
    /// The ready value changed by `f`; a wait stays a wait.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Io<U> {
        match self {
            Io::Ready(v) => Io::Ready(f(v)),
            Io::Wait { want, done } => Io::Wait { want, done },
        }
    }
}
