//! `futex(uaddr, op, val, timeout|val2, uaddr2, val3)`: `FUTEX_WAIT`,
//! `FUTEX_WAKE`, `FUTEX_REQUEUE`, `FUTEX_CMP_REQUEUE`, `FUTEX_WAKE_OP`,
//! `FUTEX_WAIT_BITSET`, `FUTEX_WAKE_BITSET`, the priority-inheritance
//! locks `FUTEX_LOCK_PI`, `FUTEX_LOCK_PI2`, `FUTEX_TRYLOCK_PI` and
//! `FUTEX_UNLOCK_PI`, with `FUTEX_PRIVATE_FLAG` and
//! `FUTEX_CLOCK_REALTIME` (the waiters: `super::super::futex`).
//!
//! A waiter is queued and parks as a blocked process does (the call
//! answers `RESTART` after [`Linux::wait_on_futex`]), runnable again on
//! a wake, a signal or its deadline only, not on other threads' calls; each time it
//! runs again it makes the call again, which then answers 0 when it was
//! woken, `ETIMEDOUT` past its deadline, `EINTR` when a signal is pending
//! (an untimed wait is restarted instead after an `SA_RESTART` handler,
//! as Linux's `-ERESTARTSYS`), or parks once more.
//!
//! A PI lock's word holds its owner's tid (`FUTEX_WAITERS` set while
//! threads wait in the kernel, `FUTEX_OWNER_DIED` after a robust owner's
//! death): a free word is taken at once (`FUTEX_OWNER_DIED` kept), one the
//! caller owns is `EDEADLK`, one whose owner does not live is `ESRCH`,
//! else the caller queues (`EAGAIN` for a trylock) and is handed the word
//! by the owner's `FUTEX_UNLOCK_PI` or its end, oldest waiter first,
//! then writes its tid with `FUTEX_WAITERS` itself (Linux's
//! `fixup_pi_owner`). A signal does not end the wait: after the handler
//! the call is made again (`-ERESTARTNOINTR`). Not done:
//! `FUTEX_WAIT_REQUEUE_PI` and `FUTEX_CMP_REQUEUE_PI` (`ENOSYS`; glibc's
//! and musl's condition variables do not use them).
//!
//! [`Linux::wait_on_futex`]: super::super::process::Linux::wait_on_futex

use std::time::{Duration, Instant};

use guest_mm::{GuestVirtAddr, VmFlags};

use super::super::futex::{FutexKey, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS, MATCH_ANY};
use super::ctx::{Ctx, RESTART};
use crate::guest::kinds::linux::signal;
use crate::hosted::hypercall::Outcome;

const WAIT: u64 = 0;
const WAKE: u64 = 1;
const REQUEUE: u64 = 3;
const CMP_REQUEUE: u64 = 4;
const WAKE_OP: u64 = 5;
const LOCK_PI: u64 = 6;
const UNLOCK_PI: u64 = 7;
const TRYLOCK_PI: u64 = 8;
const WAIT_BITSET: u64 = 9;
const WAKE_BITSET: u64 = 10;
const WAIT_REQUEUE_PI: u64 = 11;
const LOCK_PI2: u64 = 13;
/// `FUTEX_PRIVATE_FLAG`, `FUTEX_CLOCK_REALTIME`.
const PRIVATE: u64 = 128;
const CLOCK_REALTIME: u64 = 256;
const NSEC: u64 = 1_000_000_000;

