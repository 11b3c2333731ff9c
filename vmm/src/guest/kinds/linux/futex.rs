//! Futex waiters: who waits on which word, and waking and requeueing
//! them, as Linux's futex hash does. A word is named by a [`FutexKey`]:
//! a private mapping's word (and every `FUTEX_PRIVATE_FLAG` one) by its
//! process and virtual address, a shared mapping's word by the guest
//! physical address of its byte (so processes that share the page meet
//! on it, as Linux keys shared futexes by their page).
//!
//! What this module does not do: read or compare the word, time out or
//! interrupt a wait, or park a thread (the `futex` call does that; a
//! waiter parks as a blocked process does, but only a wake, a signal or
//! its deadline makes it runnable again, [`Futexes::take_woken`] naming
//! the woken; it finds here whether it was woken when it runs again). No
//! priority-inheritance futexes.

use std::collections::BTreeMap;
use std::time::Instant;

/// `FUTEX_BITSET_MATCH_ANY`: the bitset of `FUTEX_WAIT` and `FUTEX_WAKE`.
pub const MATCH_ANY: u32 = u32::MAX;

/// The word a futex operation names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FutexKey {
    /// A word of a private mapping (or a `FUTEX_PRIVATE_FLAG` call): its
    /// process and virtual address.
    Private {
        /// The process (thread group) whose address space holds it.
        mm: u32,
        /// Its virtual address.
        addr: u64,
    },
    /// A word of a shared mapping: the guest-physical address of its
    /// first byte.
    Shared {
        /// The guest-physical address.
        phys: u64,
    },
}

/// One waiting thread.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    key: FutexKey,
    bitset: u32,
    /// Queue order (older waiters wake first).
    seq: u64,
    woken: bool,
    deadline: Option<Instant>,
}

/// Every waiter, by thread id (a thread waits on one word at most).
#[derive(Debug, Default)]
pub struct Futexes {
    waiters: BTreeMap<u32, Waiter>,
    seq: u64,
    /// Threads woken since [`Futexes::take_woken`] last ran (the caller
    /// makes them runnable).
    woken: Vec<u32>,
}

impl Futexes {
    /// Thread `tid` starts waiting on `key` for a wake whose bitset
    /// meets `bitset`, until `deadline` if given (replacing any earlier
    /// wait of it).
    pub fn wait(&mut self, tid: u32, key: FutexKey, bitset: u32, deadline: Option<Instant>) {
        self.seq += 1;
        self.waiters.insert(tid, Waiter { key, bitset, seq: self.seq, woken: false, deadline });
    }

    /// When `tid`'s wait times out, if it waits with a timeout.
    pub fn deadline(&self, tid: u32) -> Option<Instant> {
        self.waiters.get(&tid).and_then(|w| w.deadline)
    }

    /// Whether `tid` waits (`Some(false)`), was woken and has not yet
    /// seen it (`Some(true)`), or has no wait (`None`).
    pub fn state(&self, tid: u32) -> Option<bool> {
        self.waiters.get(&tid).map(|w| w.woken)
    }

    /// Ends `tid`'s wait (woken, timed out, interrupted, or the thread
    /// is gone); whether it had been woken.
    pub fn cancel(&mut self, tid: u32) -> Option<bool> {
        self.waiters.remove(&tid).map(|w| w.woken)
    }

    /// The not-yet-woken waiters on `key` whose bitset meets `bitset`,
    /// oldest first.
    fn queue(&self, key: FutexKey, bitset: u32) -> Vec<u32> {
        let mut q: Vec<(u64, u32)> = self
            .waiters
            .iter()
            .filter(|(_, w)| !w.woken && w.key == key && w.bitset & bitset != 0)
            .map(|(&t, w)| (w.seq, t))
            .collect();
        q.sort_unstable();
        q.into_iter().map(|(_, t)| t).collect()
    }

    /// Wakes at most `n` waiters on `key` whose bitset meets `bitset`;
    /// how many it woke.
    pub fn wake(&mut self, key: FutexKey, n: u32, bitset: u32) -> u32 {
        let mut woken = 0;
        for t in self.queue(key, bitset).into_iter().take(n as usize) {
            if let Some(w) = self.waiters.get_mut(&t) {
                w.woken = true;
                woken += 1;
                self.woken.push(t);
            }
        }
        woken
    }

