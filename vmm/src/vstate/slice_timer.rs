//! A periodic kick of the calling vCPU thread: a POSIX timer on
//! `CLOCK_MONOTONIC` that sends the kick signal ([`super::kick`]) to the
//! thread that created it (`SIGEV_THREAD_ID`), so a guest that never
//! leaves the guest on its own (a process spinning in user code) comes
//! back out of `KVM_RUN` once a period and a scheduler can switch.
//!
//! Not done here: deciding whether to switch (the guest's kind does that
//! when the kicked thread asks it). The timer is made, set and deleted
//! from the thread it kicks, so those three calls are that thread's
//! (`timer_create`, `timer_settime`, `timer_delete`); dropping a
//! [`SliceTimer`] on that thread deletes it. Dropped on another thread
//! (whose seccomp filter may refuse `timer_delete`), it is left to the
//! process's end: its kicks then go to a thread that has ended, or that
//! ignores kicks it does not want, and do nothing.

use std::time::Duration;

use super::kick::kick_signal;

/// The kernel's `struct sigevent` as `timer_create` reads it with
/// `SIGEV_THREAD_ID` (value, signal, notify, thread id; 64 bytes).
#[repr(C)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    pad: [i32; 11],
}

/// `struct itimerspec`.
#[repr(C)]
struct ItimerSpec {
    interval: libc::timespec,
    value: libc::timespec,
}

/// `SIGEV_THREAD_ID`.
const SIGEV_THREAD_ID: i32 = 4;

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// A timer kicking the thread that made it every `period`.
#[derive(Debug)]
pub struct SliceTimer {
    id: i32,
    /// The thread it kicks (the one that made it).
    tid: i32,
}

impl SliceTimer {
    /// Makes the timer and starts it: the first kick comes after
    /// `period`, then one every `period`.
    pub fn start(period: Duration) -> std::io::Result<Self> {
        let tid = gettid();
        let ev = SigEvent { value: 0, signo: kick_signal(), notify: SIGEV_THREAD_ID, tid, pad: [0; 11] };
        let mut id: i32 = 0;
        // SAFETY: `ev` is a valid sigevent laid out as the kernel's (64
        // bytes) and `id` a valid int the kernel writes the timer id to;
        // both live across the call.
        let r = unsafe { libc::syscall(libc::SYS_timer_create, libc::CLOCK_MONOTONIC, &raw const ev, &raw mut id) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let t = SliceTimer { id, tid };
        let spec = ItimerSpec { interval: timespec(period), value: timespec(period) };
        // SAFETY: `t.id` is the timer just made; `spec` is a valid
        // itimerspec for the call; no old value is asked for.
        let r = unsafe {
            libc::syscall(libc::SYS_timer_settime, t.id, 0, &raw const spec, std::ptr::null_mut::<ItimerSpec>())
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(t)
    }
}

impl Drop for SliceTimer {
    fn drop(&mut self) {
        if gettid() != self.tid {
            log::debug!("slice timer {}: dropped off its thread: left to the process's end", self.id);
            return;
        }
        // SAFETY: `self.id` is a timer this value made and nobody else
        // deletes; deleting stops it.
        let r = unsafe { libc::syscall(libc::SYS_timer_delete, self.id) };
        if r != 0 {
            log::debug!("slice timer {}: delete: {}", self.id, std::io::Error::last_os_error());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Kick signals taken from this thread's pending set until `until`
    /// (the signal blocked, so no handler runs).
    fn count_kicks(until: Instant) -> usize {
        let mut n = 0;
        // SAFETY: a zeroed sigset_t is a valid argument for the sigset
        // calls, which only write to it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t.
        unsafe {
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, kick_signal());
        }
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let ts = timespec(left);
            // SAFETY: `set` and `ts` are valid; no siginfo is asked for.
            let r = unsafe { libc::sigtimedwait(&raw const set, std::ptr::null_mut(), &raw const ts) };
            if r == kick_signal() {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn it_kicks_its_own_thread_once_a_period_until_dropped() {
        std::thread::spawn(|| {
            // Blocked in this thread only: the timer's signals wait here.
            // SAFETY: a zeroed sigset_t is valid; the calls only write it.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: `set` is valid; blocking a signal in this thread
            // affects no other thread.
            unsafe {
                libc::sigemptyset(&raw mut set);
                libc::sigaddset(&raw mut set, kick_signal());
                libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
            }
            let t = SliceTimer::start(Duration::from_millis(5)).expect("timer");
            let seen = count_kicks(Instant::now() + Duration::from_millis(60));
            assert!((4..=13).contains(&seen), "{seen} kicks in 60 ms at one per 5 ms");
            drop(t);
            // At most one already pending when it was deleted.
            let after = count_kicks(Instant::now() + Duration::from_millis(30));
            assert!(after <= 1, "{after} kicks after the timer was deleted");
        })
        .join()
        .expect("thread");
    }
}
