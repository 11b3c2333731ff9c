//! Scenario: pipes, socket pairs, `vmsplice`, `poll` and `prctl` of
//! unmodified static Linux programs under `vmm run`.
//! `tests/guests/linux/ipc.c`, built here with `gcc -static`, runs one
//! scenario per argument on the host and under the VMM; stdout and the
//! exit status must match: a pipe's 64 KiB of page slots (how many
//! 1-, 3000- and 4096-byte writes fit), `F_SETPIPE_SZ`/`F_GETPIPE_SZ`,
//! `EBADF`/`ESPIPE`/`EAGAIN`, `PIPE_BUF` atomicity, partial writes, the
//! end of the data when the last writer goes (also through `dup2`),
//! `O_DIRECT` packets; `EPIPE` with `SIGPIPE` caught, ignored, and
//! killing (141); stream, datagram and packet socket pairs (`send`,
//! `recv`, `MSG_PEEK`, `MSG_TRUNC`, `sendmsg`/`recvmsg`, `shutdown`, a
//! peer closing with data unread); `vmsplice` in and out, one slot per
//! page touched; `poll`/`ppoll` readiness and hang-ups; `prctl` names
//! (`/proc/self/comm`, `Name:`), dumpable, memory-deny-write-execute on
//! `mmap`/`mprotect`; a read interrupted by `SIGALRM` (`EINTR`) and
//! restarted by `SA_RESTART`. A read nothing could ever satisfy (Linux
//! waits forever) is checked under the VMM alone: the run ends with 137
//! and says so. Production seccomp filters throughout.

use std::path::{Path, PathBuf};

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::{run_vmm, VmmRun};
use vmm_suite::need_kvm;

/// The program (`tests/guests/linux/ipc.c`).
fn program() -> Option<PathBuf> {
    static_c_program("ipc")
}

fn guest(prog: &Path, scenario: &str) -> VmmRun {
    run_vmm(&["run", "--timeout", "60", "--guest", prog.to_str().expect("utf-8"), "--", scenario])
}

/// Each scenario prints and ends under the VMM as on the host, and the
/// host gives `status`.
fn same_as_host(scenarios: &[(&str, i32)]) {
    let Some(p) = program() else { return };
    for &(s, status) in scenarios {
        let (want, code) = run_on_host(&p, &[s]);
        assert_eq!(code, status, "{s} on the host:\n{want}");
        let r = guest(&p, s);
        assert_eq!((r.code, r.stdout.as_str()), (code, want.as_str()), "{s}: stderr:\n{}", r.stderr);
        assert!(!r.stderr.contains("not implemented"), "{s}: {}", r.stderr);
    }
}

#[test]
fn pipes_hold_what_linux_pipes_hold_and_end_as_they_do() {
    need_kvm!();
    same_as_host(&[("pipe", 0)]);
}

#[test]
fn a_write_with_no_reader_raises_sigpipe() {
    need_kvm!();
    same_as_host(&[("sigpipe", 141)]);
}

#[test]
fn socket_pairs_of_each_type_carry_data_and_hang_up() {
    need_kvm!();
    same_as_host(&[("socketpair", 0)]);
}

#[test]
fn vmsplice_poll_and_prctl_match_the_host() {
    need_kvm!();
    same_as_host(&[("vmsplice", 0), ("poll", 0), ("prctl", 0)]);
}

#[test]
fn a_blocked_read_is_interrupted_by_sigalrm_and_restarted_with_sa_restart() {
    need_kvm!();
    same_as_host(&[("interrupted", 0)]);
}

#[test]
fn a_read_no_process_could_satisfy_ends_the_run_instead_of_hanging() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = guest(&p, "deadlock");
    assert_eq!(r.code, 137, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "reading an empty pipe nobody else can write\n");
    assert!(
        r.stderr.contains("blocked forever: read on a pipe (nothing to read) with no other process"),
        "{}",
        r.stderr
    );
}
