//! Device models for the VMM.
//!
//! Every device here is a plain state machine behind the [`BusDevice`]
//! trait: it sees only an *offset into its own window* and the bytes of
//! one access, never a guest address, a vCPU or KVM. Buses ([`Bus`])
//! dispatch an access to the device whose window contains it; accesses
//! nobody claims are logged (rate-limited) and read as all-ones.
//!
//! - [`legacy`]: the 16550 serial port (COM1, port `0x3f8`) and the QEMU
//!   `isa-debug-exit` style exit port (`0xf4`).
//! - [`bar`]: a BAR register file with a computed register and a doorbell
//!   wired to an eventfd (an ioeventfd once the VMM registers it), and the
//!   guest-mm providers that map BAR windows.
//! - [`log_limit`]: rate-limited log lines for anything a guest can repeat.
//!
//! What this crate does not do: it does not talk to KVM, does not build
//! page tables (its providers only describe mappings to guest-mm) and does
//! not run vCPUs. Event-loop subscribers for the fds a
//! device owns live beside the device (`*_handler.rs`).

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bar;
pub mod bus;
pub mod legacy;
pub mod log_limit;

pub use bar::{BarDevice, BarError, BarProvider, BarRegionProvider, BarWindow, DoorbellHandler};
pub use bus::{Bus, BusDevice, BusError, BusKind, SharedDevice};
pub use legacy::{ExitLatch, ExitPort, SerialDevice, SerialInputHandler};
