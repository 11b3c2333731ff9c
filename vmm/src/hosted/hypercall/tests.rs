//! Hypercall tests over real guest memory and guest-mm tables, no KVM.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress};

use super::test_kernel::{touch, Buf};
use super::*;
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::stub::abi::nr;
use crate::hosted::tlb::RecordingFlusher;
use crate::memory::create_guest_memory;
use guest_mm::{errno, GuestVirtAddr};

const MEM: u64 = 64 << 20;
const USER_VA: u64 = 0x40_0000;
const KERNEL_VA: u64 = 0xffff_ff80_0010_0000;

fn setup() -> (HostedKernel, Buf) {
    let (hv, out, _) = setup_with_flusher();
    (hv, out)
}

fn setup_with_flusher() -> (HostedKernel, Buf, Arc<RecordingFlusher>) {
    let mem = create_guest_memory(MEM).unwrap();
    let mut m = Mapper::new(mem.clone()).unwrap();
    let pages = [guest_mm::Pfn(0x2000), guest_mm::Pfn(0x2005)];
    let providers = crate::hosted::providers::Providers::new(&m, &mem, &[]).unwrap();
    m.map_user_pages(GuestVirtAddr::try_new(USER_VA).unwrap(), &pages, Access::RW).unwrap();
    m.map_kernel(GuestVirtAddr::try_new(KERNEL_VA).unwrap(), GuestAddress(0x3000 << 12), 0x1000, Access::RW).unwrap();
    // "hello" straddling the two (physically distant) pages.
    mem.write_slice(b"hel", GuestAddress((0x2000 << 12) + 0xffd)).unwrap();
    mem.write_slice(b"lo", GuestAddress(0x2005 << 12)).unwrap();
    let (hv, out, flusher) = super::test_kernel::kernel(mem, m, providers);
    (hv, out, flusher)
}

fn call(hv: &HostedKernel, nr: u64, a: [u64; 6]) -> Outcome {
    hv.dispatch(0, &Args { nr, a })
}

#[test]
fn write_copies_through_the_page_tables() {
    let (hv, out) = setup();
    let r = call(&hv, nr::WRITE, [1, USER_VA + 0xffd, 5, 0, 0, 0]);
    assert_eq!(r.ret, 5);
    hv.console().flush(None).unwrap();
    assert_eq!(&*out.0.lock().unwrap(), b"hello");
}

#[test]
fn write_refuses_what_user_mode_cannot_reach() {
    let (hv, out) = setup();
    let e = -i64::from(errno::EFAULT);
    // Unmapped, supervisor-only, wrapping, past the lower half.
    assert_eq!(call(&hv, nr::WRITE, [1, USER_VA + 0x1ffe, 4, 0, 0, 0]).ret, e);
    assert_eq!(call(&hv, nr::WRITE, [1, KERNEL_VA, 4, 0, 0, 0]).ret, e);
    assert_eq!(call(&hv, nr::WRITE, [1, u64::MAX - 1, 4, 0, 0, 0]).ret, e);
    assert_eq!(call(&hv, nr::WRITE, [1, (1 << 47) - 2, 4, 0, 0, 0]).ret, e);
    assert_eq!(call(&hv, nr::WRITE, [7, USER_VA, 4, 0, 0, 0]).ret, -i64::from(errno::EINVAL));
    assert!(out.0.lock().unwrap().is_empty());
}

