//! The shootdown protocol's state: per-vCPU pending lists, generations,
//! acknowledgements, NMI (re-)injection and the caller's wait with its
//! re-kicks (see the module docs of `tlb`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::list::{coalesce, too_long, FlushList, Range, EVERYTHING, MAX_PENDING, MAX_RANGES};

/// How long a caller waits for acknowledgements before giving up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// More ranges were pending than [`MAX_PENDING`], or a request asked
    /// for [`EVERYTHING`]: the next list flushes everything (and `pending`
    /// is dropped).
    everything: bool,
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
    /// Guards `cv`; holds the number of callers inside [`Shootdown::wait`],
    /// so that a vCPU leaving the guest (every exit) wakes the condvar
    /// only when someone waits on it (a `notify_all` is a `futex` system
    /// call even with no waiter).
    lock: Mutex<usize>,
    cv: Condvar,
    /// Condvar notifications sent (tests).
    #[cfg(test)]
    notified: AtomicU64,
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
            lock: Mutex::new(0),
            cv: Condvar::new(),
            #[cfg(test)]
            notified: AtomicU64::new(0),
        }
    }

    fn notify(&self) {
        // Under the lock: a waiter counts itself in under it before it
        // looks at the state, so none can be missed.
        let waiters = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if *waiters > 0 {
            #[cfg(test)]
            self.notified.fetch_add(1, Ordering::Relaxed);
            self.cv.notify_all();
        }
    }

    /// Condvar notifications sent so far (tests).
    #[cfg(test)]
    pub fn notifications(&self) -> u64 {
        self.notified.load(Ordering::Relaxed)
    }

    /// Step 2: asks every vCPU to flush `ranges`, `me` included (it flushes
    /// on its way back to the guest); returns the generation to wait for
    /// and the other vCPUs asked.
    pub fn request(&self, me: u8, ranges: &[Range]) -> (u64, Vec<u8>) {
        for v in self.vcpus.iter().filter(|v| !v.exited.load(Ordering::Acquire)) {
            let mut s = v.nmi();
            if s.everything {
                continue;
            }
            if ranges.contains(&EVERYTHING) {
                s.pending = Vec::new();
                s.everything = true;
                continue;
            }
            s.pending.extend_from_slice(ranges);
            if s.pending.len() > MAX_PENDING {
                coalesce(&mut s.pending);
                if s.pending.len() > MAX_PENDING {
                    // Bounded memory: one full flush covers them all.
                    s.pending = Vec::new();
                    s.everything = true;
                }
            }
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
        *g += 1;
        let result = loop {
            let now = Instant::now();
            let late: Vec<u8> = asked.iter().copied().filter(|&i| !self.satisfied(i, gen, now)).collect();
            let Some(&vcpu) = late.first() else { break Ok(()) };
            if stopping() {
                break Err(WaitError::Stopping);
            }
            if now >= deadline {
                let nmis = self.vcpus[vcpu as usize].nmi().injected;
                let kicks = kicks[vcpu as usize];
                break Err(WaitError::Timeout(Stuck { vcpu, waited: t.ack_timeout, kicks, nmis }));
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
        };
        *g -= 1;
        result
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
        if s.may_write() && !s.everything {
            coalesce(&mut s.pending);
            // A long range costs more page by page than at once (as
            // Linux's tlb_single_page_flush_ceiling).
            s.everything = s.pending.iter().any(|&r| too_long(r));
        }
        if s.may_write() && s.everything {
            s.everything = false;
            s.pending.clear();
            s.in_flight = Some(want);
            let list = FlushList::everything();
            s.list = Some(list.clone());
            s.injecting(now, false, t);
            return Some(list);
        }
        if s.may_write() {
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

    /// Ranges waiting in `me`'s pending list (tests).
    #[cfg(test)]
    pub(super) fn pending_len(&self, me: u8) -> usize {
        self.vcpus[me as usize].nmi().pending.len()
    }

    /// Marks `me`'s thread as finished.
    pub fn exited(&self, me: u8) {
        self.vcpus[me as usize].exited.store(true, Ordering::Release);
        self.notify();
    }
}
