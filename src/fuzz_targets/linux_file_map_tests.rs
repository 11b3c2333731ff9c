//! System-call tests of `mmap` of `/tmp` files in the Linux kind, on the
//! fuzz target's machine (the kind loaded into a hosted address space,
//! no KVM): random sequences of `pwrite64`/`pread64`/`ftruncate`/hole
//! punches and loads and stores through a shared and a private mapping
//! against a `Vec<u8>` of the file and a map of the private copies, with
//! the address space audited and walked independently after each step,
//! and every frame back at the end; then the open-mode rules, the
//! `/proc/self/maps` line and the errors.
//!
//! Loads and stores are the program's (`read_user`/`write_user` walk the
//! tables and fault as a `mov` would; a refused fault is `SIGBUS` for
//! the program, an error here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::collections::BTreeMap;

use vmm::guest::kind::GuestKind;
use vmm::hosted::hypercall::Args;

use super::linux_program::{DATA_VA, PATHS_VA, PATH_SLOT};
use super::linux_syscalls::Machine;
use super::linux_syscalls_check::Snapshot;

const PAGE: u64 = 4096;
/// Pages each mapping spans (past the largest file the ops make).
const SPAN: u64 = 8;
/// `/tmp/a`, `/proc/self/maps`, `/tmp` in the image's paths.
const TMP_A: u64 = PATHS_VA;
const TMP: u64 = PATHS_VA + PATH_SLOT;
const MAPS: u64 = PATHS_VA + 2 * PATH_SLOT;
const AT_FDCWD: u64 = -100i64 as u64;

fn call(m: &Machine, nr: i64, args: &[u64]) -> i64 {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    m.linux.syscall(&m.hv, 0, &Args { nr: nr as u64, a }).ret
}

fn open(m: &Machine, path: u64, flags: i32) -> u64 {
    let fd = call(m, libc::SYS_openat, &[AT_FDCWD, path, flags as u64, 0o600]);
    assert!(fd >= 0, "open: {fd}");
    fd as u64
}

fn mmap(m: &Machine, prot: i32, flags: i32, fd: u64, off: u64) -> i64 {
    call(m, libc::SYS_mmap, &[0, SPAN * PAGE, prot as u64, flags as u64, fd, off])
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, usize, u8),
    Read(u64, usize),
    Truncate(u64),
    Punch(u64, u64),
    Store { shared: bool, off: u64, byte: u8 },
    Load { shared: bool, off: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let off = 0u64..6 * PAGE;
    let in_map = 0u64..SPAN * PAGE;
    prop_oneof![
        3 => (off.clone(), 1usize..2 * PAGE as usize, 1u8..=255).prop_map(|(o, n, b)| Op::Write(o, n, b)),
        1 => (off.clone(), 1usize..3 * PAGE as usize).prop_map(|(o, n)| Op::Read(o, n)),
        1 => off.clone().prop_map(Op::Truncate),
        1 => (off, 1u64..3 * PAGE).prop_map(|(o, n)| Op::Punch(o, n)),
        3 => (any::<bool>(), in_map.clone(), 1u8..=255).prop_map(|(shared, off, byte)| Op::Store { shared, off, byte }),
        3 => (any::<bool>(), in_map).prop_map(|(shared, off)| Op::Load { shared, off }),
    ]
}

