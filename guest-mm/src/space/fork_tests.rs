//! fork's rules one by one, each checked by walking both spaces' tables
//! and reading the frames they map: private pages shared read-only and
//! copied (or reused) on the first write, the parent's flush, shared
//! mappings shared, raw remaps copied as mappings, `MADV_DONTFORK` /
//! `DOFORK`, `MADV_WIPEONFORK` / `KEEPONFORK`, mlock not inherited, seals
//! inherited, page-array pages copied, and every frame back in the pool
//! once every space exited.

#![allow(clippy::unwrap_used)]

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::test_util::{anon_rw, assert_sound, lazy_space, read_tag, va, write_tag, WINDOW};
use super::{Advice, FaultKind, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::errno;
use crate::flags::VmFlags;
use crate::providers::ZeroProvider;
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
type Space = super::AddressSpace<GuestMemoryMmap<()>>;
type Zero = ZeroProvider<GuestMemoryMmap<()>>;

fn setup() -> (Space, Zero) {
    lazy_space()
}

fn anon(s: &mut Space, z: &Zero, at: u64, pages: u64) {
    anon_rw(s, z, at, pages);
}

fn fork(s: &mut Space) -> (Space, crate::paging::FlushSet) {
    let f = s.fork().unwrap();
    (f.child, f.flush)
}

fn fault_kind(s: &mut Space, at: u64) -> FaultKind {
    let f = s.fault(va(at), FaultAccess::WRITE).unwrap();
    f.flush.ignore();
    f.kind
}

#[test]
fn private_pages_are_shared_read_only_then_copied_or_reused() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 3);
    write_tag(&mut s, va(a), 1);
    write_tag(&mut s, va(a + P), 2);
    let frame0 = s.translate(va(a)).unwrap().pfn;
    let (mut c, flush) = fork(&mut s);
    // Both written pages were writable in the parent: both need a flush.
    assert_eq!(flush.ranges(), &[(va(a), 2 * P)]);
    for sp in [&s, &c] {
        assert_eq!((read_tag(sp, va(a)), read_tag(sp, va(a + P))), (Some(1), Some(2)));
        let t = sp.translate(va(a)).unwrap();
        assert!(!t.prot.writable && sp.page_tables().is_fork_shared(va(a)));
        assert_eq!(t.pfn, frame0, "one frame, two mappings");
        assert!(sp.translate(va(a + 2 * P)).is_none(), "an absent page stays absent");
    }
    assert_eq!(s.frames().pin_count(frame0), 2);
    // The parent writes: a private copy; the child still reads the old.
    assert_eq!(fault_kind(&mut s, a), FaultKind::CopiedOnWrite);
    write_tag(&mut s, va(a), 10);
    assert_ne!(s.translate(va(a)).unwrap().pfn, frame0);
    assert_eq!((read_tag(&s, va(a)), read_tag(&c, va(a))), (Some(10), Some(1)));
    // The child is now the only one mapping the old frame: reused in place.
    assert_eq!(s.frames().pin_count(frame0), 1);
    assert_eq!(fault_kind(&mut c, a), FaultKind::Reused);
    let t = c.translate(va(a)).unwrap();
    assert!(t.prot.writable && t.pfn == frame0 && !c.page_tables().is_fork_shared(va(a)));
    write_tag(&mut c, va(a), 20);
    assert_eq!((read_tag(&s, va(a)), read_tag(&c, va(a))), (Some(10), Some(20)));
    // The other page: the child writes first.
    write_tag(&mut c, va(a + P), 21);
    assert_eq!((read_tag(&s, va(a + P)), read_tag(&c, va(a + P))), (Some(2), Some(21)));
    assert_eq!(fault_kind(&mut s, a + P), FaultKind::Reused);
    // An untouched page faults in fresh in each space.
    write_tag(&mut c, va(a + 2 * P), 22);
    assert_eq!((read_tag(&s, va(a + 2 * P)), read_tag(&c, va(a + 2 * P))), (None, Some(22)));
    assert_sound(&s);
    assert_sound(&c);
}

