//! Hypercalls: what the guest asks its "kernel" (the VMM) for with
//! `syscall`, in the Linux x86-64 convention (see `kernel::abi`).
//!
//! [`HostedKernel::dispatch`] takes the registers of the calling vCPU and
//! returns the value for `rax` plus what else must happen (a TLB flush, a
//! stop, an armed fault). Every argument is untrusted: a bad one gets a
//! `-errno`, never a panic; guest memory is reached only through the
//! guest's own page tables, and only where user mode could reach it.

mod call;
mod checks;
mod console;
mod cow_flush;
mod kernel;
mod mm;
mod mm_remap;
mod page_fault;
mod spaces;
mod user_access;

pub use self::call::{Args, Block, Effects, Outcome};
pub use self::checks::{CheckRecord, ReportLog};
pub use self::console::ConsoleOut;
pub use self::kernel::HostedKernel;
pub use self::mm::prot_vm_flags;
pub use self::page_fault::{FaultCause, FaultOutcome};
pub use self::spaces::{SpaceError, Switch};
pub use self::user_access::{SpaceDone, USER_COPY_MAX};

#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod cow_flush_tests;
#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod mm_tests;
#[cfg(test)]
pub(crate) mod test_kernel;
#[cfg(test)]
mod tests;
