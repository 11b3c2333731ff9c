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
//! the woken; it finds here whether it was woken when it runs again).
//!
//! Priority-inheritance words (`FUTEX_LOCK_PI`) keep, while a thread
//! waits on them, their owner here (Linux's `pi_state`): an unlock or the
//! owner's end hands the word to the oldest waiter ([`Futexes::pi_grant`])
//! rather than waking a crowd. There are no priorities to inherit (one
//! vCPU, no real-time classes): the order is first come, first served.

use std::collections::BTreeMap;
use std::time::Instant;

/// Some thread waits on the word in the kernel (a lock word's bit).
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
/// The word's owner died holding it.
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The owner's tid in a lock word.
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// The size of `struct robust_list_head`: what `set_robust_list` takes.
pub const ROBUST_HEAD_SIZE: u64 = 24;

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
    /// A `FUTEX_LOCK_PI` waiter (never woken by `FUTEX_WAKE`).
    pi: bool,
    /// Handed a PI word whose owner ended (the word gets
    /// `FUTEX_OWNER_DIED`, as Linux's `fixup_pi_owner` sets it).
    owner_died: bool,
}

/// Every waiter, by thread id (a thread waits on one word at most).
#[derive(Debug, Default)]
pub struct Futexes {
    waiters: BTreeMap<u32, Waiter>,
    seq: u64,
    /// Threads woken since [`Futexes::take_woken`] last ran (the caller
    /// makes them runnable).
    woken: Vec<u32>,
    /// The owner of each PI word some thread waits on (or was handed and
    /// has not yet unlocked through the kernel).
    pi_owners: BTreeMap<FutexKey, u32>,
}

impl Futexes {
    /// Thread `tid` starts waiting on `key` for a wake whose bitset
    /// meets `bitset`, until `deadline` if given (replacing any earlier
    /// wait of it).
    pub fn wait(&mut self, tid: u32, key: FutexKey, bitset: u32, deadline: Option<Instant>) {
        self.seq += 1;
        self.waiters
            .insert(tid, Waiter { key, bitset, seq: self.seq, woken: false, deadline, pi: false, owner_died: false });
    }

    /// Thread `tid` waits to be handed PI word `key` (owned by `owner`
    /// unless an owner is already known), until `deadline` if given.
    pub fn pi_wait(&mut self, tid: u32, key: FutexKey, owner: u32, deadline: Option<Instant>) {
        self.seq += 1;
        self.pi_owners.entry(key).or_insert(owner);
        self.waiters.insert(
            tid,
            Waiter { key, bitset: MATCH_ANY, seq: self.seq, woken: false, deadline, pi: true, owner_died: false },
        );
    }

    /// Whether PI word `key` has a known owner (a thread waits on it, or
    /// was handed it): a new locker queues behind without looking the
    /// word's owner up.
    pub fn pi_owned(&self, key: FutexKey) -> bool {
        self.pi_owners.contains_key(&key)
    }

    /// Whether threads wait on `key` as a PI word (a plain wake of it
    /// is `EINVAL`).
    pub fn has_pi_waiters(&self, key: FutexKey) -> bool {
        self.waiters.values().any(|w| w.pi && !w.woken && w.key == key)
    }

    /// Hands PI word `key` to its oldest waiter (woken, the owner now):
    /// its tid, or `None` when nobody waits (the word has no known owner
    /// any more).
    pub fn pi_grant(&mut self, key: FutexKey) -> Option<u32> {
        self.pi_hand(key, false)
    }

    fn pi_hand(&mut self, key: FutexKey, owner_died: bool) -> Option<u32> {
        let next = self.pi_next(key);
        match next {
            Some(t) => {
                if let Some(w) = self.waiters.get_mut(&t) {
                    w.woken = true;
                    w.owner_died = owner_died;
                }
                self.woken.push(t);
                self.pi_owners.insert(key, t);
            }
            None => {
                self.pi_owners.remove(&key);
            }
        }
        next
    }

    /// The oldest waiter on PI word `key`: who [`Futexes::pi_grant`]
    /// would hand it to.
    pub fn pi_next(&self, key: FutexKey) -> Option<u32> {
        self.waiters
            .iter()
            .filter(|(_, w)| w.pi && !w.woken && w.key == key)
            .min_by_key(|(_, w)| w.seq)
            .map(|(&t, _)| t)
    }

    /// Thread `tid` ended: every PI word it owned goes to its oldest
    /// waiter (Linux's `exit_pi_state_list`).
    pub fn pi_owner_died(&mut self, tid: u32) {
        let owned: Vec<FutexKey> = self.pi_owners.iter().filter(|(_, &o)| o == tid).map(|(&k, _)| k).collect();
        for k in owned {
            self.pi_hand(k, true);
        }
    }

