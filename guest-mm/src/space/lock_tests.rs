//! mlock, munlock, mlockall and munlockall against Linux 6.12's rules,
//! each checked by walking the page tables: what gets populated (and how:
//! written pages for private writable memory), the hole rule, PROT_NONE,
//! the VMAs mlock skips, the default flags of `MCL_FUTURE`, the counts
//! the caller checks `RLIMIT_MEMLOCK` with, and madvise's refusals of
//! locked VMAs.

#![allow(clippy::unwrap_used)]

use vm_memory::GuestMemoryMmap;

use super::test_util::{pool_space, va, Flags, Plain, WINDOW};
use super::{AddressSpace, Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::{errno, MmError};
use crate::flags::{VmFlags, VM_LOCKED_MASK};
use crate::providers::ZeroProvider;

const P: u64 = PAGE_SIZE;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
type Space = AddressSpace<GuestMemoryMmap<()>>;

fn setup() -> (Space, ZeroProvider<GuestMemoryMmap<()>>) {
    let s = pool_space();
    let zero = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    (s, zero)
}

/// Private anonymous memory of `pages` at window page `at`.
fn anon(s: &mut Space, z: &ZeroProvider<GuestMemoryMmap<()>>, at: u64, pages: u64, prot: VmFlags) -> u64 {
    let a = WINDOW.0 + at * P;
    s.mmap(z, &MmapRequest::private(pages * P, prot).fixed(va(a))).unwrap().flush.ignore();
    a
}

/// Pages of `[a, a + pages)` present in the tables, and how many writable.
fn present(s: &Space, a: u64, pages: u64) -> (u64, u64) {
    let t: Vec<_> = (0..pages).filter_map(|i| s.translate(va(a + i * P))).collect();
    (t.len() as u64, t.iter().filter(|t| t.prot.writable).count() as u64)
}

fn lock_bits(s: &Space, a: u64) -> VmFlags {
    s.find_vma(va(a)).unwrap().flags() & VM_LOCKED_MASK
}

fn sound(s: &Space) {
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn mlock_populates_private_writable_memory_with_written_pages() {
    let (mut s, z) = setup();
    s.set_fault_around(1).unwrap();
    let a = anon(&mut s, &z, 16, 8, RW);
    // Two read faults map the shared zero page copy-on-write.
    s.fault(va(a), crate::vma::FaultAccess::READ).unwrap().flush.ignore();
    s.fault(va(a + P), crate::vma::FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(present(&s, a, 8), (2, 0));
    let f = s.mlock(va(a), 8 * P, false).unwrap();
    assert_eq!(present(&s, a, 8), (8, 8), "every page present and writable");
    assert!(f.pages() >= 2, "the two copy-on-write pages were replaced: {f:?}");
    let frames: std::collections::BTreeSet<_> = (0..8).map(|i| s.translate(va(a + i * P)).unwrap().pfn).collect();
    assert_eq!(frames.len(), 8, "eight distinct fresh pages");
    assert_eq!(lock_bits(&s, a), VmFlags::LOCKED);
    assert_eq!(s.locked_bytes(), 8 * P);
    // Read-only private memory is populated by reads: the zero page.
    let b = anon(&mut s, &z, 64, 4, VmFlags::READ);
    s.mlock(va(b), 4 * P, false).unwrap().ignore();
    let t: Vec<_> = (0..4).map(|i| s.translate(va(b + i * P)).unwrap()).collect();
    assert!(t.iter().all(|t| !t.prot.writable), "{t:?}");
    assert!((0..4).all(|i| s.page_tables().is_copy_on_write(va(b + i * P))), "copy-on-write zero pages");
    assert!(t.windows(2).all(|w| w[0].pfn == w[1].pfn), "one shared zero page");
    sound(&s);
}

#[test]
fn on_fault_locks_without_populating_and_a_plain_lock_clears_on_fault() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 8, RW);
    s.mlock(va(a), 8 * P, true).unwrap().ignore();
    assert_eq!(present(&s, a, 8), (0, 0));
    assert_eq!(lock_bits(&s, a), VM_LOCKED_MASK);
    assert_eq!(s.locked_bytes(), 8 * P, "on-fault locked memory counts");
    s.mlock(va(a), 8 * P, false).unwrap().ignore();
    assert_eq!(lock_bits(&s, a), VmFlags::LOCKED);
    assert_eq!(present(&s, a, 8), (8, 8));
}

#[test]
fn mlock_splits_and_munlock_merges_back() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 8, RW);
    // An unaligned start is rounded down, the end up: pages 2..5.
    s.mlock(va(a + 2 * P + 5), 2 * P, false).unwrap().ignore();
    let v: Vec<_> = s.vmas().map(|v| (v.start().raw(), v.end(), v.flags() & VM_LOCKED_MASK)).collect();
    assert_eq!(
        v,
        vec![
            (a, a + 2 * P, VmFlags::empty()),
            (a + 2 * P, a + 5 * P, VmFlags::LOCKED),
            (a + 5 * P, a + 8 * P, VmFlags::empty())
        ]
    );
    assert_eq!(present(&s, a, 8).0, 3, "only the locked pages populated");
    assert_eq!(s.locked_bytes(), 3 * P);
    assert_eq!(s.locked_bytes_in(va(a), 4 * P), 2 * P);
    assert_eq!(s.locked_bytes_in(va(a + 3 * P + 1), 1), P, "rounded like mlock");
    s.munlock(va(a), 8 * P).unwrap();
    assert_eq!(s.vmas().count(), 1, "merged back");
    assert_eq!(s.locked_bytes(), 0);
    assert_eq!(present(&s, a, 8).0, 3, "munlock drops nothing");
    sound(&s);
}

