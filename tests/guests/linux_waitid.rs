//! Scenario: `waitid` of a static C program (`tests/guests/linux/waitid.c`)
//! under `vmm run` with the production seccomp filters, compared with the
//! host's own run: argument errors (`EINVAL`, `EBADF` for `P_PIDFD`,
//! `EFAULT`), `ECHILD`, `WNOHANG` with nothing ready (zeroed siginfo),
//! `WNOWAIT` peeking, `P_PGID` of the caller's group and of another,
//! exited, killed and faulting children, and the siginfo fields Linux
//! writes.

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

#[test]
fn waitid_reports_children_and_errors_as_linux() {
    need_kvm!();
    let Some(p) = static_c_program("waitid") else { return };
    let prog = p.to_str().expect("utf-8");
    let (host, code) = run_on_host(&p, &[]);
    assert_eq!(code, 0, "the host's own run:\n{host}");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, host, "stderr:\n{}", r.stderr);
}
