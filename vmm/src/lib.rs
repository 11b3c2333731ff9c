//! # vmm: a small KVM VMM whose guest page tables come from guest-mm
//!
//! The guest program runs in 64-bit user mode (CPL 3); the VMM is its
//! kernel. A few dozen instructions of generated CPL 0 code (the kernel
//! stub) forward exceptions, `syscall`s (hypercalls) and TLB-shootdown
//! NMIs to the VMM through kernel ports. Every mapping, the VMM's own
//! supervisor mappings included, is built by guest-mm.
//!
//! A multiboot kernel (a kvm-unit-test, [`guest::kinds::multiboot`]) is
//! its own kernel instead: it runs on a bare PC (KVM's interrupt
//! controllers and PIT, fw_cfg, pc-testdev) from 32-bit protected mode;
//! `vmm kut` (the `vmm-cli` package) runs a kvm-unit-tests suite.
//!
//! Module map (`docs/architecture.md` walks through it):
//! - [`config`]: the run's configuration and the TOML file;
//!   [`input_file`]: reading user files with bounds; [`elf`]: the one
//!   ELF reader every kind uses; [`layout`]: the address map; [`memory`]: guest RAM, host windows, boot frames;
//! - [`guest`]: the kind seam and one folder per kind of guest;
//! - [`hosted`]: the kernel the VMM plays for hosted guests (boot, stub,
//!   descriptor tables, the guest-mm address space and providers,
//!   hypercalls, exceptions, TLB shootdown);
//! - [`run`]: one run (machine, devices, vCPU threads, exit dispatch,
//!   event loop, report, output);
//! - [`vstate`]: the KVM layer (VM, vCPUs, backend quirks);
//! - [`seccomp`]: the per-thread system-call filters of a run.
//!
//! What it does not do: interrupts for its own guests (only a raw
//! kernel's PC has an interrupt controller), firmware, ACPI tables, or any
//! device beyond the serial port, the exit port, BARs, and a raw kernel's
//! fw_cfg and pc-testdev.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod elf;
pub mod guest;
pub mod hosted;
pub mod input_file;
pub mod layout;
pub mod memory;
pub mod run;
pub mod seccomp;
pub mod vstate;

pub use config::{GuestChoice, VmConfig};
pub use run::report::RunReport;
pub use run::runner::{run, run_kind, run_with, run_with_registry, ConsoleSink, RunError, RunOptions};
