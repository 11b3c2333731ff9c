//! Scenario: a Solo5 `spt` unikernel's block device (`vmm run --block
//! NAME=FILE`), with unikernels generated here. The unikernel finds its
//! device in the manifest as Solo5's bindings do (capacity, block size,
//! descriptor, attached), writes a block and reads it back, reads blocks
//! the host filled, and gets `EFAULT` for buffers it may not use; the
//! host file holds what it wrote and nothing else. A call `solo5-spt`'s
//! seccomp filter refuses (another descriptor, not one block, beyond the
//! capacity) is SIGSYS (159) and leaves the file as it was; a device
//! declared but not attached, a `--block` naming no declared device, a
//! network device with no tap and a file that is not whole blocks are
//! refused at load.

use std::path::PathBuf;

use iced_x86::code_asm::*;
use vmm_suite::kvm::spt::{exit_group, run_spt_with, spt_elf, syscall, DATA_VA, TEXT_VA};
use vmm_suite::kvm::{run_vmm, temp_path, VmmRun};
use vmm_suite::need_kvm;

const PREAD64: u64 = 17;
const PWRITE64: u64 = 18;
const BLOCK: usize = 512;
/// The device's capacity in the tests: four blocks.
const CAPACITY: usize = 4 * BLOCK;
/// `solo5-spt` declares block devices with type 1.
const DEVICE: &[(&str, u32)] = &[("storage", 1)];

/// Four blocks: block 0 and block 3 filled with patterns, 1 and 2 zero.
fn disk_bytes() -> Vec<u8> {
    let mut d = vec![0u8; CAPACITY];
    for i in 0..BLOCK {
        d[i] = (i * 7 + 1) as u8;
        d[3 * BLOCK + i] = (i * 13 + 5) as u8;
    }
    d
}

fn disk(name: &str) -> PathBuf {
    let p = temp_path(&format!("{name}.img"));
    std::fs::write(&p, disk_bytes()).expect("write disk");
    p
}

fn block_arg(name: &str, path: &std::path::Path) -> String {
    format!("{name}={}", path.display())
}

/// Loads the descriptor of manifest entry 1 (the device) into `r12`,
/// checking on the way that the entry says attached, capacity
/// [`CAPACITY`] and block size 512 (exit 10, 11, 12 if not).
fn device_fd(a: &mut CodeAssembler, fail: &mut Vec<(CodeLabel, u32)>) -> Result<(), IcedError> {
    // rdi = boot info; the manifest pointer is at +24; entry 1 at +8+104.
    a.mov(rbx, qword_ptr(rdi + 24))?;
    a.add(rbx, 8 + 104)?;
    let mut check = |a: &mut CodeAssembler, code: u32| -> Result<(), IcedError> {
        let l = a.create_label();
        a.jne(l)?;
        fail.push((l, code));
        Ok(())
    };
    a.cmp(byte_ptr(rbx + 96), 1)?;
    check(a, 10)?;
    a.cmp(qword_ptr(rbx + 72), CAPACITY as i32)?;
    check(a, 11)?;
    a.cmp(word_ptr(rbx + 80), BLOCK as i32)?;
    check(a, 12)?;
    a.movsxd(r12, dword_ptr(rbx + 88))
}

/// `nr(fd, buf, count, offset)`; the result is in `rax`.
fn block_call(
    a: &mut CodeAssembler,
    nr: u64,
    fd: Option<u32>,
    buf: u64,
    count: u64,
    offset: u64,
) -> Result<(), IcedError> {
    match fd {
        Some(fd) => a.mov(edi, fd)?,
        None => a.mov(rdi, r12)?,
    }
    a.mov(rsi, buf)?;
    a.mov(rdx, count)?;
    a.mov(r10, offset)?;
    syscall(a, nr)
}

/// Emits the exits the checks jump to.
fn fail_exits(a: &mut CodeAssembler, fail: Vec<(CodeLabel, u32)>) -> Result<(), IcedError> {
    for (mut l, code) in fail {
        a.set_label(&mut l)?;
        exit_group(a, code)?;
    }
    Ok(())
}

