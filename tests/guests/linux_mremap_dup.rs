//! Scenario: `mremap` with an old size of 0 in the Linux kind
//! (`tests/guests/linux/mremap_dup.c`, static glibc and musl, production
//! filters, `--check-invariants`): a second mapping of a shared mapping's
//! pages (shared anonymous memory, a memfd at its file offset, a SysV
//! segment counted as a second attach), writes seen both ways, the source
//! left as it was, a copy longer than the rest of the source, `MREMAP_FIXED`
//! over another mapping, the copy outliving the source and shared with a
//! fork's child; `EINVAL` for a private mapping and a zero new size,
//! `ENOMEM` without `MREMAP_MAYMOVE`, `EFAULT` where nothing is mapped.
//! Every line is what Linux prints. Before, every such call was `EINVAL`.

use vmm_suite::kvm::linux::{prints_what_linux_prints, static_c_program, static_musl_program};
use vmm_suite::need_kvm;

/// What `mremap_dup` prints on Linux.
const LINUX: &str = "\
shared anon dup: ok, moved 1
dup reads b c
writes seen both ways: X Y
source: 4 pages rw-s offset 0 pages
source still reads a X Y d
dup past the source's end: ok, reads d
no MAYMOVE: ENOMEM
private: EINVAL
zero new size: EINVAL
unmapped source: EFAULT
fixed: ok at the target 1, reads a X, the target's first page T
memfd dup: ok, reads 0
memfd dup: 1 pages rw-s offset 2 pages
SysV dup: ok, reads S, attaches 2
SysV after both detaches: attaches 0
new size past the user half: EINVAL
fixed onto the source: EFAULT
after the source is gone and a child wrote: C Y
";

#[test]
fn an_old_size_of_zero_duplicates_shared_mappings_glibc() {
    need_kvm!();
    prints_what_linux_prints(static_c_program("mremap_dup"), &["--check-invariants"], LINUX, true);
}

#[test]
fn an_old_size_of_zero_duplicates_shared_mappings_musl() {
    need_kvm!();
    prints_what_linux_prints(static_musl_program("mremap_dup"), &["--check-invariants"], LINUX, true);
}
