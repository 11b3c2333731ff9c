//! Scenario: `vmm run --hugepages N` (`vm.nr_hugepages` for a Linux
//! program). A C program built here with `gcc -static`
//! (`tests/guests/linux/hugetlb.c`) maps `MAP_HUGETLB` memory privately
//! and shared, touches, discards and unmaps it, and prints how
//! `/proc/meminfo`'s `HugePages_Free` and `HugePages_Rsvd` moved (and
//! whether sysfs agrees) with Linux's errors for the misaligned cases.
//! Under the VMM it must print what Linux prints; where the host has 8
//! free huge pages it is also compared with the host's own run, and where
//! it has none, the VMM without `--hugepages` must print what the host
//! prints. An impossible `--hugepages` is refused before the run.

use std::path::{Path, PathBuf};
use std::process::Command;

use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux 6.12 with 8 or more free 2 MiB pages
/// (and 1 GiB pages supported but none reserved).
const LINUX: &str = "\
Hugepagesize 2048 kB
aligned 1
mapped: used 0, reserved 3, sysfs agrees 1
touched 0 and 2: used 2, reserved 1, sysfs agrees 1
page 1 reads zero 1
read 1: used 3, reserved 0, sysfs agrees 1
data kept 1
madvise off a huge page: Invalid argument
MADV_FREE: Invalid argument
madvise 1 page + 4 KiB: ok
dropped 0: used 2, reserved 0, sysfs agrees 1
page 0 zero again 1
refaulted 0: used 3, reserved 0, sysfs agrees 1
munmap of 4 KiB: Invalid argument
munmap of page 1: ok
unmapped 1: used 2, reserved 0, sysfs agrees 1
page 2 kept 1
munmap: ok
unmapped: used 0, reserved 0, sysfs agrees 1
fixed off a huge page: Invalid argument
MAP_HUGE_1GB: Cannot allocate memory
MAP_HUGE 32 MiB: Invalid argument
shared touched: used 1, reserved 1, sysfs agrees 1
shared madvise: ok
shared dropped: used 1, reserved 1, sysfs agrees 1
shared data kept 1
munmap: ok
end: used 0, reserved 0, sysfs agrees 1
";

/// The program (`tests/guests/linux/hugetlb.c`).
fn program() -> Option<PathBuf> {
    vmm_suite::kvm::linux::static_c_program("hugetlb")
}

fn vmm(p: &Path, extra: &[&str]) -> vmm_suite::kvm::VmmRun {
    let mut argv = vec!["run", "--timeout", "60", "--mem", "256"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&["--guest", p.to_str().expect("utf-8")]);
    run_vmm(&argv)
}

#[test]
fn map_hugetlb_moves_the_counters_as_on_linux() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = vmm(&p, &["--hugepages", "8"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, LINUX, "stderr:\n{}", r.stderr);
    let host = Command::new(&p).output().expect("run on the host");
    let host = String::from_utf8_lossy(&host.stdout).into_owned();
    if vmm_suite::kvm::linux::host_free_hugepages() >= 8 {
        assert_eq!(r.stdout, host, "the host, with its own huge pages");
    } else {
        // No huge pages on the host: compare the VMM without them.
        let none = vmm(&p, &[]);
        assert_eq!(none.code, 0, "{}", none.stderr);
        assert_eq!(none.stdout, host, "without --hugepages, as the host without huge pages");
        assert_eq!(none.stdout, "Hugepagesize 2048 kB\nmmap: Cannot allocate memory\n");
    }
}

#[test]
fn a_mapping_the_pool_cannot_promise_is_enomem() {
    need_kvm!();
    let Some(p) = program() else { return };
    // Two pages: the 3-page mapping cannot be promised.
    let r = vmm(&p, &["--hugepages", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Hugepagesize 2048 kB\nmmap: Cannot allocate memory\n");
}

#[test]
fn more_huge_pages_than_guest_ram_is_refused() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = vmm(&p, &["--hugepages", "200"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--hugepages 200: 400 MiB of huge pages do not fit in --mem 256 MiB"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "the program never ran: {}", r.stdout);
}
