//! Scenario: the VMM's stdin reaches the guest's serial port through the
//! event loop: a guest polls the UART for a byte, echoes it, and exits with
//! it through the exit port.

mod kvm_support;

use std::io::Write;
use std::process::{Command, Stdio};

use iced_x86::code_asm::*;
use kvm_support::{vmm_bin, write_guest};

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
