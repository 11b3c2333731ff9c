//! SysV shared memory at the system-call level, without KVM: a process
//! loaded as `vmm run` loads it makes a segment, attaches it twice,
//! writes through one attach and reads through the other, removes it
//! while attached and detaches; the pages are checked by walking the
//! page tables (both attaches map the same frames, the read-only one
//! without write permission), the pool's free pages come back only at
//! the last detach, and the fuzz target's checks (audit, independent
//! walk, teardown) hold after every call.

#![allow(clippy::unwrap_used)]

use guest_mm::GuestVirtAddr;
use vmm::guest::kind::GuestKind;
use vmm::hosted::hypercall::{Args, Outcome};
use vmm::layout::PAGE_SIZE;

use super::super::linux_program::DATA_VA;
use super::super::linux_syscalls_check::Snapshot;
use super::Machine;

const SHMGET: u64 = 29;
const SHMAT: u64 = 30;
const SHMCTL: u64 = 31;
const SHMDT: u64 = 67;
const MUNMAP: u64 = 11;
const IPC_STAT: u64 = 2;
const IPC_RMID: u64 = 0;
const SHM_RDONLY: u64 = 0o10000;

fn call(m: &Machine, nr: u64, a: [u64; 6]) -> i64 {
    let before = Snapshot::take(&m.base, &m.hv);
    let out: Outcome = m.linux.syscall(&m.hv, 0, &Args { nr, a });
    m.flusher.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let after = Snapshot::take(&m.base, &m.hv);
    m.base.check_call(&m.hv, (nr, &a), &out, (&before, &after), (super::resident(), super::resident()));
    m.base.check_state("after a SysV call", &m.hv, &after);
    out.ret
}

/// `(frame address, writable)` behind `va`, by walking the tables.
fn walk(m: &Machine, va: u64) -> Option<(u64, bool)> {
    let t = m.hv.mapper().page_tables().translate(GuestVirtAddr::try_new(va).unwrap())?;
    Some((t.phys.0, t.prot.writable))
}

/// `shm_nattch` and `shm_perm.mode` from `IPC_STAT`, or `-errno`.
fn stat(m: &Machine, id: u64) -> Result<(u64, u32), i64> {
    let r = call(m, SHMCTL, [id, IPC_STAT, DATA_VA, 0, 0, 0]);
    if r < 0 {
        return Err(r);
    }
    let b = m.hv.read_user(0, DATA_VA, 112).unwrap();
    Ok((u64::from_le_bytes(b[88..96].try_into().unwrap()), u32::from_le_bytes(b[20..24].try_into().unwrap())))
}

/// `Shmem:` of `/proc/meminfo` in kB, read by the program's calls.
fn shmem_kb(m: &Machine) -> u64 {
    let path = DATA_VA + 2048;
    m.hv.write_user(0, path, b"/proc/meminfo\0").unwrap();
    let fd = call(m, 2, [path, 0, 0, 0, 0, 0]);
    assert!(fd >= 0, "open /proc/meminfo: {fd}");
    let n = call(m, 0, [fd as u64, DATA_VA + 4096, 4096, 0, 0, 0]);
    assert!(n > 0);
    assert_eq!(call(m, 3, [fd as u64, 0, 0, 0, 0, 0]), 0);
    let text = String::from_utf8(m.hv.read_user(0, DATA_VA + 4096, n as u64).unwrap()).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("Shmem:")).unwrap();
    line.trim().trim_end_matches(" kB").trim().parse().unwrap()
}

fn pool_free(m: &Machine) -> usize {
    m.hv.mapper().space().stats().pool_free
}

#[test]
fn attaches_share_frames_and_the_last_detach_frees_them() {
    let m = Machine::new();
    let free0 = pool_free(&m);
    let id = call(&m, SHMGET, [0, 3 * PAGE_SIZE + 1, 0o600, 0, 0, 0]);
    assert_eq!(id, 0, "the first id of a namespace");
    let a = call(&m, SHMAT, [0, 0, 0, 0, 0, 0]);
    let b = call(&m, SHMAT, [0, 0, SHM_RDONLY, 0, 0, 0]);
    assert!(a > 0 && b > 0 && a != b, "{a:#x} {b:#x}");
    let (a, b) = (a as u64, b as u64);
    assert_eq!(stat(&m, 0), Ok((2, 0o600)));
    m.hv.write_user(0, a + 3 * PAGE_SIZE, b"last page").unwrap();
    assert_eq!(m.hv.read_user(0, b + 3 * PAGE_SIZE, 9).unwrap(), b"last page");
    let (fa, wa) = walk(&m, a + 3 * PAGE_SIZE).unwrap();
    let (fb, wb) = walk(&m, b + 3 * PAGE_SIZE).unwrap();
    assert_eq!(fa, fb, "one frame behind both attaches");
    assert!(wa && !wb, "SHM_RDONLY maps it read-only");
    assert!(pool_free(&m) < free0, "the segment holds a page");
    assert_eq!(shmem_kb(&m), 4, "its page counts as Shmem");
    // Errors on the way.
    assert_eq!(call(&m, SHMAT, [u64::MAX, 0, 0, 0, 0, 0]), -i64::from(libc::EINVAL));
    assert_eq!(call(&m, SHMDT, [a + 1, 0, 0, 0, 0, 0]), -i64::from(libc::EINVAL));
    assert_eq!(call(&m, SHMGET, [7, PAGE_SIZE, 0o600, 0, 0, 0]), -i64::from(libc::ENOENT));
    // Removed while attached: only marked.
    assert_eq!(call(&m, SHMCTL, [0, IPC_RMID, 0, 0, 0, 0]), 0);
    assert_eq!(stat(&m, 0), Ok((2, 0o1600)));
    assert_eq!(call(&m, SHMDT, [a, 0, 0, 0, 0, 0]), 0);
    assert_eq!(walk(&m, a + 3 * PAGE_SIZE), None, "the attach is gone from the tables");
    assert_eq!(stat(&m, 0), Ok((1, 0o1600)));
    assert_eq!(m.hv.read_user(0, b + 3 * PAGE_SIZE, 9).unwrap(), b"last page", "the other attach keeps the bytes");
    // The last VMA goes by munmap: the segment is destroyed, its page freed.
    assert_eq!(call(&m, MUNMAP, [b, 4 * PAGE_SIZE, 0, 0, 0, 0]), 0);
    assert_eq!(stat(&m, 0), Err(-i64::from(libc::EINVAL)));
    assert_eq!(pool_free(&m), free0, "every page back in the pool");
    assert_eq!(shmem_kb(&m), 0);
    let Machine { hv, linux, base, .. } = m;
    base.check_teardown(&hv, linux);
}

#[test]
fn a_segment_left_attached_and_not_removed_goes_with_the_process() {
    let m = Machine::new();
    let id = call(&m, SHMGET, [0x1234, 8 * PAGE_SIZE, 0o1600, 0, 0, 0]);
    assert!(id >= 0);
    let a = call(&m, SHMAT, [id as u64, 0, 0, 0, 0, 0]) as u64;
    for p in 0..8 {
        m.hv.write_user(0, a + p * PAGE_SIZE, &[p as u8]).unwrap();
    }
    // A split attach: three VMAs, three attaches counted.
    assert_eq!(call(&m, 10, [a + 2 * PAGE_SIZE, PAGE_SIZE, 1, 0, 0, 0]), 0);
    assert_eq!(stat(&m, id as u64).map(|s| s.0), Ok(3));
    let Machine { hv, linux, base, .. } = m;
    base.check_teardown(&hv, linux);
}
