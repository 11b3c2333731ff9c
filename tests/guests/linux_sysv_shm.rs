//! Scenario: SysV shared memory in a Linux program. A C program built
//! here with `gcc -static` (`tests/guests/linux/sysv_shm.c`) makes,
//! attaches, splits, detaches and removes segments and prints what every
//! Linux prints (errors, attach counts, `IPC_STAT`, `/proc/self/maps`'
//! name, `/proc/sysvipc/shm`, the sysctls). Under the VMM it must print
//! what Linux 6.12 prints (the text below) and, where the host allows
//! SysV shared memory, what the host's own run prints. With `huge` and
//! `--hugepages`, a `SHM_HUGETLB` segment reserves, uses and frees pool
//! pages as Linux's do.

use std::path::{Path, PathBuf};

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux 6.12 (root, default sysctls, no
/// huge pages reserved).
const LINUX: &str = "\
no key: No such file or directory
size 0: Invalid argument
IPC_INFO: ok, shmmin 1, shmmni 4096, shmseg 4096
too big: Invalid argument
create: ok
again, IPC_EXCL: File exists
again, bigger: Invalid argument
again, same id: 1
stat: key ok 1, mode 640, size 12388, nattch 0, cpid ok 1, lpid 0, atime 0
two attaches: 1, nattch 2
read through the other: shared bytes
tail of the last page reads zero: 1
maps: inode is the id 1, /SYSV5653ed01 (deleted)
mprotect write on SHM_RDONLY: Permission denied
lpid is ours 1, atime set 1
split: nattch 4
shmdt mid-page: Invalid argument
shmdt of no attach: Invalid argument
shmdt split: ok, nattch 1
shmdt again: Invalid argument
over a mapping: Invalid argument
SHM_REMAP: ok, there 1
sees the bytes: shared bytes
unaligned: Invalid argument
SHM_RND: ok, rounded 1
SHM_REMAP without an address: Invalid argument
bad id: Invalid argument
nattch 3
IPC_SET: ok
SHM_LOCK: ok
mode 2604
IPC_RMID: ok
removed: key 0, mode 1604, nattch 3
the key is free: No such file or directory
attach after IPC_RMID: ok, nattch 4
maps: inode is the id 1, /SYSV5653ed01 (deleted)
one left: nattch 1
munmap of the last: Invalid argument
SHM_INFO: ok, counts ours 1
sysvipc: key 0 perms 600 size 40960 nattch 1 rss 8192
listed 1
shmmni: 4096
";

/// The `huge` part with 8 free 2 MiB pages.
const LINUX_HUGE: &str = "\
hugetlb shmget: ok
hugetlb reserved 2
hugetlb shmat: ok, 2 MiB aligned 1
hugetlb used 2, reserved 0
maps: inode is the id 1, /SYSV00000000 (deleted)
hugetlb shmdt: ok
hugetlb freed 1
SHM_HUGE_1GB: Cannot allocate memory
SHM_HUGE 32 MiB: Invalid argument
";

fn program() -> Option<PathBuf> {
    static_c_program("sysv_shm")
}

fn vmm(p: &Path, extra: &[&str], args: &[&str]) -> vmm_suite::kvm::VmmRun {
    let mut argv = vec!["run", "--timeout", "60", "--mem", "256"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&["--guest", p.to_str().expect("utf-8")]);
    if !args.is_empty() {
        argv.push("--");
        argv.extend_from_slice(args);
    }
    run_vmm(&argv)
}

/// Can the host run SysV shared memory (not forbidden by a sandbox)?
fn host_has_sysv_shm() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/shmmni").is_ok_and(|s| s.trim() != "0")
}

#[test]
fn segments_behave_as_on_linux_and_on_the_host() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = vmm(&p, &[], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let want = format!("{LINUX}hugetlb shmget: Cannot allocate memory\n");
    assert_eq!(r.stdout, want, "stderr:\n{}", r.stderr);
    if !host_has_sysv_shm() {
        eprintln!("SKIP: the host has no SysV shared memory to compare with");
        return;
    }
    let (host, code) = run_on_host(&p, &[]);
    if code != 0 || host.starts_with("no key: Function not implemented") {
        eprintln!("SKIP: SysV shared memory is forbidden on this host (status {code})");
        return;
    }
    let host_huge_free = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:").map(|v| v.trim() == "0"))
        .unwrap_or(true);
    if host_huge_free {
        assert_eq!(r.stdout, host, "the host's own run");
    } else {
        assert_eq!(r.stdout.lines().count(), host.lines().count());
        assert_eq!(r.stdout.rsplit_once("hugetlb").map(|x| x.0), host.rsplit_once("hugetlb").map(|x| x.0));
    }
}

#[test]
fn a_hugetlb_segment_takes_and_gives_back_pool_pages() {
    need_kvm!();
    let Some(p) = program() else { return };
    let r = vmm(&p, &["--hugepages", "8"], &["huge"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, format!("{LINUX}{LINUX_HUGE}"), "stderr:\n{}", r.stderr);
    // Too few pages to reserve the segment: shmget is ENOMEM, as Linux's.
    let r = vmm(&p, &["--hugepages", "1"], &["huge"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("hugetlb shmget: Cannot allocate memory\n"), "{}", r.stdout);
}
