//! Scenario: `/proc/self/mem`, `O_TMPFILE` and `O_DIRECT` as a static C
//! program (`tests/guests/linux/procmem.c`, built here with `gcc
//! -static`) sees them under `vmm run`, with the production seccomp
//! filters: a forced write into a read-only private page lands in a
//! private copy that the program still cannot store to, PROT_NONE memory
//! is read and written through the file, shared read-only pages and
//! holes are `EIO`, transfers stop short at a hole; an unnamed file in
//! `/dev/shm` and `/tmp` takes direct I/O at any alignment. The output
//! must be what Linux 6.12 prints, and what the host prints where it
//! runs the program.

use std::path::PathBuf;

use vmm_suite::kvm::linux::{run_on_host, static_c_program};
use vmm_suite::kvm::run_vmm;
use vmm_suite::need_kvm;

/// What the program prints on Linux with no argument.
const MEM: &str = "\
open rdwr: ok
open by pid: ok
stat mode 100600
zero before: 0
lseek: 1
write: 1
offset moved: 1
seen: 1
store faults: 1, kept 1
pread by pid: 1 ok
byte 1
mprotect rw: 0
store now faults: 0
byte 7
first kept: 1
pwrite none: 1
pread none: 2 ok
bytes 0 2
readable: 2
pwrite shared: -1 Input/output error
pread shared: 1 ok
byte 0
pread hole: -1 Input/output error
pwrite hole: -1 Input/output error
short read: 3
short write: 5
wrote: abcde
pread negative: -1 Invalid argument
write on rdonly: -1 Bad file descriptor
lseek end: -1 Invalid argument
direct mem: -1 Invalid argument
";

/// What it prints on Linux with the argument `tmpfile` (`/dev/shm` a
/// tmpfs, as on every distribution).
const TMPFILE: &str = "\
tmpfile: ok
tmpfile write: 5 ok
tmpfile pread: 5 ok
read hello
tmpfile nlink 0 size 5
tmpfile flags direct: 1
tmpfile in /tmp: 4 ok
tmpfile rdonly: -1 Invalid argument
tmpfile creat: -1 Invalid argument
tmpfile not dir: -1 Not a directory
tmpfile missing: -1 No such file or directory
direct /dev/null: -1 Invalid argument
";

fn program() -> Option<PathBuf> {
    static_c_program("procmem")
}

fn check(arg: &str, linux: &str) {
    let Some(p) = program() else { return };
    let prog = p.to_str().expect("utf-8");
    let r = run_vmm(&["run", "--timeout", "60", "--guest", prog, "--", arg]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, linux, "stderr:\n{}", r.stderr);
    let (host, code) = run_on_host(&p, &[arg]);
    assert_eq!((host.as_str(), code), (linux, 0), "the host's own run");
}

#[test]
fn proc_self_mem_writes_through_read_only_pages_as_linux_does() {
    need_kvm!();
    check("mem", MEM);
}

#[test]
fn o_tmpfile_and_o_direct_on_tmpfs_as_linux_does() {
    need_kvm!();
    check("tmpfile", TMPFILE);
}
