//! TLB shootdown across vCPUs.
//!
//! After a hypercall removes or downgrades translations, every vCPU must
//! drop them before the call returns, and before anything can reuse the
//! virtual range or the freed frames. So the whole shootdown runs while
//! the caller still holds the address-space lock ([`KvmFlusher`]):
//!
//! 1. KVM drops every translation it derived from the guest's tables (see
//!    `Vm::zap_shadow_mappings`; a shadow-paging backend shares those
//!    between vCPUs and never sees the VMM's table writes);
//! 2. the caller appends the changed ranges to every vCPU's pending list
//!    (its own included), bumps the generation and raises every vCPU's
//!    `want` to it;
//! 3. a vCPU whose `want` is ahead of its `done` writes its pending ranges
//!    into its scratch page ([`FlushList`]) and injects an NMI before it
//!    enters the guest; the NMI handler `invlpg`s every listed page and
//!    acknowledges on a kernel port, and the acknowledgement completes the
//!    generation that list was written for;
//! 4. the caller kicks the other vCPUs that are in the guest and waits
//!    until every one is done, has exited, or is outside the guest in a
//!    state where its next entry flushes (below), kicking again the ones
//!    that take long.
//!
//! A range appended after a vCPU took its list waits for that vCPU's next
//! NMI; a range taken early is only flushed early, never late (it was
//! appended after the page tables changed).
//!
//! # When there is nothing to shoot down
//!
//! A change whose flush set says nothing can be cached
//! (`guest_mm::FlushSet::may_be_cached` is false) gets no shootdown at all:
//! no zap, no request, no NMI ([`shootdown_ranges`], which every
//! hypercall and the fault path use, turns such a set into no ranges). guest-mm takes the
//! old value of every entry it drops or downgrades atomically with the
//! change (swap or compare-and-exchange) and the set records whether any
//! had its Accessed bit set, the parent entries of freed tables included.
//! A processor caches a translation or a paging-structure entry only from
//! entries whose Accessed bit is 1, setting the bit with an atomic update
//! as it walks (Intel SDM vol. 3A §4.8, §4.10.2–4.10.3; AMD APM vol. 2
//! §5.4.2, §5.5), and KVM's shadow MMU, which on this backend is what
//! walks the guest's tables, does the same in software: its walker sets
//! the bits top-down with a compare-and-exchange on each guest entry
//! (starting over when one changed) before it installs a shadow entry,
//! and its prefetch and unsync paths skip guest entries with the bit
//! clear. So an entry that went with its Accessed bit clear was never
//! used: no vCPU's TLB and no shadow page holds it, and none can later
//! (a walker's update would meet the new value). The argument in full,
//! with freed tables and split huge leaves, is in guest-mm's `flush.rs`.
//! This skips the zap for a munmap or mprotect of pages the guest never
//! accessed (mapped eagerly, e.g. a device window or page buffer, and
//! never used); pages it accessed still pay it. In
//! `tests/vmm/vmm_tlb_layers.rs` the simulated vCPUs walk real guest-mm tables
//! (setting Accessed bits) and cache only what they walked, and the caller
//! asks [`shootdown_ranges`]: skipping every shootdown fails it.
//!
//! # Lost and late kicks and NMIs
//!
//! On the nested, software-assisted KVM backend this is developed on, a
//! kick does not always get a vCPU out of `KVM_RUN`: with one kick per
//! shootdown, a vCPU spinning in user mode without exits (the built-in
//! guest's second vCPU waiting for its turn) now and then never left, and
//! the run failed after [`ACK_TIMEOUT`]; traced, a kick sometimes went
//! without an exit for milliseconds until a later one worked. Injected NMIs
//! may likewise be delivered late or, for all the VMM can tell, lost. So:
//!
//! - **The caller kicks again** every vCPU that is in the guest and has not
//!   acknowledged: after 1 ms, then with doubling intervals up to 16 ms,
//!   until [`ACK_TIMEOUT`]. Each kick makes the vCPU leave and re-enter
//!   `KVM_RUN`, which lets KVM deliver an NMI still pending, and lets the
//!   vCPU look at its state again.
//! - **The vCPU re-injects** at its next entry an NMI that has not been
//!   acknowledged 10 ms after it was injected (then after 20, 40, … up to
//!   640 ms between attempts). The VMM cannot tell a lost NMI from a late
//!   one, so a re-injection can produce a **duplicate**. The stub's handler
//!   (`hosted/stub/code.rs`) saves what it uses, `invlpg`s (which is idempotent),
//!   reads the list's count once and then the pairs one by one, and
//!   acknowledges; handlers never nest (NMIs stay blocked until its
//!   `iretq`, across exits). A duplicate is therefore harmless to the guest,
//!   and harmless to the protocol if the scratch page never changes under a
//!   handler that is part-way through it and an acknowledgement only
//!   completes a list the acknowledging handler read whole. The rules:
//!   - a re-injection rewrites the page with the very same bytes;
//!   - a *new* list is written only where no handler can be part-way
//!     through the page: right after an acknowledgement exit (the handler
//!     has read everything and the next NMI can only start after its
//!     `iretq`), or when every NMI injected has been acknowledged. Every
//!     injection counts, duplicates included, so the count of NMIs still to
//!     come is never under-estimated (KVM may merge duplicates: the count
//!     may be too high, which only costs a probe, below);
//!   - an acknowledgement completes the list in flight, if any, once; a
//!     later duplicate's acknowledgement completes nothing, or the newer
//!     list written before that duplicate started (which it read whole);
//!   - when a new list is due but an NMI may still come (and none is in
//!     flight), the vCPU waits for it, and after the re-injection delay
//!     injects a **probe**: only the count word is rewritten, to 0, so a
//!     handler part-way through the pairs is unaffected and a new one
//!     acknowledges at once. That acknowledgement is the safe point where
//!     the new list is written.
//! - **A vCPU outside the guest** (blocked on the address-space lock the
//!   caller holds, handling an exit) counts as done when its next entry
//!   will write and inject the new list, to run before any user
//!   instruction: no NMI is outstanding, or its last exit was an
//!   acknowledgement (the NMI then runs on the handler's `iretq`). It marks
//!   itself in the guest *before* it looks for a due NMI, so it sees the
//!   request. Waiting under the lock therefore does not deadlock. One
//!   that is outside with an NMI still outstanding (its next entry cannot
//!   write the new list at once) counts only after staying outside for
//!   5 ms, so a vCPU blocked in the VMM still releases the caller, while
//!   one merely bounced out by a kick is waited for. Its next entry then
//!   injects again at once (the list in flight, or a probe): that NMI runs
//!   before any user instruction, and the new list is written at its
//!   acknowledgement and delivered on the handler's `iretq`.
//!
//! What this does not do: tell a lost NMI from a late one (that would take
//! `KVM_GET_VCPU_EVENTS` on the vCPU thread), or make the caller's own
//! flush synchronous (it is the same NMI, delivered on its way back to the
//! guest). "Before any user instruction" holds where KVM delivers a
//! pending NMI at entry and on `iretq`, as KVM does; a backend that loses
//! or holds back that very NMI lets the vCPU run stale translations until
//! the re-injection. A vCPU that acknowledges nothing for [`ACK_TIMEOUT`]
//! despite the kicks and re-injections stops the run with
//! [`FlushError::Timeout`]. `tests/vmm/vmm_tlb_shootdown_stress.rs` runs the
//! protocol against a simulated KVM that loses kicks and loses, delays and
//! merges NMIs; `tests/vmm/vmm_tlb_layers.rs` runs [`shoot_down`] and
//! [`before_entry`] (the code `KvmFlusher` and the vCPU loop run) on a
//! simulated machine where each cache forgets only through its own layer,
//! so removing any layer fails it.
//!
//! A vCPU that stays out of the guest while others unmap holds at most
//! [`MAX_PENDING`] ranges; past that its next list flushes everything. A
//! request of [`EVERYTHING`] (page-table pages freed while no present
//! entry changed, so no page to `invlpg`) does the same, and so does a
//! pending range longer than [`FULL_FLUSH_CEILING`] pages (Linux's rule:
//! one full flush costs less than that many `invlpg`s).
//!
//! Files: [`list`] (ranges and the scratch-page list), [`shootdown`] (the
//! protocol state and the retry policy), [`flusher`] (what a hypercall
//! calls and what a vCPU does before each entry), and the tests.

mod flusher;
mod list;
mod shootdown;
#[cfg(test)]
mod tests;

pub use flusher::{
    before_entry, shoot_down, FlushError, Flusher, KvmFlusher, RecordingFlusher, ShootdownVcpu, ShootdownVm,
};
pub use list::{coalesce, shootdown_ranges, FlushList, Range, EVERYTHING, FULL_FLUSH_CEILING, MAX_PENDING, MAX_RANGES};
pub use shootdown::{Shootdown, Stuck, Timing, WaitError, ACK_TIMEOUT};
