//! The flush of a copy-on-write fault's old entry, left to the retry.
//!
//! A write fault that replaces the faulting page's present, read-only
//! entry (a copy-on-write copy of a fork-shared page or of the zero page)
//! must drop the old translation before anything can read through it:
//! the old frame may later be written by its other owner, and the new
//! one by the VMM. Linux flushes it with one `invlpg`; here every
//! shootdown starts with a memory-slot zap that drops every shadow page
//! on a shadow-paging backend (`Vm::zap_shadow_mappings`), about 300 µs
//! per copy, 170 times Linux's whole copy-on-write fault.
//!
//! With one vCPU the flush can wait for the faulting instruction itself.
//! The vCPU resumes at that instruction, which writes the page: the
//! write cannot go through the old read-only translation, so the walker
//! (the CPU's, or KVM's shadow MMU on this backend) reads the new entry
//! and sets its Dirty bit, which guest-mm never sets when it writes an
//! entry (a `#PF` also drops the faulting address's TLB entry on its own,
//! Intel SDM vol. 3A §4.10.4.1). Until that write, only the faulting
//! thread runs, natively, and nothing writes either frame (another
//! process, another thread or the VMM would need an exit first), so a
//! read through the old translation sees what the copy holds.
//!
//! So [`HostedKernel::page_fault`] records the page instead of shooting
//! it down, when the VM has one vCPU and the fault's flush is exactly that
//! page; and at the vCPU's next exit, whatever its reason, before the VMM
//! acts on it, and before a process switch, [`HostedKernel::settle_cow`]
//! looks at the entry: Dirty (and still the new frame, present and
//! writable) means the retry went through the new translation and
//! nothing is left to flush; anything else (a kick came first, the
//! instruction faulted elsewhere, a signal runs first) gets the shootdown
//! the fault skipped.

use std::sync::atomic::Ordering;

use guest_mm::{GuestVirtAddr, PAGE_SIZE};

use super::kernel::HostedKernel;

/// A copy-on-write fault's page whose flush waits for the retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unflushed {
    /// The page.
    pub va: u64,
    /// The frame of its new entry.
    pub pfn: u64,
}

impl HostedKernel {
    /// Whether the flush of a write fault at `va` whose shootdown would be
    /// `flush` may wait for the retry: one vCPU, and the flush is exactly
    /// the faulting page. Records it if so.
    pub(super) fn defer_cow_flush(
        &self,
        m: &crate::hosted::mapper::Mapper,
        va: u64,
        flush: &[crate::hosted::tlb::Range],
    ) -> bool {
        let page = va & !(PAGE_SIZE - 1);
        if self.counters.len() != 1 || flush != [(page, PAGE_SIZE)] {
            return false;
        }
        let Some(t) = GuestVirtAddr::try_new(page).ok().and_then(|v| m.space().translate(v)) else { return false };
        if !t.prot.writable {
            return false;
        }
        let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        u.push(Unflushed { va: page, pfn: t.pfn.0 });
        self.has_unflushed.store(true, Ordering::Release);
        true
    }

    /// At an exit of `vcpu` (before the VMM acts on it) or before a
    /// process switch: shoots down the deferred pages whose retry did not
    /// go through the new entry; see the module docs. One atomic load when
    /// nothing waits. A failed shootdown is returned (the run cannot go on).
    pub fn settle_cow(&self, vcpu: u8) -> Option<String> {
        if !self.has_unflushed.load(Ordering::Acquire) {
            return None;
        }
        let pending = std::mem::take(&mut *self.unflushed.lock().unwrap_or_else(|e| e.into_inner()));
        self.has_unflushed.store(false, Ordering::Release);
        let m = self.mapper();
        let stale: Vec<crate::hosted::tlb::Range> =
            pending.iter().filter(|u| !retried_through(&m, u)).map(|u| (u.va, PAGE_SIZE)).collect();
        if !stale.is_empty() {
            log::trace!("vCPU {vcpu}: {} copy-on-write flush(es) not settled by the retry", stale.len());
            self.cow_flushes_left.fetch_add(stale.len() as u64, Ordering::Relaxed);
        }
        self.shoot_down(vcpu, &stale)
    }

    /// Copy-on-write flushes the retry did not settle (shot down at the
    /// next exit instead).
    pub fn cow_flushes_left(&self) -> u64 {
        self.cow_flushes_left.load(Ordering::Relaxed)
    }
}

/// Whether `u`'s entry is still its new one (present, writable, the same
/// frame) with the Dirty bit a write through it sets.
fn retried_through(m: &crate::hosted::mapper::Mapper, u: &Unflushed) -> bool {
    let Ok(va) = GuestVirtAddr::try_new(u.va) else { return false };
    m.space().page_tables().leaves(va, PAGE_SIZE).first().is_some_and(|l| {
        l.va == va
            && l.size == guest_mm::PageSize::Size4K
            && l.is_present()
            && l.is_dirty()
            && l.raw & 2 != 0
            && (l.raw & 0x000f_ffff_ffff_f000) >> 12 == u.pfn
    })
}
