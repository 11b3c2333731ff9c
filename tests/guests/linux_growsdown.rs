//! Scenario: `MAP_GROWSDOWN` stacks in the Linux kind
//! (`tests/guests/linux/growsdown.c`, static glibc and musl, production
//! filters, `--check-invariants`), as LTP's `mmap18` uses them: a thread
//! whose stack is a growing mapping dives below it and the stack grows;
//! a page mapped within the 256-page guard gap below ends the dive with
//! `SIGSEGV`, one beyond it does not until the dive reaches it;
//! `RLIMIT_STACK` bounds the growth; smaps shows `gd`; a touch below
//! grows it in the main thread too; `PROT_GROWSDOWN` changes the range
//! down to the stack's start (`EINVAL` on a plain mapping, as
//! `PROT_GROWSUP` always); a new mapping is placed clear of the gap.
//! Every line is what Linux prints. Before, the flag was accepted and
//! ignored: every dive below the mapped part was `SIGSEGV`.

use vmm_suite::kvm::linux::{prints_what_linux_prints, static_c_program, static_musl_program};
use vmm_suite::need_kvm;

/// What `growsdown` prints on Linux.
const LINUX: &str = "\
grows 64 KiB from 16: exit 0
grows 200 KiB from 128: exit 0
a page 64 KiB below the top: signal 11
a page 1 MiB + 128 KiB below, dive to 64 KiB: exit 0
the same, dive to 256 KiB: signal 11
RLIMIT_STACK 64 KiB, dive to 32 KiB: exit 0
RLIMIT_STACK 64 KiB, dive to 128 KiB: signal 11
stack VmFlags has gd: 1
stack VmFlags has gd: 1
PROT_GROWSDOWN: 0, the stack's first pages now r--p, 3 pages
PROT_GROWSDOWN on a plain mapping: Invalid argument
PROT_GROWSUP: Invalid argument
MAP_GROWSDOWN: shared EINVAL, memfd EINVAL, /dev/zero EINVAL, droppable EINVAL
sealed stack (mseal 0) grows: yes
hint inside the gap honoured: 0
mprotect of length 0 with unknown bits: 0
a new mapping right below the stack's gap: 1
";

#[test]
fn growsdown_stacks_grow_as_linux_glibc() {
    need_kvm!();
    prints_what_linux_prints(static_c_program("growsdown"), &["--check-invariants"], LINUX, true);
}

#[test]
fn growsdown_stacks_grow_as_linux_musl() {
    need_kvm!();
    prints_what_linux_prints(static_musl_program("growsdown"), &["--check-invariants"], LINUX, true);
}
