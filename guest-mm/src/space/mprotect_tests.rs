//! mprotect's edges that the model tests reach only by chance: the first
//! hole it reports, the supervisor half (never user-accessible, in the
//! entries or in the VMA), the rollback of earlier pieces when a later
//! one fails, and the merge with the VMA after the range.

#![allow(clippy::unwrap_used)]

use super::test_util::{space, va, Flags, Plain, WINDOW};
use super::{MmapRequest, KERNEL_HALF};
use crate::addr::{Pfn, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

const P: u64 = PAGE_SIZE;
const M2: u64 = 2 << 20;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

/// Remaps its VMA whole to guest-physical frame `.0` on.
struct Remap(u64);
impl MmapProvider for Remap {
    fn name(&self) -> &str {
        "remap"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(Pfn(self.0));
        Ok(())
    }
}

#[test]
fn the_error_names_the_first_hole() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    // Two adjacent VMAs that do not merge (different access), then a hole.
    s.mmap(&Plain, &MmapRequest::shared(2 * P, RW).fixed(va(w))).unwrap().flush.ignore();
    s.mmap(&Plain, &MmapRequest::shared(2 * P, VmFlags::READ).fixed(va(w + 2 * P))).unwrap().flush.ignore();
    assert_eq!(s.vmas().count(), 2);
    let mut hole = |start: u64, end: u64| s.mprotect(va(start), end - start, VmFlags::READ).map(|f| f.ignore());
    assert_eq!(hole(w, w + 6 * P), Err(MmError::NotMapped { addr: w + 4 * P }), "from the first VMA's start");
    assert_eq!(hole(w + P, w + 6 * P), Err(MmError::NotMapped { addr: w + 4 * P }), "from inside it");
    assert_eq!(hole(w - 2 * P, w + 2 * P), Err(MmError::NotMapped { addr: w - 2 * P }), "from a hole");
    assert_eq!(hole(w + 2 * P, w + 5 * P), Err(MmError::NotMapped { addr: w + 4 * P }), "from the second");
    assert_eq!(s.vmas().count(), 2, "nothing changed");
}

#[test]
fn the_supervisor_half_never_becomes_user_accessible() {
    let mut s = space();
    // At the first supervisor address, and a user mapping to compare.
    let k = va(KERNEL_HALF);
    let u = va(WINDOW.0);
    s.mmap(&Remap(0x200), &MmapRequest::shared(2 * P, VmFlags::READ).fixed(k)).unwrap().flush.ignore();
    s.mmap(&Remap(0x300), &MmapRequest::shared(2 * P, VmFlags::READ).fixed(u)).unwrap().flush.ignore();
    for at in [k, u] {
        s.mprotect(at, P, RW).unwrap().ignore();
        let user = at == u;
        let t = s.page_tables().translate(at).unwrap();
        assert_eq!((t.prot.writable, t.prot.user), (true, user), "{at:#x}: the entry");
        let v = s.find_vma(at).unwrap();
        assert_eq!((v.end(), v.page_prot().user), (at.raw() + P, user), "{at:#x}: the VMA");
        // A later fault or split takes its protection from the VMA: the
        // untouched second page kept the old one.
        assert!(!s.page_tables().translate(va(at.raw() + P)).unwrap().prot.writable);
    }
}

#[test]
fn a_failed_later_piece_puts_the_earlier_ones_back() {
    let mut s = space();
    // A read-only 4 KiB mapping just below a 2 MiB-aligned read-exec huge
    // one (one 2 MiB leaf).
    let x = WINDOW.0 + 4 * M2;
    s.mmap(&Remap(0x100), &MmapRequest::shared(P, VmFlags::READ).fixed(va(x - P))).unwrap().flush.ignore();
    let rx = VmFlags::READ | VmFlags::EXEC;
    s.mmap(&Remap(0x200), &MmapRequest::shared(M2, rx).fixed(va(x))).unwrap().flush.ignore();
    assert_eq!(s.page_tables().leaves(va(x), M2).len(), 1, "one huge leaf");
    // Making both writable: the first piece changes, then the huge leaf
    // must split for its first page; that needs a table, which is refused.
    s.page_tables_mut().allocator_mut().inject_failure_after(Some(0));
    let e = s.mprotect(va(x - P), 2 * P, RW).map(|f| f.ignore());
    s.page_tables_mut().allocator_mut().inject_failure_after(None);
    assert!(matches!(e, Err(MmError::OutOfMemory(_))), "{e:?}");
    let t = s.page_tables().translate(va(x - P)).unwrap();
    assert!(!t.prot.writable, "the earlier piece was put back");
    assert!(!s.find_vma(va(x - P)).unwrap().flags().contains(VmFlags::WRITE));
    // ... and only it: the huge mapping keeps its own protection.
    let t = s.page_tables().translate(va(x)).unwrap();
    assert!(!t.prot.writable && !t.prot.no_execute, "{:?}", t.prot);
    assert_eq!(s.page_tables().leaves(va(x), M2).len(), 1, "still one huge leaf");
    // What was briefly writable must be flushed.
    let f = s.take_deferred_flush();
    assert!(f.ranges().iter().any(|&(a, len)| a.raw() <= x - P && x - P < a.raw() + len), "{f:?}");
}