#[test]
fn every_frame_returns_to_the_pool_after_both_exit_in_either_order() {
    for parent_first in [true, false] {
        let (mut s, z) = setup();
        let frames = s.frames().clone();
        let start = frames.pool_free();
        let a = WINDOW.0;
        anon(&mut s, &z, a, 8);
        for i in 0..6 {
            write_tag(&mut s, va(a + i * P), i);
        }
        // A read maps the zero page copy-on-write.
        s.fault(va(a + 7 * P), FaultAccess::READ).unwrap().flush.ignore();
        let (mut c, _) = fork(&mut s);
        write_tag(&mut c, va(a), 100);
        write_tag(&mut s, va(a + P), 101);
        write_tag(&mut c, va(a + 7 * P), 102);
        let (mut g, _) = fork(&mut c);
        write_tag(&mut g, va(a + 2 * P), 103);
        assert_eq!(read_tag(&g, va(a)), Some(100));
        assert_eq!(read_tag(&g, va(a + 7 * P)), Some(102));
        assert_eq!(read_tag(&s, va(a + 7 * P)), Some(0));
        if parent_first {
            s.exit().ignore();
            assert_sound(&c);
            c.exit().ignore();
        } else {
            c.exit().ignore();
            g.exit().ignore();
            g = s;
        }
        assert_sound(&g);
        assert_eq!(read_tag(&g, va(a + 3 * P)), Some(3));
        g.exit().ignore();
        drop(z);
        assert_eq!(frames.pool_free(), start, "parent first: {parent_first}");
        let census = frames.lock().pool_census();
        assert!(census.leaked.is_empty() && census.free_twice.is_empty() && census.free_but_used.is_empty());
    }
}

#[test]
fn exit_returns_every_frame() {
    let (mut s, z) = setup();
    let frames = s.frames().clone();
    let start = frames.pool_free();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 8);
    for i in 0..8 {
        write_tag(&mut s, va(a + i * P), i);
    }
    let (mut c, _) = fork(&mut s);
    for i in 0..4 {
        write_tag(&mut c, va(a + i * P), 50 + i);
    }
    assert!(frames.pool_free() < start - 12);
    s.exit().ignore();
    assert_eq!(read_tag(&c, va(a + 7 * P)), Some(7), "the parent's exit left the child's pages");
    c.exit().ignore();
    drop(z);
    assert_eq!(frames.pool_free(), start);
    let census = frames.lock().pool_census();
    assert!(census.leaked.is_empty() && census.free_twice.is_empty());
}

#[test]
fn shared_mappings_stay_shared() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    s.mmap(&z, &MmapRequest::shared(2 * P, RW).fixed(va(a))).unwrap().flush.ignore();
    write_tag(&mut s, va(a), 1);
    let (mut c, flush) = fork(&mut s);
    assert!(flush.is_empty(), "a shared mapping is not write-protected");
    assert_eq!(c.translate(va(a)).unwrap().pfn, s.translate(va(a)).unwrap().pfn);
    assert!(c.translate(va(a)).unwrap().prot.writable);
    write_tag(&mut c, va(a + P), 2);
    assert_eq!(read_tag(&s, va(a + P)), Some(2), "the child's write is the parent's");
    c.exit().ignore();
    assert_eq!(read_tag(&s, va(a)), Some(1));
    assert_sound(&s);
}

#[test]
fn a_raw_remap_is_copied_as_a_mapping() {
    let (mut s, _z) = setup();
    let ram = crate::providers::GuestRamProvider::new(s.layout(), &[]);
    let a = WINDOW.0;
    let req = MmapRequest::shared(2 * P, RW).fixed(va(a)).pgoff(0x100);
    s.mmap(&ram, &req).unwrap().flush.ignore();
    let (c, flush) = fork(&mut s);
    assert!(flush.is_empty());
    let (ps, cs) = (s.translate(va(a + P)).unwrap(), c.translate(va(a + P)).unwrap());
    assert_eq!((ps.phys, cs.phys), (GuestAddress(0x101000), GuestAddress(0x101000)));
    assert!(c.find_vma(va(a)).unwrap().flags().contains(VmFlags::PFNMAP));
    assert_sound(&c);
}

