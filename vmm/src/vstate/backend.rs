//! What the KVM backend does that changes how a guest is set up.
//!
//! On hardware virtualization (`kvm_intel`, `kvm_amd`) a `syscall` from
//! user mode enters CPL 0 at `IA32_LSTAR`, as on bare metal. The
//! software-assisted PVM backend (`kvm_pvm`, this project's CI machine)
//! runs user mode natively and a `syscall` there jumps to `LSTAR` without
//! leaving user mode, so a kind that serves `syscall` must put user-mode
//! code there.

use std::path::Path;

/// How a guest's `syscall` instruction arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallEntry {
    /// It enters CPL 0 at `LSTAR` (hardware virtualization).
    Kernel,
    /// It jumps to `LSTAR` and stays at CPL 3 (PVM).
    User,
}

/// What this host's KVM backend does with `syscall`.
pub fn syscall_entry() -> SyscallEntry {
    if Path::new("/sys/module/kvm_pvm").exists() {
        SyscallEntry::User
    } else {
        SyscallEntry::Kernel
    }
}
