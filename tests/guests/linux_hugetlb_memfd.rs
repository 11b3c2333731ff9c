//! Scenario: a hugetlbfs memfd (`memfd_create(MFD_HUGETLB)`) under `vmm
//! run --hugepages 8`. A C program built here with `gcc -static`
//! (`tests/guests/linux/hugetlb_memfd.c`) writes to it (`EINVAL`),
//! truncates it (whole huge pages only), maps it shared and privately,
//! writes through both (private copies on write), fallocates, punches a
//! hole, `MADV_REMOVE`s and `MADV_DONTNEED`s, and prints what it reads
//! and how `/proc/meminfo`'s `HugePages_Free` and `HugePages_Rsvd` moved.
//! Under the VMM it must print what Linux 6.12 prints: `LINUX` below was
//! worked out from Linux 6.12's `mm/hugetlb.c` and `fs/hugetlbfs/inode.c`
//! (the host these tests were written on has no huge pages, so it was not
//! printed by a Linux run; where the host has 8 free, the test compares).
//! Where the host has none, the VMM without `--hugepages` must print what
//! the host prints (up to the first mapping, which neither can reserve).

use std::path::{Path, PathBuf};
use std::process::Command;

use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux 6.12 with 8 free 2 MiB pages.
const LINUX: &str = "\
write: Invalid argument
ftruncate 1 MiB: Invalid argument
ftruncate 4 MiB: ok
size 4194304 blksize 2097152 blocks 0
shared mapped: used 0, reserved 3
size 6291456 blksize 2097152 blocks 0
shared touched: used 2, reserved 1
size 6291456 blksize 2097152 blocks 8192
pread 1: 2
private mapped: used 2, reserved 4
private reads 1 2
private read: used 2, reserved 4
private written: used 3, reserved 3
shared 1 private 9
private sees 3
fallocate: ok
fallocated: used 4, reserved 2
punch: ok
punched 0: used 2, reserved 2
after the punch shared 0 private 0
refaulted 0: used 3, reserved 2
MADV_REMOVE: ok
removed 1: used 2, reserved 2
private page 1 now 0
private hole read: used 3, reserved 1
MADV_DONTNEED: ok
private dropped: used 2, reserved 1
mmap at 4 KiB: Invalid argument
mmap of 1 byte: ok, munmap of 2 MiB: ok
unmapped: used 2, reserved 0
size 6291456 blksize 2097152 blocks 8192
ftruncate 0: ok
truncated: used 0, reserved 0
closed: used 0, reserved 0
";

/// What it prints where no huge page can be reserved.
const NO_PAGES: &str = "\
write: Invalid argument
ftruncate 1 MiB: Invalid argument
ftruncate 4 MiB: ok
size 4194304 blksize 2097152 blocks 0
mmap: Cannot allocate memory
";

fn program() -> Option<PathBuf> {
    vmm_suite::kvm::linux::static_c_program("hugetlb_memfd")
}

fn vmm(p: &Path, extra: &[&str]) -> vmm_suite::kvm::VmmRun {
    let mut argv = vec!["run", "--timeout", "60", "--mem", "256"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&["--guest", p.to_str().expect("utf-8")]);
    run_vmm(&argv)
}

#[test]
fn a_hugetlb_memfd_behaves_as_hugetlbfs() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = vmm(&p, &["--hugepages", "8"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    let host = Command::new(&p).output().expect("run on the host");
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    if vmm_suite::kvm::linux::host_free_hugepages() >= 8 {
        assert_eq!(r.stdout, host, "the host, with its own huge pages");
    } else if vmm_suite::kvm::linux::host_free_hugepages() == 0 {
        let none = vmm(&p, &[]);
        assert_eq!(none.code, 0, "{}", none.stderr);
        assert_eq!(none.stdout, host, "without --hugepages, as the host without huge pages");
        assert_eq!(none.stdout, NO_PAGES);
    }
}
