//! The guest's "kernel": a few dozen instructions of CPL 0 code the VMM
//! generates, plus the ABI constants it shares with guests.
//!
//! The kernel does nothing by itself: every exception and every
//! TLB-shootdown NMI is forwarded to the VMM with one `out` to a kernel
//! port (see [`abi`]), and the VMM decides what happens next. Hypercalls
//! need no kernel code: user mode writes the hypercall port directly. The
//! guest program is the process, the VMM its kernel.

pub mod abi;
mod code;

pub use code::{KernelStub, StubError};
