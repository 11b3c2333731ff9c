//! Scenario: robust futexes in the Linux kind, as static glibc and musl
//! programs (`tests/guests/linux/robust.c`) see them under `vmm run` with
//! the production seccomp filters: a robust mutex whose owner dies is
//! handed to the next locker with `EOWNERDEAD` whether the owner was a
//! thread that exited (glibc leaves that to the kernel; musl walks its
//! own list first), a process that exited, was killed by `SIGKILL` while
//! set aside (its list walked in its own address space) or faulted,
//! with and without a waiter already blocked (in the same process or
//! another); hand-built lists: words another thread owns untouched, a
//! cyclic list that ends at the limit, a pending unlock's wake; and
//! `get_robust_list`/`set_robust_list`'s checks. Each line is what Linux
//! prints; before the lists were walked the first lock hung.
//!
//! And priority-inheritance futexes (`tests/guests/linux/pi.c`):
//! `PTHREAD_PRIO_INHERIT` mutexes contended by 4 threads (an exact
//! total), trylock and timedlock against a held one, a robust PI mutex
//! handed to its waiter with `EOWNERDEAD` when its owner dies, and the
//! raw calls' answers (`EDEADLK`, `ESRCH` for a dead or absent owner,
//! `EPERM`, `EINVAL` for a plain wake, the waiter's tid written with
//! `FUTEX_WAITERS`, a signal that does not end the wait). Before, every
//! PI operation was `ENOSYS` and the first contended lock failed.

use vmm_suite::kvm::linux::{run_on_host, static_c_program, static_musl_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What `robust.c` prints on Linux.
const ROBUST: &str = "\
thread died: EOWNERDEAD, consistent 0, relocked 0
thread died, waiter: EOWNERDEAD, consistent 0, relocked 0
plain after a child's lock: 0
child exited: EOWNERDEAD, consistent 0, relocked 0
killed child: signal 9
child killed: EOWNERDEAD, consistent 0, relocked 0
waiter in another process: exit 7
faulting child: signal 11
child faulted: EOWNERDEAD, consistent 0, relocked 0
raw: set 0
raw: mine 0x40000000, waiters 0xc0000000, other's unchanged 1
cyclic: 0x40000000 0x40000000
pending unlock woke the waiter: 0
get_robust_list: 0 len 24 head set 1
set_robust_list bad len: EINVAL
get_robust_list no thread: ESRCH
";

/// `p` under the VMM (with `--check-invariants`: every frame of the
/// ended processes returned) and on the host prints `want` and exits 0.
fn prints_what_linux_prints(p: &std::path::Path, want: &str) {
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--check-invariants", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(p, &[]);
    assert_eq!((host.as_str(), code), (want, 0), "the host's own run");
}

#[test]
fn robust_mutexes_of_dead_owners_as_linux_glibc() {
    need_kvm!();
    let Some(p) = static_c_program("robust") else { return };
    prints_what_linux_prints(&p, ROBUST);
}

#[test]
fn robust_mutexes_of_dead_owners_as_linux_musl() {
    need_kvm!();
    let Some(p) = static_musl_program("robust") else { return };
    prints_what_linux_prints(&p, ROBUST);
}

/// What `pi.c` prints on Linux.
const PI: &str = "\
pi mutex: counter 8000
trylock held: EBUSY
timedlock held: ETIMEDOUT
lock after the holder: 0
robust pi, owner died while waited on: EOWNERDEAD, consistent 0, relock 0
trylock_pi free: 0, word is mine 1
lock_pi own: EDEADLK
waiter queued: word mine|WAITERS
wake on a pi word: EINVAL
unlock_pi: 0
waiter: 0, word then its tid|WAITERS, word now 0
signalled waiter: handled 1, still waiting 1
signalled waiter then: 0
signal before the lock: handled 1, lock 0
lock_pi no owner: ESRCH
unlock_pi not mine: EPERM
lock_pi dead owner: ESRCH
lock_pi owner died: 0, word mine|OWNER_DIED
";

#[test]
fn priority_inheritance_mutexes_as_linux_glibc() {
    need_kvm!();
    let Some(p) = static_c_program("pi") else { return };
    prints_what_linux_prints(&p, PI);
}

#[test]
fn priority_inheritance_mutexes_as_linux_musl() {
    need_kvm!();
    let Some(p) = static_musl_program("pi") else { return };
    prints_what_linux_prints(&p, PI);
}