#[test]
fn a_hole_locks_what_comes_before_it_and_populates_nothing() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 4, RW);
    let b = anon(&mut s, &z, 22, 2, RW);
    let e = s.mlock(va(a), b + 2 * P - a, false).map(|f| f.ignore());
    assert_eq!(e, Err(MmError::NotMapped { addr: a + 4 * P }));
    assert_eq!(lock_bits(&s, a), VmFlags::LOCKED, "before the hole: locked");
    assert_eq!(lock_bits(&s, b), VmFlags::empty(), "after it: not");
    assert_eq!(present(&s, a, 4).0, 0, "no populate after the error");
    // Starting in a hole: nothing at all.
    let e = s.mlock(va(a - 2 * P), 4 * P, false).map(|f| f.ignore());
    assert_eq!(e.map_err(|e| e.errno()), Err(errno::ENOMEM));
    // munlock follows the same rule.
    s.mlock(va(b), 2 * P, false).unwrap().ignore();
    assert_eq!(s.munlock(va(a), b + 2 * P - a).map_err(|e| e.errno()), Err(errno::ENOMEM));
    assert_eq!((lock_bits(&s, a), lock_bits(&s, b)), (VmFlags::empty(), VmFlags::LOCKED));
    // Zero length does nothing; a wrapping one is EINVAL.
    assert_eq!(s.mlock(va(a), 0, false).map(|f| f.ignore()), Ok(()));
    assert_eq!(s.mlock(va(a), u64::MAX - 2, false).map_err(|e| e.errno()).map(|f| f.ignore()), Err(errno::EINVAL));
    sound(&s);
}

#[test]
fn prot_none_is_locked_but_stops_the_populate_with_enomem() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 2, RW);
    anon(&mut s, &z, 18, 2, VmFlags::empty());
    anon(&mut s, &z, 20, 2, RW);
    let e = s.mlock(va(a), 6 * P, false).map(|f| f.ignore());
    assert_eq!(e, Err(MmError::NotMapped { addr: a + 2 * P }));
    for at in [a, a + 2 * P, a + 4 * P] {
        assert_eq!(lock_bits(&s, at), VmFlags::LOCKED, "{at:#x}");
    }
    assert_eq!(present(&s, a, 2).0, 2, "populated before the PROT_NONE VMA");
    assert_eq!(present(&s, a + 4 * P, 2).0, 0, "not after it");
    assert!(s.page_tables().leaves(va(a + 2 * P), 2 * P).is_empty());
    // On fault, nothing is populated, so nothing fails.
    s.munlock(va(a), 6 * P).unwrap();
    assert_eq!(s.mlock(va(a), 6 * P, true).map(|f| f.ignore()), Ok(()));
}

