//! Scenario: guest-physical space outside RAM that the VMM uses for
//! itself is not reachable by the guest. A raw multiboot kernel (which
//! addresses guest-physical memory directly, paging off) reads, writes and
//! reads again the page where the VMM's zap slot lives
//! (`vmm::layout::ZAP_SLOT_PA`) and an address nothing backs, and must
//! see the same at both: all-ones on read, no effect of the write.
//!
//! Run with the production seccomp filters.

use iced_x86::code_asm::*;
use vmm_suite::kvm::{multiboot, run_vmm, temp_path};
use vmm_suite::need_kvm;

/// An address no slot and no device backs on the PC platform (above the
/// zap slot, below 4 GiB).
const UNBACKED: u32 = 0xfffd_0000;

/// An a.out-kludge multiboot kernel at `LOAD` whose code (after the
/// 32-byte header) `body` emits.
fn kernel(name: &str, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> std::path::PathBuf {
    let p = temp_path(name);
    std::fs::write(&p, multiboot::aout(&multiboot::code32(multiboot::AOUT_ENTRY, body))).expect("write kernel");
    p
}

/// Exit-port value: bit 0 when the first read of `addr` gave all-ones,
/// bit 1 when the read after writing 0x12345678 there still did.
fn probe(a: &mut CodeAssembler, addr: u32) -> Result<(), IcedError> {
    let mut first_done = a.create_label();
    let mut second_done = a.create_label();
    a.xor(edx, edx)?;
    a.mov(ebx, dword_ptr(addr))?;
    a.mov(dword_ptr(addr), 0x1234_5678u32)?;
    a.mov(ecx, dword_ptr(addr))?;
    a.cmp(ebx, -1)?;
    a.jne(first_done)?;
    a.or(edx, 1)?;
    a.set_label(&mut first_done)?;
    a.cmp(ecx, -1)?;
    a.jne(second_done)?;
    a.or(edx, 2)?;
    a.set_label(&mut second_done)?;
    a.mov(eax, edx)?;
    a.out(0xf4, al)?;
    a.hlt()
}

fn run_probe(name: &str, addr: u32) -> i32 {
    let k = kernel(name, |a| probe(a, addr));
    let r = run_vmm(&["run", "--kernel", k.to_str().expect("utf-8"), "--timeout", "30", "--json"]);
    let _ = std::fs::remove_file(&k);
    assert_eq!(r.json()["outcome"]["kind"], "exit_port", "{}\n{}", r.stdout, r.stderr);
    r.code
}

/// The reference: an unbacked address reads all-ones before and after a
/// write ((3 << 1) | 1 = 7).
#[test]
fn an_unbacked_address_reads_all_ones_and_ignores_writes() {
    need_kvm!();
    assert_eq!(run_probe("unbacked", UNBACKED), 7);
}

/// Issue 20 item 14: the zap slot's page answers as the unbacked address
/// does. Against the old VMM this failed with 1 (the page read 0, then
/// the value written: the guest had a 4 KiB page of the VMM's).
#[test]
fn the_zap_slot_page_is_not_reachable() {
    need_kvm!();
    assert_eq!(run_probe("zap-slot", vmm::layout::ZAP_SLOT_PA as u32), 7);
}
