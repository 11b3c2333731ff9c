//! What every handler shares: its context ([`Ctx`]), its type
//! ([`Handler`]), a row of the table ([`Entry`], [`Status`]) and how a
//! result becomes `rax` ([`ret`]).

use super::super::process::Linux;
use crate::hosted::hypercall::{HostedKernel, Outcome};

/// How much of a call is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// As Linux does it, for a single-threaded process.
    Supported,
    /// Served, with what is missing in the entry's note.
    Partial,
    /// Returns `-ENOSYS` (the note says why, if there is a reason).
    Unimplemented,
}

/// What a handler gets.
pub struct Ctx<'a> {
    /// The VMM's kernel state (address space, console).
    pub hv: &'a HostedKernel,
    /// The calling vCPU.
    pub vcpu: u8,
    /// The process.
    pub linux: &'a Linux,
}

/// A handler: the six argument registers in, `rax` and effects out.
pub type Handler = fn(&Ctx<'_>, [u64; 6]) -> Outcome;

/// One row of the table.
pub struct Entry {
    /// The x86-64 system-call number.
    pub nr: u64,
    /// Its name.
    pub name: &'static str,
    /// How much is served.
    pub status: Status,
    /// What is missing or how it differs (may be empty).
    pub note: &'static str,
    /// The handler (`None` for [`Status::Unimplemented`]).
    pub handler: Option<Handler>,
}

/// `Ok(v)` as a return value, `Err(e)` as `-e`.
pub fn ret(r: Result<u64, i32>) -> Outcome {
    match r {
        Ok(v) => Outcome::ret(v as i64),
        Err(e) => Outcome::err(e),
    }
}

/// A handler's `rax` meaning "not yet: sleep a slice and make the same
/// call again" (a read of standard input with nothing to read). Linux's
/// kernel-internal `ERESTARTSYS`; the program never sees it: the kind
/// turns it into a restart of the `syscall` instruction, or into `EINTR`
/// when a signal is pending.
pub const RESTART: i64 = -512;
