//! Scenario: `PR_SET_MDWE`'s refusal in `mprotect` is made mapping by
//! mapping (`tests/guests/linux/mdwe_order.c`, static glibc and musl,
//! production filters), as Linux's `do_mprotect_pkey` loop makes it:
//! over an executable mapping and one that may not gain `PROT_EXEC`, the
//! first changes and the call fails with `EACCES`. Every line is what
//! Linux prints. Before, the check was made for the whole range first
//! and nothing changed.

use vmm_suite::kvm::linux::{run_on_host, static_c_program, static_musl_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What `mdwe_order` prints on Linux.
const LINUX: &str = "\
mprotect over both: Permission denied
first: --xp
second: r--p
write and exec: Permission denied
second: r--p
";

fn refuses_as_linux(p: Option<std::path::PathBuf>) {
    let Some(p) = p else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    assert_eq!(run_on_host(&p, &[]), (LINUX.to_owned(), 0), "the host's own run");
}

#[test]
fn mdwe_refuses_mapping_by_mapping_glibc() {
    need_kvm!();
    refuses_as_linux(static_c_program("mdwe_order"));
}

#[test]
fn mdwe_refuses_mapping_by_mapping_musl() {
    need_kvm!();
    refuses_as_linux(static_musl_program("mdwe_order"));
}
