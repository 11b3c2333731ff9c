//! Scenario: signals of unmodified static Linux programs under `vmm run`.
//! `tests/guests/linux/signals.c`, built here with `gcc -static`, runs
//! one scenario per argument on the host and under the VMM; stdout and
//! the exit status must match: a `SIGSEGV` handler that `siglongjmp`s out
//! of writes to `PROT_NONE`, `NULL` and an unmapped page (`si_code`,
//! `si_addr`); a handler that fixes the fault with `mprotect` and returns
//! (the write retries); `raise`/`kill` to a `SA_SIGINFO` handler, a
//! blocked signal delivered when unblocked, `SA_NODEFER`,
//! `SA_RESETHAND`, `SIG_IGN`; a stack overflow caught on the alternate
//! stack; a handler clobbering XMM, MXCSR and the x87 control word
//! while the interrupted code keeps its own; `SIGILL`, `SIGFPE`,
//! `SIGTRAP` handlers; default actions (139, 134, 135, 132), and fault
//! signals that are blocked or ignored killing anyway; frames corrupted
//! before `rt_sigreturn` (a non-canonical RIP, a bad FPU pointer, a bad
//! CS) killing the program with `SIGSEGV`, and privileged RFLAGS bits
//! in a frame dropped; `alarm` waking `pause`, a periodic
//! `ITIMER_REAL` waking `sigsuspend` (which waits with its own mask and
//! restores the caller's), `SIGALRM`'s default action (142). `SIGBUS`
//! for memory the VMM cannot give is
//! checked under the VMM alone (Linux overcommits). Production seccomp
//! filters throughout.

use std::path::{Path, PathBuf};

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::{run_vmm, VmmRun};
use vmm_suite::need_kvm;

/// The program (`tests/guests/linux/signals.c`).
fn program() -> Option<PathBuf> {
    static_c_program("signals")
}

/// Runs `prog scenario` on the host: (stdout, status as a shell reports
/// it).
fn host(prog: &Path, scenario: &str) -> (String, i32) {
    run_on_host(prog, &[scenario])
}

fn guest(prog: &Path, scenario: &str) -> VmmRun {
    run_vmm(&["run", "--timeout", "60", "--guest", prog.to_str().expect("utf-8"), "--", scenario])
}

/// Each scenario prints and ends under the VMM as on the host, and the
/// host gives `status`.
fn same_as_host(scenarios: &[(&str, i32)]) {
    let Some(p) = program() else { return };
    for &(s, status) in scenarios {
        let (want, code) = host(&p, s);
        assert_eq!(code, status, "{s} on the host:\n{want}");
        let r = guest(&p, s);
        assert_eq!((r.code, r.stdout.as_str()), (code, want.as_str()), "{s}: stderr:\n{}", r.stderr);
        assert!(!r.stderr.contains("unexpected exception"), "{s}: {}", r.stderr);
    }
}

#[test]
fn faults_reach_handlers_with_si_code_and_si_addr() {
    need_kvm!();
    same_as_host(&[("segv", 0), ("fixup", 0), ("ill", 0), ("fpe", 0), ("trap", 0)]);
    let Some(p) = program() else { return };
    let (out, _) = host(&p, "segv");
    assert!(out.contains("prot_none: sig 11 SEGV_ACCERR addr_ok 1\nnull: sig 11 SEGV_MAPERR addr_ok 1\n"), "{out}");
}

#[test]
fn signals_sent_to_itself_respect_the_mask_and_the_flags() {
    need_kvm!();
    same_as_host(&[("send", 0)]);
}

#[test]
fn a_stack_overflow_is_caught_on_the_alternate_stack() {
    need_kvm!();
    same_as_host(&[("altstack", 0)]);
}

#[test]
fn a_handler_does_not_corrupt_the_interrupted_fpu_state() {
    need_kvm!();
    same_as_host(&[("xmm", 0)]);
}

#[test]
fn default_actions_end_the_run_with_128_plus_the_signal() {
    need_kvm!();
    same_as_host(&[
        ("die-segv", 139),
        ("die-abort", 134),
        ("die-bus", 135),
        ("die-ill", 132),
        ("die-blocked-segv", 139),
        ("die-ignored-segv", 139),
    ]);
}

#[test]
fn a_corrupted_frame_kills_the_program_not_the_vmm() {
    need_kvm!();
    same_as_host(&[("badrip", 139), ("badfp", 139), ("badcs", 139), ("badflags", 0)]);
    let Some(p) = program() else { return };
    let r = guest(&p, "badrip");
    assert!(r.stderr.contains("killed by signal 11"), "{}", r.stderr);
}

#[test]
fn alarm_and_itimer_real_wake_pause_and_sigsuspend() {
    need_kvm!();
    same_as_host(&[("alarm", 0), ("die-alarm", 142)]);
}

#[test]
fn memory_the_vmm_cannot_give_is_sigbus() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = guest(&p, "exhaust");
    assert_eq!((r.code, r.stdout.as_str()), (0, "exhaust: sig 7 code_adrerr 1 addr_ok 1\n"), "{}", r.stderr);
}
