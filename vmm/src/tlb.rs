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
//!   (`kernel/stub.rs`) saves what it uses, `invlpg`s (which is idempotent),
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
//! [`FlushError::Timeout`]. `tests/vmm_tlb_shootdown_stress.rs` runs the
//! protocol against a simulated KVM that loses kicks and loses, delays and
//! merges NMIs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::control::RunControl;
use crate::layout::PAGE_SIZE;
use crate::vstate::vm::Vm;

/// How long a caller waits for acknowledgements before giving up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// A range of virtual addresses to invalidate: start and length in bytes.
pub type Range = (u64, u64);

/// Ranges one NMI's list can hold: `(4096 - 8) / 16`.
pub const MAX_RANGES: usize = 255;

/// The delays of the retry policy (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a caller waits for acknowledgements before giving up.
    pub ack_timeout: Duration,
    /// First re-kick after the request; the interval then doubles.
    pub rekick_first: Duration,
    /// Longest interval between re-kicks.
    pub rekick_max: Duration,
    /// An unacknowledged NMI is re-injected this long after it was
    /// injected; the delay then doubles.
    pub redeliver_first: Duration,
    /// Longest delay between re-injections.
    pub redeliver_max: Duration,
    /// How long a vCPU with an NMI outstanding must stay outside the guest
    /// to count as done.
    pub blocked_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ack_timeout: ACK_TIMEOUT,
            rekick_first: Duration::from_millis(1),
            rekick_max: Duration::from_millis(16),
            redeliver_first: Duration::from_millis(10),
            redeliver_max: Duration::from_millis(640),
            blocked_after: Duration::from_millis(5),
        }
    }
}

/// What the NMI handler reads from a vCPU's scratch page: a count, then
/// `count` pairs of (page-aligned start, number of pages). A count of
/// `u64::MAX` means "everything" (reload CR3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushList(Vec<u64>);

impl FlushList {
    /// The list for `ranges` (at most [`MAX_RANGES`]).
    pub fn new(ranges: &[Range]) -> Self {
        let mut w = Vec::with_capacity(1 + 2 * ranges.len());
        w.push(ranges.len() as u64);
        for &(start, len) in ranges {
            let first = start & !(PAGE_SIZE - 1);
            let end = start.saturating_add(len).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
            w.push(first);
            w.push((end - first) / PAGE_SIZE);
        }
        FlushList(w)
    }

    /// The bytes to write at the start of the scratch page.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

/// Sorts and merges overlapping or adjacent ranges.
pub fn coalesce(ranges: &mut Vec<Range>) {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for &(s, l) in ranges.iter() {
        if let Some(last) = out.last_mut() {
            let last_end = last.0.saturating_add(last.1);
            if s <= last_end {
                last.1 = last_end.max(s.saturating_add(l)) - last.0;
                continue;
            }
        }
        out.push((s, l));
    }
    *ranges = out;
}

/// Flush state of one vCPU.
#[derive(Debug, Default)]
struct VcpuFlush {
    /// Highest generation this vCPU must flush for.
    want: AtomicU64,
    /// Highest generation it has flushed for.
    done: AtomicU64,
    /// Its thread has finished.
    exited: AtomicBool,
    /// It is in (or about to enter) the guest.
    in_guest: AtomicBool,
    /// Its NMIs.
    nmi: Mutex<NmiState>,
}

impl VcpuFlush {
    fn nmi(&self) -> MutexGuard<'_, NmiState> {
        self.nmi.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One vCPU's NMI bookkeeping (see the module docs for the rules).
#[derive(Debug, Default)]
struct NmiState {
    /// Ranges not yet written to a list.
    pending: Vec<Range>,
    /// The generation the list in the scratch page completes, until an
    /// acknowledgement.
    in_flight: Option<u64>,
    /// The list in the scratch page (re-injections write it again).
    list: Option<FlushList>,
    /// NMIs injected and not acknowledged, duplicates and probes included:
    /// never fewer than the NMIs that may still run.
    unacked: u32,
    /// Its last exit was an acknowledgement: no handler is part-way through
    /// the scratch page.
    at_ack: bool,
    /// When the last NMI was injected.
    injected_at: Option<Instant>,
    /// Re-inject after this long without an acknowledgement.
    redeliver_after: Duration,
    /// When it last left the guest.
    left_at: Option<Instant>,
    /// A caller counted it as done while an NMI was outstanding: inject
    /// again at the next entry without waiting for the delay.
    redeliver_now: bool,
    /// NMIs injected in all (for the timeout message).
    injected: u64,
}

impl NmiState {
    /// May a new list be written into the scratch page now?
    fn may_write(&self) -> bool {
        self.in_flight.is_none() && (self.unacked == 0 || self.at_ack)
    }

