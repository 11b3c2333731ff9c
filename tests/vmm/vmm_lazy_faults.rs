//! Scenario: several vCPUs fault on the same lazy anonymous pages at the
//! same time (half of them read each page first, so copy-on-write races
//! with fresh-page faults). Every vCPU must resume, every vCPU's write must
//! land in the one frame each page ends up with, and every vCPU must see
//! that same frame. A fault outside the mapping is still reported.

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, mmap, Arg};
use vmm::hosted::stub::abi::{map, nr, prot};
use vmm_suite::kvm::{run_vmm, write_guest};
use vmm_suite::need_kvm;

const BASE: u64 = 0x7_4000_0000;
const PAGES: u64 = 128;
const LEN: u64 = (PAGES + 1) * 0x1000;
/// Counters in the last page: arrived, finished.
const ARRIVED: u64 = PAGES * 0x1000;
const FINISHED: u64 = PAGES * 0x1000 + 8;
const VCPUS: u64 = 4;
const SPIN: u32 = 1 << 30;

fn spin_until(a: &mut CodeAssembler, off: u64, want: u64, fail: CodeLabel) -> Result<(), IcedError> {
    let mut lp = a.create_label();
    let mut ok = a.create_label();
    a.mov(ecx, SPIN)?;
    a.set_label(&mut lp)?;
    a.cmp(qword_ptr(rbp + off as i32), want as i32)?;
    a.je(ok)?;
    a.pause()?;
    a.dec(ecx)?;
    a.jnz(lp)?;
    a.jmp(fail)?;
    a.set_label(&mut ok)?;
    a.nop()
}

#[test]
fn vcpus_faulting_on_the_same_pages_all_resume_and_share_the_frame() {
    need_kvm!();
    let elf = write_guest("lazy-race", |a| {
        let mut bad_map = a.create_label();
        let mut bad_spin = a.create_label();
        let mut bad_value = a.create_label();
        let mut bad_frame = a.create_label();
        let mut mapped = a.create_label();
        let mut page = a.create_label();
        let mut no_read = a.create_label();
        let mut check_page = a.create_label();
        let mut check_vcpu = a.create_label();
        a.mov(r12, rdi)?; // vCPU index
        a.mov(rbp, BASE)?;
        let flags = map::PRIVATE | map::ANONYMOUS | map::FIXED_NOREPLACE;
        mmap(a, Arg::Reg(rbp), LEN, prot::READ | prot::WRITE, flags, 0, 0)?;
        // The first vCPU maps it; the others find it there (EEXIST).
        a.cmp(rax, rbp)?;
        a.je(mapped)?;
        a.cmp(rax, -17)?;
        a.jne(bad_map)?;
        a.set_label(&mut mapped)?;
        a.lock().inc(qword_ptr(rbp + ARRIVED as i32))?;
        spin_until(a, ARRIVED, VCPUS, bad_spin)?;
        // Every page: odd vCPUs read it first (the zero page), then every
        // vCPU writes its slot and records the frame it sees.
        a.xor(r14d, r14d)?;
        a.set_label(&mut page)?;
        a.mov(r11, r14)?;
        a.shl(r11, 12)?;
        a.add(r11, rbp)?;
        a.test(r12, 1)?;
        a.jz(no_read)?;
        a.mov(rax, qword_ptr(r11 + 0x800))?;
        a.set_label(&mut no_read)?;
        a.lea(rax, qword_ptr(r12 + 1))?;
        a.mov(qword_ptr(r11 + r12 * 8), rax)?;
        hcall(a, nr::TRANSLATE, &[Arg::Reg(r11), Arg::Imm(0)])?;
        a.mov(qword_ptr(r11 + r12 * 8 + 0x200), rax)?;
        a.inc(r14)?;
        a.cmp(r14, PAGES as i32)?;
        a.jne(page)?;
        a.lock().inc(qword_ptr(rbp + FINISHED as i32))?;
        let mut zero = a.create_label();
        a.test(r12, r12)?;
        a.jz(zero)?;
        hcall(a, nr::EXIT, &[Arg::Imm(0)])?;
        a.ud2()?;
        // vCPU 0: wait for all, then every slot of every page is there and
        // every vCPU saw the same frame.
        a.set_label(&mut zero)?;
        spin_until(a, FINISHED, VCPUS, bad_spin)?;
        a.xor(r14d, r14d)?;
        a.set_label(&mut check_page)?;
        a.mov(r11, r14)?;
        a.shl(r11, 12)?;
        a.add(r11, rbp)?;
        a.xor(r9d, r9d)?;
        a.set_label(&mut check_vcpu)?;
        a.lea(rax, qword_ptr(r9 + 1))?;
        a.cmp(qword_ptr(r11 + r9 * 8), rax)?;
        a.jne(bad_value)?;
        a.mov(rax, qword_ptr(r11 + 0x200))?;
        a.cmp(qword_ptr(r11 + r9 * 8 + 0x200), rax)?;
        a.jne(bad_frame)?;
        a.inc(r9)?;
        a.cmp(r9, VCPUS as i32)?;
        a.jne(check_vcpu)?;
        a.inc(r14)?;
        a.cmp(r14, PAGES as i32)?;
        a.jne(check_page)?;
        // Outside any VMA: still a reported fault.
        a.mov(rax, qword_ptr(rbp + LEN as i32))?;
        a.ud2()?;
        // 3 mmap failed, 4 spin timed out, 5 a write was lost, 6 two vCPUs
        // saw different frames.
        for (label, status) in [(&mut bad_map, 3), (&mut bad_spin, 4), (&mut bad_value, 5), (&mut bad_frame, 6)] {
            a.set_label(label)?;
            hcall(a, nr::EXIT_GROUP, &[Arg::Imm(status)])?;
        }
        a.ud2()
    });
    let vcpus = VCPUS.to_string();
    let r = run_vmm(&["run", "--json", "--vcpus", &vcpus, "--timeout", "120", "--guest", elf.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&elf);
    let j = r.json();
    // The run ends with the deliberate fault past the mapping, reported
    // with its address: every check before it passed.
    assert_eq!(j["outcome"]["kind"], "fault", "{j}\n{}", r.stderr);
    assert_eq!(j["outcome"]["report"]["cr2"], BASE + LEN, "{j}");
    assert_eq!(j["outcome"]["report"]["error_code"], 4, "{j}");
}
