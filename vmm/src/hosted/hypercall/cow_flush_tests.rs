//! The copy-on-write flush left to the retry ([`super::cow_flush`]),
//! layer by layer against a recording flusher: skipped at the fault only
//! with one vCPU, shot down at the next exit unless the page's entry shows
//! the retry's write (Dirty, same frame), never left pending.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress};

use super::test_kernel::touch;
use super::{Args, ConsoleOut, FaultOutcome, HostedKernel, ReportLog};
use crate::hosted::mapper::Mapper;
use crate::hosted::providers::Providers;
use crate::hosted::stub::abi::{map, nr, prot};
use crate::hosted::tlb::RecordingFlusher;
use crate::memory::create_guest_memory;
use crate::run::vm_exit::ExitCounters;

/// `#PF` error codes: a user read of an absent entry, a user write to a
/// present one.
const READ: u64 = 0x4;
const WRITE_PRESENT: u64 = 0x7;

fn setup(vcpus: usize) -> (HostedKernel, Arc<RecordingFlusher>) {
    let mem = create_guest_memory(64 << 20).unwrap();
    let m = Mapper::new(mem.clone()).unwrap();
    let providers = Providers::new(&m, &mem, &[]).unwrap();
    let flusher = Arc::new(RecordingFlusher::default());
    let counters = (0..vcpus).map(|_| Arc::new(ExitCounters::default())).collect();
    let out = super::test_kernel::Buf::default();
    let hv = HostedKernel::new(
        mem,
        m,
        providers,
        flusher.clone(),
        ConsoleOut::new(Box::new(out)),
        ReportLog::default(),
        counters,
    );
    (hv, flusher)
}

/// A private anonymous page the guest read (the zero page, its entry
/// walked), so that a write copies it and the old entry needs a flush.
fn read_page(hv: &HostedKernel) -> u64 {
    let a = hv
        .dispatch(
            0,
            &Args { nr: nr::MMAP, a: [0, 0x1000, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0] },
        )
        .ret;
    assert!(a > 0, "{a}");
    let a = a as u64;
    assert_eq!(hv.page_fault(0, a, READ), FaultOutcome::Resolved);
    touch(hv, a);
    a
}

/// Where the 4 KiB entry of `va` is in guest memory.
fn leaf_slot(hv: &HostedKernel, va: u64) -> GuestAddress {
    let mut table = hv.mapper().cr3().0 & !0xfff;
    for level in (2..=4u64).rev() {
        let e: u64 = hv.mem.read_obj(GuestAddress(table + 8 * ((va >> (12 + 9 * (level - 1))) & 511))).unwrap();
        assert!(e & 1 != 0, "no entry at level {level}");
        table = e & 0x000f_ffff_ffff_f000;
    }
    GuestAddress(table + 8 * ((va >> 12) & 511))
}

/// Changes the 4 KiB entry of `va` with `f`.
fn edit_leaf(hv: &HostedKernel, va: u64, f: impl Fn(u64) -> u64) {
    let at = leaf_slot(hv, va);
    let e: u64 = hv.mem.read_obj(at).unwrap();
    assert!(e & 1 != 0, "no leaf");
    hv.mem.write_obj(f(e), at).unwrap();
}

/// What the retried write's walk does to the new entry: Accessed and
/// Dirty set.
fn written_through(hv: &HostedKernel, va: u64) {
    edit_leaf(hv, va, |e| e | 0x60);
}

fn taken(f: &RecordingFlusher) -> Vec<(u8, Vec<(u64, u64)>)> {
    std::mem::take(&mut *f.0.lock().unwrap())
}

