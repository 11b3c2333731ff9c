//! Scenario: the VMM's stdin reaches the guest's serial port through the
//! event loop: a guest polls the UART for a byte, echoes it, and exits with
//! it through the exit port.

use std::io::Write;
use std::process::{Command, Stdio};

use iced_x86::code_asm::*;
use vmm_suite::kvm::{vmm_bin, write_guest};
use vmm_suite::need_kvm;

#[test]
fn stdin_bytes_reach_the_uart() {
    need_kvm!();
    let elf = write_guest("echo", |a| {
        let mut wait = a.create_label();
        // Poll LSR (0x3fd) for data ready.
        a.mov(edx, 0x3fdu32)?;
        a.set_label(&mut wait)?;
        a.in_(al, dx)?;
        a.test(al, 1)?;
        a.jz(wait)?;
        a.mov(edx, 0x3f8u32)?;
        a.in_(al, dx)?;
        a.out(dx, al)?;
        a.movzx(eax, al)?;
        a.mov(edx, 0xf4u32)?;
        a.out(dx, eax)
    });
    let mut child = Command::new(vmm_bin())
        .args(["run", "--timeout", "20", "--guest", elf.to_str().expect("utf-8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    child.stdin.take().expect("stdin").write_all(b"A").expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_file(&elf);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // (0x41 << 1) | 1, truncated to 8 bits.
    assert_eq!(out.status.code(), Some(((0x41 << 1) | 1) & 0xff), "{stdout}");
    assert!(stdout.starts_with('A'), "echo missing: {stdout}");
}

/// Bytes piped through the UART by the lossless test (two exits per byte
/// on the guest side).
const PIPED: usize = 8 << 10;

/// The hash the guest computes over what it reads: `h = h * 31 + byte`.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

#[test]
fn piped_input_arrives_whole_at_a_guest_reading_as_fast_as_it_can() {
    need_kvm!();
    use vmm::guest::asm::{hcall, Arg};
    use vmm::hosted::stub::abi::nr;
    let elf = write_guest("checksum", |a| {
        let mut top = a.create_label();
        let mut wait = a.create_label();
        a.xor(ebx, ebx)?;
        a.mov(r12d, PIPED as u32)?;
        a.set_label(&mut top)?;
        a.mov(edx, 0x3fdu32)?;
        a.set_label(&mut wait)?;
        a.in_(al, dx)?;
        a.test(al, 1)?;
        a.jz(wait)?;
        a.mov(edx, 0x3f8u32)?;
        a.in_(al, dx)?;
        a.movzx(eax, al)?;
        a.imul_3(rbx, rbx, 31)?;
        a.add(rbx, rax)?;
        a.dec(r12d)?;
        a.jnz(top)?;
        hcall(a, nr::REPORT, &[Arg::Imm(1), Arg::Imm(1), Arg::Reg(rbx), Arg::Imm(0), Arg::Imm(0)])?;
        a.xor(eax, eax)?;
        a.mov(edx, 0xf4u32)?;
        a.out(dx, eax)
    });
    // Not a multiple of anything the VMM reads in, so a lost or repeated
    // byte changes the hash.
    let input: Vec<u8> = (0..PIPED as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut child = Command::new(vmm_bin())
        .args(["run", "--json", "--timeout", "30", "--guest", elf.to_str().expect("utf-8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_file(&elf);
    assert!(writer.join().expect("writer").is_ok(), "the VMM stopped reading its input");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", &stderr[..stderr.len().min(2000)]);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let want = format!("value {:#x}", hash(&input));
    assert_eq!(report["checks"][0]["detail"], want.as_str(), "{stdout}");
}

#[test]
fn unread_input_is_held_back_without_flooding_the_log() {
    need_kvm!();
    let elf = write_guest("deaf", |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.pause()?;
        a.jmp(l)
    });
    let mut child = Command::new(vmm_bin())
        .args(["run", "--timeout", "2", "--guest", elf.to_str().expect("utf-8")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmm");
    let mut stdin = child.stdin.take().expect("stdin");
    // The VMM stops reading once the UART's FIFO is full: this write
    // blocks until the VMM exits, then fails (EPIPE).
    let writer = std::thread::spawn(move || stdin.write_all(&vec![b'x'; 1 << 20]));
    let out = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_file(&elf);
    assert!(writer.join().expect("writer").is_err(), "1 MiB went somewhere though the guest read nothing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{}", &stderr[..stderr.len().min(2000)]);
    assert!(stderr.len() < 4 << 10, "{} bytes of stderr: {}", stderr.len(), &stderr[..stderr.len().min(2000)]);
}
