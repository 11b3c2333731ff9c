//! TLB shootdown across vCPUs.
//!
//! After a hypercall removes or downgrades translations, every vCPU must
//! drop them before the call returns to the guest:
//!
//! 1. the caller appends the changed ranges to every vCPU's pending list
//!    (its own included), bumps the generation and raises every vCPU's
//!    `want` to it, then kicks the others out of `KVM_RUN`;
//! 2. a vCPU whose `want` is ahead of its `done` takes its pending ranges,
//!    writes them into its scratch page ([`FlushList`]) and injects an NMI
//!    before it re-enters the guest (never a second one while one is in
//!    flight); the NMI handler `invlpg`s every listed page and
//!    acknowledges on a kernel port, and the vCPU records the generation
//!    it injected for as `done`;
//! 3. the caller waits until every other vCPU is done, has exited, or is
//!    itself inside a flushing hypercall (it takes its own NMI before it
//!    returns to the guest, after every change made so far); then it
//!    returns, and its own NMI is delivered before its next user
//!    instruction.
//!
//! The caller waits without holding the address-space lock, so two vCPUs
//! unmapping at once cannot deadlock. A range appended after a vCPU took
//! its list waits for that vCPU's next NMI; a range taken early is only
//! flushed early, never late (it was appended after the page tables
//! changed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::layout::PAGE_SIZE;

/// How long a caller waits for acknowledgements before giving up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// It is inside a hypercall that flushes before returning.
    flushing_on_return: AtomicBool,
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

    /// Step 1: asks every vCPU to flush `ranges`, `me` included (it flushes
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
                v.want.fetch_max(gen, Ordering::AcqRel);
                if i as u8 != me {
                    asked.push(i as u8);
                }
            }
        }
        (gen, asked)
    }

    fn satisfied(&self, i: u8, gen: u64) -> bool {
        let v = &self.vcpus[i as usize];
        v.done.load(Ordering::Acquire) >= gen
            || v.exited.load(Ordering::Acquire)
            || v.flushing_on_return.load(Ordering::Acquire)
    }

    /// Step 3: waits until every vCPU in `asked` is satisfied for `gen`.
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

    /// Step 2, before entering the guest: the list for an NMI, if one is
    /// due and none is in flight.
    pub fn nmi_due(&self, me: u8) -> Option<FlushList> {
        let v = &self.vcpus[me as usize];
        let want = v.want.load(Ordering::Acquire);
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

    /// Step 2, on the NMI handler's acknowledgement.
    pub fn acked(&self, me: u8) {
        let v = &self.vcpus[me as usize];
        if v.in_flight.swap(false, Ordering::AcqRel) {
            v.done.fetch_max(v.in_flight_gen.load(Ordering::Acquire), Ordering::AcqRel);
        }
        self.notify();
    }

    /// Marks `me` as inside (or out of) a hypercall that flushes on return.
    pub fn set_flushing_on_return(&self, me: u8, on: bool) {
        self.vcpus[me as usize].flushing_on_return.store(on, Ordering::Release);
        if on {
            self.notify();
        }
    }

    /// Marks `me`'s thread as finished.
    pub fn exited(&self, me: u8) {
        self.vcpus[me as usize].exited.store(true, Ordering::Release);
        self.notify();
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
        let (gen, asked) = s.request(0, R);
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
    fn exited_or_flushing_vcpus_count_as_done() {
        let s = Shootdown::new(3);
        let (gen, asked) = s.request(0, R);
        s.exited(1);
        s.set_flushing_on_return(2, true);
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()));
        s.set_flushing_on_return(2, false);
        let (gen, asked) = s.request(0, R);
        assert_eq!(asked, vec![2]);
        assert_eq!(s.wait(gen, &asked, &|| true), Err(WaitError::Stopping));
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
