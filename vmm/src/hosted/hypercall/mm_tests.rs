//! Tests of the `mmap` family's argument handling ([`super::mm`],
//! [`super::mm_remap`]) and of the fault path's access bits
//! ([`super::page_fault`]): what each `PROT_*` bit allows, where the user
//! half ends, how a placement hint is taken, and that a failed shootdown
//! reaches the vCPU loop.

use std::sync::Arc;

use guest_mm::{errno, GuestVirtAddr, VmFlags};

use super::test_kernel::touch;
use super::{Args, ConsoleOut, FaultCause, FaultOutcome, HostedKernel, Outcome, ReportLog};
use crate::hosted::mapper::Mapper;
use crate::hosted::providers::Providers;
use crate::hosted::stub::abi::{map, mremap, nr, prot};
use crate::hosted::tlb::{FlushError, Flusher, Range};
use crate::memory::create_guest_memory;
use crate::run::vm_exit::ExitCounters;

const MEM: u64 = 64 << 20;
const ANON: u64 = map::PRIVATE | map::ANONYMOUS;
/// `#PF` error codes: a user read, a user write, a user fetch (all of an
/// absent entry).
const READ: u64 = 0x4;
const WRITE: u64 = 0x6;
const FETCH: u64 = 0x14;

/// A shootdown that always fails (the run is stopping).
struct Failing;

impl Flusher for Failing {
    fn flush(&self, _: u8, _: &[Range]) -> Result<(), FlushError> {
        Err(FlushError::Stopping)
    }
}

fn setup() -> HostedKernel {
    let mem = create_guest_memory(MEM).unwrap();
    let m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    super::test_kernel::kernel(mem, m, providers).0
}

fn call(hv: &HostedKernel, nr: u64, a: [u64; 6]) -> Outcome {
    hv.dispatch(0, &Args { nr, a })
}

fn mmap(hv: &HostedKernel, addr: u64, len: u64, p: u64, flags: u64) -> i64 {
    call(hv, nr::MMAP, [addr, len, p, flags, 0, 0]).ret
}

fn access(hv: &HostedKernel, va: i64) -> VmFlags {
    let m = hv.mapper();
    let vma = m.space().find_vma(GuestVirtAddr::try_new(va as u64).unwrap()).unwrap();
    vma.flags() & (VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC)
}

#[test]
fn each_prot_bit_gives_its_access() {
    let hv = setup();
    for (p, want) in [
        (prot::READ, VmFlags::READ),
        (prot::WRITE, VmFlags::WRITE),
        (prot::EXEC, VmFlags::EXEC),
        (prot::READ | prot::EXEC, VmFlags::READ | VmFlags::EXEC),
        (prot::READ | prot::WRITE | prot::EXEC, VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC),
        (0, VmFlags::empty()),
    ] {
        let a = mmap(&hv, 0, 0x1000, p, ANON);
        assert!(a > 0, "{p:#x}: {a}");
        assert_eq!(access(&hv, a), want, "{p:#x}");
    }
    assert_eq!(super::prot_vm_flags(prot::READ | 8), VmFlags::READ, "other bits are the caller's");
    assert_eq!(mmap(&hv, 0, 0x1000, 8, ANON), -i64::from(errno::EINVAL));
}

/// What the guest sees of them: a read of `PROT_READ` memory is filled,
/// a fetch only where `PROT_EXEC` allows it.
#[test]
fn reads_and_fetches_are_filled_only_where_the_prot_allows() {
    let hv = setup();
    let r = mmap(&hv, 0, 0x1000, prot::READ, ANON) as u64;
    let rx = mmap(&hv, 0, 0x1000, prot::READ | prot::EXEC, ANON) as u64;
    assert_eq!(hv.page_fault(0, r, FETCH), FaultOutcome::Unresolved);
    assert_eq!(hv.fault_cause(r, FETCH), FaultCause::Access);
    assert_eq!(hv.page_fault(0, r, WRITE), FaultOutcome::Unresolved);
    assert_eq!(hv.page_fault(0, r, READ), FaultOutcome::Resolved);
    assert_eq!(hv.page_fault(0, rx, FETCH), FaultOutcome::Resolved);
    assert_eq!(hv.faults_resolved(), 2);
}

