//! Scenario: threads in the Linux kind, as a static glibc program
//! (`tests/guests/linux/threads.c`) sees them under `vmm run` with the
//! production seccomp filters: `pthread_create`/`pthread_join` (glibc's
//! `clone3`) with results through shared memory, a mutex contended by 4
//! threads (an exact total), a condvar producer/consumer, a thread that
//! exits while another keeps running, `pthread_kill` (`tgkill`) running
//! the handler on its target, `fork` from a multithreaded process (one
//! thread in the child), a child whose leader exits before its other
//! thread (its parent's wait sees the group's end), `SIGKILL` to a
//! multithreaded child, detached threads, futex `EAGAIN`, relative and absolute timeouts,
//! a zero bitset, a signal to a futex waiter (`EINTR`, or the wait
//! restarted by an `SA_RESTART` handler), a shared futex woken across
//! processes; two threads that never make a system call sharing the
//! vCPU through the slice timer, each with its own FS base (a switch
//! between threads of one process loads it with no CR3 load; hangs until
//! the timeout without preemption); and a non-leader thread's `exit()`
//! ending the whole process.

use vmm_suite::kvm::linux::{run_on_host, static_c_program, static_musl_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux with no argument.
const LINUX: &str = "\
join: squares 30 shared 10
ids: pid==tid in main 1
mutex: counter 80000
condvar: sum 500500 in order 1
exited early: 7
spinner kept running: 1
tgkill: handled on the target 1, not main 1
threads before fork 2
child threads 1 pid==tid 1
child exited 5
threads after join 1
detached threads ran: 50
leader exited first: waited 1 status 3
killed group: signal 9
futex differs: -1 EAGAIN
futex timeout: -1 ETIMEDOUT waited 1
futex absolute: -1 ETIMEDOUT
futex zero bitset: -1 EINVAL
futex wake nobody: 0
futex signaled: EINTR, restarted 0, timed EINTR, handled 3
shared futex: woke 1 child exited 0
spinning threads: main's tls 1 the other's tls 1
";

#[test]
fn pthreads_mutexes_condvars_signals_and_futexes_as_linux() {
    need_kvm!();
    let Some(p) = static_c_program("threads") else { return };
    prints_what_linux_prints(&p);
}

/// `p` under the VMM and on the host prints [`LINUX`] and exits 0.
fn prints_what_linux_prints(p: &std::path::Path) {
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(p, &[]);
    assert_eq!((host.as_str(), code), (LINUX, 0), "the host's own run");
}

/// The same program with musl: its `pthread_create` (`clone`), its
/// `fork` (`SYS_fork`, then a walk of the thread list through the FS
/// base: a child entered with another thread's FS base looped forever),
/// its thread exits (the thread-list lock released by
/// `CLONE_CHILD_CLEARTID`) and its detached threads, which unmap their
/// own stack before `exit` (under PVM the syscall trampoline's tail
/// pushed on that stack: SIGSEGV).
#[test]
fn musl_pthreads_and_fork_from_a_thread_group_as_linux() {
    need_kvm!();
    let Some(p) = static_musl_program("threads") else { return };
    prints_what_linux_prints(&p);
}

#[test]
fn exit_from_a_non_leader_thread_ends_every_thread() {
    need_kvm!();
    let Some(p) = static_c_program("threads") else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog, "--", "exitgroup"]);
    let want = "non-leader exits the group\n";
    assert_eq!((r.stdout.as_str(), r.code), (want, 42), "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(&p, &["exitgroup"]);
    assert_eq!((host.as_str(), code), (want, 42), "the host's own run");
}