#[test]
fn small_calls() {
    let (hv, _) = setup();
    assert_eq!(call(&hv, 0xdead, [0; 6]).ret, -i64::from(errno::ENOSYS));
    assert_eq!(call(&hv, nr::VCPU_ID, [0; 6]).ret, 0);
    assert_eq!(call(&hv, nr::EXIT_COUNT, [9, 0, 0, 0, 0, 0]).ret, -i64::from(errno::EINVAL));
    assert_eq!(call(&hv, nr::TRANSLATE, [USER_VA + 0x1000, 0, 0, 0, 0, 0]).ret, 0x2005 << 12);
    assert_eq!(call(&hv, nr::TRANSLATE, [USER_VA + 0x1000, 1, 0, 0, 0, 0]).ret, 4096);
    assert_eq!(call(&hv, nr::TRANSLATE, [0x8000_0000_0000, 0, 0, 0, 0, 0]).ret, -i64::from(errno::EINVAL));
    let r = call(&hv, nr::EXPECT_FAULT, [USER_VA, 0, 0, 0, 0, 0]);
    assert_eq!(r.effects.arm_fault, Some(USER_VA));
    assert_eq!(call(&hv, nr::EXPECT_FAULT, [KERNEL_VA, 0, 0, 0, 0, 0]).ret, -i64::from(errno::EINVAL));
    let r = call(&hv, nr::EXIT_GROUP, [3, 0, 0, 0, 0, 0]);
    assert_eq!(r.effects.exit_group, Some(3));
    call(&hv, nr::REPORT, [2, 1, 10, 10, 0, 0]);
    assert_eq!(hv.report().records()[0], CheckRecord { vcpu: 0, id: 2, passed: true, got: 10, expected: 10, step: 0 });
}