#[test]
fn special_vmas_are_skipped_and_no_fault_handler_is_enomem() {
    let (mut s, _) = setup();
    let io = WINDOW.0 + 16 * P;
    s.mmap(&Flags(VmFlags::IO | VmFlags::PFNMAP, VmFlags::empty()), &MmapRequest::shared(2 * P, RW).fixed(va(io)))
        .unwrap()
        .flush
        .ignore();
    assert_eq!(s.mlock(va(io), 2 * P, false).map(|f| f.ignore()), Ok(()));
    assert_eq!(lock_bits(&s, io), VmFlags::empty(), "VM_IO is never flagged");
    assert_eq!(s.locked_bytes(), 0);
    // A VMA nothing can fault in: locked, then ENOMEM (EFAULT mapped).
    let plain = WINDOW.0 + 32 * P;
    s.mmap(&Plain, &MmapRequest::shared(2 * P, RW).fixed(va(plain))).unwrap().flush.ignore();
    let e = s.mlock(va(plain), 2 * P, false).map(|f| f.ignore());
    assert_eq!(e, Err(MmError::NotMapped { addr: plain }));
    assert_eq!(lock_bits(&s, plain), VmFlags::LOCKED);
}

#[test]
fn mlockall_future_locks_later_mappings_and_each_call_replaces_the_default() {
    let (mut s, z) = setup();
    assert_eq!(s.mlockall(false, false, false).map(|f| f.ignore()).map_err(|e| e.errno()), Err(errno::EINVAL));
    let a = anon(&mut s, &z, 16, 4, RW);
    s.mlockall(false, true, false).unwrap().ignore();
    assert_eq!(lock_bits(&s, a), VmFlags::empty(), "MCL_FUTURE alone leaves current VMAs");
    assert_eq!(s.def_flags(), VmFlags::LOCKED);
    let b = anon(&mut s, &z, 32, 4, RW);
    assert_eq!(lock_bits(&s, b), VmFlags::LOCKED);
    assert_eq!(present(&s, b, 4), (4, 4), "a locked mapping is populated");
    // A special mapping never gets the lock bits.
    let io = WINDOW.0 + 48 * P;
    s.mmap(&Flags(VmFlags::IO, VmFlags::empty()), &MmapRequest::shared(P, RW).fixed(va(io))).unwrap().flush.ignore();
    assert_eq!(lock_bits(&s, io), VmFlags::empty());
    // On fault: flagged, not populated.
    s.mlockall(false, true, true).unwrap().ignore();
    let c = anon(&mut s, &z, 64, 4, RW);
    assert_eq!((lock_bits(&s, c), present(&s, c, 4).0), (VM_LOCKED_MASK, 0));
    // MCL_CURRENT alone: every VMA locked and populated, the default gone.
    s.mlockall(true, false, false).unwrap().ignore();
    assert_eq!(s.def_flags(), VmFlags::empty());
    for at in [a, b, c] {
        assert_eq!((lock_bits(&s, at), present(&s, at, 4).0), (VmFlags::LOCKED, 4), "{at:#x}");
    }
    assert_eq!(s.locked_bytes(), 12 * P);
    assert_eq!(s.mapped_bytes(), 13 * P);
    let d = anon(&mut s, &z, 80, 4, RW);
    assert_eq!(lock_bits(&s, d), VmFlags::empty());
    s.mlockall(true, true, false).unwrap().ignore();
    s.munlockall();
    assert_eq!((s.def_flags(), s.locked_bytes()), (VmFlags::empty(), 0));
    assert!(s.vmas().all(|v| !v.flags().intersects(VM_LOCKED_MASK)));
    sound(&s);
}