    /// Records an injection; `again` for a re-injection or probe.
    fn injecting(&mut self, now: Instant, again: bool, t: &Timing) {
        self.unacked = self.unacked.saturating_add(1);
        self.injected += 1;
        self.injected_at = Some(now);
        self.redeliver_now = false;
        self.redeliver_after = if again {
            (self.redeliver_after * 2).clamp(t.redeliver_first, t.redeliver_max)
        } else {
            t.redeliver_first
        };
    }
}

/// Shootdown state of the whole VM.
#[derive(Debug)]
pub struct Shootdown {
    vcpus: Vec<VcpuFlush>,
    generation: AtomicU64,
    timing: Timing,
    lock: Mutex<()>,
    cv: Condvar,
}

/// A vCPU that did not acknowledge, and what was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// The first vCPU that did not acknowledge.
    pub vcpu: u8,
    /// How long the caller waited.
    pub waited: Duration,
    /// Kicks sent to it (the first included).
    pub kicks: u32,
    /// NMIs injected into it during the run, re-injections included.
    pub nmis: u64,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vCPU {} did not acknowledge a TLB shootdown within {:?} (kicks sent: {}; NMIs injected into it in this \
             run: {})",
            self.vcpu, self.waited, self.kicks, self.nmis
        )
    }
}

/// Why a shootdown wait ended without every acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The run is stopping.
    Stopping,
    /// A vCPU did not acknowledge in time.
    Timeout(Stuck),
}

impl Shootdown {
    /// State for `n` vCPUs.
    pub fn new(n: u8) -> Self {
        Self::with_timing(n, Timing::default())
    }

