//! # vmm: a small KVM VMM whose guest page tables come from guest-mm
//!
//! The guest program runs in 64-bit user mode (CPL 3); the VMM is its
//! kernel. A few dozen instructions of generated CPL 0 code (the kernel
//! stub) forward exceptions, `syscall`s (hypercalls) and TLB-shootdown
//! NMIs to the VMM through kernel ports. Every mapping, the VMM's own
//! supervisor mappings included, is built by guest-mm.
//!
//! A raw multiboot kernel (a kvm-unit-test, [`guest::raw`]) is its own
//! kernel instead: it runs on a bare PC (KVM's interrupt controllers and
//! PIT, fw_cfg, pc-testdev) from 32-bit protected mode; [`kut`] runs a
//! kvm-unit-tests suite.
//!
//! Module map:
//! - [`config`]: options and the TOML file; [`input_file`]: reading user
//!   files with bounds; [`elf`]: the one ELF reader every kind uses;
//!   [`layout`]: the address map;
//! - [`memory`]: guest RAM, host windows, boot frames; [`mapper`]: the
//!   boot mappings through guest-mm; [`program`] and [`guest`]: what runs;
//! - [`arch`], [`kernel`], [`boot`]: the CPU structures and the stub;
//! - [`vstate`]: KVM VM and vCPUs; [`exit`]: exit dispatch;
//!   [`vcpu_thread`]: the run loop; [`hypercall`]: the guest ABI;
//!   [`tlb`]: shootdowns; [`fault`]: exception reports;
//! - [`seccomp`]: the per-thread system-call filters of a run;
//! - [`event_loop`], [`control`], [`runner`], [`report`]: running a
//!   guest and telling what happened; [`output`]: bounded, non-blocking
//!   console, report and log output.
//!
//! What it does not do: interrupts for its own guests (only a raw
//! kernel's PC has an interrupt controller), firmware, ACPI tables, or any
//! device beyond the serial port, the exit port, BARs, and a raw kernel's
//! fw_cfg and pc-testdev.

// Tests may unwrap: a failed unwrap is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod arch;
pub mod bench;
pub mod boot;
pub mod config;
pub mod control;
pub mod elf;
pub mod event_loop;
pub mod exit;
pub mod fault;
pub mod guest;
pub mod hypercall;
pub mod input_file;
pub mod kernel;
pub mod kut;
pub mod layout;
pub mod mapper;
pub mod memory;
pub mod output;
pub mod program;
pub mod providers;
pub mod report;
pub mod runner;
pub mod seccomp;
pub mod tlb;
pub mod vcpu_thread;
pub mod vstate;

pub use config::{GuestChoice, VmConfig};
pub use report::RunReport;
pub use runner::{run, run_kind, run_with, ConsoleSink, RunError, RunOptions};