/// `futex(2)`.
pub fn futex(c: &Ctx<'_>, a: [u64; 6]) -> Outcome {
    let [uaddr, op, val, utime, uaddr2, val3] = a;
    let op = op & 0xffff_ffff;
    let cmd = op & !(PRIVATE | CLOCK_REALTIME);
    let private = op & PRIVATE != 0;
    if op & CLOCK_REALTIME != 0 && !matches!(cmd, WAIT_BITSET | WAIT_REQUEUE_PI | LOCK_PI2) {
        return Outcome::err(libc::ENOSYS);
    }
    let (val, val3) = (val as u32, val3 as u32);
    let r = match cmd {
        WAIT => wait(c, uaddr, val, utime, None, MATCH_ANY, private),
        WAIT_BITSET => {
            let clock = if op & CLOCK_REALTIME != 0 { libc::CLOCK_REALTIME } else { libc::CLOCK_MONOTONIC };
            wait(c, uaddr, val, utime, Some(clock), val3, private)
        }
        WAKE => wake(c, uaddr, val, MATCH_ANY, private),
        WAKE_BITSET => wake(c, uaddr, val, val3, private),
        REQUEUE => requeue(c, uaddr, uaddr2, val, utime as u32, None, private),
        CMP_REQUEUE => requeue(c, uaddr, uaddr2, val, utime as u32, Some(val3), private),
        WAKE_OP => wake_op(c, uaddr, uaddr2, val, utime as u32, val3, private),
        // FUTEX_LOCK_PI's timeout is absolute on CLOCK_REALTIME;
        // FUTEX_LOCK_PI2's on CLOCK_MONOTONIC unless the flag says otherwise.
        LOCK_PI => lock_pi(c, uaddr, utime, libc::CLOCK_REALTIME, private, false),
        LOCK_PI2 => {
            let clock = if op & CLOCK_REALTIME != 0 { libc::CLOCK_REALTIME } else { libc::CLOCK_MONOTONIC };
            lock_pi(c, uaddr, utime, clock, private, false)
        }
        TRYLOCK_PI => lock_pi(c, uaddr, 0, libc::CLOCK_MONOTONIC, private, true),
        UNLOCK_PI => unlock_pi(c, uaddr, private),
        _ => Err(libc::ENOSYS),
    };
    c.linux.unpark_woken();
    match r {
        Ok(v) => Outcome::ret(v),
        Err(e) => Outcome::err(e),
    }
}

/// The key of the word at `uaddr` (`EINVAL` unaligned, `EFAULT`
/// unmapped): a shared mapping's word by its physical address unless
/// the call is private.
pub fn key_of(c: &Ctx<'_>, uaddr: u64, private: bool) -> Result<FutexKey, i32> {
    key_in(c, c.linux.pid(), uaddr, private)
}

/// As [`key_of`], for a word of process `mm`, whose address space is
/// the live one (a dying process's robust list).
pub fn key_in(c: &Ctx<'_>, mm: u32, uaddr: u64, private: bool) -> Result<FutexKey, i32> {
    if uaddr % 4 != 0 {
        return Err(libc::EINVAL);
    }
    let va = GuestVirtAddr::try_new(uaddr).map_err(|_| libc::EFAULT)?;
    let shared = {
        let m = c.hv.mapper();
        let vma = m.space().find_vma(va).ok_or(libc::EFAULT)?;
        vma.flags().contains(VmFlags::SHARED)
    };
    if private || !shared {
        return Ok(FutexKey::Private { mm, addr: uaddr });
    }
    // A shared word is named by its page: fault it in if it is not yet.
    let phys = c.hv.mapper().space().translate(va).map(|t| t.phys.0);
    let phys = match phys {
        Some(p) => p,
        None => {
            read_word(c, uaddr)?;
            c.hv.mapper().space().translate(va).map(|t| t.phys.0).ok_or(libc::EFAULT)?
        }
    };
    Ok(FutexKey::Shared { phys })
}

fn read_word(c: &Ctx<'_>, uaddr: u64) -> Result<u32, i32> {
    let b = c.hv.read_user(c.vcpu, uaddr, 4)?;
    Ok(u32::from_le_bytes(b.try_into().map_err(|_| libc::EFAULT)?))
}

/// The deadline of a wait: `utime` relative (`clock` `None`) or absolute
/// on `clock`; `None` without a timeout.
fn deadline(c: &Ctx<'_>, utime: u64, clock: Option<libc::clockid_t>) -> Result<Option<Instant>, i32> {
    if utime == 0 {
        return Ok(None);
    }
    let b = c.hv.read_user(c.vcpu, utime, 16)?;
    let sec = u64::from_le_bytes(b[..8].try_into().map_err(|_| libc::EFAULT)?);
    let nsec = u64::from_le_bytes(b[8..].try_into().map_err(|_| libc::EFAULT)?);
    if nsec >= NSEC || sec > i64::MAX as u64 {
        return Err(libc::EINVAL);
    }
    let want = Duration::new(sec, nsec as u32);
    let left = match clock {
        None => want,
        Some(clk) => want.saturating_sub(now(clk)),
    };
    // A deadline too far to represent never comes.
    Ok(Instant::now().checked_add(left))
}

