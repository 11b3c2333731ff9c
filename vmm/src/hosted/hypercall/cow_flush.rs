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
//! So [`HostedKernel::page_fault_retried`], the `#PF` the stub reported
//! and the guest retries, records the page instead of shooting it down,
//! when the VM has one vCPU and the fault's flush is exactly that page
//! (a copy the VMM makes itself for a system call's access,
//! [`HostedKernel::page_fault`], is shot down at once: no instruction is
//! retried, and the VMM then writes the new frame). At the vCPU's next
//! exit, whatever its reason, before the VMM acts on it,
//! [`HostedKernel::settle_cow`] looks at the entry: Dirty (and still the
//! new frame, present, writable, in the same address space) means the
//! retry went through the new translation and nothing is left to flush;
//! anything else (the instruction faulted elsewhere first, a signal runs
//! first) gets the shootdown the fault skipped. After a kick (`KVM_RUN`
//! interrupted) the Dirty bit is not trusted: KVM's shadow MMU sets it
//! while it walks, before it installs the translation, and a pending
//! signal can make it return in between. Before a process switch no
//! guest instruction ran since the fault, so everything pending is shot
//! down there too.

use std::sync::atomic::Ordering;

use guest_mm::{GuestVirtAddr, PAGE_SIZE};

use super::kernel::HostedKernel;

/// A copy-on-write fault's page whose flush waits for the retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unflushed {
    /// The address space (its root table) the page is in.
    pub cr3: u64,
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
        if !may_defer(self.counters.len(), va, flush) {
            return false;
        }
        let page = va & !(PAGE_SIZE - 1);
        let Some(t) = GuestVirtAddr::try_new(page).ok().and_then(|v| m.space().translate(v)) else { return false };
        if !t.prot.writable {
            return false;
        }
        let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        u.push(Unflushed { cr3: m.cr3().0, va: page, pfn: t.pfn.0 });
        self.has_unflushed.store(true, Ordering::Release);
        true
    }

    /// At an exit of `vcpu` (before the VMM acts on it) or before a
    /// process switch: shoots down the deferred pages whose retry did not
    /// go through the new entry; see the module docs. `trust_dirty`: the
    /// exit was the guest's own (the retry's walk, if it set Dirty, also
    /// installed the translation); false after a kick, when KVM may have
    /// left in the middle of that fault, and before a switch, when no
    /// guest instruction ran since the fault: then every deferred page is
    /// shot down. One atomic load when nothing waits. A failed shootdown
    /// is returned (the run cannot go on).
    pub fn settle_cow(&self, vcpu: u8, trust_dirty: bool) -> Option<String> {
        if !self.has_unflushed.load(Ordering::Acquire) {
            return None;
        }
        let pending = {
            let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
            self.has_unflushed.store(false, Ordering::Release);
            std::mem::take(&mut *u)
        };
        let m = self.mapper();
        let stale: Vec<crate::hosted::tlb::Range> = pending
            .iter()
            .filter(|u| !(trust_dirty && u.cr3 == m.cr3().0 && retried_through(&m, u)))
            .map(|u| (u.va, PAGE_SIZE))
            .collect();
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

/// Whether a fault at `va` on a VM of `vcpus` vCPUs whose shootdown
/// would be `flush` may leave it to the retry: one vCPU, and the flush is
/// exactly the faulting page (nothing an earlier change deferred rides
/// along).
pub(super) fn may_defer(vcpus: usize, va: u64, flush: &[crate::hosted::tlb::Range]) -> bool {
    vcpus == 1 && flush == [(va & !(PAGE_SIZE - 1), PAGE_SIZE)]
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
