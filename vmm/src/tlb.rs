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
//!    (its own included), bumps the generation, raises every vCPU's `want`
//!    to it, and kicks the vCPUs that are in the guest;
//! 3. a vCPU whose `want` is ahead of its `done` takes its pending ranges,
//!    writes them into its scratch page ([`FlushList`]) and injects an NMI
//!    before it enters the guest (never a second one while one is in
//!    flight); the NMI handler `invlpg`s every listed page and
//!    acknowledges on a kernel port, and the vCPU records the generation it
//!    injected for as `done`;
//! 4. the caller waits until every other vCPU is done, has exited, or is
//!    outside the guest: a vCPU marks itself in the guest *before* it
//!    checks for a due NMI, so one that is outside now will see the
//!    request and flush before it runs a single guest instruction. vCPUs
//!    blocked on the address-space lock are outside, so waiting under the
//!    lock cannot deadlock. The caller's own NMI is delivered before its
//!    next user instruction.
//!
//! A range appended after a vCPU took its list waits for that vCPU's next
//! NMI; a range taken early is only flushed early, never late (it was
//! appended after the page tables changed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
    /// An NMI is in flight.
    in_flight: AtomicBool,
    /// The generation that NMI completes.
    in_flight_gen: AtomicU64,
    /// Ranges not yet handed to an NMI.
    pending: Mutex<Vec<Range>>,
    /// Its thread has finished.
    exited: AtomicBool,
    /// It is in (or about to enter) the guest.
    in_guest: AtomicBool,
}

/// Shootdown state of the whole VM.
#[derive(Debug)]
pub struct Shootdown {
    vcpus: Vec<VcpuFlush>,
    generation: AtomicU64,
    lock: Mutex<()>,
    cv: Condvar,
}

/// Why a shootdown wait ended without every acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The run is stopping.
    Stopping,
    /// A vCPU did not acknowledge in time.
    Timeout {
        /// The first vCPU that did not.
        vcpu: u8,
    },
}