#[test]
fn dontfork_leaves_the_vma_out_and_dofork_puts_it_back() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 4);
    write_tag(&mut s, va(a + P), 1);
    s.madvise(va(a + P), P, Advice::DontFork).unwrap().ignore();
    let (c, flush) = fork(&mut s);
    assert!(flush.is_empty(), "the only written page was not copied: nothing to protect");
    assert!(c.find_vma(va(a + P)).is_none() && c.find_vma(va(a)).is_some() && c.find_vma(va(a + 2 * P)).is_some());
    assert!(c.translate(va(a + P)).is_none());
    assert!(s.translate(va(a + P)).unwrap().prot.writable, "the parent's page is untouched");
    c.exit().ignore();
    s.madvise(va(a + P), P, Advice::DoFork).unwrap().ignore();
    let (c, _) = fork(&mut s);
    assert_eq!(read_tag(&c, va(a + P)), Some(1));
    assert_sound(&c);
}

#[test]
fn wipeonfork_gives_the_child_an_empty_vma_and_keeponfork_undoes_it() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 2);
    write_tag(&mut s, va(a), 7);
    write_tag(&mut s, va(a + P), 8);
    s.madvise(va(a), P, Advice::WipeOnFork).unwrap().ignore();
    let (mut c, _) = fork(&mut s);
    let v = c.find_vma(va(a)).unwrap();
    assert!(v.flags().contains(VmFlags::WIPEONFORK), "the child keeps the advice");
    assert!(c.translate(va(a)).is_none());
    c.fault(va(a), FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(read_tag(&c, va(a)), Some(0), "wiped: zero-fill");
    assert_eq!(read_tag(&c, va(a + P)), Some(8), "the rest of the mapping is copied");
    assert_eq!(read_tag(&s, va(a)), Some(7));
    assert!(s.translate(va(a)).unwrap().prot.writable, "a wiped page is not shared");
    c.exit().ignore();
    s.madvise(va(a), P, Advice::KeepOnFork).unwrap().ignore();
    let (c, _) = fork(&mut s);
    assert_eq!(read_tag(&c, va(a)), Some(7));
    assert_sound(&s);
}

#[test]
fn mlock_is_not_inherited_and_seals_are() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 2);
    anon(&mut s, &z, a + 4 * P, 1);
    s.mlock(va(a), 2 * P, false).unwrap().ignore();
    s.mlockall(false, true, false).unwrap().ignore();
    s.mseal(va(a + 4 * P), P, 0).unwrap();
    let (mut c, _) = fork(&mut s);
    assert!(s.find_vma(va(a)).unwrap().flags().contains(VmFlags::LOCKED));
    assert!(!c.find_vma(va(a)).unwrap().flags().intersects(crate::flags::VM_LOCKED_MASK));
    assert_eq!(c.locked_bytes(), 0);
    assert!(c.def_flags().is_empty() && !s.def_flags().is_empty(), "MCL_FUTURE is not inherited");
    // The locked pages were populated in the parent; the child has them.
    assert_eq!(read_tag(&c, va(a + P)), Some(0));
    assert!(c.find_vma(va(a + 4 * P)).unwrap().is_sealed());
    assert_eq!(c.munmap(va(a + 4 * P), P).map(|f| f.ignore()).map_err(|e| e.errno()), Err(errno::EPERM));
    assert_sound(&c);
}

#[test]
fn mprotect_cannot_make_a_shared_page_writable() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 1);
    write_tag(&mut s, va(a), 5);
    s.mprotect(va(a), P, VmFlags::READ).unwrap().ignore();
    let (c, flush) = fork(&mut s);
    assert!(flush.is_empty(), "a read-only entry needs no flush");
    s.mprotect(va(a), P, RW).unwrap().ignore();
    assert!(!s.translate(va(a)).unwrap().prot.writable);
    write_tag(&mut s, va(a), 6);
    assert_eq!((read_tag(&s, va(a)), read_tag(&c, va(a))), (Some(6), Some(5)));
}