/// Page `index` of the file as the model has it (`None` past the end).
fn file_page(file: &[u8], index: u64) -> Option<Vec<u8>> {
    let pages = (file.len() as u64).div_ceil(PAGE);
    (index < pages)
        .then(|| (index * PAGE..(index + 1) * PAGE).map(|i| file.get(i as usize).copied().unwrap_or(0)).collect())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let m = Machine::new();
    let fd = open(&m, TMP_A, libc::O_RDWR | libc::O_CREAT);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let sh = mmap(&m, rw, libc::MAP_SHARED, fd, 0) as u64;
    let pr = mmap(&m, rw, libc::MAP_PRIVATE, fd, 0) as u64;
    prop_assert!((sh as i64) > 0 && (pr as i64) > 0);
    let mut file: Vec<u8> = Vec::new();
    let mut copies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Write(off, n, b) => {
                m.hv.write_user(0, DATA_VA, &vec![b; n]).unwrap();
                prop_assert_eq!(call(&m, libc::SYS_pwrite64, &[fd, DATA_VA, n as u64, off]), n as i64);
                let end = off as usize + n;
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[off as usize..end].fill(b);
            }
            Op::Read(off, n) => {
                let got = call(&m, libc::SYS_pread64, &[fd, DATA_VA, n as u64, off]);
                let want = file.get(off as usize..).map_or(&[][..], |t| &t[..n.min(t.len())]);
                prop_assert_eq!(got, want.len() as i64);
                let bytes = m.hv.read_user(0, DATA_VA, got as u64).unwrap();
                prop_assert!(bytes == want, "pread at {off:#x}");
            }
            Op::Truncate(n) => {
                prop_assert_eq!(call(&m, libc::SYS_ftruncate, &[fd, n]), 0);
                file.resize(n as usize, 0);
                copies.retain(|&i, _| i < n.div_ceil(PAGE));
            }
            Op::Punch(off, n) => {
                let mode = (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u64;
                prop_assert_eq!(call(&m, libc::SYS_fallocate, &[fd, mode, off, n]), 0);
                let (a, b) = ((off as usize).min(file.len()), ((off + n) as usize).min(file.len()));
                file[a..b].fill(0);
            }
            Op::Store { shared: true, off, byte } => {
                let in_file = file_page(&file, off / PAGE).is_some();
                if in_file && off >= file.len() as u64 {
                    // Past the end in the last page: not the file's bytes.
                    continue;
                }
                let ok = m.hv.write_user(0, sh + off, &[byte]).is_ok();
                prop_assert_eq!(ok, in_file, "shared store at {:#x}", off);
                if ok {
                    file[off as usize] = byte;
                }
            }
            Op::Store { shared: false, off, byte } => {
                let index = off / PAGE;
                let before = copies.get(&index).cloned().or_else(|| file_page(&file, index));
                let ok = m.hv.write_user(0, pr + off, &[byte]).is_ok();
                prop_assert_eq!(ok, before.is_some(), "private store at {:#x}", off);
                if let Some(mut page) = before {
                    page[(off % PAGE) as usize] = byte;
                    copies.insert(index, page);
                }
            }
            Op::Load { shared, off } => {
                let base = if shared { sh } else { pr };
                let got = m.hv.read_user(0, base + off, 1).ok();
                let index = off / PAGE;
                let page = match shared {
                    true => file_page(&file, index),
                    false => copies.get(&index).cloned().or_else(|| file_page(&file, index)),
                };
                let want = page.map(|p| vec![p[(off % PAGE) as usize]]);
                prop_assert_eq!(got, want, "{} load at {:#x}", if shared { "shared" } else { "private" }, off);
            }
        }
        m.base.check_state("a file-mapping step", &m.hv, &Snapshot::take(&m.base, &m.hv));
    }
    prop_assert_eq!(call(&m, libc::SYS_munmap, &[sh, SPAN * PAGE]), 0);
    prop_assert_eq!(call(&m, libc::SYS_munmap, &[pr, SPAN * PAGE]), 0);
    prop_assert_eq!(call(&m, libc::SYS_close, &[fd]), 0);
    prop_assert_eq!(call(&m, libc::SYS_unlinkat, &[AT_FDCWD, TMP_A, 0]), 0);
    let Machine { hv, linux, base, .. } = m;
    base.check_teardown(&hv, linux);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn tmp_file_mappings_match_the_model(ops in proptest::collection::vec(op(), 1..32)) {
        run(ops)?;
    }
}