/// Found by the `linux_syscalls` fuzz target: a mapping the action's
/// prepare makes special (a shared zero mapping is a page array,
/// `VM_MIXEDMAP`) kept the lock bits of `MCL_FUTURE`, which the audit
/// refuses; Linux clears them after the file's hook (`__mmap_region`).
#[test]
fn mcl_future_leaves_a_mapping_its_action_made_special_unlocked() {
    let (mut s, z) = setup();
    for on_fault in [false, true] {
        s.mlockall(false, true, on_fault).unwrap().ignore();
        let a = WINDOW.0 + if on_fault { 16 } else { 32 } * P;
        s.mmap(&z, &MmapRequest::shared(4 * P, RW).fixed(va(a))).unwrap().flush.ignore();
        let flags = s.find_vma(va(a)).unwrap().flags();
        assert!(flags.contains(VmFlags::MIXEDMAP), "a shared zero mapping is a page array");
        assert_eq!(flags & VM_LOCKED_MASK, VmFlags::empty(), "on_fault {on_fault}");
        sound(&s);
    }
    assert_eq!(s.locked_bytes(), 0);
}

#[test]
fn locked_vmas_refuse_dontneed_free_cold_and_pageout_but_not_dontneed_locked() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 4, RW);
    s.mlock(va(a), 4 * P, false).unwrap().ignore();
    for adv in [Advice::DontNeed, Advice::Free, Advice::Cold, Advice::PageOut, Advice::Remove] {
        let e = s.madvise(va(a), 4 * P, adv).map(|f| f.ignore());
        assert_eq!(e.map_err(|e| e.errno()), Err(errno::EINVAL), "{adv:?}");
    }
    assert_eq!(present(&s, a, 4).0, 4);
    let f = s.madvise(va(a), 4 * P, Advice::DontNeedLocked).unwrap();
    assert_eq!(f.pages(), 4);
    assert_eq!(present(&s, a, 4).0, 0);
    sound(&s);
}

#[test]
fn the_audit_finds_lock_and_wipe_flags_no_call_gives() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 4, RW);
    let io = WINDOW.0 + 32 * P;
    s.mmap(&Flags(VmFlags::IO, VmFlags::empty()), &MmapRequest::shared(P, RW).fixed(va(io))).unwrap().flush.ignore();
    let plain = WINDOW.0 + 48 * P;
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(plain))).unwrap().flush.ignore();
    // What the calls give is sound.
    s.mlock(va(a), 4 * P, true).unwrap().ignore();
    s.madvise(va(a), 4 * P, Advice::WipeOnFork).unwrap().ignore();
    assert_eq!(
        s.madvise(va(plain), P, Advice::WipeOnFork).map(|f| f.ignore()).map_err(|e| e.errno()),
        Err(errno::EINVAL)
    );
    sound(&s);
    // Each forged flag set is reported.
    let forged = [
        (a, VmFlags::LOCKONFAULT, "on-fault without locked"),
        (io, VmFlags::LOCKED, "a special or huge-page VMA locked"),
        (plain, VmFlags::WIPEONFORK, "wipe-on-fork on memory that is not private anonymous"),
    ];
    for (at, bits, why) in forged {
        let old = s.find_vma(va(at)).unwrap().flags();
        let end = s.find_vma(va(at)).unwrap().end();
        s.vmas.update_range(at, end, |v| v.flags = (old - VM_LOCKED_MASK) | bits);
        let (_, v) = s.check_invariants();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            matches!(v[0], super::Violation::BadVmaFlags { start, why: w, .. } if start == at && w == why),
            "{v:?}"
        );
        s.vmas.update_range(at, end, |v| v.flags = old);
        sound(&s);
    }
}

#[test]
fn a_locked_mapping_that_grows_is_populated_in_its_new_part() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 16, 4, RW);
    s.mlock(va(a), 4 * P, false).unwrap().ignore();
    // In place.
    s.mremap(va(a), 4 * P, 8 * P, false, None).unwrap().flush.ignore();
    assert_eq!(present(&s, a, 8), (8, 8));
    assert_eq!(s.locked_bytes(), 8 * P);
    // Moved (a neighbour blocks growing in place).
    anon(&mut s, &z, 24, 1, VmFlags::READ);
    let r = s.mremap(va(a), 8 * P, 12 * P, true, None).unwrap();
    r.flush.ignore();
    assert_ne!(r.addr.raw(), a);
    assert_eq!(present(&s, r.addr.raw(), 12), (12, 12));
    // On fault: the new part stays absent.
    let b = anon(&mut s, &z, 64, 2, RW);
    s.mlock(va(b), 2 * P, true).unwrap().ignore();
    s.mremap(va(b), 2 * P, 4 * P, false, None).unwrap().flush.ignore();
    assert_eq!(present(&s, b, 4).0, 0);
    sound(&s);
}