#[test]
fn a_fixed_mapping_may_end_exactly_at_the_top_of_the_user_half() {
    let hv = setup();
    let top = (1u64 << 47) - 0x1000;
    let fixed = ANON | map::FIXED;
    assert_eq!(mmap(&hv, top, 0x1000, prot::READ, fixed), top as i64);
    assert_eq!(mmap(&hv, top, 0x2000, prot::READ, fixed), -i64::from(errno::ENOMEM));
    assert_eq!(call(&hv, nr::MPROTECT, [top, 0x1000, prot::READ | prot::WRITE, 0, 0, 0]).ret, 0);
    assert_eq!(call(&hv, nr::MUNMAP, [top, 0x1000, 0, 0, 0, 0]).ret, 0);
    assert_eq!(call(&hv, nr::MUNMAP, [top, 0x2000, 0, 0, 0, 0]).ret, -i64::from(errno::ENOMEM));
}

#[test]
fn a_free_hint_is_taken_and_an_unusable_one_ignored() {
    let hv = setup();
    // Inside the window guest-mm places mappings in (from 4 GiB up).
    let hint = 0x10_0000_0000u64;
    assert_eq!(mmap(&hv, hint, 0x2000, prot::READ, ANON), hint as i64);
    // Past the user half or misaligned: placed elsewhere, not refused.
    for bad in [(1u64 << 47) - 0x1000, hint + 0x10_0123] {
        let a = mmap(&hv, bad, 0x2000, prot::READ, ANON);
        assert!(a > 0 && (a as u64) < 1 << 47, "hint {bad:#x}: {a}");
    }
}

/// A shootdown that fails after the tables changed ends the run: every
/// call that changes mappings hands that to the vCPU loop, with its own
/// result.
#[test]
fn a_failed_shootdown_reaches_the_vcpu_loop() {
    let mem = create_guest_memory(MEM).unwrap();
    let m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    let console = ConsoleOut::new(Box::new(std::io::sink()));
    let counters = vec![Arc::new(ExitCounters::default())];
    let hv = HostedKernel::new(mem, m, providers, Arc::new(Failing), console, ReportLog::default(), counters);
    let shared = map::SHARED | map::ANONYMOUS;
    let a = call(&hv, nr::MMAP, [0, 0x4000, prot::READ | prot::WRITE, shared, 0, 0]);
    assert!(a.ret > 0 && a.effects.fatal.is_none(), "nothing was cached: {a:?}");
    let a = a.ret as u64;
    let fatal = Some(FlushError::Stopping.to_string());
    touch(&hv, a);
    let r = call(&hv, nr::MPROTECT, [a, 0x1000, prot::READ, 0, 0, 0]);
    assert_eq!((r.ret, &r.effects.fatal), (0, &fatal), "mprotect");
    touch(&hv, a + 0x1000);
    let r = call(&hv, nr::MMAP, [a + 0x1000, 0x1000, prot::READ, shared | map::FIXED, 0, 0]);
    assert_eq!((r.ret, &r.effects.fatal), ((a + 0x1000) as i64, &fatal), "mmap over it");
    touch(&hv, a + 0x2000);
    let r = call(&hv, nr::MREMAP, [a + 0x2000, 0x1000, 0x1000, mremap::MAYMOVE | mremap::FIXED, a + 0x10_0000, 0]);
    assert_eq!((r.ret, &r.effects.fatal), ((a + 0x10_0000) as i64, &fatal), "mremap");
    touch(&hv, a + 0x3000);
    let r = call(&hv, nr::MUNMAP, [a + 0x3000, 0x1000, 0, 0, 0, 0]);
    assert_eq!((r.ret, &r.effects.fatal), (0, &fatal), "munmap");
}
