//! Scenario: a hostile ELF cannot make the VMM spend more than a bounded
//! amount of memory, whatever its program headers claim. Each file below is
//! small; the loader must refuse it (exit 1, a clear message) with a peak
//! resident set far below what the headers ask for. Peak RSS is measured
//! by the kernel (`wait4`'s `ru_maxrss`) for the spawned `vmm`, from a
//! fresh process of the test binary (`in_fresh_process`: the figure would
//! otherwise start at this process's own peak). Refusal happens before
//! the VM is created, so no KVM is needed.

use std::process::{Command, Stdio};

use vmm_suite::kvm::{in_fresh_process, temp_path, vmm_bin};

const PT_LOAD: u32 = 1;
/// Peak RSS allowed for refusing any of these files (the VMM itself plus
/// the file, with room to spare; the old loader reached 863 MiB).
const RSS_LIMIT_KIB: i64 = 16 << 10;

/// An ET_EXEC x86-64 ELF with `n` PT_LOAD headers, each one made by
/// `ph(i, file_len)` -> (offset, vaddr, filesz, memsz), padded to
/// `file_len` bytes.
fn elf(n: usize, file_len: usize, ph: impl Fn(usize, u64) -> (u64, u64, u64, u64)) -> Vec<u8> {
    let phoff = 64usize;
    let mut b = vec![0u8; file_len.max(phoff + 56 * n)];
    let len = b.len() as u64;
    b[0..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes());
    b[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(n.min(0xffff) as u16).to_le_bytes());
    for i in 0..n {
        let h = phoff + 56 * i;
        let (off, va, filesz, memsz) = ph(i, len);
        b[h..h + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[h + 4..h + 8].copy_from_slice(&5u32.to_le_bytes());
        b[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        b[h + 16..h + 24].copy_from_slice(&va.to_le_bytes());
        b[h + 24..h + 32].copy_from_slice(&va.to_le_bytes());
        b[h + 32..h + 40].copy_from_slice(&filesz.to_le_bytes());
        b[h + 40..h + 48].copy_from_slice(&memsz.to_le_bytes());
        b[h + 48..h + 56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    b
}

/// Runs `vmm run --guest FILE`; returns (exit code, stderr, peak RSS in KiB).
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(name: &str, img: &[u8]) -> (i32, String, i64) {
    let path = temp_path(name);
    std::fs::write(&path, img).expect("write ELF");
    let child = Command::new(vmm_bin())
        .args(["run", "--timeout", "5", "--guest", path.to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.expect("stderr");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).expect("read stderr");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (Child's drop never
    // waits); `status` and `ru` are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    let _ = std::fs::remove_file(&path);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    (code, text, ru.ru_maxrss)
}

fn refused_cheaply(name: &str, img: &[u8]) {
    let (code, stderr, rss) = run_measured(name, img);
    eprintln!("{name}: {} KiB file, exit {code}, peak RSS {rss} KiB: {}", img.len() >> 10, stderr.trim());
    assert_eq!(code, 1, "{name}: {stderr}");
    assert!(stderr.contains("ELF") || stderr.contains("program image"), "{name}: {stderr}");
    assert!(rss < RSS_LIMIT_KIB, "{name}: peak RSS {rss} KiB (limit {RSS_LIMIT_KIB} KiB)");
}

#[test]
fn many_headers_each_claiming_the_whole_file() {
    if in_fresh_process(module_path!(), "many_headers_each_claiming_the_whole_file") {
        return;
    }
    // The reported case: 218 KiB, 4,000 headers, every one covering the
    // whole file at the same address.
    let img = elf(4000, 218 << 10, |_, len| (0, 0x40_0000, len, len));
    refused_cheaply("phdr4000.elf", &img);
}

#[test]
fn the_largest_header_count() {
    if in_fresh_process(module_path!(), "the_largest_header_count") {
        return;
    }
    let img = elf(0xffff, 0, |_, len| (0, 0x40_0000, len, len));
    refused_cheaply("phdr65535.elf", &img);
}

#[test]
fn headers_within_a_small_table_still_cannot_amplify() {
    if in_fresh_process(module_path!(), "headers_within_a_small_table_still_cannot_amplify") {
        return;
    }
    // 1,000 headers (a 55 KiB table) over a 2 MiB file: copying each
    // segment's bytes would need 2 GiB.
    let img = elf(1000, 2 << 20, |_, len| (0, 0x40_0000, len, len));
    refused_cheaply("phdr1000.elf", &img);
    // Disjoint file ranges but every segment's memory covering the same
    // 8 MiB: pages are counted once, the claim is bounded by the load
    // region, and the overlap is refused.
    let img = elf(1000, 1 << 20, |i, _| (64 + 56 * 1000 + i as u64, 0x40_0000, 1, 8 << 20));
    refused_cheaply("overlap1000.elf", &img);
}
