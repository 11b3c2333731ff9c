//! Robust futex lists (`set_robust_list`): when a thread ends, every
//! lock word on its list that it still owns is marked
//! `FUTEX_OWNER_DIED` (the owner's tid cleared, `FUTEX_WAITERS` kept)
//! and one waiter of a non-PI word is woken, so the next locker of a
//! robust mutex gets `EOWNERDEAD` instead of waiting forever. The walk
//! follows Linux's `exit_robust_list`: the list's entries (a set low bit
//! marks a PI lock), each word at the entry plus the head's
//! `futex_offset`, at most [`ROBUST_LIST_LIMIT`] entries (a cyclic list
//! ends there), the entry named by `list_op_pending` last (an unlock in
//! progress: a free word wakes one waiter, which may have missed its
//! wake), and the walk stops at the first word it cannot read or
//! write, or that is misaligned.
//!
//! Here the walk alone ([`walk`]), over any [`RobustMem`]; which thread
//! ends, in which address space and what the wakes reach is the
//! process code's (`super::tasks`), through [`Linux::release_robust`].

use super::futex::MATCH_ANY;
use super::process::Linux;
use super::syscalls::{futex_key_in, Ctx};
use crate::hosted::hypercall::HostedKernel;

/// Most entries one walk visits (Linux's `ROBUST_LIST_LIMIT`).
pub const ROBUST_LIST_LIMIT: usize = 2048;
pub use super::futex::{FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, ROBUST_HEAD_SIZE as HEAD_SIZE};

/// The dying thread's memory, as the walk reads and writes it (`None` or
/// `false`: the access faults).
pub trait RobustMem {
    /// The 8 bytes at `va`.
    fn read_u64(&mut self, va: u64) -> Option<u64>;
    /// The 4 bytes at `va`.
    fn read_u32(&mut self, va: u64) -> Option<u32>;
    /// Writes the 4 bytes at `va`.
    fn write_u32(&mut self, va: u64, v: u32) -> bool;
}

