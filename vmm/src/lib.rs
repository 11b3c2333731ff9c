//! # vmm: a small KVM VMM whose guest page tables come from guest-mm
//!
//! The guest program runs in 64-bit user mode (CPL 3); the VMM is its
//! kernel. A few dozen instructions of generated CPL 0 code (the kernel
//! stub) forward exceptions, `syscall`s (hypercalls) and TLB-shootdown
//! NMIs to the VMM through kernel ports. Every mapping, the VMM's own
//! supervisor mappings included, is built by guest-mm.
//!
//! Module map:
//! - [`config`]: options and the TOML file; [`input_file`]: reading user
//!   files with bounds; [`layout`]: the address map;
//! - [`memory`]: guest RAM, host windows, boot frames; [`mapper`]: the
//!   boot mappings through guest-mm; [`program`] and [`guest`]: what runs;
//! - [`arch`], [`kernel`], [`boot`]: the CPU structures and the stub;
//! - [`vstate`]: KVM VM and vCPUs; [`exit`]: exit dispatch;
//!   [`vcpu_thread`]: the run loop; [`hypercall`]: the guest ABI;
//!   [`tlb`]: shootdowns; [`fault`]: exception reports;
//! - [`event_loop`], [`control`], [`runner`], [`report`]: running a
//!   guest and telling what happened; [`output`]: bounded, non-blocking
//!   console, report and log output.
//!
//! What it does not do: interrupts (there is no interrupt controller),
//! real mode, or any device beyond the serial port, the exit port and BARs.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod arch;
pub mod bench;
pub mod boot;
pub mod config;
pub mod control;
pub mod event_loop;
pub mod exit;
pub mod fault;
pub mod guest;
pub mod hypercall;
pub mod input_file;
pub mod kernel;
pub mod layout;
pub mod mapper;
pub mod memory;
pub mod output;
pub mod program;
pub mod providers;
pub mod report;
pub mod runner;
pub mod tlb;
pub mod vcpu_thread;
pub mod vstate;

pub use config::{GuestChoice, VmConfig};
pub use report::RunReport;
pub use runner::{run, run_kind, run_with, ConsoleSink, RunError, RunOptions};
