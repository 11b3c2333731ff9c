//! Scenario: ACPI S3 on a raw multiboot kernel (issue 21), without the
//! kvm-unit-tests tree: a kernel made here finds the FADT and FACS the way
//! a kernel does (the RSDP on a 16-byte boundary of `0xE0000..0x100000`,
//! the RSDT, the FADT's FACS and PM1a blocks), leaves a real-mode waking
//! vector, arms the RTC alarm and `RTC_EN`, and writes `SLP_TYP` 1 with
//! `SLP_EN`. The 16-bit code at the vector reports the PM1a status it
//! finds, so the resume is checked from inside the guest: it ran in real
//! mode at the vector, after the machine woke (`WAK_STS`) by the RTC
//! (`RTC_STS`).

use iced_x86::code_asm::*;
use vmm_suite::kvm::{multiboot, run_vmm, temp_path, vmm_bin};
use vmm_suite::need_kvm;

/// Where the kernel puts its real-mode resume code.
const VECTOR: u32 = 0x8000;
/// The resume code, 16-bit: `mov dx, 0x600; in ax, dx; mov al, ah;
/// shr al, 1; out 0xf4, al; hlt`: the exit value is PM1a status bits
/// 9..15 (`WAK_STS` bit 15 is 0x40, `RTC_STS` bit 10 is 0x02).
const RESUME: [u8; 12] = [0xba, 0x00, 0x06, 0xed, 0x88, 0xe0, 0xd0, 0xe8, 0xe6, 0xf4, 0xf4, 0xf4];
/// The exit value when the guest finds no RSDP or no FADT first in the
/// RSDT.
const NO_TABLES: u32 = 0x7e;

/// A kernel that sleeps in S3 with `vector` as its waking vector.
fn s3_kernel(vector: u32) -> std::path::PathBuf {
    let code = multiboot::code32(multiboot::ELF32_ENTRY, |a| {
        let mut scan = a.create_label();
        let mut next = a.create_label();
        let mut found = a.create_label();
        let mut fail = a.create_label();
        let mut spin = a.create_label();
        // The resume code, at VECTOR.
        for (i, w) in RESUME.chunks(4).enumerate() {
            let w = u32::from_le_bytes(w.try_into().expect("4 bytes"));
            a.mov(dword_ptr(VECTOR + 4 * i as u32), w)?;
        }
        // The RSDP.
        a.mov(esi, 0xe_0000u32)?;
        a.set_label(&mut scan)?;
        a.cmp(dword_ptr(esi), u32::from_le_bytes(*b"RSD "))?;
        a.jne(next)?;
        a.cmp(dword_ptr(esi + 4), u32::from_le_bytes(*b"PTR "))?;
        a.je(found)?;
        a.set_label(&mut next)?;
        a.add(esi, 16)?;
        a.cmp(esi, 0x10_0000u32)?;
        a.jb(scan)?;
        a.jmp(fail)?;
        a.set_label(&mut found)?;
        // RSDT, its first entry (the FADT), the FADT's FACS.
        a.mov(esi, dword_ptr(esi + 16))?;
        a.mov(esi, dword_ptr(esi + 36))?;
        a.cmp(dword_ptr(esi), u32::from_le_bytes(*b"FACP"))?;
        a.jne(fail)?;
        a.mov(edi, dword_ptr(esi + 36))?;
        a.mov(dword_ptr(edi + 12), vector)?;
        // RTC: every alarm field "any", then AIE in register B.
        for reg in [1u32, 3, 5] {
            a.mov(al, reg)?;
            a.out(0x70, al)?;
            a.mov(al, 0xc0u32)?;
            a.out(0x71, al)?;
        }
        a.mov(al, 0xbu32)?;
        a.out(0x70, al)?;
        a.in_(al, 0x71)?;
        a.or(al, 0x20)?;
        a.mov(cl, al)?;
        a.mov(al, 0xbu32)?;
        a.out(0x70, al)?;
        a.mov(al, cl)?;
        a.out(0x71, al)?;
        // RTC_EN in the PM1a enable register (event block + 2).
        a.mov(edx, dword_ptr(esi + 56))?;
        a.add(edx, 2)?;
        a.mov(ax, 0x400u32)?;
        a.out(dx, ax)?;
        // SLP_TYP 1 | SLP_EN in PM1a control.
        a.mov(edx, dword_ptr(esi + 64))?;
        a.mov(ax, 0x2400u32)?;
        a.out(dx, ax)?;
        a.set_label(&mut spin)?;
        a.jmp(spin)?;
        a.set_label(&mut fail)?;
        a.mov(al, NO_TABLES)?;
        a.out(0xf4, al)?;
        a.hlt()
    });
    let p = temp_path(&format!("s3-{vector:x}.elf32"));
    std::fs::write(&p, multiboot::elf32(&code)).expect("write kernel");
    p
}

#[test]
fn s3_resumes_in_real_mode_at_the_waking_vector_after_the_rtc_alarm() {
    need_kvm!();
    let k = s3_kernel(VECTOR);
    // The first use builds `vmm`: not part of the run timed below.
    vmm_bin();
    let start = std::time::Instant::now();
    let r = run_vmm(&["run", "--kernel", k.to_str().expect("UTF-8 temp path"), "--timeout", "30", "--json"]);
    assert_eq!(r.json()["outcome"]["kind"], "exit_port", "{}\n{}", r.stdout, r.stderr);
    // WAK_STS and RTC_STS, read by the code at the vector.
    assert_eq!(r.code >> 1, 0x42, "{}\n{}", r.stdout, r.stderr);
    // The alarm fires at the next second: well before the timeout.
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    std::fs::remove_file(k).ok();
}

/// A zero waking vector (SeaBIOS would reboot): the run ends with an
/// error naming it, never jumps to address 0.
#[test]
fn a_zero_waking_vector_ends_the_run_naming_it() {
    need_kvm!();
    let k = s3_kernel(0);
    let r = run_vmm(&["run", "--kernel", k.to_str().expect("UTF-8 temp path"), "--timeout", "30", "--json"]);
    assert_ne!(r.json()["outcome"]["kind"], "exit_port", "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("S3 resume") && all.contains("not a real-mode address"), "{all}");
    std::fs::remove_file(k).ok();
}
