//! Scenario: every kind of exception a user guest can raise reaches the
//! VMM with its exact vector, error code, faulting address and RIP, ends
//! the run with exit code 2 and a clear message; a triple fault likewise.

use iced_x86::code_asm::*;
use vmm::guest::kinds::abi_elf::example::{EXAMPLE_CODE_VA, EXAMPLE_DATA_VA};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

/// The fault the report must show.
struct Expect {
    vector: u64,
    error_code: u64,
    cr2: Option<u64>,
    rip: u64,
}

fn fault_case(name: &str, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>, e: Expect) {
    let elf = write_guest(name, body);
    let r = run_vmm(&["run", "--json", "--timeout", "20", "--guest", elf.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&elf);
    assert_eq!(r.code, 2, "{name}: {}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let o = &j["outcome"];
    assert_eq!(o["kind"], "fault", "{name}: {o}");
    let rep = &o["report"];
    assert_eq!(rep["vector"], e.vector, "{name}: {rep}");
    assert_eq!(rep["error_code"], e.error_code, "{name}: {rep}");
    assert_eq!(rep["rip"], e.rip, "{name}: {rep}");
    assert_eq!(rep["cs"].as_u64().map(|sel| sel & 3), Some(3), "{name}: CPL: {rep}");
    if let Some(addr) = e.cr2 {
        assert_eq!(rep["cr2"], addr, "{name}: {rep}");
    }
    // The message names the fault for a person, too.
    let last = j["checks"].as_array().and_then(|c| c.last()).expect("completion line");
    assert_eq!(last["passed"], false);
    assert!(last["detail"].as_str().is_some_and(|d| d.contains("unexpected exception")), "{last}");
}

const BASE: u64 = EXAMPLE_CODE_VA;

#[test]
fn read_of_an_unmapped_page() {
    need_kvm!();
    fault_case(
        "pf-read",
        |a| {
            a.mov(rax, qword_ptr(0x0dea_d000u64))?;
            a.ud2()
        },
        Expect { vector: 14, error_code: 0x4, cr2: Some(0x0dea_d000), rip: BASE },
    );
}

#[test]
fn write_to_read_only_code() {
    need_kvm!();
    fault_case(
        "pf-write-ro",
        |a| {
            a.mov(qword_ptr(BASE + 0x10), 1)?;
            a.ud2()
        },
        Expect { vector: 14, error_code: 0x7, cr2: Some(BASE + 0x10), rip: BASE },
    );
}

#[test]
fn execute_unmapped_and_no_execute_pages() {
    need_kvm!();
    fault_case(
        "pf-exec-unmapped",
        |a| {
            a.mov(rax, 0x7000_0000u64)?;
            a.jmp(rax)
        },
        Expect { vector: 14, error_code: 0x14, cr2: Some(0x7000_0000), rip: 0x7000_0000 },
    );
    fault_case(
        "pf-exec-nx",
        |a| {
            a.mov(rax, EXAMPLE_DATA_VA)?;
            a.jmp(rax)
        },
        Expect { vector: 14, error_code: 0x15, cr2: Some(EXAMPLE_DATA_VA), rip: EXAMPLE_DATA_VA },
    );
}

#[test]
fn invalid_opcode_general_protection_divide_breakpoint() {
    need_kvm!();
    fault_case("ud", |a| a.ud2(), Expect { vector: 6, error_code: 0, cr2: None, rip: BASE });
    // hlt is privileged: #GP(0).
    fault_case("gp-hlt", |a| a.hlt(), Expect { vector: 13, error_code: 0, cr2: None, rip: BASE });
    // xor ecx, ecx (2 bytes); div ecx.
    fault_case(
        "de",
        |a| {
            a.xor(ecx, ecx)?;
            a.div(ecx)
        },
        Expect { vector: 0, error_code: 0, cr2: None, rip: BASE + 2 },
    );
    // A trap: RIP is after the int3.
    fault_case("bp", |a| a.int3(), Expect { vector: 3, error_code: 0, cr2: None, rip: BASE + 1 });
}

#[test]
fn user_mode_cannot_forge_kernel_ports() {
    need_kvm!();
    // out 0xe0, al is denied by the TSS I/O bitmap: #GP(0), not a fake
    // exception report.
    fault_case(
        "forge",
        |a| {
            a.mov(eax, 14)?;
            a.out(0xe0u32, al)
        },
        Expect { vector: 13, error_code: 0, cr2: None, rip: BASE + 5 },
    );
}

#[test]
fn triple_fault_is_reported() {
    need_kvm!();
    // Break the IDT before the guest starts: its first exception cannot be
    // delivered, nor can the double fault.
    let elf = write_guest("triple", |a| a.ud2());
    let cfg = vmm::VmConfig { guest: vmm::GuestChoice::Elf(elf.clone()), timeout_secs: Some(20), ..Default::default() };
    let out = vmm::hosted::hypercall::ConsoleOut::new(Box::new(std::io::sink()));
    let mut opts = vmm::RunOptions::new(vmm::ConsoleSink::Writer(out));
    opts.stdin = false;
    opts.before_start = Some(Box::new(|mem| {
        use vm_memory::{Bytes, GuestAddress};
        mem.write_slice(&[0u8; 4096], GuestAddress(vmm::layout::IDT_PA)).expect("clear the IDT");
    }));
    // In this process, without seccomp: a filter is permanent for its
    // thread and this test process runs others; `before_start` clears
    // the IDT, a hook only a library caller has.
    let report = vmm::run_with(&cfg, opts).expect("run");
    let _ = std::fs::remove_file(&elf);
    assert_eq!(report.outcome, Some(vmm::run::control::Outcome::TripleFault { vcpu: 0 }));
    assert_eq!(report.exit_code, 2);
    assert!(report.to_text().contains("vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)"), "{}", report.to_text());
}
