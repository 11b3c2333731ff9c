//! Scenario: on KVM, a `munmap` of pages no vCPU touched needs no TLB
//! shootdown (no Accessed bit set: nothing can be cached, see `tlb`), and
//! the VMM does none, while a `munmap` of a page the guest read does one.
//! Counted by the VMM (`exits[i].shootdowns` in the run's JSON: one
//! memslot zap and NMI round each); the guest checks after each touched
//! `munmap` that the page is gone (a read through it faults: the run
//! must end with that fault, at that address).

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, mmap, Arg};
use vmm::hosted::stub::abi::{fd, map, nr, prot};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

/// Untouched pairs per kind, touched pairs.
const UNTOUCHED: u64 = 3;
const TOUCHED: u64 = 2;

/// `mmap(NULL, 4096, prot, flags, handle, 0)` into `rbx`, `exit_group(3)`
/// on an error.
fn map_one(a: &mut CodeAssembler, flags: u64, handle: u64, bad: CodeLabel) -> Result<(), IcedError> {
    mmap(a, Arg::Imm(0), 0x1000, prot::READ | prot::WRITE, flags, handle, 0)?;
    a.test(rax, rax)?;
    a.js(bad)?;
    a.mov(rbx, rax)
}

fn unmap_one(a: &mut CodeAssembler, bad: CodeLabel) -> Result<(), IcedError> {
    hcall(a, nr::MUNMAP, &[Arg::Reg(rbx), Arg::Imm(0x1000)])?;
    a.test(rax, rax)?;
    a.jnz(bad)
}

#[test]
fn only_a_touched_page_is_shot_down() {
    need_kvm!();
    let elf = write_guest("tlb-accessed", |a| {
        let mut bad = a.create_label();
        // Populated at mmap (the kernel page buffer; shared anonymous
        // memory), or lazy (private anonymous: nothing to clear), never
        // touched.
        let kinds =
            [(map::SHARED, fd::PAGE_BUFFER), (map::SHARED | map::ANONYMOUS, 0), (map::PRIVATE | map::ANONYMOUS, 0)];
        for (flags, handle) in kinds {
            for _ in 0..UNTOUCHED {
                map_one(a, flags, handle, bad)?;
                unmap_one(a, bad)?;
            }
        }
        // Read, then unmapped: the translation may be cached.
        for _ in 0..TOUCHED {
            map_one(a, map::SHARED, fd::PAGE_BUFFER, bad)?;
            a.mov(rax, qword_ptr(rbx))?;
            unmap_one(a, bad)?;
        }
        // Gone: this read faults at `rbx` (reported, ends the run).
        a.mov(rax, qword_ptr(rbx))?;
        a.ud2()?;
        a.set_label(&mut bad)?;
        hcall(a, nr::EXIT_GROUP, &[Arg::Imm(3)])?;
        a.ud2()
    });
    let r = run_vmm(&["run", "--json", "--timeout", "60", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    let j = r.json();
    assert_eq!(j["outcome"]["kind"], "fault", "{j}\n{}", r.stderr);
    assert_eq!(j["outcome"]["report"]["error_code"], 4, "a user read of an absent page: {j}");
    assert_eq!(j["exits"][0]["shootdowns"], TOUCHED, "one shootdown per touched page, none else: {j}");
}