#[test]
fn a_unikernel_writes_and_reads_its_block_device() {
    need_kvm!();
    let path = disk("rw");
    let before = disk_bytes();
    // Data page: [0x000] message, [0x200] the block to write, [0x400]
    // read-back, [0x600] what block 0 holds, [0x800] block 0 read,
    // [0xa00] block 3 read, [0xc00] what block 3 holds.
    let mut data = vec![0u8; 0x1000];
    data[..9].copy_from_slice(b"block ok\n");
    let written: Vec<u8> = (0..BLOCK).map(|i| (i * 3 + 0x40) as u8).collect();
    data[0x200..0x400].copy_from_slice(&written);
    data[0x600..0x800].copy_from_slice(&before[..BLOCK]);
    data[0xc00..0xe00].copy_from_slice(&before[3 * BLOCK..]);
    let arg = block_arg("storage", &path);
    let r = run_spt_with("block-rw", &data, DEVICE, &["--block", &arg], |a| {
        let mut fail = Vec::new();
        device_fd(a, &mut fail)?;
        let mut expect = |a: &mut CodeAssembler, value: i32, code: u32| -> Result<(), IcedError> {
            a.cmp(rax, value)?;
            let l = a.create_label();
            a.jne(l)?;
            fail.push((l, code));
            Ok(())
        };
        let compare = |a: &mut CodeAssembler, x: u64, y: u64| -> Result<(), IcedError> {
            a.cld()?;
            a.mov(rsi, DATA_VA + x)?;
            a.mov(rdi, DATA_VA + y)?;
            a.mov(ecx, BLOCK as u32)?;
            a.repe().cmpsb()?;
            // ZF from the last comparison; rcx = 0 only if all matched.
            a.mov(rax, rcx)?;
            Ok(())
        };
        // Write block 1, read it back, compare.
        block_call(a, PWRITE64, None, DATA_VA + 0x200, 512, 512)?;
        expect(a, 512, 13)?;
        block_call(a, PREAD64, None, DATA_VA + 0x400, 512, 512)?;
        expect(a, 512, 14)?;
        compare(a, 0x200, 0x400)?;
        expect(a, 0, 15)?;
        // Blocks 0 and 3 (the last) hold what the host put there.
        block_call(a, PREAD64, None, DATA_VA + 0x800, 512, 0)?;
        expect(a, 512, 16)?;
        compare(a, 0x600, 0x800)?;
        expect(a, 0, 17)?;
        block_call(a, PREAD64, None, DATA_VA + 0xa00, 512, 3 * 512)?;
        expect(a, 512, 18)?;
        compare(a, 0xc00, 0xa00)?;
        expect(a, 0, 19)?;
        // Buffers it may not use: page zero (unmapped), its own text
        // (not writable), then a write from page zero: -EFAULT each.
        block_call(a, PREAD64, None, 0, 512, 0)?;
        expect(a, -14, 20)?;
        block_call(a, PREAD64, None, TEXT_VA, 512, 0)?;
        expect(a, -14, 21)?;
        block_call(a, PWRITE64, None, 0x1000, 512, 2 * 512)?;
        expect(a, -14, 22)?;
        a.mov(edi, 1u32)?;
        a.mov(rsi, DATA_VA)?;
        a.mov(edx, 9u32)?;
        syscall(a, 1)?;
        exit_group(a, 0)?;
        fail_exits(a, fail)
    });
    let after = std::fs::read(&path).expect("read disk");
    let _ = std::fs::remove_file(&path);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("block ok"), "{}", r.stdout);
    assert_eq!(after.len(), CAPACITY);
    assert_eq!(&after[BLOCK..2 * BLOCK], &written[..], "block 1 holds what the unikernel wrote");
    assert_eq!(&after[..BLOCK], &before[..BLOCK]);
    assert_eq!(&after[2 * BLOCK..], &before[2 * BLOCK..], "the faulting write wrote nothing");
}

/// Runs a unikernel that makes one block call `nr(fd, DATA_VA, count,
/// offset)` (`fd` `None`: its device's) and exits 7 if it returns.
fn one_call(name: &str, nr: u64, fd: Option<u32>, count: u64, offset: u64) -> VmmRun {
    let path = disk(name);
    let arg = block_arg("storage", &path);
    let r = run_spt_with(name, &[0u8; 0x1000], DEVICE, &["--block", &arg], |a| {
        let mut fail = Vec::new();
        device_fd(a, &mut fail)?;
        block_call(a, nr, fd, DATA_VA, count, offset)?;
        exit_group(a, 7)?;
        fail_exits(a, fail)
    });
    let after = std::fs::read(&path).expect("read disk");
    let _ = std::fs::remove_file(&path);
    assert_eq!(after, disk_bytes(), "{name}: the file is unchanged");
    r
}

