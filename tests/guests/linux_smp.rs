//! Scenario: Linux programs on several vCPUs (`--vcpus N`), with the
//! production seccomp filters and `--check-invariants` (every frame of
//! every ended process returned). `tests/guests/linux/smp.c`: two
//! threads that make no system call meet and report different CPUs
//! (they ran at once); a thread spinning on a page that another thread,
//! on another vCPU, replaces and then unmaps sees the new page and then
//! the fault (the shootdown reached the spinning vCPU: without it the
//! reader reads the old page until its loop ends); a child whose other
//! thread spins on another vCPU when it exits, and a spinning child
//! killed (both taken off their vCPUs before their address space goes),
//! reaped with their statuses; a mutex contended by 4 threads. And the
//! programs of the single-vCPU scenarios (threads, processes, robust and
//! PI futexes, the mm fuzzer) print on 2 and 4 vCPUs what they print on
//! the host. `smp_ends.c` ends 30 children in a row (killed, faulting,
//! exiting) while their threads spin on the other vCPUs.

use vmm_suite::kvm::linux::{run_on_host, static_c_program, static_musl_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What `smp.c` prints on Linux with two or more CPUs.
const SMP: &str = "\
at least two cpus: 1
ran at once on two cpus: 1
reader: saw the new page 1, faulted after the unmap 1
child with a spinning thread: exited 3
spinning child killed: signal 9
mutex across cpus: 80000
";

/// `p` with `args` under `vmm run --vcpus n`: its output (exit 0 and the
/// invariants' check asserted).
fn on_vcpus(p: &std::path::Path, n: u8, args: &[&str]) -> String {
    let prog = p.to_str().expect("utf-8");
    let n = n.to_string();
    let mut argv = vec!["run", "--vcpus", &n, "--timeout", "90", "--check-invariants", "--guest", prog, "--"];
    argv.extend_from_slice(args);
    let r = run_vmm(&argv);
    assert_eq!(r.code, 0, "{prog} on {n} vCPUs:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("VMM invariants after the run"), "{}", r.stderr);
    r.stdout
}

/// Whether the host has two CPUs or more (where `smp.c`'s own run
/// prints [`SMP`]).
fn host_smp() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// `smp.c` on the host prints [`SMP`], but the line on which CPUs its
/// two threads met: a busy host (other tests) may run them in turn on
/// one CPU. Under the VMM each thread has its vCPU, so that line holds
/// there whatever the load.
fn host_prints_smp(p: &std::path::Path) {
    if !host_smp() {
        return;
    }
    let (out, code) = run_on_host(p, &[]);
    let keep = |s: &str| s.lines().filter(|l| !l.starts_with("ran at once")).collect::<Vec<_>>().join("\n");
    assert_eq!((keep(&out), code), (keep(SMP), 0), "the host's own run");
}

#[test]
fn threads_run_at_once_and_shootdowns_reach_every_vcpu_glibc() {
    need_kvm!();
    let Some(p) = static_c_program("smp") else { return };
    for n in [2, 4] {
        assert_eq!(on_vcpus(&p, n, &[]), SMP, "on {n} vCPUs");
    }
    host_prints_smp(&p);
}

#[test]
fn threads_run_at_once_and_shootdowns_reach_every_vcpu_musl() {
    need_kvm!();
    let Some(p) = static_musl_program("smp") else { return };
    assert_eq!(on_vcpus(&p, 2, &[]), SMP);
    host_prints_smp(&p);
}

/// Each program prints on 2 and 4 vCPUs what it prints on the host.
fn as_on_the_host(p: &std::path::Path, args: &[&str]) {
    let (host, code) = run_on_host(p, args);
    assert_eq!(code, 0, "the host's own run: {host}");
    for n in [2, 4] {
        assert_eq!(on_vcpus(p, n, args), host, "{} {args:?} on {n} vCPUs", p.display());
    }
}

#[test]
fn the_single_vcpu_scenarios_hold_on_several_glibc() {
    need_kvm!();
    // sigwake: a signal to a thread sleeping on another vCPU ends its
    // sleep at once; procpid: /proc/PID of a process running elsewhere.
    for name in ["threads", "procs", "robust", "pi", "sigwake", "procpid"] {
        let Some(p) = static_c_program(name) else { return };
        as_on_the_host(&p, &[]);
    }
}

#[test]
fn the_single_vcpu_scenarios_hold_on_several_musl() {
    need_kvm!();
    for name in ["threads", "robust", "pi"] {
        let Some(p) = static_musl_program(name) else { return };
        as_on_the_host(&p, &[]);
    }
}

#[test]
fn the_mm_fuzzer_forks_on_several_vcpus_as_on_the_host() {
    need_kvm!();
    let Some(p) = static_c_program("mmfuzz") else { return };
    for seed in ["1", "2"] {
        as_on_the_host(&p, &[seed, "3000"]);
    }
}

#[test]
fn processes_end_cleanly_while_their_threads_spin_elsewhere() {
    need_kvm!();
    let Some(p) = static_c_program("smp_ends") else { return };
    let want = "rounds 30 bad 0 parent's count 0\n";
    assert_eq!(on_vcpus(&p, 3, &["30"]), want);
    assert_eq!(run_on_host(&p, &["30"]), (want.to_string(), 0), "the host's own run");
}