#[test]
fn a_changed_range_merges_with_the_vma_after_it() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    s.mmap(&Plain, &MmapRequest::shared(2 * P, RW).fixed(va(w))).unwrap().flush.ignore();
    s.mmap(&Plain, &MmapRequest::shared(2 * P, VmFlags::READ).fixed(va(w + 2 * P)).pgoff(2)).unwrap().flush.ignore();
    assert_eq!(s.vmas().count(), 2);
    s.mprotect(va(w), 2 * P, VmFlags::READ).unwrap().ignore();
    let v = s.find_vma(va(w)).unwrap();
    assert_eq!((v.start().raw(), v.end(), s.vmas().count()), (w, w + 4 * P, 1));
}

/// Whether the entry of `at` is writable (walked), and its VMA's access.
fn writable(s: &super::AddressSpace<vm_memory::GuestMemoryMmap<()>>, at: u64) -> (bool, bool) {
    let t = s.page_tables().translate(va(at)).unwrap();
    let v = s.vmas().find(|v| v.start().raw() <= at && at < v.end()).unwrap();
    (t.prot.writable, v.flags().contains(VmFlags::WRITE))
}

#[test]
fn in_linux_order_the_vmas_before_the_failing_one_change() {
    let w = WINDOW.0 + 64 * P;
    // [w, w+2P) read-only, [w+2P, w+4P) read-write: two VMAs (different
    // access), both with their entries (remapped).
    let fresh = || {
        let mut s = space();
        s.mmap(&Remap(0x200), &MmapRequest::shared(2 * P, VmFlags::READ).fixed(va(w))).unwrap().flush.ignore();
        s.mmap(&Remap(0x300), &MmapRequest::shared(2 * P, RW).fixed(va(w + 2 * P))).unwrap().flush.ignore();
        s
    };
    // A hole after both: both change, then ENOMEM at the hole.
    let mut s = fresh();
    let r = s.mprotect_in_order(va(w), 6 * P, RW).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::NotMapped { addr: w + 4 * P }));
    assert_eq!(writable(&s, w), (true, true), "the first VMA changed");
    assert!(!s.take_deferred_flush().is_empty(), "its old entries are left to flush");
    // The atomic order changes nothing for the same call.
    let mut s = fresh();
    let r = s.mprotect(va(w), 6 * P, RW).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::NotMapped { addr: w + 4 * P }));
    assert_eq!(writable(&s, w), (false, false), "mprotect: nothing changed");
    // Starting in a hole: nothing changes.
    let mut s = fresh();
    let r = s.mprotect_in_order(va(w - 2 * P), 4 * P, RW).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::NotMapped { addr: w - 2 * P }));
    assert_eq!(writable(&s, w), (false, false));
    // A sealed second VMA: the first changes (to read-only here), then EPERM.
    let mut s = fresh();
    s.mseal(va(w + 2 * P), 2 * P, 0).unwrap();
    let r = s.mprotect_in_order(va(w), 4 * P, VmFlags::READ | VmFlags::WRITE).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::Sealed { addr: w + 2 * P }));
    assert_eq!(writable(&s, w), (true, true), "the first VMA changed before the sealed one");
    assert_eq!(writable(&s, w + 2 * P), (true, true), "the sealed one did not (it was read-write)");
    let r = s.mprotect_in_order(va(w), 4 * P, VmFlags::READ).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::Sealed { addr: w + 2 * P }));
    assert_eq!(writable(&s, w), (false, false), "the first VMA changed back");
    assert_eq!(writable(&s, w + 2 * P), (true, true), "the sealed one still did not");
    // A second VMA that may not be writable: the first changes, then EACCES.
    let mut s = fresh();
    s.munmap(va(w + 2 * P), 2 * P).unwrap().ignore();
    s.mmap(
        &Flags(VmFlags::empty(), VmFlags::MAYWRITE),
        &MmapRequest::shared(2 * P, VmFlags::READ).fixed(va(w + 2 * P)),
    )
    .unwrap()
    .flush
    .ignore();
    let r = s.mprotect_in_order(va(w), 4 * P, RW).map(|f| f.ignore());
    assert_eq!(r, Err(MmError::Access("mprotect beyond the mapping's MAY flags")));
    assert_eq!(writable(&s, w), (true, true), "the first VMA changed before the refused one");
    // A caller's per-VMA veto (memory-deny-write-execute) stops the loop
    // at that VMA, after the ones before it changed, and before its seal
    // is looked at.
    let mut s = fresh();
    s.mseal(va(w + 2 * P), 2 * P, 0).unwrap();
    let r = s.mprotect_in_order_with(va(w), 4 * P, RW, |v| v.start().raw() == w + 2 * P).map(|f| f.ignore());
    assert_eq!(r.unwrap_err().errno(), crate::error::errno::EACCES, "the veto comes before the seal");
    assert_eq!(writable(&s, w), (true, true), "the first VMA changed before the vetoed one");
    let mut s = fresh();
    let r = s.mprotect_in_order_with(va(w), 4 * P, RW, |v| v.start().raw() == w).map(|f| f.ignore());
    assert_eq!(r.unwrap_err().errno(), crate::error::errno::EACCES);
    assert_eq!(writable(&s, w), (false, false), "vetoed first: nothing changed");
    // All of it mapped: as mprotect.
    let mut s = fresh();
    s.mprotect_in_order(va(w), 4 * P, VmFlags::READ).unwrap().ignore();
    assert_eq!((writable(&s, w), writable(&s, w + 2 * P)), ((false, false), (false, false)));
}