    /// When `tid`'s wait times out, if it waits with a timeout.
    pub fn deadline(&self, tid: u32) -> Option<Instant> {
        self.waiters.get(&tid).and_then(|w| w.deadline)
    }

    /// What `tid` waits on: the word, and whether as a PI waiter.
    pub fn waits_on(&self, tid: u32) -> Option<(FutexKey, bool)> {
        self.waiters.get(&tid).map(|w| (w.key, w.pi))
    }

    /// Whether PI waiter `tid` was handed a word whose owner had ended.
    pub fn handed_by_death(&self, tid: u32) -> bool {
        self.waiters.get(&tid).is_some_and(|w| w.owner_died)
    }

    /// Whether `tid` waits (`Some(false)`), was woken and has not yet
    /// seen it (`Some(true)`), or has no wait (`None`).
    pub fn state(&self, tid: u32) -> Option<bool> {
        self.waiters.get(&tid).map(|w| w.woken)
    }

    /// Ends `tid`'s wait (woken, timed out, interrupted, or the thread
    /// is gone); whether it had been woken.
    pub fn cancel(&mut self, tid: u32) -> Option<bool> {
        let w = self.waiters.remove(&tid)?;
        // A PI word's owner is kept only while someone waits on it (or
        // was handed it and has not run yet), as Linux frees its
        // `pi_state` with the last waiter: the next lock reads the word.
        if w.pi && !self.waiters.values().any(|x| x.pi && x.key == w.key) {
            self.pi_owners.remove(&w.key);
        }
        Some(w.woken)
    }

    /// The not-yet-woken waiters on `key` whose bitset meets `bitset`,
    /// oldest first.
    fn queue(&self, key: FutexKey, bitset: u32) -> Vec<u32> {
        let mut q: Vec<(u64, u32)> = self
            .waiters
            .iter()
            .filter(|(_, w)| !w.pi && !w.woken && w.key == key && w.bitset & bitset != 0)
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
        let of_mm = |k: &FutexKey| matches!(k, FutexKey::Private { mm: m, .. } if *m == mm);
        self.waiters.retain(|_, w| !of_mm(&w.key));
        self.pi_owners.retain(|k, _| !of_mm(k));
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

    #[test]
    fn pi_words_go_to_the_oldest_waiter_and_plain_wakes_miss_them() {
        let mut f = Futexes::default();
        let k = private(0x40);
        assert!(!f.pi_owned(k));
        f.pi_wait(7, k, 1, None);
        f.pi_wait(5, k, 99, None);
        // The first waiter named the owner; the second did not replace it.
        assert!(f.pi_owned(k) && f.has_pi_waiters(k));
        // A plain wake does not reach PI waiters.
        assert_eq!(f.wake(k, 10, MATCH_ANY), 0);
        assert_eq!(f.pi_next(k), Some(7));
        // The owner (1) ends: the oldest waiter is handed the word.
        f.pi_owner_died(1);
        assert_eq!(f.state(7), Some(true));
        assert_eq!(f.take_woken(), vec![7]);
        // Its owner is now 7: 7 ending hands it to 5.
        f.cancel(7);
        f.pi_owner_died(7);
        assert_eq!(f.state(5), Some(true));
        // Nobody left waiting: an unlock forgets the owner.
        f.cancel(5);
        assert_eq!(f.pi_grant(k), None);
        assert!(!f.pi_owned(k));
        // Another owner's end touches nothing.
        f.pi_wait(8, k, 2, None);
        f.pi_owner_died(3);
        assert_eq!(f.state(8), Some(false));
        f.forget_process(100);
        assert!(!f.pi_owned(k) && f.state(8).is_none());
    }

    #[test]
    fn a_pi_owner_is_kept_only_while_someone_waits() {
        let mut f = Futexes::default();
        // Waiters that time out or take a signal leave nothing behind.
        for w in 0..100u64 {
            let k = private(0x1000 + 4 * w);
            f.pi_wait(7, k, 1, None);
            f.cancel(7);
            assert!(!f.pi_owned(k));
        }
        assert!(f.pi_owners.is_empty());
        // With two waiters, the owner stays until the last one leaves.
        let k = private(0x40);
        f.pi_wait(7, k, 1, None);
        f.pi_wait(8, k, 1, None);
        f.cancel(7);
        assert!(f.pi_owned(k));
        // Handed over: kept while the new owner has not run.
        assert_eq!(f.pi_grant(k), Some(8));
        assert!(f.pi_owned(k));
        assert!(!f.handed_by_death(8));
        f.cancel(8);
        assert!(!f.pi_owned(k));
        // A hand-over by the owner's end is marked for the new owner.
        f.pi_wait(9, k, 3, None);
        f.pi_owner_died(3);
        assert!(f.handed_by_death(9));
        assert_eq!(f.waits_on(9), Some((k, true)));
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