#[test]
fn calls_outside_the_block_policy_are_sigsys() {
    need_kvm!();
    let cases: &[(&str, u64, Option<u32>, u64, u64)] = &[
        ("past-the-end", PREAD64, None, 512, CAPACITY as u64),
        ("grow-the-file", PWRITE64, None, 512, CAPACITY as u64),
        ("straddling-the-end", PWRITE64, None, 512, CAPACITY as u64 - 256),
        ("negative-offset", PREAD64, None, 512, (-512i64) as u64),
        ("two-blocks", PREAD64, None, 1024, 0),
        ("half-a-block", PWRITE64, None, 256, 0),
        ("epoll-fd", PREAD64, Some(3), 512, 0),
        ("stdin", PREAD64, Some(0), 512, 0),
        ("next-fd", PREAD64, Some(6), 512, 0),
    ];
    for &(name, nr, fd, count, offset) in cases {
        let r = one_call(name, nr, fd, count, offset);
        assert_eq!(r.code, 159, "{name}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("killed by SIGSYS"), "{name}: {}", r.stderr);
    }
    // The same call within the policy returns (exit 7): the last block,
    // not block-aligned but inside the capacity.
    let r = one_call("last-block", PREAD64, None, 512, CAPACITY as u64 - 512);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
    let r = one_call("unaligned", PREAD64, None, 512, 100);
    assert_eq!(r.code, 7, "{}\n{}", r.stdout, r.stderr);
}

/// `vmm run` on a unikernel declaring `devices`, with `extra` options.
fn load(name: &str, devices: &[(&str, u32)], extra: &[&str]) -> VmmRun {
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&[0xf4], &[0], devices)).expect("write");
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--guest", path.to_str().expect("utf-8")]);
    let r = run_vmm(&args);
    let _ = std::fs::remove_file(&path);
    r
}

#[test]
fn devices_that_do_not_match_are_refused_at_load() {
    // No KVM needed: refused while loading.
    let path = disk("refusals");
    let arg = block_arg("storage", &path);
    let other = block_arg("other", &path);
    let r = load("not-attached", DEVICE, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("device 'storage' declared but not attached"), "{}", r.stderr);
    let r = load("unknown-name", DEVICE, &["--block", &arg, "--block", &other]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("declares no block device 'other'"), "{}", r.stderr);
    let r = load("no-devices", &[], &["--block", &arg]);
    assert!(r.code == 1 && r.stderr.contains("declares no block device 'storage'"), "{}", r.stderr);
    // A network device declared and not attached (`solo5_net.rs` tests
    // attached ones).
    let r = load("net", &[("service", 2)], &[]);
    assert!(
        r.code == 1
            && r.stderr.contains("device 'service' declared but not attached (attach it with --net service=TAP)"),
        "{}",
        r.stderr
    );
    let r = load("twice", DEVICE, &["--block", &arg, "--block", &arg]);
    assert!(r.code == 1 && r.stderr.contains("given twice"), "{}", r.stderr);
    let r = load("bad-name", DEVICE, &["--block", "sto-rage=/tmp/x"]);
    assert!(r.code != 0 && r.stderr.contains("letters and digits"), "{}", r.stderr);
    // Not whole blocks; not a regular file (a FIFO with no writer is
    // refused at once, not waited on); not there.
    let odd = temp_path("odd.img");
    std::fs::write(&odd, vec![0u8; 1000]).expect("write");
    let r = load("odd", DEVICE, &["--block", &block_arg("storage", &odd)]);
    assert!(r.code == 1 && r.stderr.contains("whole number"), "{}", r.stderr);
    let _ = std::fs::remove_file(&odd);
    let fifo = temp_path("fifo.img");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = load("fifo", DEVICE, &["--block", &block_arg("storage", &fifo)]);
    assert!(r.code == 1 && r.stderr.contains("a FIFO, not a regular file"), "{}", r.stderr);
    let _ = std::fs::remove_file(&fifo);
    let r = load("missing", DEVICE, &["--block", "storage=/nonexistent/disk.img"]);
    assert!(r.code == 1 && r.stderr.contains("/nonexistent/disk.img"), "{}", r.stderr);
    // Only a Solo5 unikernel takes block devices.
    let r = run_vmm(&["run", "--block", &arg]);
    assert!(r.code == 1 && r.stderr.contains("--block is an option of solo5 guests"), "{}", r.stderr);
    assert_eq!(std::fs::read(&path).expect("read"), disk_bytes());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_configuration_file_attaches_devices_too() {
    need_kvm!();
    let path = disk("config");
    let cfg = temp_path("block.toml");
    std::fs::write(&cfg, format!("[[block]]\nname = \"storage\"\npath = \"{}\"\n", path.display())).expect("write");
    let mut data = vec![0u8; 0x1000];
    data[..BLOCK].copy_from_slice(&[0x5a; BLOCK]);
    let r = run_spt_with("block-config", &data, DEVICE, &["--config", cfg.to_str().expect("utf-8")], |a| {
        let mut fail = Vec::new();
        device_fd(a, &mut fail)?;
        block_call(a, PWRITE64, None, DATA_VA, 512, 2 * 512)?;
        a.cmp(rax, 512)?;
        let l = a.create_label();
        a.jne(l)?;
        fail.push((l, 13));
        exit_group(a, 0)?;
        fail_exits(a, fail)
    });
    let after = std::fs::read(&path).expect("read disk");
    let _ = (std::fs::remove_file(&path), std::fs::remove_file(&cfg));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(&after[2 * BLOCK..3 * BLOCK], &[0x5a; BLOCK][..]);
}
