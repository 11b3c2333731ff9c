//! Scenario: `vmm run --kernel K --cpu SPEC` (QEMU's `-cpu` syntax, issue
//! 21): a multiboot kernel made here executes `cpuid` and reports what
//! it sees through the exit port, so the CPUID edits are checked from
//! inside the guest, not by reading back what the VMM wrote.

use iced_x86::code_asm::*;
use vmm_suite::kvm::{multiboot, run_vmm, temp_path};
use vmm_suite::need_kvm;

/// Exit value bits the guest reports.
const X2APIC: i32 = 1;
const INTEL: i32 = 2;
const KVM64_SIGNATURE: i32 = 4;

/// A kernel that ORs [`X2APIC`] (CPUID.1:ECX[21]), [`INTEL`] (vendor
/// starts "Genu") and [`KVM64_SIGNATURE`] (CPUID.1:EAX is QEMU's kvm64,
/// family 15 model 6 stepping 1) into its exit value.
fn cpuid_kernel() -> std::path::PathBuf {
    let code = multiboot::code32(multiboot::ELF32_ENTRY, |a| {
        let mut no_x2apic = a.create_label();
        let mut not_kvm64 = a.create_label();
        let mut not_intel = a.create_label();
        a.xor(esi, esi)?;
        a.mov(eax, 1u32)?;
        a.xor(ecx, ecx)?;
        a.cpuid()?;
        a.bt(ecx, 21)?;
        a.jae(no_x2apic)?;
        a.or(esi, X2APIC as u32)?;
        a.set_label(&mut no_x2apic)?;
        a.cmp(eax, 0xf61u32)?;
        a.jne(not_kvm64)?;
        a.or(esi, KVM64_SIGNATURE as u32)?;
        a.set_label(&mut not_kvm64)?;
        a.xor(eax, eax)?;
        a.xor(ecx, ecx)?;
        a.cpuid()?;
        a.cmp(ebx, u32::from_le_bytes(*b"Genu"))?;
        a.jne(not_intel)?;
        a.or(esi, INTEL as u32)?;
        a.set_label(&mut not_intel)?;
        a.mov(eax, esi)?;
        a.out(0xf4, al)?;
        a.hlt()
    });
    let p = temp_path("cpuid.elf32");
    std::fs::write(&p, multiboot::elf32(&code)).expect("write kernel");
    p
}

/// What the guest reports with `extra` arguments (the exit status is
/// `(value << 1) | 1`).
fn seen(k: &std::path::Path, extra: &[&str]) -> i32 {
    let path = k.to_str().expect("UTF-8 temp path");
    let mut args = vec!["run", "--kernel", path, "--timeout", "30", "--json"];
    args.extend_from_slice(extra);
    let r = run_vmm(&args);
    assert_eq!(r.json()["outcome"]["kind"], "exit_port", "{extra:?}: {}\n{}", r.stdout, r.stderr);
    assert_eq!(r.code & 1, 1, "{extra:?}");
    r.code >> 1
}

#[test]
fn the_guest_sees_the_cpu_model() {
    need_kvm!();
    let k = cpuid_kernel();
    let host_intel = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains("GenuineIntel");
    let host = if host_intel { INTEL } else { 0 };
    // Without --cpu: KVM's CPUID (KVM always offers the x2APIC).
    assert_eq!(seen(&k, &[]), X2APIC | host);
    // A feature removed, and the vendor replaced.
    assert_eq!(seen(&k, &["--cpu", "host,-x2apic"]), host);
    assert_eq!(seen(&k, &["--cpu=max,vendor=GenuineIntel"]), X2APIC | INTEL);
    assert_eq!(seen(&k, &["--cpu=max,x2apic=off,vendor=AuthenticAMD"]), 0);
    // A named model: its vendor and signature, QEMU's KVM default x2APIC.
    assert_eq!(seen(&k, &["--cpu", "kvm64"]), X2APIC | INTEL | KVM64_SIGNATURE);
    assert_eq!(seen(&k, &["--cpu", "qemu64,-x2apic"]), 0);
    // What is not followed refuses to start, naming it.
    for (spec, why) in [("max,+vmx", "nested virtualization"), ("Pentium9", "unknown CPU model")] {
        let r = run_vmm(&["run", "--kernel", k.to_str().expect("UTF-8 temp path"), "--cpu", spec, "--json"]);
        assert!(r.code != 0 && !r.stdout.contains("exit_port"), "{spec}: {}", r.stdout);
        assert!(r.stderr.contains("cannot follow -cpu") && r.stderr.contains(why), "{spec}: {}", r.stderr);
    }
    std::fs::remove_file(k).ok();
}