    /// State for `n` vCPUs with other delays (tests).
    pub fn with_timing(n: u8, timing: Timing) -> Self {
        Shootdown {
            vcpus: (0..n).map(|_| VcpuFlush::default()).collect(),
            generation: AtomicU64::new(0),
            timing,
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    fn notify(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
    }

    /// Step 2: asks every vCPU to flush `ranges`, `me` included (it flushes
    /// on its way back to the guest); returns the generation to wait for
    /// and the other vCPUs asked.
    pub fn request(&self, me: u8, ranges: &[Range]) -> (u64, Vec<u8>) {
        for v in self.vcpus.iter().filter(|v| !v.exited.load(Ordering::Acquire)) {
            v.nmi().pending.extend_from_slice(ranges);
        }
        let gen = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut asked = Vec::new();
        for (i, v) in self.vcpus.iter().enumerate() {
            if !v.exited.load(Ordering::Acquire) {
                v.want.fetch_max(gen, Ordering::SeqCst);
                if i as u8 != me {
                    asked.push(i as u8);
                }
            }
        }
        (gen, asked)
    }

    fn satisfied(&self, i: u8, gen: u64, now: Instant) -> bool {
        let v = &self.vcpus[i as usize];
        if v.done.load(Ordering::Acquire) >= gen || v.exited.load(Ordering::Acquire) {
            return true;
        }
        // Outside, it sees `gen` when it next enters (`entering` comes
        // before `nmi_due`, and `want` was raised before this load).
        if v.in_guest.load(Ordering::SeqCst) {
            return false;
        }
        let mut s = v.nmi();
        if s.may_write() {
            return true;
        }
        let blocked = s.left_at.is_some_and(|t| now.saturating_duration_since(t) >= self.timing.blocked_after);
        // Counted on: its next entry injects at once, whatever the delay.
        s.redeliver_now |= blocked;
        blocked
    }

    /// The vCPUs in `asked` that are in the guest now (to kick).
    pub fn in_guest(&self, asked: &[u8]) -> Vec<u8> {
        asked.iter().copied().filter(|&i| self.vcpus[i as usize].in_guest.load(Ordering::SeqCst)).collect()
    }

    /// Step 4: kicks the vCPUs in `asked` that are in the guest (with
    /// `kick`), then waits until every one is satisfied for `gen`, kicking
    /// again the ones in the guest that take long.
    pub fn wait(
        &self,
        gen: u64,
        asked: &[u8],
        stopping: &dyn Fn() -> bool,
        kick: &dyn Fn(&[u8]),
    ) -> Result<(), WaitError> {
        let t = &self.timing;
        let start = Instant::now();
        let deadline = start + t.ack_timeout;
        let mut next_kick = start;
        let mut every = t.rekick_first;
        let mut kicks = vec![0u32; self.vcpus.len()];
        let mut round = 0u32;
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let late: Vec<u8> = asked.iter().copied().filter(|&i| !self.satisfied(i, gen, now)).collect();
            let Some(&vcpu) = late.first() else { return Ok(()) };
            if stopping() {
                return Err(WaitError::Stopping);
            }
            if now >= deadline {
                let nmis = self.vcpus[vcpu as usize].nmi().injected;
                let kicks = kicks[vcpu as usize];
                return Err(WaitError::Timeout(Stuck { vcpu, waited: t.ack_timeout, kicks, nmis }));
            }
            if now >= next_kick {
                let targets = self.in_guest(&late);
                round += 1;
                if round == 2 && !targets.is_empty() {
                    log::debug!(
                        "vCPUs {targets:?}: no TLB-shootdown acknowledgement after {:?}; kicking again",
                        now - start
                    );
                }
                for &i in &targets {
                    kicks[i as usize] += 1;
                }
                drop(g);
                kick(&targets);
                next_kick = now + every;
                every = (every * 2).min(t.rekick_max);
                // Notifications sent meanwhile were missed: look again.
                g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Short slices: stop requests and the time-based rules do not
            // notify this condvar.
            let slice = (next_kick.min(deadline) - now).min(t.blocked_after.max(Duration::from_micros(100)));
            g = self.cv.wait_timeout(g, slice).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Step 3, first half: `me` is about to enter the guest. Must come
    /// before [`Shootdown::nmi_due`].
    pub fn entering(&self, me: u8) {
        self.vcpus[me as usize].in_guest.store(true, Ordering::SeqCst);
    }

    /// `me` left the guest (`KVM_RUN` returned).
    pub fn left(&self, me: u8) {
        let v = &self.vcpus[me as usize];
        {
            let mut s = v.nmi();
            s.at_ack = false;
            s.left_at = Some(Instant::now());
        }
        v.in_guest.store(false, Ordering::SeqCst);
        self.notify();
    }

    /// Step 3, second half: the list to write into `me`'s scratch page
    /// before injecting an NMI, if one is due: a new list, the list in
    /// flight again, or a probe (see the module docs).
    pub fn nmi_due(&self, me: u8) -> Option<FlushList> {
        let v = &self.vcpus[me as usize];
        let want = v.want.load(Ordering::SeqCst);
        let done = v.done.load(Ordering::Acquire);
        if want <= done {
            return None;
        }
        let t = &self.timing;
        let now = Instant::now();
        let mut s = v.nmi();
        if s.may_write() {
            coalesce(&mut s.pending);
            let take = s.pending.len().min(MAX_RANGES);
            let ranges: Vec<Range> = s.pending.drain(..take).collect();
            // With ranges left over, this NMI does not complete `want`: the
            // next one (right after its acknowledgement) does.
            s.in_flight = Some(if s.pending.is_empty() { want } else { done });
            let list = FlushList::new(&ranges);
            s.list = Some(list.clone());
            s.injecting(now, false, t);
            return Some(list);
        }
        // An NMI is in flight, or one may still run: the page must not
        // change under it.
        let since = now.saturating_duration_since(s.injected_at.unwrap_or(now));
        if since < s.redeliver_after && !s.redeliver_now {
            return None;
        }
        let (list, what) = match (s.in_flight, &s.list) {
            (Some(_), Some(list)) => (list.clone(), "it again"),
            // A probe: the count word only.
            _ => (FlushList::new(&[]), "a probe"),
        };
        let outstanding = s.unacked;
        s.injecting(now, true, t);
        drop(s);
        log::debug!("vCPU {me}: NMI not acknowledged after {since:?} ({outstanding} outstanding): injecting {what}");
        Some(list)
    }

    /// Step 3, on the NMI handler's acknowledgement.
    pub fn acked(&self, me: u8) {
        let v = &self.vcpus[me as usize];
        {
            let mut s = v.nmi();
            s.unacked = s.unacked.saturating_sub(1);
            s.at_ack = true;
            // An NMI ran: what it owes is written at this exit if needed.
            s.redeliver_now = false;
            if let Some(gen) = s.in_flight.take() {
                v.done.fetch_max(gen, Ordering::AcqRel);
            }
        }
        self.notify();
    }

    /// Marks `me`'s thread as finished.
    pub fn exited(&self, me: u8) {
        self.vcpus[me as usize].exited.store(true, Ordering::Release);
        self.notify();
    }
}

/// Why a shootdown failed (the run cannot go on safely).
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// KVM refused to drop its translations.
    #[error("cannot drop KVM's shadow translations: {0}")]
    Zap(#[source] crate::vstate::vm::VmError),
    /// A vCPU did not acknowledge.
    #[error("{0}")]
    Timeout(Stuck),
    /// The run is stopping.
    #[error("the run is stopping")]
    Stopping,
}

/// Makes every vCPU drop translations (called with the address-space lock
/// held, right after the page tables changed).
pub trait Flusher: Send + Sync {
    /// Flushes `ranges` on every vCPU; `me` (the caller) flushes before it
    /// next enters the guest.
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError>;
}

/// The real shootdown: steps 1, 2 and 4 of the module docs (the kicks
/// are `RunControl`'s).
#[derive(Debug)]
pub struct KvmFlusher {
    /// The VM.
    pub vm: Arc<Vm>,
    /// Shootdown state.
    pub tlb: Arc<Shootdown>,
    /// Run control (kicks, stop).
    pub ctl: Arc<RunControl>,
}

impl Flusher for KvmFlusher {
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
        self.vm.zap_shadow_mappings().map_err(FlushError::Zap)?;
        let (gen, asked) = self.tlb.request(me, ranges);
        let ctl = &self.ctl;
        self.tlb.wait(gen, &asked, &|| ctl.is_stopping(), &|who| ctl.kick(who)).map_err(|e| match e {
            WaitError::Stopping => FlushError::Stopping,
            WaitError::Timeout(stuck) => FlushError::Timeout(stuck),
        })
    }
}

/// A flusher for tests without KVM: records what it was asked.
#[derive(Debug, Default)]
pub struct RecordingFlusher(pub Mutex<Vec<(u8, Vec<Range>)>>);

impl Flusher for RecordingFlusher {
    fn flush(&self, me: u8, ranges: &[Range]) -> Result<(), FlushError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((me, ranges.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    use super::*;

    const R: &[Range] = &[(0x1000, 0x2000)];
    const HOUR: Duration = Duration::from_secs(3600);

    /// Re-injection and the outside rule's delay never fire.
    fn patient() -> Timing {
        Timing { redeliver_first: HOUR, redeliver_max: HOUR, blocked_after: HOUR, ..Timing::default() }
    }

    /// Re-injection is due at every entry.
    fn eager() -> Timing {
        Timing { redeliver_first: Duration::ZERO, redeliver_max: Duration::ZERO, ..patient() }
    }

    fn no_kick(_: &[u8]) {}

    #[test]
    fn single_vcpu_needs_nobody_but_itself() {
        let s = Shootdown::with_timing(1, patient());
        s.entering(0);
        let (gen, asked) = s.request(0, R);
        assert!(asked.is_empty());
        assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()));
        assert_eq!(s.nmi_due(0), Some(FlushList::new(R)));
        s.acked(0);
        assert_eq!(s.nmi_due(0), None);
    }

    #[test]
    fn nmi_protocol() {
        let s = Arc::new(Shootdown::with_timing(2, patient()));
        s.entering(1);
        let (gen, asked) = s.request(0, R);
        assert_eq!(s.in_guest(&asked), vec![1]);
        assert_eq!(asked, vec![1]);
        assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
        // No second NMI while one is in flight, even for a newer request.
        let (gen2, _) = s.request(0, &[(0x9000, 0x1000)]);
        assert_eq!(s.nmi_due(1), None);
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.wait(gen, &[1], &|| false, &no_kick))
        };
        s.acked(1);
        assert_eq!(t.join().unwrap(), Ok(()));
        // The newer request still needs its own flush, of its own range.
        assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x9000, 0x1000)])));
        s.acked(1);
        assert_eq!(s.wait(gen2, &[1], &|| false, &no_kick), Ok(()));
    }

    #[test]
    fn long_lists_take_several_nmis() {
        let s = Shootdown::with_timing(1, patient());
        let many: Vec<Range> = (0..300u64).map(|i| (i * 0x10000, 0x1000)).collect();
        let (gen, _) = s.request(0, &many);
        let first = s.nmi_due(0).unwrap();
        assert_eq!(first.0[0], MAX_RANGES as u64);
        s.acked(0);
        // Not done yet: a second NMI carries the rest.
        let second = s.nmi_due(0).unwrap();
        assert_eq!(second.0[0], 300 - MAX_RANGES as u64);
        s.acked(0);
        assert_eq!(s.nmi_due(0), None);
        assert_eq!(s.wait(gen, &[0], &|| false, &no_kick), Ok(()));
    }

    #[test]
    fn exited_or_outside_vcpus_count_as_done() {
        let s = Shootdown::with_timing(3, patient());
        s.entering(1);
        s.entering(2);
        let (gen, asked) = s.request(0, R);
        s.exited(1);
        s.left(2);
        assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()));
        // vCPU 2 still flushes before it runs guest code again.
        s.entering(2);
        assert!(s.nmi_due(2).is_some());
        let (gen, asked) = s.request(0, R);
        assert_eq!(asked, vec![2]);
        assert_eq!(s.wait(gen, &asked, &|| true, &no_kick), Err(WaitError::Stopping));
    }

    #[test]
    fn a_wait_cannot_miss_a_vcpu_about_to_enter() {
        // The vCPU marks itself in the guest, then looks for a due NMI; the
        // caller raises `want`, then looks at `in_guest`. Whatever the
        // interleaving, either the caller waits for it or it sees the NMI.
        let s = Shootdown::with_timing(2, patient());
        let (gen, asked) = s.request(0, R);
        assert_eq!(s.wait(gen, &asked, &|| false, &no_kick), Ok(()), "outside: satisfied");
        s.entering(1);
        assert!(s.nmi_due(1).is_some(), "and it flushes before running");
    }

    #[test]
    fn an_nmi_is_injected_again_with_the_same_list_until_acknowledged() {
        let s = Shootdown::with_timing(2, eager());
        s.entering(1);
        let (gen, _) = s.request(0, R);
        let list = FlushList::new(R);
        assert_eq!(s.nmi_due(1), Some(list.clone()));
        // Lost (or late): the next entries inject it again, the same bytes,
        // even with a newer request pending (a handler may be part-way
        // through the page).
        s.left(1);
        s.entering(1);
        assert_eq!(s.nmi_due(1), Some(list.clone()));
        let (gen2, _) = s.request(0, &[(0x9000, 0x1000)]);
        s.left(1);
        s.entering(1);
        assert_eq!(s.nmi_due(1), Some(list));
        assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Err(WaitError::Stopping));
        // The first acknowledgement completes the list; the new one is
        // written at that exit, before a duplicate can start.
        s.acked(1);
        assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Ok(()));
        let list2 = FlushList::new(&[(0x9000, 0x1000)]);
        assert_eq!(s.nmi_due(1), Some(list2.clone()));
        // A duplicate then runs on the new list, whole: its acknowledgement
        // completes it.
        s.acked(1);
        assert_eq!(s.wait(gen2, &[1], &|| true, &no_kick), Ok(()));
        assert_eq!(s.nmi_due(1), None);
        // Further duplicates may still come (two were injected): a new
        // list waits for a safe point, and a probe (count word only)
        // makes one.
        let (gen3, _) = s.request(0, &[(0x20000, 0x1000)]);
        s.left(1);
        s.entering(1);
        assert_eq!(s.nmi_due(1), Some(FlushList::new(&[])));
        s.acked(1);
        assert_eq!(s.wait(gen3, &[1], &|| true, &no_kick), Err(WaitError::Stopping), "a probe completes nothing");
        assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x20000, 0x1000)])));
        s.acked(1);
        assert_eq!(s.wait(gen3, &[1], &|| true, &no_kick), Ok(()));
    }

    #[test]
    fn no_new_list_while_a_duplicate_may_run() {
        let s = Shootdown::with_timing(2, Timing { redeliver_first: Duration::from_millis(5), ..patient() });
        s.entering(1);
        s.request(0, R);
        assert!(s.nmi_due(1).is_some());
        std::thread::sleep(Duration::from_millis(6));
        s.left(1);
        s.entering(1);
        assert_eq!(s.nmi_due(1), Some(FlushList::new(R)), "injected again after 5 ms");
        s.acked(1);
        // The duplicate may now be part-way through the page (the vCPU
        // left without an acknowledgement): a new list waits for the next
        // acknowledgement; at most a probe goes in (after 10 ms).
        s.left(1);
        s.entering(1);
        s.request(0, &[(0x9000, 0x1000)]);
        let due = s.nmi_due(1);
        assert!(due.is_none() || due == Some(FlushList::new(&[])), "{due:?}");
        s.acked(1);
        assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x9000, 0x1000)])));
    }

    #[test]
    fn the_caller_kicks_again_with_backoff_until_the_vcpu_leaves() {
        let timing =
            Timing { rekick_first: Duration::from_millis(1), rekick_max: Duration::from_millis(4), ..patient() };
        let s = Arc::new(Shootdown::with_timing(2, timing));
        s.entering(1);
        let (gen, asked) = s.request(0, R);
        let kicks = Arc::new(AtomicU32::new(0));
        let vcpu = {
            let (s, kicks) = (s.clone(), kicks.clone());
            std::thread::spawn(move || {
                // The first kicks are lost.
                while kicks.load(Ordering::SeqCst) < 5 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                s.left(1);
                s.entering(1);
                assert!(s.nmi_due(1).is_some());
                s.acked(1);
            })
        };
        let t0 = Instant::now();
        let kick = |who: &[u8]| {
            assert_eq!(who, [1]);
            kicks.fetch_add(1, Ordering::SeqCst);
        };
        assert_eq!(s.wait(gen, &asked, &|| false, &kick), Ok(()));
        vcpu.join().unwrap();
        // Kicks at 0, 1, 3, 7 and 11 ms at the earliest.
        assert!(t0.elapsed() >= Duration::from_millis(11));
    }

    #[test]
    fn a_vcpu_blocked_outside_with_an_nmi_outstanding_releases_the_caller_later() {
        let blocked_after = Duration::from_millis(30);
        let s = Shootdown::with_timing(2, Timing { blocked_after, ..patient() });
        s.entering(1);
        let (gen, _) = s.request(0, R);
        assert!(s.nmi_due(1).is_some());
        // It left without acknowledging (a kick, or a hypercall that now
        // waits for the lock the caller holds): bounced out by a kick, it
        // is waited for...
        s.left(1);
        assert_eq!(s.wait(gen, &[1], &|| true, &no_kick), Err(WaitError::Stopping));
        // ... and staying out, it counts as done (no deadlock).
        let t0 = Instant::now();
        assert_eq!(s.wait(gen, &[1], &|| false, &no_kick), Ok(()));
        assert!(t0.elapsed() >= blocked_after - Duration::from_millis(1));
        // Counted on, it injects again as soon as it enters.
        s.entering(1);
        assert_eq!(s.nmi_due(1), Some(FlushList::new(R)));
    }

    #[test]
    fn a_timeout_says_who_and_what_was_tried() {
        let timing = Timing { ack_timeout: Duration::from_millis(30), ..patient() };
        let s = Shootdown::with_timing(2, timing);
        s.entering(1);
        let (gen, asked) = s.request(0, R);
        assert!(s.nmi_due(1).is_some());
        let err = s.wait(gen, &asked, &|| false, &no_kick).unwrap_err();
        let WaitError::Timeout(stuck) = err else { panic!("{err:?}") };
        assert_eq!((stuck.vcpu, stuck.nmis), (1, 1));
        assert!(stuck.kicks >= 3, "{stuck:?}");
        let msg = FlushError::Timeout(stuck).to_string();
        assert!(msg.starts_with("vCPU 1 did not acknowledge a TLB shootdown within 30ms (kicks sent: "), "{msg}");
        assert!(msg.ends_with("; NMIs injected into it in this run: 1)"), "{msg}");
    }

    #[test]
    fn lists_and_coalescing() {
        let l = FlushList::new(&[(0x1234, 0x10), (0x5000, 0x2001)]);
        assert_eq!(l.0, vec![2, 0x1000, 1, 0x5000, 3]);
        assert_eq!(l.to_bytes().len(), 5 * 8);
        assert_eq!(FlushList::new(&[]).to_bytes(), 0u64.to_le_bytes(), "a probe is the count word only");
        let mut r = vec![(0x3000, 0x1000), (0x1000, 0x2000), (0x8000, 0x1000), (0x1800, 0x100)];
        coalesce(&mut r);
        assert_eq!(r, vec![(0x1000, 0x3000), (0x8000, 0x1000)]);
    }
}