#[test]
fn a_zero_page_and_a_page_array_page_are_copied_never_reused() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 1);
    s.fault(va(a), FaultAccess::READ).unwrap().flush.ignore();
    let zero = s.translate(va(a)).unwrap().pfn;
    // A private writable mapping of a page buffer: page-array pages.
    let buf = crate::providers::PageBuffer::new(s.frames(), 2).unwrap();
    let b = a + 8 * P;
    s.mmap(&buf, &MmapRequest::private(2 * P, RW).fixed(va(b))).unwrap().flush.ignore();
    let bt = s.translate(va(b)).unwrap();
    s.memory().write_obj(9u64, bt.phys).unwrap();
    let (c, _) = fork(&mut s);
    // Only one space maps each, but the provider holds them: copied.
    c.exit().ignore();
    assert_eq!(fault_kind(&mut s, a), FaultKind::CopiedOnWrite);
    assert_ne!(s.translate(va(a)).unwrap().pfn, zero);
    assert_eq!(read_tag(&s, va(a)), Some(0));
    let (mut c, _) = fork(&mut s);
    assert_eq!(fault_kind(&mut c, b), FaultKind::CopiedOnWrite);
    write_tag(&mut c, va(b), 10);
    assert_eq!(s.memory().read_obj::<u64>(bt.phys).unwrap(), 9, "the buffer's own page is untouched");
    assert_eq!((read_tag(&s, va(b)), read_tag(&c, va(b))), (Some(9), Some(10)));
    assert_sound(&s);
    assert_sound(&c);
}

#[test]
fn mremap_and_dontneed_after_fork_keep_each_space_its_own() {
    let (mut s, z) = setup();
    let a = WINDOW.0;
    anon(&mut s, &z, a, 4);
    for i in 0..4 {
        write_tag(&mut s, va(a + i * P), i + 1);
    }
    let (mut c, _) = fork(&mut s);
    let to = a + 32 * P;
    c.mremap(va(a), 4 * P, 4 * P, true, Some(va(to))).unwrap().flush.ignore();
    s.madvise(va(a + P), P, Advice::DontNeed).unwrap().ignore();
    assert_eq!(read_tag(&c, va(to + P)), Some(2), "the parent's drop is not the child's");
    write_tag(&mut c, va(to + 2 * P), 30);
    assert_eq!(read_tag(&s, va(a + 2 * P)), Some(3));
    // The parent's page 2 is now its own alone: reused.
    assert_eq!(fault_kind(&mut s, a + 2 * P), FaultKind::Reused);
    assert_sound(&s);
    assert_sound(&c);
}

#[test]
fn a_sibling_is_empty_over_the_same_pool_and_a_failed_fork_changes_nothing_in_the_pool() {
    let (mut s, z) = setup();
    let sib = s.sibling().unwrap();
    assert!(sib.frames().same(s.frames()));
    assert_ne!(sib.cr3(), s.cr3());
    assert_eq!(sib.vmas().count(), 0);
    drop(sib);
    let a = WINDOW.0;
    anon(&mut s, &z, a, 2);
    write_tag(&mut s, va(a), 1);
    // Exhaust the pool: the child cannot get its root.
    let free = s.frames().pool_free() as u64;
    let hog = s.frames().alloc(free).unwrap();
    assert_eq!(s.fork().map(|f| f.child.cr3()).map_err(|e| e.errno()), Err(errno::ENOMEM));
    drop(hog);
    assert_eq!(s.frames().pool_free() as u64, free);
    assert!(s.translate(va(a)).unwrap().prot.writable);
    assert_sound(&s);
}

#[test]
fn the_kernel_half_is_shared_as_it_is() {
    use crate::addr::PageSize;
    use crate::flags::PageProt;
    let (mut s, _z) = setup();
    let k = super::KERNEL_HALF + (1 << 30);
    let prot = PageProt { user: false, ..PageProt::from_flags(RW) };
    s.page_tables_mut().map_range(va(k), GuestAddress(0x20_0000), 2 << 20, prot, PageSize::Size2M).unwrap();
    s.page_tables_mut().map_range(va(k + (4 << 20)), GuestAddress(0x5000), P, prot, PageSize::Size4K).unwrap();
    let (c, flush) = fork(&mut s);
    assert!(flush.is_empty(), "the kernel's entries stay writable in the parent");
    for off in [0, 0x1234, (4 << 20) + 8] {
        let (pt, ct) = (s.translate(va(k + off)).unwrap(), c.translate(va(k + off)).unwrap());
        assert_eq!((pt.phys, pt.size, pt.prot), (ct.phys, ct.size, ct.prot), "{off:#x}");
        assert!(ct.prot.writable && !ct.prot.user);
    }
    assert_ne!(s.cr3(), c.cr3());
    assert_sound(&c);
    c.exit().ignore();
    assert!(s.translate(va(k)).is_some(), "the child's exit leaves the parent's kernel half");
}
