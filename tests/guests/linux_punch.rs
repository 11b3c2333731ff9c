//! Scenario: hole punches seen from every process, for every kind of
//! shared object the Linux kind has (`tests/guests/linux/punch.c`, static
//! glibc and musl, production filters, `--check-invariants`). A child's
//! `fallocate(PUNCH_HOLE)` or `MADV_REMOVE` of a memfd must take the
//! pages out of the parent's mappings while the parent's private copies
//! stay; the caller's own `MADV_REMOVE` keeps its own private copies (as
//! Linux's `unmap_mapping_range` without `even_cows`); `MADV_REMOVE` of
//! a SysV segment punches it for every attach. With huge pages: a
//! hugetlbfs memfd punched or truncated by a child (the parent's shared
//! and private mappings lose the pages, private copies included, and
//! `SIGBUS` past the new end), a shared `MAP_HUGETLB` mapping and a
//! `SHM_HUGETLB` segment `MADV_REMOVE`d by a child (the page back in the
//! pool, zeroes on the next touch).
//!
//! Before: the caller's own copies read as zeroes, a SysV segment kept
//! its data, the hugetlb objects were cleared from the caller only (the
//! parent read the punched data; a truncated page stayed mapped) and
//! `MADV_REMOVE` of a shared hugetlb mapping or segment failed.
//! A punch also takes the pages past an object's size (the last page of
//! a 5,000-byte segment), and keeps the reservations of huge pages never
//! touched (`HugePages_Rsvd` as Linux moves it).
//! `HUGE` below is what Linux 6.18 printed on the machine these tests
//! were written on, given 16 huge pages for the run.

use vmm_suite::kvm::linux::{run_on_host, static_c_program, static_musl_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What `punch` prints on Linux.
const SMALL: &str = "\
memfd private page 1 before: B
fallocate punch of page 1 in a child: ok
memfd after the punch: private x 0 C, shared 0
MADV_REMOVE of all in a child: ok
memfd after the remove: private x 0 y, shared 0 0 0
own remove: 0
memfd after its own remove: private x z y, shared 0
MADV_REMOVE of the first page in a child: ok
SysV segment: 0 T
5000-byte segment, its last page removed: 0, page 1 reads 0
";

/// What `punch huge` adds on Linux with free huge pages.
const HUGE: &str = "\
hugetlb memfd private before: 1 2
hugetlb punch of page 0 in a child: ok
hugetlb memfd after the punch: shared 0 2, private 0 2
hugetlb truncation to one page in a child: ok
hugetlb memfd after the truncation: shared 0 -7, private 0 -7
hugetlb reservations: mapped 2, untouched punched 2, touched 1, removed 1, refaulted 0
shared MAP_HUGETLB mremap: grown EINVAL, duplicated EINVAL
MADV_REMOVE of page 0 in a child: ok
shared MAP_HUGETLB: 0 6, pages back 1
MADV_REMOVE of the first page in a child: ok
SHM_HUGETLB segment: 0 T, pages back 1 (of 2)
";

fn under_vmm(p: &std::path::Path, args: &[&str]) -> String {
    let prog = p.to_str().expect("utf-8");
    let mut argv = vec!["run", "--timeout", "60", "--mem", "256", "--hugepages", "8", "--check-invariants"];
    argv.extend_from_slice(&["--guest", prog, "--"]);
    argv.extend_from_slice(args);
    let r = run_vmm(&argv);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    r.stdout
}

fn punches_as_linux(p: Option<std::path::PathBuf>) {
    let Some(p) = p else { return };
    assert_eq!(under_vmm(&p, &[]), SMALL);
    assert_eq!(run_on_host(&p, &[]), (SMALL.to_owned(), 0), "the host's own run");
    let both = format!("{SMALL}{HUGE}");
    assert_eq!(under_vmm(&p, &["huge"]), both);
    if vmm_suite::kvm::linux::host_free_hugepages() >= 8 {
        assert_eq!(run_on_host(&p, &["huge"]), (both, 0), "the host, with its own huge pages");
    }
}

#[test]
fn punches_reach_every_process_and_keep_private_copies_glibc() {
    need_kvm!();
    punches_as_linux(static_c_program("punch"));
}

#[test]
fn punches_reach_every_process_and_keep_private_copies_musl() {
    need_kvm!();
    punches_as_linux(static_musl_program("punch"));
}