#[test]
fn mlockall_and_the_counts_leave_the_supervisor_half_alone() {
    let (mut s, z) = setup();
    let k = super::KERNEL_HALF + (1 << 30);
    s.mmap(&Plain, &MmapRequest::shared(2 * P, RW).fixed(va(k))).unwrap().flush.ignore();
    let a = anon(&mut s, &z, 16, 2, RW);
    s.mlockall(true, true, false).unwrap().ignore();
    assert_eq!(lock_bits(&s, k), VmFlags::empty());
    assert_eq!(lock_bits(&s, a), VmFlags::LOCKED);
    assert_eq!((s.locked_bytes(), s.mapped_bytes()), (2 * P, 2 * P));
    // A new supervisor mapping does not take the default either.
    let k2 = k + (1 << 20);
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(k2))).unwrap().flush.ignore();
    assert_eq!(lock_bits(&s, k2), VmFlags::empty());
    sound(&s);
}

#[test]
fn a_lock_on_fault_vma_gets_exactly_the_pages_touched() {
    let (mut s, z) = setup();
    let a = anon(&mut s, &z, 0, 32, RW);
    s.mlock(va(a), 32 * P, true).unwrap().ignore();
    assert_eq!(present(&s, a, 32).0, 0, "on-fault: nothing populated");
    s.fault(va(a + 5 * P), crate::vma::FaultAccess { write: true, exec: false }).unwrap().flush.ignore();
    s.fault(va(a + 20 * P), crate::vma::FaultAccess { write: false, exec: false }).unwrap().flush.ignore();
    assert_eq!(present(&s, a, 32).0, 2, "no fault-around in a lock-on-fault VMA");
    // Elsewhere fault-around still maps neighbours.
    let b = anon(&mut s, &z, 64, 32, RW);
    s.fault(va(b + 5 * P), crate::vma::FaultAccess { write: true, exec: false }).unwrap().flush.ignore();
    assert!(present(&s, b, 32).0 > 1);
}

/// `MAP_LOCKED` (`MmapRequest::locked`): the VMA is `VM_LOCKED` and counts
/// in the locked bytes (it only populated before, and `VmLck` stayed 0);
/// a mapping that cannot be locked drops the bit, as `mmap_region` does;
/// anything else in `extra` is refused.
#[test]
fn map_locked_flags_the_vma_unless_it_cannot_be_locked() {
    let (mut s, z) = setup();
    let a = WINDOW.0 + 8 * P;
    s.mmap(&z, &MmapRequest::private(4 * P, RW).fixed(va(a)).locked()).unwrap().flush.ignore();
    assert_eq!(lock_bits(&s, a), VmFlags::LOCKED);
    assert_eq!(s.locked_bytes(), 4 * P);
    let shared = WINDOW.0 + 16 * P;
    s.mmap(&z, &MmapRequest::shared(2 * P, RW).fixed(va(shared)).locked()).unwrap().flush.ignore();
    // Shared anonymous memory becomes a page array (`VM_MIXEDMAP`), which
    // is never locked: as under `mlockall(MCL_FUTURE)` (see above).
    assert_eq!(lock_bits(&s, shared), VmFlags::empty());
    assert_eq!(s.locked_bytes(), 4 * P);
    let io = WINDOW.0 + 32 * P;
    let special = Flags(VmFlags::IO | VmFlags::PFNMAP, VmFlags::empty());
    s.mmap(&special, &MmapRequest::shared(2 * P, RW).fixed(va(io)).locked()).unwrap().flush.ignore();
    assert_eq!(lock_bits(&s, io), VmFlags::empty(), "VM_IO is never locked");
    let bad = MmapRequest { extra: VmFlags::SEALED, ..MmapRequest::private(P, RW) };
    assert!(matches!(s.mmap(&z, &bad), Err(MmError::Invalid(_))));
    sound(&s);
}
