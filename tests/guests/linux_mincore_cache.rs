//! Scenario: `mincore` of shared-memory objects in the Linux kind
//! (`tests/guests/linux/mincore_cache.c`, static glibc and musl,
//! production filters): pages a memfd, a `/dev/shm` file or a SysV
//! segment holds count as resident in a mapping that never touched them
//! (written through the descriptor, or by a child through its own
//! mapping), shared and private mappings alike, as Linux asks the page
//! cache; a hole, and a page punched out, do not; private anonymous
//! memory counts what this process maps only. Every line is what Linux
//! prints. Before, only the page tables were read: every untouched page
//! was 0.

use vmm_suite::kvm::linux::{prints_what_linux_prints, static_c_program, static_musl_program};
use vmm_suite::need_kvm;

/// What `mincore_cache` prints on Linux (`/dev/shm` being tmpfs).
const LINUX: &str = "\
memfd shared, untouched: 1 0 1 0
memfd private, untouched: 1 0 1 0
memfd after a child wrote page 3: 1 0 1 1
memfd after a punch of page 0: 0 0 1 1
memfd after a private write to page 1: 0 1 1 1
/dev/shm file shared, untouched: 1 0 1 0
/dev/shm file private, untouched: 1 0 1 0
/dev/shm file after a child wrote page 3: 1 0 1 1
/dev/shm file after a punch of page 0: 0 0 1 1
/dev/shm file after a private write to page 1: 0 1 1 1
shared anonymous after a child wrote page 1: 0 1 0 0
SysV segment after a child wrote page 2: 0 0 1 0
private anonymous, page 1 written, a child wrote page 2: 0 1 0 0
";

/// `/dev/shm` is tmpfs on the host (the host's own run is compared only
/// then: another file system keeps other pages in its cache).
fn shm_is_tmpfs() -> bool {
    let t = std::process::Command::new("stat").args(["-f", "-c", "%T", "/dev/shm"]).output();
    t.is_ok_and(|o| o.stdout.starts_with(b"tmpfs"))
}

#[test]
fn mincore_counts_what_shared_objects_hold_glibc() {
    need_kvm!();
    prints_what_linux_prints(static_c_program("mincore_cache"), &["--check-invariants"], LINUX, shm_is_tmpfs());
}

#[test]
fn mincore_counts_what_shared_objects_hold_musl() {
    need_kvm!();
    prints_what_linux_prints(static_musl_program("mincore_cache"), &["--check-invariants"], LINUX, shm_is_tmpfs());
}
