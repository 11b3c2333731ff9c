//! User memory as a personality's system calls reach it: copies that
//! fault absent pages in first (a `read` into a buffer the program never
//! touched must fill it, as Linux's `copy_to_user` does), and one entry
//! point for an address-space operation with its TLB shootdown.
//!
//! A copy faults pages in through the same path a `#PF` from the guest
//! takes ([`HostedKernel::page_fault`]), so what may be filled, copied or
//! refused is guest-mm's decision; a page it refuses is `EFAULT`, and for
//! a write nothing is written.

use guest_mm::{errno, FlushSet, MmError};

use super::kernel::HostedKernel;
use super::mm::ranges;
use super::page_fault::FaultOutcome;
use crate::hosted::mapper::Mapper;
use crate::layout::PAGE_SIZE;

/// `#PF` error bits a copy presents to the fault path.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_USER: u64 = 4;

/// Most bytes one user copy may move (the caller bounds lengths before
/// this; this is the backstop).
pub const USER_COPY_MAX: u64 = 64 << 20;

/// The result of [`HostedKernel::space_op`]: the operation's value or
/// `errno`, and a message when the shootdown after it failed (the run
/// cannot go on).
#[derive(Debug)]
pub struct SpaceDone<R> {
    /// The value, or `errno`.
    pub result: Result<R, i32>,
    /// Set when the tables changed and a vCPU could not be made to drop
    /// its stale entries.
    pub fatal: Option<String>,
}

impl HostedKernel {
    /// Makes every page of `[va, va + len)` present (and writable, for
    /// `write`) by faulting it in, as the guest's own access would.
    fn fault_in(&self, vcpu: u8, va: u64, len: u64, write: bool) -> Result<(), i32> {
        let end = va.checked_add(len).ok_or(errno::EFAULT)?;
        if end > 1 << 47 || len > USER_COPY_MAX {
            return Err(errno::EFAULT);
        }
        let mut page = va & !(PAGE_SIZE - 1);
        while page < end {
            let ok = {
                let m = self.mapper();
                guest_mm::GuestVirtAddr::try_new(page)
                    .ok()
                    .and_then(|v| m.page_tables().translate(v))
                    .is_some_and(|t| t.prot.present && t.prot.user && (!write || t.prot.writable))
            };
            if !ok {
                let present = {
                    let m = self.mapper();
                    guest_mm::GuestVirtAddr::try_new(page)
                        .ok()
                        .and_then(|v| m.page_tables().translate(v))
                        .is_some_and(|t| t.prot.present)
                };
                let code = PF_USER | if write { PF_WRITE } else { 0 } | if present { PF_PRESENT } else { 0 };
                match self.page_fault(vcpu, page, code) {
                    FaultOutcome::Resolved => {}
                    FaultOutcome::Unresolved | FaultOutcome::Fatal(_) => return Err(errno::EFAULT),
                }
            }
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// Copies `len` bytes from user address `va`, faulting absent pages in
    /// (`EFAULT` for a page the program could not read either).
    pub fn read_user(&self, vcpu: u8, va: u64, len: u64) -> Result<Vec<u8>, i32> {
        if len == 0 {
            return Ok(Vec::new());
        }
        match self.copy_from_user(va, len) {
            Ok(b) => Ok(b),
            Err(_) => {
                self.fault_in(vcpu, va, len, false)?;
                self.copy_from_user(va, len)
            }
        }
    }

    /// Copies `bytes` to user address `va`, faulting pages in (and
    /// breaking copy-on-write) first; `EFAULT`, with nothing written, for
    /// a page the program could not write either.
    pub fn write_user(&self, vcpu: u8, va: u64, bytes: &[u8]) -> Result<(), i32> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self.copy_to_user(va, bytes) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.fault_in(vcpu, va, bytes.len() as u64, true)?;
                self.copy_to_user(va, bytes)
            }
        }
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL) at `va`: `ENAMETOOLONG` past `max`, `EFAULT` for an
    /// unreadable byte.
    pub fn read_user_cstr(&self, vcpu: u8, va: u64, max: usize) -> Result<Vec<u8>, i32> {
        let mut out = Vec::new();
        let mut cur = va;
        loop {
            // Up to the end of the page, so no read crosses into a page
            // the string does not reach.
            let n = PAGE_SIZE - (cur & (PAGE_SIZE - 1));
            let chunk = self.read_user(vcpu, cur, n)?;
            if let Some(i) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..i]);
                return if out.len() > max { Err(libc::ENAMETOOLONG) } else { Ok(out) };
            }
            out.extend_from_slice(&chunk);
            if out.len() > max {
                return Err(libc::ENAMETOOLONG);
            }
            cur = cur.checked_add(n).ok_or(errno::EFAULT)?;
        }
    }

    /// Runs `op` on the address space under its lock, then shoots down
    /// what it cleared or downgraded (its own flush set and anything a
    /// failure path deferred) before the lock is released.
    pub fn space_op<R>(
        &self,
        vcpu: u8,
        op: impl FnOnce(&mut Mapper) -> Result<(R, FlushSet), MmError>,
    ) -> SpaceDone<R> {
        let mut m = self.mapper();
        let r = op(&mut m);
        let mut flush = ranges(m.space_mut().take_deferred_flush());
        let result = match r {
            Ok((v, fs)) => {
                flush.extend(ranges(fs));
                Ok(v)
            }
            Err(e) => Err(e.errno()),
        };
        let fatal = self.shoot_down(vcpu, &flush);
        drop(m);
        SpaceDone { result, fatal }
    }
}