    /// The threads woken since the last call, once each.
    pub fn take_woken(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.woken)
    }

    /// `FUTEX_REQUEUE`: wakes at most `wake` waiters on `from`, then
    /// moves at most `requeue` of the rest to `to`; (woken, moved).
    pub fn requeue(&mut self, from: FutexKey, to: FutexKey, wake: u32, requeue: u32) -> (u32, u32) {
        let woken = self.wake(from, wake, MATCH_ANY);
        let mut moved = 0;
        for t in self.queue(from, MATCH_ANY).into_iter().take(requeue as usize) {
            if let Some(w) = self.waiters.get_mut(&t) {
                w.key = to;
                moved += 1;
            }
        }
        (woken, moved)
    }

    /// Forgets every wait of the threads of process `mm`'s private words
    /// (the process ended).
    pub fn forget_process(&mut self, mm: u32) {
        self.waiters.retain(|_, w| !matches!(w.key, FutexKey::Private { mm: m, .. } if m == mm));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(addr: u64) -> FutexKey {
        FutexKey::Private { mm: 100, addr }
    }

    #[test]
    fn wake_takes_the_oldest_matching_waiters_once() {
        let mut f = Futexes::default();
        f.wait(3, private(0x1000), MATCH_ANY, None);
        f.wait(2, private(0x1000), MATCH_ANY, None);
        f.wait(4, private(0x2000), MATCH_ANY, None);
        assert_eq!(f.wake(private(0x1000), 1, MATCH_ANY), 1);
        // The oldest waiter (3) went first, not the lowest tid.
        assert_eq!(f.state(3), Some(true));
        assert_eq!(f.state(2), Some(false));
        // A woken waiter is not woken twice; the other word is untouched.
        assert_eq!(f.wake(private(0x1000), 5, MATCH_ANY), 1);
        assert_eq!(f.state(4), Some(false));
        assert_eq!(f.wake(private(0x1000), 5, MATCH_ANY), 0);
        assert_eq!(f.cancel(3), Some(true));
        assert_eq!(f.cancel(3), None);
        // Each woken thread is reported once, in wake order.
        assert_eq!(f.take_woken(), vec![3, 2]);
        assert!(f.take_woken().is_empty());
    }

    #[test]
    fn keys_part_processes_and_shared_pages() {
        let mut f = Futexes::default();
        f.wait(1, FutexKey::Private { mm: 100, addr: 0x1000 }, MATCH_ANY, None);
        f.wait(2, FutexKey::Private { mm: 200, addr: 0x1000 }, MATCH_ANY, None);
        f.wait(3, FutexKey::Shared { phys: 0x5000 }, MATCH_ANY, None);
        // The same address in another process is another word.
        assert_eq!(f.wake(FutexKey::Private { mm: 100, addr: 0x1000 }, 10, MATCH_ANY), 1);
        assert_eq!(f.state(2), Some(false));
        // A shared word is met through its physical address only.
        assert_eq!(f.wake(FutexKey::Private { mm: 100, addr: 0x5000 }, 10, MATCH_ANY), 0);
        assert_eq!(f.wake(FutexKey::Shared { phys: 0x5000 }, 10, MATCH_ANY), 1);
        f.forget_process(200);
        assert_eq!(f.state(2), None);
        assert_eq!(f.state(3), Some(true));
    }

    #[test]
    fn bitsets_select_waiters() {
        let mut f = Futexes::default();
        f.wait(1, private(0x10), 0b01, None);
        f.wait(2, private(0x10), 0b10, None);
        assert_eq!(f.wake(private(0x10), 10, 0b10), 1);
        assert_eq!((f.state(1), f.state(2)), (Some(false), Some(true)));
        assert_eq!(f.wake(private(0x10), 10, MATCH_ANY), 1);
    }

    #[test]
    fn requeue_wakes_then_moves() {
        let mut f = Futexes::default();
        for t in 1..=5 {
            f.wait(t, private(0x10), MATCH_ANY, None);
        }
        assert_eq!(f.requeue(private(0x10), private(0x20), 1, 2), (1, 2));
        assert_eq!(f.wake(private(0x10), 10, MATCH_ANY), 2);
        assert_eq!(f.wake(private(0x20), 10, MATCH_ANY), 2);
        assert_eq!(f.state(1), Some(true));
    }

    proptest::proptest! {
        /// Against a model queue: every wake wakes exactly the oldest
        /// unwoken waiters of its word, never more than asked.
        #[test]
        fn wakes_follow_a_fifo_model(ops in proptest::collection::vec((0u8..3, 1u32..6, 0u64..3, 0u32..4), 1..60)) {
            let mut f = Futexes::default();
            let mut model: Vec<(u32, u64)> = Vec::new();
            for (op, tid, word, n) in ops {
                let key = private(word);
                if op < 2 {
                    if f.state(tid).is_none() {
                        f.wait(tid, key, MATCH_ANY, None);
                        model.push((tid, word));
                    }
                } else {
                    let expect: Vec<u32> = model.iter().filter(|w| w.1 == word).take(n as usize).map(|w| w.0).collect();
                    proptest::prop_assert_eq!(f.wake(key, n, MATCH_ANY), expect.len() as u32);
                    for t in expect {
                        proptest::prop_assert_eq!(f.cancel(t), Some(true));
                        model.retain(|w| w.0 != t);
                    }
                }
            }
            for (t, _) in model {
                proptest::prop_assert_eq!(f.state(t), Some(false));
            }
        }
    }
}
