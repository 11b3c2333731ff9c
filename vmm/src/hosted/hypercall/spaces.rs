//! Several address spaces over one pool, one of them current: the space
//! in the [`Mapper`](crate::hosted::mapper::Mapper) is the one every
//! hypercall, fault and user copy works on. A kind with processes forks
//! the current space ([`HostedKernel::fork_space`]), keeps the others
//! itself, swaps one in when it switches processes
//! ([`HostedKernel::replace_space`]) and asks the vCPU to load the new
//! CR3 and FS base before it next enters the guest
//! ([`HostedKernel::request_switch`]; the vCPU loop takes it with
//! [`HostedKernel::take_switch`]).
//!
//! What this module does not do: decide which process runs, or keep any
//! process state beyond the address space.

use std::sync::atomic::Ordering;

use guest_mm::{AddressSpace, MmError};
use vm_memory::GuestAddress;

use super::kernel::HostedKernel;
use super::mm::ranges;
use crate::memory::GuestMem;

/// What a vCPU loads before it next enters the guest, for a process
/// switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The root table of the space to run.
    pub cr3: GuestAddress,
    /// The FS base of the process to run.
    pub fs_base: u64,
}

/// Why a fork of the current space failed.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// guest-mm refused (no pool pages left: `ENOMEM`).
    #[error("cannot duplicate the address space: {0}")]
    Mm(#[from] MmError),
    /// The parent's write-protected entries could not be shot down: the
    /// run cannot go on.
    #[error("{0}")]
    Flush(String),
}

impl SpaceError {
    /// The errno a guest sees (a failed shootdown ends the run anyway).
    pub fn errno(&self) -> i32 {
        match self {
            SpaceError::Mm(e) => e.errno(),
            SpaceError::Flush(_) => libc::ENOMEM,
        }
    }
}

impl HostedKernel {
    /// Duplicates the current space for `fork` (copy-on-write), and
    /// shoots down the current space's entries the fork write-protected
    /// before the address-space lock is released: the parent never writes
    /// a shared page through a stale writable translation.
    pub fn fork_space(&self, vcpu: u8) -> Result<AddressSpace<GuestMem>, SpaceError> {
        let mut m = self.mapper();
        let forked = m.space_mut().fork();
        let mut flush = ranges(m.space_mut().take_deferred_flush());
        let child = match forked {
            Ok(f) => {
                flush.extend(ranges(f.flush));
                Ok(f.child)
            }
            Err(e) => Err(SpaceError::Mm(e)),
        };
        if let Some(msg) = self.shoot_down(vcpu, &flush) {
            return Err(SpaceError::Flush(msg));
        }
        child
    }

    /// Makes `next` the current space; returns the one it replaces. The
    /// caller makes every vCPU that ran the old space load another CR3
    /// ([`HostedKernel::request_switch`]) before it enters the guest.
    pub fn replace_space(&self, next: AddressSpace<GuestMem>) -> AddressSpace<GuestMem> {
        self.mapper().replace_space(next)
    }

    /// Asks vCPU `vcpu` to load `sw` before it next enters the guest (a
    /// later request replaces an earlier one not yet taken).
    pub fn request_switch(&self, vcpu: u8, sw: Switch) {
        self.switches.lock().unwrap_or_else(|e| e.into_inner()).insert(vcpu, sw);
        self.switch_pending.store(true, Ordering::Release);
    }

    /// The switch asked of `vcpu`, once (one atomic load when none is).
    pub fn take_switch(&self, vcpu: u8) -> Option<Switch> {
        if !self.switch_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.switches.lock().unwrap_or_else(|e| e.into_inner());
        let sw = s.remove(&vcpu);
        self.switch_pending.store(!s.is_empty(), Ordering::Release);
        sw
    }
}

impl HostedKernel {
    /// Shoots down `flush`, what changed in the tables of a space no vCPU
    /// runs (another process's, set aside): the backend may still hold
    /// translations of them. A failed shootdown is returned.
    pub fn shoot_down_other(&self, vcpu: u8, flush: guest_mm::FlushSet) -> Option<String> {
        let _m = self.mapper();
        self.shoot_down(vcpu, &ranges(flush))
    }

    /// Tears down `space`, a space no vCPU runs any more (the caller
    /// switched away from it), and shoots down what it held; a failed
    /// shootdown is returned (the run cannot go on).
    pub fn exit_space(&self, vcpu: u8, space: AddressSpace<GuestMem>) -> Option<String> {
        let _m = self.mapper();
        let flush = ranges(space.exit());
        self.shoot_down(vcpu, &flush)
    }
}

impl HostedKernel {
    /// Kicks the vCPUs `who` out of the guest (a vCPU about to enter
    /// leaves at once, before any guest instruction).
    pub fn kick_vcpus(&self, who: &[u8]) {
        self.flusher.kick(who);
    }

    /// Takes vCPU `v` out of the guest and waits until it is out (kicked
    /// again every 200 µs): the kick also makes its next entry leave at
    /// once, so it runs no guest instruction until it has handled that
    /// exit (the caller's lock on the kind holds it there). `Err` when
    /// it did not leave within `timeout` or the run is stopping.
    pub fn take_out_of_guest(&self, v: u8, timeout: std::time::Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.flusher.kick(&[v]);
            if !self.flusher.in_guest(v) {
                return Ok(());
            }
            if self.flusher.is_stopping() {
                return Err("the run is stopping".into());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("vCPU {v} did not leave the guest within {timeout:?}"));
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}