impl Shootdown {
    /// State for `n` vCPUs.
    pub fn new(n: u8) -> Self {
        Shootdown {
            vcpus: (0..n).map(|_| VcpuFlush::default()).collect(),
            generation: AtomicU64::new(0),
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
            v.pending.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(ranges);
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

    fn satisfied(&self, i: u8, gen: u64) -> bool {
        let v = &self.vcpus[i as usize];
        v.done.load(Ordering::Acquire) >= gen || v.exited.load(Ordering::Acquire) || !v.in_guest.load(Ordering::SeqCst)
    }

    /// The vCPUs in `asked` that are in the guest now (to kick).
    pub fn in_guest(&self, asked: &[u8]) -> Vec<u8> {
        asked.iter().copied().filter(|&i| self.vcpus[i as usize].in_guest.load(Ordering::SeqCst)).collect()
    }

    /// Step 4: waits until every vCPU in `asked` is satisfied for `gen`.
    pub fn wait(&self, gen: u64, asked: &[u8], stopping: &dyn Fn() -> bool) -> Result<(), WaitError> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match asked.iter().find(|&&i| !self.satisfied(i, gen)) {
                None => return Ok(()),
                Some(&vcpu) => {
                    if stopping() {
                        return Err(WaitError::Stopping);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(WaitError::Timeout { vcpu });
                    }
                    // Short slices: stop requests do not notify this condvar.
                    let slice = (deadline - now).min(Duration::from_millis(20));
                    g = self.cv.wait_timeout(g, slice).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }

    /// Step 3, first half: `me` is about to enter the guest. Must come
    /// before [`Shootdown::nmi_due`].
    pub fn entering(&self, me: u8) {
        self.vcpus[me as usize].in_guest.store(true, Ordering::SeqCst);
    }

    /// `me` left the guest (`KVM_RUN` returned).
    pub fn left(&self, me: u8) {
        self.vcpus[me as usize].in_guest.store(false, Ordering::SeqCst);
        self.notify();
    }

    /// Step 3, second half: the list for an NMI, if one is due and none is
    /// in flight.
    pub fn nmi_due(&self, me: u8) -> Option<FlushList> {
        let v = &self.vcpus[me as usize];
        let want = v.want.load(Ordering::SeqCst);
        if want <= v.done.load(Ordering::Acquire) || v.in_flight.load(Ordering::Acquire) {
            return None;
        }
        let mut pending = v.pending.lock().unwrap_or_else(|e| e.into_inner());
        coalesce(&mut pending);
        let take = pending.len().min(MAX_RANGES);
        let ranges: Vec<Range> = pending.drain(..take).collect();
        // With ranges left over, this NMI does not complete `want`: the
        // next one (right after its acknowledgement) does.
        let gen = if pending.is_empty() { want } else { v.done.load(Ordering::Acquire) };
        v.in_flight_gen.store(gen, Ordering::Release);
        v.in_flight.store(true, Ordering::Release);
        Some(FlushList::new(&ranges))
    }

    /// Step 3, on the NMI handler's acknowledgement.
    pub fn acked(&self, me: u8) {
        let v = &self.vcpus[me as usize];
        if v.in_flight.swap(false, Ordering::AcqRel) {
            v.done.fetch_max(v.in_flight_gen.load(Ordering::Acquire), Ordering::AcqRel);
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
    #[error("vCPU {0} did not acknowledge a TLB shootdown within {ACK_TIMEOUT:?}")]
    Timeout(u8),
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

/// The real shootdown: steps 1, 2 and 4 of the module docs.
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
        self.ctl.kick(&self.tlb.in_guest(&asked));
        let ctl = self.ctl.clone();
        self.tlb.wait(gen, &asked, &|| ctl.is_stopping()).map_err(|e| match e {
            WaitError::Stopping => FlushError::Stopping,
            WaitError::Timeout { vcpu } => FlushError::Timeout(vcpu),
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
    use std::sync::Arc;

    use super::*;

    const R: &[Range] = &[(0x1000, 0x2000)];

    #[test]
    fn single_vcpu_needs_nobody_but_itself() {
        let s = Shootdown::new(1);
        s.entering(0);
        let (gen, asked) = s.request(0, R);
        assert!(asked.is_empty());
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()));
        assert_eq!(s.nmi_due(0), Some(FlushList::new(R)));
        s.acked(0);
        assert_eq!(s.nmi_due(0), None);
    }

    #[test]
    fn nmi_protocol() {
        let s = Arc::new(Shootdown::new(2));
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
            std::thread::spawn(move || s.wait(gen, &[1], &|| false))
        };
        s.acked(1);
        assert_eq!(t.join().unwrap(), Ok(()));
        // The newer request still needs its own flush, of its own range.
        assert_eq!(s.nmi_due(1), Some(FlushList::new(&[(0x9000, 0x1000)])));
        s.acked(1);
        assert_eq!(s.wait(gen2, &[1], &|| false), Ok(()));
    }

    #[test]
    fn long_lists_take_several_nmis() {
        let s = Shootdown::new(1);
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
        assert_eq!(s.wait(gen, &[0], &|| false), Ok(()));
    }

    #[test]
    fn exited_or_outside_vcpus_count_as_done() {
        let s = Shootdown::new(3);
        s.entering(1);
        s.entering(2);
        let (gen, asked) = s.request(0, R);
        s.exited(1);
        s.left(2);
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()));
        // vCPU 2 still flushes before it runs guest code again.
        s.entering(2);
        assert!(s.nmi_due(2).is_some());
        let (gen, asked) = s.request(0, R);
        assert_eq!(asked, vec![2]);
        assert_eq!(s.wait(gen, &asked, &|| true), Err(WaitError::Stopping));
    }

    #[test]
    fn a_wait_cannot_miss_a_vcpu_about_to_enter() {
        // The vCPU marks itself in the guest, then looks for a due NMI; the
        // caller raises `want`, then looks at `in_guest`. Whatever the
        // interleaving, either the caller waits for it or it sees the NMI.
        let s = Shootdown::new(2);
        let (gen, asked) = s.request(0, R);
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()), "outside: satisfied");
        s.entering(1);
        assert!(s.nmi_due(1).is_some(), "and it flushes before running");
    }

    #[test]
    fn lists_and_coalescing() {
        let l = FlushList::new(&[(0x1234, 0x10), (0x5000, 0x2001)]);
        assert_eq!(l.0, vec![2, 0x1000, 1, 0x5000, 3]);
        assert_eq!(l.to_bytes().len(), 5 * 8);
        let mut r = vec![(0x3000, 0x1000), (0x1000, 0x2000), (0x8000, 0x1000), (0x1800, 0x100)];
        coalesce(&mut r);
        assert_eq!(r, vec![(0x1000, 0x3000), (0x8000, 0x1000)]);
    }
}
