//! A BAR device: a small register file the guest reaches through a trapped
//! MMIO window, with a computed register and a doorbell.
//!
//! The register layout is in [`registers`]; the model in [`BarDevice`];
//! the event-loop subscriber that counts doorbell rings delivered through
//! the (io)eventfd in [`DoorbellHandler`]; the mapping providers that let
//! a guest map a window into its address space in [`BarProvider`] and
//! [`BarRegionProvider`].
//!
//! A *passed-through* BAR (backed by a host file and registered as a KVM
//! memory slot) never reaches this model: its accesses do not exit.

mod device;
mod doorbell_handler;
mod provider;
pub mod registers;

pub use device::{Access, BarDevice, BarError};
pub use doorbell_handler::DoorbellHandler;
pub use provider::{BarProvider, BarRegionProvider, BarWindow};
