//! Kicking a vCPU thread out of `KVM_RUN`.
//!
//! A real-time signal is sent to the thread; its handler sets
//! `immediate_exit` in that thread's `kvm_run`, so the kick is not lost
//! even when it lands just *before* the thread enters `KVM_RUN` (KVM then
//! returns `EINTR` at once). The thread clears the flag after each
//! interrupted run.

use std::cell::Cell;
use std::ptr::null_mut;

use kvm_bindings::kvm_run;
use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

thread_local! {
    /// This thread's `kvm_run`, or null when the thread runs no vCPU.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(null_mut()) };
}

/// The signal used for kicks.
pub fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn handle_kick(_: c_int, _: *mut siginfo_t, _: *mut c_void) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: the pointer was set by `set_thread_kvm_run` from this
        // very thread's vCPU, whose `kvm_run` mapping outlives the thread's
        // use of it (it is cleared before the vCPU is dropped). A single
        // byte store is async-signal-safe.
        unsafe { std::ptr::write_volatile(&raw mut (*run).immediate_exit, 1) };
    }
}

/// Installs the kick handler (once per process; later calls are no-ops).
pub fn install_handler() -> Result<(), vmm_sys_util::errno::Error> {
    static ONCE: std::sync::OnceLock<Result<(), vmm_sys_util::errno::Error>> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| register_signal_handler(kick_signal(), handle_kick))
}

/// Records the calling thread's `kvm_run` (or clears it with null).
///
/// The caller must clear it before the vCPU that owns the mapping is
/// dropped.
pub fn set_thread_kvm_run(run: *mut kvm_run) {
    KVM_RUN.with(|c| c.set(run));
}

/// Sends a kick to `thread`.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is a handle of a vCPU thread that has not been
    // joined yet (the VMM joins vCPU threads only after no one kicks them
    // any more); pthread_kill with a valid signal has no other effect.
    let r = unsafe { libc::pthread_kill(thread, kick_signal()) };
    if r != 0 {
        log::debug!("kick failed: {}", std::io::Error::from_raw_os_error(r));
    }
}
