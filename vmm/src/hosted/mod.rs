//! The kernel the VMM plays for hosted guests.
//!
//! A hosted guest (the built-in test guest, an own-ABI ELF, the in-guest
//! fuzzer, a Solo5 unikernel) runs in long mode at CPL 3 on page tables
//! guest-mm builds; the VMM is its kernel. This folder is that kernel:
//!
//! - [`boot`] installs the descriptor tables ([`arch`]) and the CPL 0
//!   [`stub`] and maps them supervisor-only;
//! - [`mapper`] is the guest's address space (guest-mm), [`providers`] the
//!   mapping providers the guest can ask for, [`program`] loads a
//!   program image into it;
//! - [`hypercall`] serves the guest's requests (the [`HostedKernel`]
//!   state), including the page-fault path; [`exception`] turns an
//!   exception the stub forwarded into a report;
//! - [`tlb`] shoots stale translations down on every vCPU.
//!
//! What it does not do: run vCPUs or devices (that is [`crate::run`]) or
//! talk to KVM beyond what [`tlb`] needs (that is [`crate::vstate`]).

pub mod arch;
pub mod boot;
pub mod exception;
pub mod hypercall;
pub mod mapper;
pub mod prebuilt;
pub mod program;
pub mod providers;
pub mod stub;
pub mod tlb;
pub mod trampoline;

pub use hypercall::HostedKernel;