#[test]
fn one_vcpu_leaves_the_flush_to_the_retry_and_shoots_down_what_it_did_not_settle() {
    let (hv, f) = setup(1);
    let a = read_page(&hv);
    taken(&f);
    assert_eq!(hv.page_fault_retried(0, a, WRITE_PRESENT), FaultOutcome::Resolved);
    assert_eq!(taken(&f), vec![], "the copy's flush waits for the retry");
    // The next exit came before the retry wrote: the flush the fault
    // skipped, for exactly that page; then nothing is pending.
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
    assert_eq!(hv.cow_flushes_left(), 1);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![]);
    // Another page whose retry went through the new entry: nothing to do.
    let b = read_page(&hv);
    taken(&f);
    assert_eq!(hv.page_fault_retried(0, b, WRITE_PRESENT), FaultOutcome::Resolved);
    written_through(&hv, b);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![]);
    assert_eq!(hv.cow_flushes_left(), 1);
}

#[test]
fn a_dirty_entry_of_another_frame_does_not_settle_the_flush() {
    let (hv, f) = setup(1);
    let a = read_page(&hv);
    assert_eq!(hv.page_fault_retried(0, a, WRITE_PRESENT), FaultOutcome::Resolved);
    written_through(&hv, a);
    // The entry now maps another frame than the copy (as if replaced
    // again without an exit): the old translation may still be cached.
    edit_leaf(&hv, a, |e| e ^ 0x1000);
    taken(&f);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
    edit_leaf(&hv, a, |e| e ^ 0x1000);
}

#[test]
fn more_vcpus_shoot_the_copy_down_at_once() {
    let (hv, f) = setup(2);
    let a = read_page(&hv);
    taken(&f);
    assert_eq!(hv.page_fault_retried(0, a, WRITE_PRESENT), FaultOutcome::Resolved);
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![], "nothing was left pending");
    assert_eq!(hv.cow_flushes_left(), 0, "none was deferred");
}

#[test]
fn a_copy_the_vmm_makes_for_a_system_call_is_shot_down_at_once() {
    // `read()` into a page the program only read: the VMM breaks the
    // copy-on-write itself and writes the new frame; no instruction is
    // retried, so nothing may wait for one.
    let (hv, f) = setup(1);
    let a = read_page(&hv);
    taken(&f);
    hv.write_user(0, a, b"data").unwrap();
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![], "nothing was left pending");
}

#[test]
fn after_a_kick_or_before_a_switch_a_dirty_entry_is_not_trusted() {
    // KVM may have set Dirty in its walk and left before installing the
    // translation (a pending signal): the flush goes out anyway.
    let (hv, f) = setup(1);
    let a = read_page(&hv);
    assert_eq!(hv.page_fault_retried(0, a, WRITE_PRESENT), FaultOutcome::Resolved);
    written_through(&hv, a);
    taken(&f);
    assert_eq!(hv.settle_cow(0, false), None);
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
}

#[test]
fn only_a_flush_of_exactly_the_faulting_page_on_one_vcpu_may_wait() {
    use super::cow_flush::may_defer;
    let p = 0x7000_1000;
    assert!(may_defer(1, p + 0x123, &[(p, 0x1000)]));
    assert!(!may_defer(2, p, &[(p, 0x1000)]), "another vCPU may cache it");
    assert!(!may_defer(1, p, &[(p, 0x2000)]), "more than the page");
    assert!(!may_defer(1, p, &[(p - 0x1000, 0x1000), (p, 0x1000)]), "an earlier flush rides along");
    assert!(!may_defer(1, p, &[(p + 0x1000, 0x1000)]), "another page");
    assert!(!may_defer(1, p, &[]), "nothing to defer");
}

#[test]
fn a_dirty_entry_made_read_only_does_not_settle_the_flush() {
    let (hv, f) = setup(1);
    let a = read_page(&hv);
    assert_eq!(hv.page_fault_retried(0, a, WRITE_PRESENT), FaultOutcome::Resolved);
    written_through(&hv, a);
    // Read-only again (as if changed without an exit): the write that set
    // Dirty is not proof that no read-only translation is cached.
    edit_leaf(&hv, a, |e| e & !2);
    taken(&f);
    assert_eq!(hv.settle_cow(0, true), None);
    assert_eq!(taken(&f), vec![(0, vec![(a, 0x1000)])]);
    assert_eq!(hv.cow_flushes_left(), 1);
}
