//! Tests of [`HostedKernel`]'s own calls ([`super::kernel`]): the small
//! hypercalls' results and effects, the fault message's disassembly and
//! the audit, over guest memory without KVM.

use std::sync::atomic::Ordering;

use guest_mm::{errno, GuestVirtAddr, Pfn};
use vm_memory::{Bytes, GuestAddress};

use super::{Args, Effects, HostedKernel, Outcome};
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::providers::Providers;
use crate::hosted::stub::abi::nr;
use crate::memory::create_guest_memory;

const MEM: u64 = 64 << 20;
/// Two user pages on frames that are not neighbours.
const USER_VA: u64 = 0x40_0000;
const FRAMES: [u64; 2] = [0x2000, 0x2005];

fn setup() -> HostedKernel {
    let mem = create_guest_memory(MEM).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    m.map_user_pages(GuestVirtAddr::try_new(USER_VA).unwrap(), &FRAMES.map(Pfn), Access::RX).unwrap();
    // The frame after the first holds a whole instruction's worth of
    // bytes that decode: a decoder that reads past the page sees them.
    mem.write_slice(&[0x90; 16], GuestAddress((FRAMES[0] + 1) << 12)).unwrap();
    super::test_kernel::kernel(mem, m, providers).0
}

fn call(hv: &HostedKernel, nr: u64, a: [u64; 6]) -> Outcome {
    hv.dispatch(0, &Args { nr, a })
}

#[test]
fn exit_stops_only_the_calling_vcpu() {
    let hv = setup();
    let want = Outcome { ret: 0, effects: Effects { exit_vcpu: Some(7), ..Default::default() } };
    assert_eq!(call(&hv, nr::EXIT, [7, 0, 0, 0, 0, 0]), want);
    let want = Outcome { ret: 0, effects: Effects { exit_group: Some(-1), ..Default::default() } };
    assert_eq!(call(&hv, nr::EXIT_GROUP, [u32::MAX as u64, 0, 0, 0, 0, 0]), want);
}

#[test]
fn exit_count_reports_each_counter() {
    let hv = setup();
    let c = &hv.counters[0];
    c.total.store(11, Ordering::Relaxed);
    c.mmio.store(5, Ordering::Relaxed);
    c.pio.store(3, Ordering::Relaxed);
    let count = |what| call(&hv, nr::EXIT_COUNT, [what, 0, 0, 0, 0, 0]);
    assert_eq!(count(0), Outcome::ret(11));
    assert_eq!(count(1), Outcome::ret(5));
    assert_eq!(count(2), Outcome::ret(3));
    assert_eq!(count(3), Outcome::err(errno::EINVAL));
    // A vCPU without counters.
    assert_eq!(hv.dispatch(1, &Args { nr: nr::EXIT_COUNT, a: [0; 6] }), Outcome::err(errno::EINVAL));
}

#[test]
fn expect_fault_takes_any_user_address_up_to_the_top() {
    let hv = setup();
    let top = (1u64 << 47) - 1;
    let r = call(&hv, nr::EXPECT_FAULT, [top, 0, 0, 0, 0, 0]);
    assert_eq!(r, Outcome { ret: 0, effects: Effects { arm_fault: Some(top), ..Default::default() } });
    assert_eq!(call(&hv, nr::EXPECT_FAULT, [0, 0, 0, 0, 0, 0]).effects.arm_fault, Some(0), "0 disarms");
    assert_eq!(call(&hv, nr::EXPECT_FAULT, [1 << 47, 0, 0, 0, 0, 0]), Outcome::err(errno::EINVAL));
}

#[test]
fn disassembly_reads_the_mapped_instruction_and_stops_at_the_page_end() {
    let hv = setup();
    let va = |a| GuestVirtAddr::try_new(a).unwrap();
    // `syscall` at the start of the first page.
    hv.mem.write_slice(&[0x0f, 0x05], GuestAddress(FRAMES[0] << 12)).unwrap();
    assert_eq!(hv.disassemble_at(va(USER_VA)).as_deref(), Some("syscall"));
    // `mov rax, imm64` cut by the page end: the bytes of the page only
    // (the next frame's nops would complete it).
    hv.mem.write_slice(&[0x48, 0xb8], GuestAddress((FRAMES[0] << 12) + 0xffe)).unwrap();
    assert_eq!(hv.disassemble_at(va(USER_VA + 0xffe)).as_deref(), Some("(undecodable: [48, b8])"));
    // A whole one just before the end.
    hv.mem.write_slice(&[0x0f, 0x05], GuestAddress((FRAMES[0] << 12) + 0xffc)).unwrap();
    assert_eq!(hv.disassemble_at(va(USER_VA + 0xffc)).as_deref(), Some("syscall"));
    // Nothing mapped.
    assert_eq!(hv.disassemble_at(va(USER_VA + 0x2000)), None);
}

#[test]
fn the_audit_counts_what_is_mapped() {
    let hv = setup();
    let (audit, violations) = hv.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(audit.vmas, 1);
    assert!(audit.leaves >= 2 && audit.tables >= 4, "{audit:?}");
    assert!(format!("{hv:?}").starts_with("HostedKernel"));
}
