//! Scenario: processes in the Linux kind, as a static C program
//! (`tests/guests/linux/procs.c`) sees them under `vmm run` with the
//! production seccomp filters: fork and wait, copy-on-write isolation in
//! both directions, `MAP_SHARED` anonymous memory shared, exit statuses,
//! children killed by `SIGKILL` and by a fault, vfork, `WNOHANG`,
//! `ECHILD`; and a fork bomb stopped with `EAGAIN` (at the kind's fixed
//! process limit: root on Linux is not held by `RLIMIT_NPROC`); processes
//! that never make a system call preempted by the slice timer
//! (`tests/guests/linux/preempt.c`); signals reaching processes parked in
//! blocking calls (`tests/guests/linux/sigwake.c`); `/proc/PID/` files
//! of other processes (`tests/guests/linux/procpid.c`).

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux with no argument.
const LINUX: &str = "\
child: parent ok 1
waited right child 1
child: exited 7
parent value 1 priv p shared 42
isolated: exited 0
killed: signaled 9
segv: signaled 11
vfork: exited 3
no children: -1 No child processes
nohang: 0
slept: exited 0
";

#[test]
fn fork_wait_copy_on_write_and_exit_statuses_as_linux() {
    need_kvm!();
    let Some(p) = static_c_program("procs") else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!((host.as_str(), code), (LINUX, 0), "the host's own run");
}

#[test]
fn a_fork_bomb_stops_at_eagain_and_every_child_is_reaped() {
    need_kvm!();
    let Some(p) = static_c_program("procs") else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog, "--", "bomb"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "fork failed: EAGAIN\nbounded: 1 reaped all: 1\n", "stderr:\n{}", r.stderr);
}

/// What `tests/guests/linux/preempt.c` prints on Linux.
const PREEMPT: &str = "\
spinner: signaled 9
spinner ran: 1
both ran: 1
both still run: 1
first: signaled 9
second: signaled 9
spinning parent saw the child run: 1
third: signaled 9
";

/// Processes that never make a system call are preempted: a sleeping
/// parent wakes while its child spins, two spinners both progress, a
/// spinning parent sees its spinning child run (hangs until the watchdog
/// without the slice timer).
#[test]
fn processes_that_never_make_a_system_call_share_the_vcpu() {
    need_kvm!();
    let Some(p) = static_c_program("preempt") else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "30", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, PREEMPT, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!((host.as_str(), code), (PREEMPT, 0), "the host's own run");
}

/// A signal to a process parked in a pipe read, `wait4`, `pause` or a
/// sleep interrupts it at once (its handler runs; `EINTR`, or the read
/// made again with `SA_RESTART`; a sleep `EINTR` with the time left
/// even with `SA_RESTART`); a default-fatal signal or `SIGKILL` ends a
/// parked or spinning process at once; an ignored one leaves a sleep
/// alone (`tests/guests/linux/sigwake.c`, as on the host).
#[test]
fn signals_reach_processes_parked_in_blocking_calls_at_once() {
    need_kvm!();
    let Some(p) = static_c_program("sigwake") else { return };
    let prog = p.to_str().expect("utf-8");
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!(code, 0, "the host's own run:\n{host}");
    assert!(!host.contains("quick 0"), "the host's own run:\n{host}");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, host, "stderr:\n{}", r.stderr);
}

/// `/proc/PID/{status,stat,maps,cmdline,comm}` of a sleeping child (its
/// name, state, ids, signal sets, its own mapping), of the caller by its
/// own pid, of a zombie (no memory), an unknown pid (`ENOENT`) and a
/// reaped one (`ESRCH` at read), as on the host
/// (`tests/guests/linux/procpid.c`).
#[test]
fn proc_pid_files_show_other_processes_as_linux() {
    need_kvm!();
    let Some(p) = static_c_program("procpid") else { return };
    let prog = p.to_str().expect("utf-8");
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!(code, 0, "the host's own run:\n{host}");
    assert!(host.contains("status: read 1 name 1 state 1 pid 1 ppid 1"), "the host's own run:\n{host}");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, host, "stderr:\n{}", r.stderr);
}

/// `cowflush.c` on Linux.
const COWFLUSH_LINUX: &str = "\
zero page read first: sees the data
child's read into shared pages: sees the data
parent's pages after the child's copies: its own
parent's read into once-shared pages: sees the data
";

#[test]
fn a_read_into_a_page_only_read_so_far_is_seen_at_once() {
    // The VMM breaks copy-on-write itself for a system call's copy and
    // writes the new frame: the program's next load must go to it (the
    // flush of the old entry cannot wait for a retry that never comes).
    need_kvm!();
    let Some(p) = static_c_program("cowflush") else { return };
    let r = run_vmm(&["run", "--timeout", "60", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, COWFLUSH_LINUX, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!((host.as_str(), code), (COWFLUSH_LINUX, 0), "the host's own run");
}