/// Walks the robust list at `head` of thread `tid`, which is ending:
/// marks the words it owns, and returns the addresses of the words one
/// waiter each must be woken on, in the order Linux wakes them.
pub fn walk(mem: &mut impl RobustMem, head: u64, tid: u32) -> Vec<u64> {
    let mut wakes = Vec::new();
    if head == 0 {
        return wakes;
    }
    let Some(first) = mem.read_u64(head) else { return wakes };
    let Some(offset) = mem.read_u64(head.wrapping_add(8)) else { return wakes };
    let Some(pending_raw) = mem.read_u64(head.wrapping_add(16)) else { return wakes };
    let (pending, pending_pi) = (pending_raw & !1, pending_raw & 1 != 0);
    let (mut entry, mut pi) = (first & !1, first & 1 != 0);
    let mut limit = ROBUST_LIST_LIMIT;
    while entry != head {
        let next = mem.read_u64(entry);
        if entry != pending && death(mem, entry.wrapping_add(offset), tid, pi, false, &mut wakes).is_err() {
            return wakes;
        }
        let Some(n) = next else { return wakes };
        (entry, pi) = (n & !1, n & 1 != 0);
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending != 0 {
        let _ = death(mem, pending.wrapping_add(offset), tid, pending_pi, true, &mut wakes);
    }
    wakes
}

/// One word of the dying thread `tid` (Linux's `handle_futex_death`):
/// `Err` stops the walk.
fn death(
    mem: &mut impl RobustMem,
    uaddr: u64,
    tid: u32,
    pi: bool,
    pending: bool,
    wakes: &mut Vec<u64>,
) -> Result<(), ()> {
    if uaddr % 4 != 0 {
        return Err(());
    }
    let word = mem.read_u32(uaddr).ok_or(())?;
    let owner = word & FUTEX_TID_MASK;
    // An unlock that freed the word but had not yet woken a waiter.
    if pending && !pi && owner == 0 {
        wakes.push(uaddr);
        return Ok(());
    }
    if owner != tid {
        return Ok(());
    }
    if !mem.write_u32(uaddr, (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED) {
        return Err(());
    }
    // A PI word's waiters are handed the lock by the PI code instead.
    if !pi && word & FUTEX_WAITERS != 0 {
        wakes.push(uaddr);
    }
    Ok(())
}

/// The live address space, through the user copies a system call uses.
struct Live<'a> {
    hv: &'a HostedKernel,
    vcpu: u8,
}

impl RobustMem for Live<'_> {
    fn read_u64(&mut self, va: u64) -> Option<u64> {
        let b = self.hv.read_user(self.vcpu, va, 8).ok()?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    fn read_u32(&mut self, va: u64) -> Option<u32> {
        let b = self.hv.read_user(self.vcpu, va, 4).ok()?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    fn write_u32(&mut self, va: u64, v: u32) -> bool {
        self.hv.write_user(self.vcpu, va, &v.to_le_bytes()).is_ok()
    }
}

impl Linux {
    /// Thread `tid` of process `mm`, whose address space is the live
    /// one, ends with its robust list at `head` (0: none): its words are
    /// released and their waiters woken (made runnable).
    pub(crate) fn release_robust(&self, hv: &HostedKernel, vcpu: u8, mm: u32, tid: u32, head: u64) {
        if head == 0 {
            return;
        }
        let wakes = walk(&mut Live { hv, vcpu }, head, tid);
        if wakes.is_empty() {
            return;
        }
        let ctx = Ctx { hv, vcpu, linux: self };
        for addr in wakes {
            // Linux wakes as for a shared word: a private mapping's word
            // is still keyed by its process.
            if let Ok(key) = futex_key_in(&ctx, mm, addr, false) {
                self.futexes().wake(key, 1, MATCH_ANY);
            }
        }
        self.unpark_woken();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Bytes by address; absent bytes fault.
    #[derive(Default)]
    struct Mem(BTreeMap<u64, u8>);

    impl Mem {
        fn put(&mut self, va: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(va + i as u64, *b);
            }
        }
        fn get(&self, va: u64, n: usize) -> Option<Vec<u8>> {
            (0..n as u64).map(|i| self.0.get(&(va + i)).copied()).collect()
        }
        fn word(&self, va: u64) -> u32 {
            u32::from_le_bytes(self.get(va, 4).unwrap().try_into().unwrap())
        }
        /// A head at `head` whose list is `entries` (each `(address, pi)`),
        /// words at `offset` from each entry, and `pending`.
        fn list(&mut self, head: u64, offset: u64, entries: &[(u64, bool)], pending: u64) {
            let link = |(a, pi): (u64, bool)| a | u64::from(pi);
            let mut prev = head;
            for &e in entries {
                self.put(prev, &link(e).to_le_bytes());
                prev = e.0;
            }
            self.put(prev, &head.to_le_bytes());
            self.put(head + 8, &offset.to_le_bytes());
            self.put(head + 16, &pending.to_le_bytes());
        }
    }

    impl RobustMem for Mem {
        fn read_u64(&mut self, va: u64) -> Option<u64> {
            Some(u64::from_le_bytes(self.get(va, 8)?.try_into().ok()?))
        }
        fn read_u32(&mut self, va: u64) -> Option<u32> {
            Some(u32::from_le_bytes(self.get(va, 4)?.try_into().ok()?))
        }
        fn write_u32(&mut self, va: u64, v: u32) -> bool {
            if self.get(va, 4).is_none() {
                return false;
            }
            self.put(va, &v.to_le_bytes());
            true
        }
    }

    const TID: u32 = 101;

    #[test]
    fn owned_words_are_marked_and_their_waiters_woken() {
        let mut m = Mem::default();
        // glibc's layout: the word 32 bytes before the list link.
        m.list(0x1000, (-32i64) as u64, &[(0x2020, false), (0x3020, false), (0x4020, false)], 0);
        m.put(0x2000, &TID.to_le_bytes());
        m.put(0x3000, &(TID | FUTEX_WAITERS).to_le_bytes());
        m.put(0x4000, &(TID + 1).to_le_bytes());
        let wakes = walk(&mut m, 0x1000, TID);
        assert_eq!(m.word(0x2000), FUTEX_OWNER_DIED);
        assert_eq!(m.word(0x3000), FUTEX_OWNER_DIED | FUTEX_WAITERS);
        // Another thread's word is left as it was.
        assert_eq!(m.word(0x4000), TID + 1);
        // Only the word with waiters wakes one.
        assert_eq!(wakes, [0x3000]);
    }

    #[test]
    fn pi_words_are_marked_but_not_woken() {
        let mut m2 = Mem::default();
        m2.list(0x1000, 8, &[(0x2000, true)], 0);
        m2.put(0x2008, &(TID | FUTEX_WAITERS).to_le_bytes());
        assert!(walk(&mut m2, 0x1000, TID).is_empty());
        assert_eq!(m2.word(0x2008), FUTEX_OWNER_DIED | FUTEX_WAITERS);
    }

    #[test]
    fn the_pending_entry_is_handled_last_and_a_free_word_wakes() {
        let mut m = Mem::default();
        m.list(0x1000, 8, &[(0x2000, false), (0x3000, false)], 0x2000);
        // On the list and pending: not handled in the list walk, once at
        // the end.
        m.put(0x2008, &(TID | FUTEX_WAITERS).to_le_bytes());
        m.put(0x3008, &(TID | FUTEX_WAITERS).to_le_bytes());
        assert_eq!(walk(&mut m, 0x1000, TID), [0x3008, 0x2008]);
        // A pending unlock that had freed its word: one waiter wakes.
        let mut m = Mem::default();
        m.list(0x1000, 8, &[], 0x5000);
        m.put(0x5008, &0u32.to_le_bytes());
        assert_eq!(walk(&mut m, 0x1000, TID), [0x5008]);
        assert_eq!(m.word(0x5008), 0);
        // The same with a PI word wakes nobody.
        let mut m = Mem::default();
        m.list(0x1000, 8, &[], 0x5001);
        m.put(0x5008, &0u32.to_le_bytes());
        assert!(walk(&mut m, 0x1000, TID).is_empty());
    }

    #[test]
    fn a_cyclic_list_ends_at_the_limit() {
        let mut m = Mem::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x1008, &8u64.to_le_bytes());
        m.put(0x1010, &0u64.to_le_bytes());
        // 0x2000 -> 0x3000 -> 0x2000 ...: never back at the head.
        m.put(0x2000, &0x3000u64.to_le_bytes());
        m.put(0x3000, &0x2000u64.to_le_bytes());
        m.put(0x2008, &(TID | FUTEX_WAITERS).to_le_bytes());
        m.put(0x3008, &(TID | FUTEX_WAITERS).to_le_bytes());
        let wakes = walk(&mut m, 0x1000, TID);
        // Each word is released once; the later visits find it not
        // owned any more.
        assert_eq!(wakes, [0x2008, 0x3008]);
    }

    #[test]
    fn a_fault_or_misalignment_stops_the_walk() {
        // The second entry's word is unreadable: the third is not reached.
        let mut m = Mem::default();
        m.list(0x1000, 8, &[(0x2000, false), (0x3000, false), (0x4000, false)], 0);
        m.put(0x2008, &TID.to_le_bytes());
        m.put(0x4008, &TID.to_le_bytes());
        assert!(walk(&mut m, 0x1000, TID).is_empty());
        assert_eq!(m.word(0x2008), FUTEX_OWNER_DIED);
        assert_eq!(m.word(0x4008), TID);
        // A misaligned offset stops at once.
        let mut m = Mem::default();
        m.list(0x1000, 6, &[(0x2000, false)], 0);
        m.put(0x2006, &TID.to_le_bytes());
        walk(&mut m, 0x1000, TID);
        assert_eq!(m.word(0x2006), TID);
        // An unreadable head: nothing.
        assert!(walk(&mut Mem::default(), 0x1000, TID).is_empty());
    }
}
