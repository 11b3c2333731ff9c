//! Stacks that grow down (`stack_grow.rs`): a fault below a
//! `VM_GROWSDOWN` VMA grows it (walked: the page is mapped and holds what
//! was written), within Linux's rules: the guard gap to an accessible VMA
//! below, the stack limit, the window's bottom, private anonymous memory
//! only; and new mappings are placed clear of the gap.

#![allow(clippy::unwrap_used)]

use vm_memory::GuestMemoryMmap;

use super::test_util::{assert_sound, lazy_space, read_tag, va, write_tag, WINDOW};
use super::{AddressSpace, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::providers::ZeroProvider;
use crate::vma::{FaultAccess, STACK_GUARD_GAP};

const P: u64 = PAGE_SIZE;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

type Space = AddressSpace<GuestMemoryMmap<()>>;

/// A private anonymous mapping of `pages` at `at`, growing down if
/// `grows`, as the Linux kind maps `MAP_PRIVATE | MAP_ANONYMOUS`.
fn anon(s: &mut Space, z: &ZeroProvider<GuestMemoryMmap<()>>, at: u64, pages: u64, prot: VmFlags, grows: bool) {
    let mut req = MmapRequest::private(pages * P, prot).fixed(va(at));
    req.pgoff_from_addr = true;
    if grows {
        req.extra = VmFlags::GROWSDOWN;
    }
    s.mmap(z, &req).unwrap().flush.ignore();
}

fn fault(s: &mut Space, at: u64) -> Result<(), MmError> {
    s.fault(va(at), FaultAccess::WRITE).map(|f| f.flush.ignore())
}

#[test]
fn a_fault_below_a_growing_stack_grows_it_and_the_page_is_mapped() {
    let (mut s, z) = lazy_space();
    let top = WINDOW.1 - 4 * P;
    anon(&mut s, &z, top, 4, RW, true);
    write_tag(&mut s, va(top - 10 * P), 0xfeed);
    let v = s.find_vma(va(top)).unwrap();
    assert_eq!((v.start().raw(), v.end()), (top - 10 * P, WINDOW.1), "one VMA from the fault's page up");
    assert_eq!(v.pgoff(), (top - 10 * P) / P, "the page offset moved down with the start");
    assert!(v.flags().contains(VmFlags::GROWSDOWN));
    assert_eq!(read_tag(&s, va(top - 10 * P)), Some(0xfeed), "walked");
    assert!(s.page_tables().translate(va(top - 9 * P)).is_none(), "only the faulted page is mapped");
    assert_eq!(s.vmas().count(), 1);
    // A mapping that does not grow down does not grow.
    let plain = WINDOW.0 + 64 * P;
    anon(&mut s, &z, plain, 1, RW, false);
    assert!(matches!(fault(&mut s, plain - P), Err(MmError::NotMapped { .. })));
    assert_sound(&s);
}

#[test]
fn the_guard_gap_below_is_kept_from_accessible_mappings_only() {
    let (mut s, z) = lazy_space();
    let below = WINDOW.0 + 16 * P;
    anon(&mut s, &z, below, 1, RW, false);
    let floor = below + P + STACK_GUARD_GAP;
    anon(&mut s, &z, floor + 4 * P, 2, RW, true);
    // One page inside the gap: refused (Linux's SIGSEGV); at its edge: grows.
    assert!(matches!(fault(&mut s, floor - P), Err(MmError::NotMapped { .. })));
    assert_eq!(s.find_vma(va(floor + 4 * P)).unwrap().start().raw(), floor + 4 * P, "nothing grew");
    fault(&mut s, floor).unwrap();
    assert_eq!(s.find_vma(va(floor)).unwrap().start().raw(), floor);
    // A PROT_NONE mapping below keeps no gap.
    s.mprotect(va(below), P, VmFlags::empty()).unwrap().ignore();
    fault(&mut s, below + P).unwrap();
    assert_eq!(s.find_vma(va(below + P)).unwrap().start().raw(), below + P);
    assert_sound(&s);
}

#[test]
fn the_stack_limit_and_the_window_bottom_bound_the_growth() {
    let (mut s, z) = lazy_space();
    assert_eq!(s.stack_limit(), 8 << 20, "RLIMIT_STACK's default");
    s.set_stack_limit(16 * P);
    assert_eq!(s.stack_limit(), 16 * P);
    let top = WINDOW.0 + 512 * P;
    anon(&mut s, &z, top, 4, RW, true);
    let end = top + 4 * P;
    assert!(matches!(fault(&mut s, end - 17 * P), Err(MmError::NotMapped { .. })), "17 pages pass the limit");
    fault(&mut s, end - 16 * P).unwrap();
    assert_eq!(s.find_vma(va(top)).unwrap().start().raw(), end - 16 * P);
    // Below the window's bottom (mmap_min_addr): never.
    s.set_stack_limit(u64::MAX);
    let low = WINDOW.0 + 2 * P;
    s.set_mmap_window(WINDOW.0 + P, WINDOW.1).unwrap();
    anon(&mut s, &z, low, 1, RW, true);
    assert!(matches!(fault(&mut s, WINDOW.0), Err(MmError::NotMapped { .. })));
    fault(&mut s, WINDOW.0 + P).unwrap();
    // Nor a private mapping of an object (its page offsets are the
    // object's).
    let obj = crate::providers::ShmemObject::new("gd", s.frames().clone(), s.memory().clone(), 64 * P).unwrap();
    let file_at = WINDOW.0 + 2048 * P;
    let mut req = MmapRequest::private(P, RW).fixed(va(file_at)).pgoff(8);
    req.extra = VmFlags::GROWSDOWN;
    s.mmap(&obj, &req).unwrap().flush.ignore();
    assert!(fault(&mut s, file_at - P).is_err());
    // A shared mapping never grows.
    let sh = WINDOW.0 + 1024 * P;
    let mut req = MmapRequest::shared(P, RW).fixed(va(sh));
    req.extra = VmFlags::GROWSDOWN;
    s.mmap(&z, &req).unwrap().flush.ignore();
    assert!(fault(&mut s, sh - P).is_err());
    assert_sound(&s);
}

#[test]
fn new_mappings_are_placed_clear_of_the_gap_and_a_fork_keeps_the_flag() {
    let (mut s, z) = lazy_space();
    let top = WINDOW.1 - 4 * P;
    anon(&mut s, &z, top, 4, RW, true);
    let m = s.mmap(&z, &MmapRequest::private(P, RW)).unwrap();
    m.flush.ignore();
    assert_eq!(m.addr.raw(), top - STACK_GUARD_GAP - P, "the highest page clear of the gap");
    // As in Linux, the stack may not grow closer than the gap to it: the
    // placement kept the gap below the stack's start, so no growth fits.
    assert!(fault(&mut s, top - P).is_err());
    s.munmap(m.addr, P).unwrap().ignore();
    let mut child = s.fork().unwrap().child;
    assert!(child.find_vma(va(top)).unwrap().flags().contains(VmFlags::GROWSDOWN));
    fault(&mut child, top - 3 * P).unwrap();
    assert_eq!(child.find_vma(va(top)).unwrap().start().raw(), top - 3 * P, "the child's stack grows");
    assert_eq!(s.find_vma(va(top)).unwrap().start().raw(), top, "the parent's does not");
    assert_sound(&s);
    assert_sound(&child);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// A stack with an obstacle below (accessible or PROT_NONE, or none)
    /// and a random limit, faulted at random pages below and inside it:
    /// each fault succeeds exactly when Linux's rules say, the stack's
    /// start is the lowest page a fault reached, every faulted page is
    /// mapped (walked) and nothing else changes.
    #[test]
    fn faults_below_a_stack_grow_it_exactly_as_the_rules_say(
        obstacle in proptest::option::of((1u64..400, proptest::bool::ANY)),
        limit_pages in 4u64..700,
        faults in proptest::collection::vec(0u64..720, 1..24),
    ) {
        let (mut s, z) = lazy_space();
        let top = WINDOW.0 + 800 * P; // the stack's end
        s.set_stack_limit(limit_pages * P);
        anon(&mut s, &z, top - 4 * P, 4, RW, true);
        let obstacle_end = obstacle.map(|(below, none)| {
            let at = top - 4 * P - below * P - P;
            anon(&mut s, &z, at, 1, if none { VmFlags::empty() } else { RW }, false);
            (at + P, none)
        });
        let mut start = top - 4 * P;
        let mut faulted = Vec::new();
        for depth in faults {
            let page = top - (depth + 1) * P;
            let inside = page >= start;
            // On the obstacle itself: an ordinary fault there.
            if let Some((end, none)) = obstacle_end.filter(|&(end, _)| page == end - P) {
                proptest::prop_assert_eq!(fault(&mut s, page).is_ok(), !none);
                let _ = end;
                continue;
            }
            let want = inside || {
                let clear = match obstacle_end {
                    Some((end, none)) => page >= end && (none || page - end >= STACK_GUARD_GAP),
                    None => true,
                };
                clear && top - page <= limit_pages * P && page >= WINDOW.0
            };
            let got = fault(&mut s, page);
            proptest::prop_assert_eq!(got.is_ok(), want, "fault at {} pages below the top", depth + 1);
            if want {
                start = start.min(page);
                faulted.push(page);
            }
            let v = s.find_vma(va(top - P)).unwrap();
            proptest::prop_assert_eq!((v.start().raw(), v.end(), v.pgoff()), (start, top, start / P));
        }
        for page in faulted.iter().copied().filter(|&p| p >= start) {
            proptest::prop_assert!(s.page_tables().translate(va(page)).is_some(), "{:#x} mapped", page);
        }
        proptest::prop_assert_eq!(s.vmas().count(), 1 + usize::from(obstacle_end.is_some()));
        assert_sound(&s);
    }
}

/// The range `mprotect` changes with `PROT_GROWSDOWN` or `PROT_GROWSUP`,
/// as Linux's `do_mprotect_pkey` computes it.
#[test]
fn the_grows_bits_change_mprotects_range_as_linux() {
    let (mut s, z) = lazy_space();
    let stack = WINDOW.0 + 512 * P;
    anon(&mut s, &z, stack, 8, RW, true);
    let plain = WINDOW.0 + 64 * P;
    anon(&mut s, &z, plain, 4, RW, false);
    let inval = crate::error::errno::EINVAL;
    let nomem = crate::error::errno::ENOMEM;
    // Down: from the stack's start, to the range's end.
    assert_eq!(s.grows_range(stack + 3 * P, stack + 5 * P, true, false).unwrap(), (stack, stack + 5 * P));
    // Starting in the hole below the stack: still its start.
    assert_eq!(s.grows_range(stack - 2 * P, stack + P, true, false).unwrap(), (stack, stack + P));
    assert_eq!(s.grows_range(plain + P, plain + 2 * P, true, false).unwrap_err().errno(), inval);
    // Up: no mapping grows up.
    assert_eq!(s.grows_range(plain, plain + P, false, true).unwrap_err().errno(), inval);
    // Neither: the range as it is; a hole at its start or nothing: ENOMEM.
    assert_eq!(s.grows_range(plain + P, plain + 2 * P, false, false).unwrap(), (plain + P, plain + 2 * P));
    assert_eq!(s.grows_range(plain - P, plain + P, false, false).unwrap_err().errno(), nomem);
    assert_eq!(s.grows_range(plain + 8 * P, plain + 9 * P, true, false).unwrap_err().errno(), nomem);
}