#[test]
fn open_mode_limits_the_mapping() {
    let m = Machine::new();
    let fd = open(&m, TMP_A, libc::O_RDWR | libc::O_CREAT);
    m.hv.write_user(0, DATA_VA, b"hello").unwrap();
    assert_eq!(call(&m, libc::SYS_pwrite64, &[fd, DATA_VA, 5, 0]), 5);
    let ro = open(&m, TMP_A, libc::O_RDONLY);
    let wo = open(&m, TMP_A, libc::O_WRONLY);
    let (r, w) = (libc::PROT_READ, libc::PROT_WRITE);
    // Shared and writable needs write access; any mapping needs read.
    assert_eq!(mmap(&m, r | w, libc::MAP_SHARED, ro, 0), -i64::from(libc::EACCES));
    assert_eq!(mmap(&m, r, libc::MAP_SHARED, wo, 0), -i64::from(libc::EACCES));
    assert_eq!(mmap(&m, r, libc::MAP_PRIVATE, wo, 0), -i64::from(libc::EACCES));
    // A read-only shared mapping may never become writable.
    let s = mmap(&m, r, libc::MAP_SHARED, ro, 0);
    assert!(s > 0, "{s}");
    assert_eq!(call(&m, libc::SYS_mprotect, &[s as u64, PAGE, (r | w) as u64]), -i64::from(libc::EACCES));
    assert_eq!(m.hv.read_user(0, s as u64, 5).unwrap(), b"hello");
    // A private one may: its writes stay its own.
    let p = mmap(&m, r | w, libc::MAP_PRIVATE, ro, 0);
    assert!(p > 0, "{p}");
    m.hv.write_user(0, p as u64, b"J").unwrap();
    assert_eq!(m.hv.read_user(0, s as u64, 5).unwrap(), b"hello");
    assert_eq!(m.hv.read_user(0, p as u64, 5).unwrap(), b"Jello");
    // Misaligned offsets, directories, devices.
    assert_eq!(mmap(&m, r, libc::MAP_SHARED, fd, 100), -i64::from(libc::EINVAL));
    let dir = open(&m, TMP, libc::O_RDONLY | libc::O_DIRECTORY);
    assert_eq!(mmap(&m, r, libc::MAP_SHARED, dir, 0), -i64::from(libc::ENODEV));
    assert_eq!(mmap(&m, r, libc::MAP_SHARED, 999, 0), -i64::from(libc::EBADF));
    // /proc/self/maps names the file with its device and inode.
    let ino = {
        let st = m.linux.vfs().fstat(vmm::guest::kinds::linux::fs::Fd(fd as i32)).unwrap();
        u64::from_le_bytes(st[8..16].try_into().unwrap())
    };
    let maps = open(&m, MAPS, libc::O_RDONLY);
    let n = call(&m, libc::SYS_read, &[maps, DATA_VA, 4 * PAGE]);
    assert!(n > 0, "{n}");
    let text = String::from_utf8(m.hv.read_user(0, DATA_VA, n as u64).unwrap()).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{:08x}-", s))).expect("the shared mapping's line");
    assert!(line.contains(&format!(" r--s 00000000 00:20 {ino} ")), "{line}");
    assert!(line.ends_with(" /tmp/a"), "{line}");
    let pline = text.lines().find(|l| l.starts_with(&format!("{:08x}-", p))).expect("the private mapping's line");
    assert!(pline.contains(" rw-p 00000000 00:20 ") && pline.ends_with(" /tmp/a"), "{pline}");
}

#[test]
fn a_truncation_reaches_every_mapping_and_writes_are_seen_at_once() {
    let m = Machine::new();
    let fd = open(&m, TMP_A, libc::O_RDWR | libc::O_CREAT);
    assert_eq!(call(&m, libc::SYS_ftruncate, &[fd, 3 * PAGE]), 0);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let a = mmap(&m, rw, libc::MAP_SHARED, fd, 0) as u64;
    let b = mmap(&m, rw, libc::MAP_SHARED, fd, PAGE) as u64;
    // A store through one mapping is read() at once, and the other way.
    m.hv.write_user(0, a + PAGE + 7, b"x").unwrap();
    assert_eq!(m.hv.read_user(0, b + 7, 1).unwrap(), b"x", "the second mapping starts a page in");
    assert_eq!(call(&m, libc::SYS_pread64, &[fd, DATA_VA, 1, PAGE + 7]), 1);
    assert_eq!(m.hv.read_user(0, DATA_VA, 1).unwrap(), b"x");
    m.hv.write_user(0, DATA_VA, b"yz").unwrap();
    assert_eq!(call(&m, libc::SYS_pwrite64, &[fd, DATA_VA, 2, 2 * PAGE]), 2);
    assert_eq!(m.hv.read_user(0, a + 2 * PAGE, 2).unwrap(), b"yz");
    // Shrinking: the pages past the end go from both (SIGBUS), the rest
    // stays; growing again reads zeros.
    assert_eq!(call(&m, libc::SYS_ftruncate, &[fd, PAGE + 8]), 0);
    assert!(m.hv.read_user(0, a + 2 * PAGE, 1).is_err());
    assert!(m.hv.read_user(0, b + PAGE, 1).is_err());
    assert_eq!(m.hv.read_user(0, b + 7, 1).unwrap(), b"x");
    assert_eq!(call(&m, libc::SYS_ftruncate, &[fd, 3 * PAGE]), 0);
    assert_eq!(m.hv.read_user(0, a + 2 * PAGE, 2).unwrap(), [0, 0]);
    // O_TRUNC at open truncates the mappings too.
    let again = open(&m, TMP_A, libc::O_RDWR | libc::O_TRUNC);
    assert!(m.hv.read_user(0, a, 1).is_err());
    for f in [fd, again] {
        assert_eq!(call(&m, libc::SYS_close, &[f]), 0);
    }
}
