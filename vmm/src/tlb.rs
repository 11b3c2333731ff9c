//! TLB shootdown across vCPUs.
//!
//! After a hypercall removes or downgrades translations, every vCPU must
//! flush before the call returns to the guest:
//!
//! 1. the caller bumps the generation and raises every vCPU's `want` to
//!    it (its own included), then kicks the others out of `KVM_RUN`;
//! 2. a vCPU whose `want` is ahead of its `done` injects an NMI before it
//!    re-enters the guest (never a second one while one is outstanding);
//!    the NMI handler reloads CR3 and acknowledges on a kernel port, and
//!    the vCPU records the generation it injected for as `done`;
//! 3. the caller waits until every other vCPU is done, has exited, or is
//!    itself inside a flushing hypercall (it takes its own NMI before it
//!    returns to the guest, after every change made so far); then it
//!    returns, and its own NMI is delivered before its next user
//!    instruction.
//!
//! The caller waits without holding the address-space lock, so two vCPUs
//! unmapping at once cannot deadlock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a caller waits for acknowledgements before giving up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Flush state of one vCPU.
#[derive(Debug, Default)]
pub struct VcpuFlush {
    /// Highest generation this vCPU must flush for.
    want: AtomicU64,
    /// Highest generation it has flushed for.
    done: AtomicU64,
    /// Generation of the NMI in flight (0: none).
    outstanding: AtomicU64,
    /// Its thread has finished.
    exited: AtomicBool,
    /// It is inside a hypercall that returns through the flush path.
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

    /// Step 1: asks every vCPU to flush, `me` included (it flushes on its
    /// way back to the guest); returns the generation to wait for and the
    /// other vCPUs asked.
    pub fn request(&self, me: u8) -> (u64, Vec<u8>) {
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
                    // Short slices: a kick may race with the target's
                    // entry, and stop requests do not notify this condvar.
                    let slice = (deadline - now).min(Duration::from_millis(20));
                    g = self.cv.wait_timeout(g, slice).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }

    /// Step 2, before entering the guest: the generation to inject an NMI
    /// for, if one is due and none is in flight.
    pub fn nmi_due(&self, me: u8) -> Option<u64> {
        let v = &self.vcpus[me as usize];
        let want = v.want.load(Ordering::Acquire);
        if want > v.done.load(Ordering::Acquire) && v.outstanding.load(Ordering::Acquire) == 0 {
            v.outstanding.store(want, Ordering::Release);
            Some(want)
        } else {
            None
        }
    }

    /// Does `me` have a flush request it has not acted on?
    pub fn pending(&self, me: u8) -> bool {
        let v = &self.vcpus[me as usize];
        v.want.load(Ordering::Acquire) > v.done.load(Ordering::Acquire) && v.outstanding.load(Ordering::Acquire) == 0
    }

    /// Step 2, on the NMI handler's acknowledgement.
    pub fn acked(&self, me: u8) {
        let v = &self.vcpus[me as usize];
        let gen = v.outstanding.swap(0, Ordering::AcqRel);
        v.done.fetch_max(gen, Ordering::AcqRel);
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

    #[test]
    fn single_vcpu_needs_nobody() {
        let s = Shootdown::new(1);
        let (gen, asked) = s.request(0);
        assert!(asked.is_empty());
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()));
        // The caller itself still takes the NMI.
        assert_eq!(s.nmi_due(0), Some(gen));
    }

    #[test]
    fn nmi_protocol() {
        let s = Arc::new(Shootdown::new(2));
        let (gen, asked) = s.request(0);
        assert_eq!(asked, vec![1]);
        assert!(s.pending(1));
        assert_eq!(s.nmi_due(1), Some(gen));
        // No second NMI while one is in flight, even for a newer request.
        let (gen2, _) = s.request(0);
        assert_eq!(s.nmi_due(1), None);
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.wait(gen, &[1], &|| false))
        };
        s.acked(1);
        assert_eq!(t.join().unwrap(), Ok(()));
        // The newer request still needs its own flush.
        assert_eq!(s.nmi_due(1), Some(gen2));
        s.acked(1);
        assert_eq!(s.wait(gen2, &[1], &|| false), Ok(()));
    }

    #[test]
    fn exited_or_flushing_vcpus_count_as_done() {
        let s = Shootdown::new(3);
        let (gen, asked) = s.request(0);
        s.exited(1);
        s.set_flushing_on_return(2, true);
        assert_eq!(s.wait(gen, &asked, &|| false), Ok(()));
        s.set_flushing_on_return(2, false);
        let (gen, asked) = s.request(0);
        assert_eq!(asked, vec![2]);
        assert_eq!(s.wait(gen, &asked, &|| true), Err(WaitError::Stopping));
    }
}
