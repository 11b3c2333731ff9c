//! Scenario: `PR_SET_MDWE`'s refusal in `mprotect` is made mapping by
//! mapping (`tests/guests/linux/mdwe_order.c`, static glibc and musl,
//! production filters), as Linux's `do_mprotect_pkey` loop makes it:
//! over an executable mapping and one that may not gain `PROT_EXEC`, the
//! first changes and the call fails with `EACCES`. Every line is what
//! Linux prints. Before, the check was made for the whole range first
//! and nothing changed.

use vmm_suite::kvm::linux::{prints_what_linux_prints, static_c_program, static_musl_program};
use vmm_suite::need_kvm;

/// What `mdwe_order` prints on Linux.
const LINUX: &str = "\
mprotect over both: Permission denied
first: --xp
second: r--p
write and exec: Permission denied
second: r--p
";

#[test]
fn mdwe_refuses_mapping_by_mapping_glibc() {
    need_kvm!();
    prints_what_linux_prints(static_c_program("mdwe_order"), &[], LINUX, true);
}

#[test]
fn mdwe_refuses_mapping_by_mapping_musl() {
    need_kvm!();
    prints_what_linux_prints(static_musl_program("mdwe_order"), &[], LINUX, true);
}
