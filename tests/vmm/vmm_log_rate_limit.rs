//! Scenario: a guest that hammers unclaimed ports (and the serial port
//! with accesses it does not support) gets its accesses answered (all-ones)
//! but cannot flood the VMM's log: each kind of line is rate-limited, so
//! stderr stays small however many accesses the guest makes.

use iced_x86::code_asm::*;
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

/// Accesses of each kind the guest makes.
const ROUNDS: u32 = 5_000;

#[test]
fn hammering_unclaimed_ports_yields_bounded_stderr() {
    need_kvm!();
    let elf = write_guest("hammer", |a| {
        let mut top = a.create_label();
        a.mov(ecx, ROUNDS)?;
        a.set_label(&mut top)?;
        a.mov(edx, 0x80u32)?;
        a.in_(al, dx)?; // unclaimed read
        a.out(dx, al)?; // unclaimed write
        a.mov(edx, 0x3f8u32)?;
        a.in_(ax, dx)?; // a 2-byte access the UART refuses
        a.dec(ecx)?;
        a.jnz(top)?;
        // Exit through the exit port with what the last unclaimed read gave.
        a.mov(edx, 0x80u32)?;
        a.in_(al, dx)?;
        a.movzx(eax, al)?;
        a.shr(eax, 1)?;
        a.mov(edx, 0xf4u32)?;
        a.out(dx, eax)
    });
    let r = run_vmm(&["run", "--timeout", "60", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    // 0xff >> 1 = 0x7f -> status (0x7f << 1) | 1 = 0xff.
    assert_eq!(r.code, 0xff, "{}\n{}", r.stdout, &r.stderr[..r.stderr.len().min(2000)]);
    assert!(r.stderr.contains("unclaimed port read of 1 bytes at 0x80"), "{}", &r.stderr[..r.stderr.len().min(2000)]);
    assert!(r.stderr.contains("unclaimed port write of 1 bytes at 0x80"));
    assert!(r.stderr.contains("serial: unsupported 2-byte read"));
    // Three call sites, at most 10 lines each per 5 s, ~100 bytes a line.
    let lines = r.stderr.lines().count();
    eprintln!("{} accesses -> {lines} log lines, {} bytes of stderr", 3 * (ROUNDS + 1), r.stderr.len());
    assert!(r.stderr.len() < 16 << 10, "{} bytes of stderr for {} accesses", r.stderr.len(), 3 * ROUNDS);
}