fn now(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec that clock_gettime only writes.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `FUTEX_WAIT` (`clock` `None`: relative timeout) and
/// `FUTEX_WAIT_BITSET` (absolute on `clock`).
fn wait(
    c: &Ctx<'_>,
    uaddr: u64,
    val: u32,
    utime: u64,
    clock: Option<libc::clockid_t>,
    bitset: u32,
    private: bool,
) -> Result<i64, i32> {
    let tid = c.linux.tid();
    // A PI wait left behind is not this one.
    if c.linux.futexes().waits_on(tid).is_some_and(|(_, pi)| pi) {
        c.linux.futexes().cancel(tid);
    }
    // Made again after parking: how did the wait end?
    let state = c.linux.futexes().state(tid);
    if let Some(woken) = state {
        let until = c.linux.futexes().deadline(tid);
        if woken {
            c.linux.futexes().cancel(tid);
            return Ok(0);
        }
        if until.is_some_and(|d| d <= Instant::now()) {
            c.linux.futexes().cancel(tid);
            return Err(libc::ETIMEDOUT);
        }
        if signal::interrupting(c.linux).is_some() {
            c.linux.futexes().cancel(tid);
            return interrupted(until);
        }
        c.linux.wait_on_futex(until);
        return Ok(RESTART);
    }
    if bitset == 0 {
        return Err(libc::EINVAL);
    }
    let until = deadline(c, utime, clock)?;
    let key = key_of(c, uaddr, private)?;
    if read_word(c, uaddr)? != val {
        return Err(libc::EAGAIN);
    }
    if until.is_some_and(|d| d <= Instant::now()) {
        return Err(libc::ETIMEDOUT);
    }
    if signal::interrupting(c.linux).is_some() {
        return interrupted(until);
    }
    c.linux.futexes().wait(tid, key, bitset, until);
    c.linux.wait_on_futex(until);
    Ok(RESTART)
}

/// A wait a signal interrupts, as Linux's `futex_wait` ends it: a timed
/// one `EINTR` (`-ERESTART_RESTARTBLOCK`, which a handler turns into
/// `EINTR`), an untimed one `-ERESTARTSYS`: `RESTART` without parking,
/// which the kind turns into `EINTR`, or after an `SA_RESTART` handler
/// into the call made again from the start (the word compared anew).
fn interrupted(until: Option<Instant>) -> Result<i64, i32> {
    match until {
        Some(_) => Err(libc::EINTR),
        None => Ok(RESTART),
    }
}

/// How many a wake of `val` wakes: Linux wakes one for 0 or less.
fn count(val: u32) -> u32 {
    if (val as i32) <= 0 {
        1
    } else {
        val
    }
}

/// `FUTEX_WAKE`, `FUTEX_WAKE_BITSET`.
fn wake(c: &Ctx<'_>, uaddr: u64, val: u32, bitset: u32, private: bool) -> Result<i64, i32> {
    if bitset == 0 {
        return Err(libc::EINVAL);
    }
    let key = key_of(c, uaddr, private)?;
    let mut f = c.linux.futexes();
    // A PI word's waiters are handed the lock, never woken.
    if f.has_pi_waiters(key) {
        return Err(libc::EINVAL);
    }
    Ok(i64::from(f.wake(key, count(val), bitset)))
}

fn write_word(c: &Ctx<'_>, uaddr: u64, v: u32) -> Result<(), i32> {
    c.hv.write_user(c.vcpu, uaddr, &v.to_le_bytes())
}

/// `FUTEX_LOCK_PI`, `FUTEX_LOCK_PI2` (an absolute timeout on `clock`)
/// and `FUTEX_TRYLOCK_PI` (`trylock`).
fn lock_pi(
    c: &Ctx<'_>,
    uaddr: u64,
    utime: u64,
    clock: libc::clockid_t,
    private: bool,
    trylock: bool,
) -> Result<i64, i32> {
    let tid = c.linux.tid();
    // A wait left behind on another word (or a plain one) is not this one.
    let mine = c.linux.futexes().waits_on(tid);
    if let Some((k, pi)) = mine {
        if !pi || key_of(c, uaddr, private).ok() != Some(k) {
            c.linux.futexes().cancel(tid);
        }
    }
    // Made again after parking: handed the word, timed out, a signal?
    let state = c.linux.futexes().state(tid);
    if let Some(granted) = state {
        let until = c.linux.futexes().deadline(tid);
        if granted {
            let died = c.linux.futexes().handed_by_death(tid);
            c.linux.futexes().cancel(tid);
            let died = if died { FUTEX_OWNER_DIED } else { 0 };
            let owned = read_word(c, uaddr)
                .and_then(|w| write_word(c, uaddr, (w & FUTEX_OWNER_DIED) | died | tid | FUTEX_WAITERS));
            if let Err(e) = owned {
                // Not taken after all: the next waiter gets it.
                c.linux.futexes().pi_owner_died(tid);
                return Err(e);
            }
            return Ok(0);
        }
        if until.is_some_and(|d| d <= Instant::now()) {
            c.linux.futexes().cancel(tid);
            return Err(libc::ETIMEDOUT);
        }
        if signal::interrupting(c.linux).is_some() {
            // Out of the queue for the handler, then the call again.
            c.linux.futexes().cancel(tid);
            c.linux.restart_always();
            return Ok(RESTART);
        }
        c.linux.wait_on_futex(until);
        return Ok(RESTART);
    }
    let until = deadline(c, utime, Some(clock))?;
    let key = key_of(c, uaddr, private)?;
    let word = read_word(c, uaddr)?;
    let owner = word & FUTEX_TID_MASK;
    if owner == tid {
        return Err(libc::EDEADLK);
    }
    let queued = c.linux.futexes().pi_owned(key);
    if !queued {
        if owner == 0 {
            write_word(c, uaddr, (word & FUTEX_OWNER_DIED) | tid)?;
            return Ok(0);
        }
        // The owner must be a live thread.
        let lives = {
            let t = c.linux.tasks();
            t.tgid(owner).is_some_and(|g| t.threads(g).contains(&owner))
        };
        if !lives {
            return Err(libc::ESRCH);
        }
    }
    if word & FUTEX_WAITERS == 0 {
        write_word(c, uaddr, word | FUTEX_WAITERS)?;
    }
    if trylock {
        return Err(libc::EAGAIN);
    }
    if until.is_some_and(|d| d <= Instant::now()) {
        return Err(libc::ETIMEDOUT);
    }
    // A signal already pending: its handler first, then the call again
    // (never EINTR: glibc takes that for the lock).
    if signal::interrupting(c.linux).is_some() {
        c.linux.restart_always();
        return Ok(RESTART);
    }
    c.linux.futexes().pi_wait(tid, key, owner, until);
    c.linux.wait_on_futex(until);
    Ok(RESTART)
}

/// `FUTEX_UNLOCK_PI`: the caller must own the word; it goes to the
/// oldest waiter (its tid with `FUTEX_WAITERS`), or is freed.
fn unlock_pi(c: &Ctx<'_>, uaddr: u64, private: bool) -> Result<i64, i32> {
    let tid = c.linux.tid();
    let key = key_of(c, uaddr, private)?;
    let word = read_word(c, uaddr)?;
    if word & FUTEX_TID_MASK != tid {
        return Err(libc::EPERM);
    }
    // The word first: a word the caller cannot write hands nothing over.
    let next = c.linux.futexes().pi_next(key);
    write_word(c, uaddr, next.map_or(0, |w| w | FUTEX_WAITERS))?;
    c.linux.futexes().pi_grant(key);
    Ok(0)
}

/// `FUTEX_REQUEUE` and `FUTEX_CMP_REQUEUE` (`cmp`: the value the word
/// must have).
fn requeue(
    c: &Ctx<'_>,
    uaddr: u64,
    uaddr2: u64,
    nr_wake: u32,
    nr_requeue: u32,
    cmp: Option<u32>,
    private: bool,
) -> Result<i64, i32> {
    if (nr_wake as i32) < 0 || (nr_requeue as i32) < 0 {
        return Err(libc::EINVAL);
    }
    let from = key_of(c, uaddr, private)?;
    let to = key_of(c, uaddr2, private)?;
    if c.linux.futexes().has_pi_waiters(from) {
        return Err(libc::EINVAL);
    }
    if let Some(v) = cmp {
        if read_word(c, uaddr)? != v {
            return Err(libc::EAGAIN);
        }
    }
    let (woken, moved) = c.linux.futexes().requeue(from, to, nr_wake, nr_requeue);
    Ok(i64::from(woken) + i64::from(moved))
}

/// `FUTEX_WAKE_OP`: `*uaddr2 = op(*uaddr2, oparg)`, wake `val` on
/// `uaddr`, and `val2` on `uaddr2` when the old value compares true.
fn wake_op(c: &Ctx<'_>, uaddr: u64, uaddr2: u64, val: u32, val2: u32, enc: u32, private: bool) -> Result<i64, i32> {
    let k1 = key_of(c, uaddr, private)?;
    let k2 = key_of(c, uaddr2, private)?;
    let old = read_word(c, uaddr2)?;
    let (new, hit) = wake_op_apply(enc, old)?;
    c.hv.write_user(c.vcpu, uaddr2, &new.to_le_bytes())?;
    let mut f = c.linux.futexes();
    let mut n = f.wake(k1, count(val), MATCH_ANY);
    if hit {
        n += f.wake(k2, count(val2), MATCH_ANY);
    }
    Ok(i64::from(n))
}

/// The new value of the word and whether its old value compares true,
/// for `FUTEX_WAKE_OP`'s encoded operation (`ENOSYS` for an unknown
/// operation or comparison, as Linux).
pub fn wake_op_apply(enc: u32, old: u32) -> Result<(u32, bool), i32> {
    let op = (enc >> 28) & 7;
    let shift = enc & (8 << 28) != 0;
    let cmp = (enc >> 24) & 15;
    let sext = |v: u32| ((v << 20) as i32) >> 20;
    let mut oparg = sext((enc >> 12) & 0xfff);
    let cmparg = sext(enc & 0xfff);
    if shift {
        oparg = 1 << (oparg & 31);
    }
    let oparg = oparg as u32;
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(libc::ENOSYS),
    };
    let o = old as i32;
    let hit = match cmp {
        0 => o == cmparg,
        1 => o != cmparg,
        2 => o < cmparg,
        3 => o <= cmparg,
        4 => o > cmparg,
        5 => o >= cmparg,
        _ => return Err(libc::ENOSYS),
    };
    Ok((new, hit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FUTEX_OP(op, oparg, cmp, cmparg)` as `linux/futex.h` builds it.
    fn futex_op(op: u32, oparg: u32, cmp: u32, cmparg: u32) -> u32 {
        ((op & 0xf) << 28) | ((cmp & 0xf) << 24) | ((oparg & 0xfff) << 12) | (cmparg & 0xfff)
    }

    #[test]
    fn wake_op_computes_as_linux() {
        // glibc's old condvar: SET 0, wake when the old value > 1.
        assert_eq!(wake_op_apply(futex_op(0, 0, 4, 1), 2), Ok((0, true)));
        assert_eq!(wake_op_apply(futex_op(0, 0, 4, 1), 1), Ok((0, false)));
        assert_eq!(wake_op_apply(futex_op(1, 5, 0, 3), 3), Ok((8, true)));
        assert_eq!(wake_op_apply(futex_op(2, 0x10, 1, 0), 1), Ok((0x11, true)));
        assert_eq!(wake_op_apply(futex_op(3, 1, 2, 0), 3), Ok((2, false)));
        assert_eq!(wake_op_apply(futex_op(4, 3, 5, -1i32 as u32), 1), Ok((2, true)));
        // FUTEX_OP_OPARG_SHIFT: the argument is a bit number.
        assert_eq!(wake_op_apply(futex_op(8 | 2, 4, 0, 0), 0), Ok((16, true)));
        // Negative arguments are sign-extended from 12 bits.
        assert_eq!(wake_op_apply(futex_op(1, -1i32 as u32, 2, 0), 5), Ok((4, false)));
        assert_eq!(wake_op_apply(futex_op(5, 0, 0, 0), 0), Err(libc::ENOSYS));
        assert_eq!(wake_op_apply(futex_op(0, 0, 6, 0), 0), Err(libc::ENOSYS));
    }

    #[test]
    fn a_wake_of_zero_or_less_wakes_one() {
        assert_eq!(count(0), 1);
        assert_eq!(count(-5i32 as u32), 1);
        assert_eq!(count(3), 3);
        assert_eq!(count(i32::MAX as u32), i32::MAX as u32);
    }
}
