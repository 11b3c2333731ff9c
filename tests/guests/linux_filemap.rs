//! Scenario: `mmap` of files in `/tmp` and `/dev/shm` by an unmodified
//! static Linux program under `vmm run` (issue 18, file mappings).
//! `tests/guests/linux/filemap.c`, built here with `gcc -static`, maps a
//! file shared and private, writes through `pwrite` and through both
//! mappings, touches whole pages past the end (`SIGBUS`), shrinks,
//! regrows and punches the file while it is mapped, and tries the
//! open-mode rules (`EACCES`, `mprotect`), printing what it sees; the
//! output and exit status must be the host's. Production seccomp
//! filters throughout.

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

#[test]
fn file_mappings_behave_as_on_the_host() {
    need_kvm!();
    let Some(p) = static_c_program("filemap") else { return };
    let (want, code) = run_on_host(&p, &[]);
    assert_eq!(code, 0, "on the host:\n{want}");
    assert!(want.contains("signal 7 code 2"), "the host run shows SIGBUS past the end:\n{want}");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", p.to_str().expect("utf-8")]);
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