#[test]
fn munmap_clears_the_translation() {
    use crate::hosted::stub::abi::{map, prot};
    let (hv, _, flusher) = setup_with_flusher();
    // Shared: populated up front (a private one would be lazy).
    let r = call(&hv, nr::MMAP, [0, 0x3000, prot::READ | prot::WRITE, map::SHARED | map::ANONYMOUS, 0, 0]);
    assert!(r.ret > 0, "{r:?}");
    let va = r.ret as u64;
    assert!(call(&hv, nr::TRANSLATE, [va + 0x1000, 0, 0, 0, 0, 0]).ret > 0);
    touch(&hv, va + 0x1000);
    let u = call(&hv, nr::MUNMAP, [va + 0x1000, 0x1000, 0, 0, 0, 0]);
    assert_eq!(u.ret, 0);
    assert_eq!(*flusher.0.lock().unwrap(), vec![(0, vec![(va + 0x1000, 0x1000)])]);
    assert_eq!(call(&hv, nr::TRANSLATE, [va + 0x1000, 0, 0, 0, 0, 0]).ret, -i64::from(errno::EFAULT));
    assert!(call(&hv, nr::TRANSLATE, [va, 0, 0, 0, 0, 0]).ret > 0);
    // A page no CPU walked: cleared without a shootdown.
    assert_eq!(call(&hv, nr::MUNMAP, [va, 0x1000, 0, 0, 0, 0]).ret, 0);
    assert_eq!(call(&hv, nr::TRANSLATE, [va, 0, 0, 0, 0, 0]).ret, -i64::from(errno::EFAULT));
    assert_eq!(flusher.0.lock().unwrap().len(), 1, "no shootdown for the untouched page");
    assert_eq!(hv.counters[0].shootdowns.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_failed_mprotect_still_flushes_what_it_changed_and_undid() {
    use crate::hosted::stub::abi::{fd, map, prot};
    let (hv, _, flusher) = setup_with_flusher();
    let huge_at = 0x4000_0000u64;
    let rw = prot::READ | prot::WRITE;
    let fixed = map::SHARED | map::FIXED;
    // Shared anonymous memory is populated at once (private is lazy).
    let r = call(&hv, nr::MMAP, [huge_at - 0x1000, 0x1000, rw, map::SHARED | map::FIXED | map::ANONYMOUS, 0, 0]);
    assert_eq!(r.ret, (huge_at - 0x1000) as i64, "{r:?}");
    // 2 MiB of guest RAM at a 2 MiB boundary: one huge leaf. (Not the
    // huge-page region: its VMAs split only on 2 MiB boundaries.)
    let ram = crate::layout::FREE_PA;
    let r = call(&hv, nr::MMAP, [huge_at, 2 << 20, rw, fixed, fd::GUEST_RAM, ram]);
    assert_eq!(r.ret, huge_at as i64, "{r:?}");
    let leaf = hv.mapper().page_tables().translate(GuestVirtAddr::try_new(huge_at).unwrap()).unwrap();
    assert_eq!(leaf.size, guest_mm::PageSize::Size2M);
    flusher.0.lock().unwrap().clear();
    touch(&hv, huge_at - 0x1000);
    // The first piece (the zero page) is downgraded, then the second
    // needs a table to split the huge leaf and gets none: the first is
    // put back, and what a vCPU may have cached in between is flushed.
    hv.mapper().space_mut().page_tables_mut().allocator_mut().inject_failure_after(Some(0));
    let r = call(&hv, nr::MPROTECT, [huge_at - 0x1000, 0x2000, prot::READ, 0, 0, 0]);
    hv.mapper().space_mut().page_tables_mut().allocator_mut().inject_failure_after(None);
    assert_eq!(r.ret, -i64::from(errno::ENOMEM), "{r:?}");
    let calls = flusher.0.lock().unwrap().clone();
    assert!(
        calls.iter().any(|(_, ranges)| ranges.iter().any(|&(s, l)| s <= huge_at - 0x1000 && s + l >= huge_at)),
        "no flush of the page changed and restored: {calls:?}"
    );
    assert!(hv.mapper().space_mut().take_deferred_flush().is_empty(), "left behind");
}

#[test]
fn freed_tables_are_flushed_even_when_no_present_entry_changed() {
    use crate::hosted::stub::abi::map;
    let (hv, _, flusher) = setup_with_flusher();
    // A PROT_NONE mapping alone in its leaf table: unmapping it clears no
    // present entry but frees the table, which a vCPU's paging-structure
    // caches may still point at.
    let at = 0x7000_0000u64;
    // Shared: populated at once, so its PROT_NONE leaf needs a table.
    let r = call(&hv, nr::MMAP, [at, 0x1000, 0, map::SHARED | map::FIXED | map::ANONYMOUS, 0, 0]);
    assert_eq!(r.ret, at as i64, "{r:?}");
    flusher.0.lock().unwrap().clear();
    // A walk stopped at the PROT_NONE leaf: the entries above it may be
    // in paging-structure caches.
    touch(&hv, at);
    assert_eq!(call(&hv, nr::MUNMAP, [at, 0x1000, 0, 0, 0, 0]).ret, 0);
    assert_eq!(*flusher.0.lock().unwrap(), vec![(0, vec![crate::hosted::tlb::EVERYTHING])]);
}

#[test]
fn page_faults_on_lazy_memory_are_resolved_and_others_are_not() {
    use crate::hosted::stub::abi::{map, nr, prot};
    let (hv, _, flusher) = setup_with_flusher();
    let flags = map::PRIVATE | map::ANONYMOUS;
    let a = call(&hv, nr::MMAP, [0, 0x4000, prot::READ | prot::WRITE, flags, 0, 0]).ret as u64;
    assert!(a < 1 << 47, "{a:#x}");
    // Supervisor, reserved-bit and read-protection faults are never ours.
    for code in [0x0, 0x4 | 0x8, 0x5] {
        assert_eq!(hv.page_fault(0, a, code), FaultOutcome::Unresolved, "{code:#x}");
    }
    // A user read of the absent page: the zero page, read-only.
    assert_eq!(hv.page_fault(0, a + 8, 0x4), FaultOutcome::Resolved);
    let zero = hv.mapper().page_tables().translate(GuestVirtAddr::try_new(a).unwrap()).unwrap();
    assert!(!zero.prot.writable);
    assert!(flusher.0.lock().unwrap().is_empty(), "filling an absent page needs no flush");
    // The read retried: the zero page's entry is used.
    touch(&hv, a + 8);
    // The write to it: copy-on-write, the old entry shot down.
    assert_eq!(hv.page_fault(0, a + 8, 0x7), FaultOutcome::Resolved);
    let copy = hv.mapper().page_tables().translate(GuestVirtAddr::try_new(a).unwrap()).unwrap();
    assert!(copy.prot.writable && copy.pfn != zero.pfn);
    assert_eq!(flusher.0.lock().unwrap().as_slice(), &[(0, vec![(a, 0x1000)])]);
    // Outside every mapping, or a non-canonical address: reported.
    assert_eq!(hv.page_fault(0, a + 0x10_0000_0000, 0x4), FaultOutcome::Unresolved);
    assert_eq!(hv.page_fault(0, 1 << 63, 0x4), FaultOutcome::Unresolved);
    assert_eq!(hv.faults_resolved(), 2);
}

#[test]
fn mremap_and_madvise_check_their_arguments() {
    use crate::hosted::stub::abi::{madv, map, mremap, nr, prot};
    let (hv, _, flusher) = setup_with_flusher();
    let flags = map::PRIVATE | map::ANONYMOUS;
    let a = call(&hv, nr::MMAP, [0, 0x2000, prot::READ | prot::WRITE, flags, 0, 0]).ret as u64;
    let e = |o: Outcome| o.ret;
    let einval = -i64::from(errno::EINVAL);
    assert_eq!(e(call(&hv, nr::MREMAP, [a, 0x2000, 0x4000, 4, 0, 0])), einval, "MREMAP_DONTUNMAP");
    assert_eq!(e(call(&hv, nr::MREMAP, [a + 1, 0x2000, 0x4000, 1, 0, 0])), einval, "misaligned");
    assert_eq!(e(call(&hv, nr::MREMAP, [a, 0x2000, 0x4000, mremap::FIXED, a + 0x10_0000, 0])), einval);
    let past = call(&hv, nr::MREMAP, [a, 0x2000, 0x2000, mremap::MAYMOVE | mremap::FIXED, (1 << 47) - 0x1000, 0]);
    assert_eq!(past.ret, -i64::from(errno::ENOMEM));
    let grown = call(&hv, nr::MREMAP, [a, 0x2000, 0x8000, mremap::MAYMOVE, 0, 0]).ret;
    assert!(grown > 0, "{grown}");
    assert_eq!(e(call(&hv, nr::MADVISE, [grown as u64, 0x8000, 12, 0, 0, 0])), einval, "unknown advice");
    assert_eq!(e(call(&hv, nr::MADVISE, [grown as u64 + 8, 0x1000, madv::DONTNEED, 0, 0, 0])), einval);
    // A populated page dropped: shot down.
    assert_eq!(hv.page_fault(0, grown as u64, 0x6), FaultOutcome::Resolved);
    touch(&hv, grown as u64);
    flusher.0.lock().unwrap().clear();
    assert_eq!(e(call(&hv, nr::MADVISE, [grown as u64, 0x8000, madv::DONTNEED, 0, 0, 0])), 0);
    assert!(!flusher.0.lock().unwrap().is_empty());
    assert!(hv.mapper().page_tables().translate(GuestVirtAddr::try_new(grown as u64).unwrap()).is_none());
}

/// Issue 20 item 12: a huge-page mapping (`fd::HUGE`) cannot be shrunk,
/// moved or cut off its 2 MiB pages (`EINVAL`, as hugetlbfs), and the
/// refused calls change nothing.
#[test]
fn huge_page_mappings_stay_whole_pages() {
    use crate::hosted::stub::abi::{fd, map, mremap, prot};
    let (hv, _) = setup();
    const M2: u64 = 2 << 20;
    let at = 0x4000_0000u64;
    let fixed = map::SHARED | map::FIXED;
    let r = call(&hv, nr::MMAP, [at, 2 * M2, prot::READ | prot::WRITE, fixed, fd::HUGE, 0]);
    assert_eq!(r.ret, at as i64, "{r:?}");
    let einval = -i64::from(errno::EINVAL);
    let moved = mremap::MAYMOVE | mremap::FIXED;
    for (what, a) in [
        ("shrink to 4 KiB", [at, 2 * M2, 0x1000, 0, 0, 0]),
        ("shrink to 2 MiB - 4 KiB", [at, 2 * M2, M2 - 0x1000, 0, 0, 0]),
        ("move by 4 KiB", [at, 2 * M2, 2 * M2, moved, at + 4 * M2 + 0x1000, 0]),
    ] {
        assert_eq!(call(&hv, nr::MREMAP, a).ret, einval, "{what}");
    }
    for (what, a, len) in [("first 4 KiB", at, 0x1000), ("2 MiB from 4 KiB in", at + 0x1000, M2)] {
        assert_eq!(call(&hv, nr::MUNMAP, [a, len, 0, 0, 0, 0]).ret, einval, "munmap {what}");
    }
    assert_eq!(call(&hv, nr::MPROTECT, [at, 0x1000, prot::READ, 0, 0, 0]).ret, einval, "mprotect 4 KiB");
    // Still one 4 MiB mapping of huge leaves.
    let tr = |va: u64| hv.mapper().page_tables().translate(GuestVirtAddr::try_new(va).unwrap());
    assert!(tr(at).is_some() && tr(at + 2 * M2 - 0x1000).is_some());
    // Whole pages: fine.
    assert_eq!(call(&hv, nr::MREMAP, [at, 2 * M2, M2, 0, 0, 0]).ret, at as i64);
    assert_eq!(call(&hv, nr::MREMAP, [at, M2, M2, moved, at + 4 * M2, 0]).ret, (at + 4 * M2) as i64);
    assert_eq!(call(&hv, nr::MUNMAP, [at + 4 * M2, M2, 0, 0, 0, 0]).ret, 0);
    assert!(tr(at + 4 * M2).is_none());
}

#[test]
fn unresolved_faults_are_told_apart_as_linux_signals_them() {
    use super::FaultCause;
    use crate::hosted::stub::abi::{map, nr, prot};
    let (hv, _, _) = setup_with_flusher();
    let flags = map::PRIVATE | map::ANONYMOUS;
    let ro = call(&hv, nr::MMAP, [0, 0x1000, prot::READ, flags, 0, 0]).ret as u64;
    let none = call(&hv, nr::MMAP, [0, 0x1000, 0, flags, 0, 0]).ret as u64;
    assert!(ro < 1 << 47 && none < 1 << 47);
    // A write to a read-only mapping, any access to PROT_NONE, a fetch
    // from memory without PROT_EXEC: the mapping refuses (SEGV_ACCERR).
    assert_eq!(hv.page_fault(0, ro, 0x6), FaultOutcome::Unresolved);
    assert_eq!(hv.fault_cause(ro, 0x6), FaultCause::Access);
    assert_eq!(hv.page_fault(0, none, 0x4), FaultOutcome::Unresolved);
    assert_eq!(hv.fault_cause(none, 0x4), FaultCause::Access);
    assert_eq!(hv.fault_cause(ro, 0x14), FaultCause::Access);
    // A present read-only entry written: refused by the mapping too.
    assert_eq!(hv.page_fault(0, ro, 0x4), FaultOutcome::Resolved);
    assert_eq!(hv.fault_cause(ro, 0x7), FaultCause::Access);
    // Nothing mapped there, a kernel-half or non-canonical address:
    // SEGV_MAPERR.
    assert_eq!(hv.fault_cause(ro + 0x10_0000_0000, 0x4), FaultCause::NoMapping);
    assert_eq!(hv.fault_cause(1 << 63, 0x4), FaultCause::NoMapping);
    assert_eq!(hv.fault_cause(0xffff_ff80_0000_0000, 0x5), FaultCause::NoMapping);
    // A read the mapping allows that still was not filled: SIGBUS.
    assert_eq!(hv.fault_cause(ro, 0x4), FaultCause::Bus);
    // So for a write-only or execute-only mapping: any of the three
    // rights makes it a mapping that allows some access.
    for p in [prot::WRITE, prot::EXEC] {
        let m = call(&hv, nr::MMAP, [0, 0x1000, p, flags, 0, 0]).ret as u64;
        let access = if p == prot::WRITE { 0x6 } else { 0x14 };
        assert_eq!(hv.fault_cause(m, access), FaultCause::Bus, "prot {p:#x}");
    }
}
