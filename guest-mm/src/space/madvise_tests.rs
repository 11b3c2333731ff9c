//! madvise's refusals that the mapper tests reach only through remaps
//! (which carry every special flag at once): each of `VM_PFNMAP` and
//! `VM_IO` alone refuses `MADV_DONTNEED`; `VM_HUGETLB` alone takes it at
//! its page size (`providers/hugetlb_tests.rs` tests the huge pages). Then the advice of
//! Linux 6.12 one by one, checked by walking the tables: populate's
//! errors and copy-on-write breaks, `MADV_REMOVE`'s three refusals and
//! its drop, the flag advice's splits and merges, and the hole rule
//! (mapped parts advised, then `ENOMEM`; a refused VMA stops the walk).

#![allow(clippy::unwrap_used)]

use super::test_util::{pool_space, space, va, Flags, Plain, WINDOW};
use super::{Advice, MmapRequest};
use crate::addr::PAGE_SIZE;
use crate::error::MmError;
use crate::flags::VmFlags;

#[test]
fn each_special_flag_alone_refuses_dontneed() {
    let mut s = space();
    let refused = MmError::Invalid("MADV_DONTNEED on a PFNMAP, I/O, huge-page or locked mapping");
    for (i, flag) in [VmFlags::PFNMAP, VmFlags::IO, VmFlags::HUGETLB, VmFlags::empty()].into_iter().enumerate() {
        let at = va(WINDOW.0 + 4 * i as u64 * PAGE_SIZE);
        s.mmap(&Flags(flag, VmFlags::empty()), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(at))
            .unwrap()
            .flush
            .ignore();
        let r = s.madvise(at, PAGE_SIZE, Advice::DontNeed).map(|f| f.ignore());
        if flag.is_empty() || flag == VmFlags::HUGETLB {
            assert_eq!(r, Ok(()));
        } else {
            assert_eq!(r, Err(refused.clone()), "{flag:?}");
        }
    }
}

const P: u64 = PAGE_SIZE;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
type Space = super::AddressSpace<vm_memory::GuestMemoryMmap<()>>;

fn setup() -> (Space, crate::providers::ZeroProvider<vm_memory::GuestMemoryMmap<()>>) {
    let s = pool_space();
    let z = crate::providers::ZeroProvider::new(s.frames().clone(), s.memory().clone());
    (s, z)
}

fn errno_of(r: Result<crate::paging::FlushSet, MmError>) -> Result<(), i32> {
    r.map(|f| f.ignore()).map_err(|e| e.errno())
}

fn present(s: &Space, a: u64, pages: u64) -> u64 {
    (0..pages).filter(|i| s.translate(va(a + i * P)).is_some()).count() as u64
}

#[test]
fn populate_faults_every_page_in_and_stops_where_linux_does() {
    use crate::error::errno::{EFAULT, EINVAL, ENOMEM};
    let (mut s, z) = setup();
    s.set_fault_around(1).unwrap();
    let a = WINDOW.0 + 16 * P;
    s.mmap(&z, &MmapRequest::private(4 * P, RW).fixed(va(a))).unwrap().flush.ignore();
    // READ maps the zero page copy-on-write; WRITE then breaks it.
    s.madvise(va(a), 4 * P, Advice::PopulateRead).unwrap().ignore();
    assert!((0..4).all(|i| s.page_tables().is_copy_on_write(va(a + i * P))));
    let f = s.madvise(va(a), 4 * P, Advice::PopulateWrite).unwrap();
    assert_eq!(f.pages(), 4, "the four copy-on-write entries were replaced");
    assert!((0..4).all(|i| s.translate(va(a + i * P)).unwrap().prot.writable));
    // A read-only VMA refuses WRITE; PROT_NONE refuses both; so does I/O.
    let ro = WINDOW.0 + 32 * P;
    s.mmap(&z, &MmapRequest::private(2 * P, VmFlags::READ).fixed(va(ro))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(ro), 2 * P, Advice::PopulateWrite)), Err(EINVAL));
    assert_eq!(present(&s, ro, 2), 0);
    let none = WINDOW.0 + 40 * P;
    s.mmap(&z, &MmapRequest::private(P, VmFlags::empty()).fixed(va(none))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(none), P, Advice::PopulateRead)), Err(EINVAL));
    let io = WINDOW.0 + 48 * P;
    s.mmap(&Flags(VmFlags::IO, VmFlags::empty()), &MmapRequest::shared(P, RW).fixed(va(io))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(io), P, Advice::PopulateRead)), Err(EINVAL));
    // Nothing can fault a VMA without ops in: EFAULT.
    let plain = WINDOW.0 + 56 * P;
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(plain))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(plain), P, Advice::PopulateRead)), Err(EFAULT));
    // A hole: ENOMEM where it starts, what came before populated.
    let b = WINDOW.0 + 64 * P;
    s.mmap(&z, &MmapRequest::private(2 * P, RW).fixed(va(b))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(b), 4 * P, Advice::PopulateWrite)), Err(ENOMEM));
    assert_eq!(present(&s, b, 2), 2);
}

#[test]
fn remove_drops_a_shared_writable_mapping_that_can_refault() {
    use crate::error::errno::{EACCES, EINVAL, EOPNOTSUPP};
    let (mut s, z) = setup();
    let buf = crate::providers::PageBuffer::new(s.frames(), 4).unwrap();
    let lazy = buf.lazy();
    let a = WINDOW.0 + 16 * P;
    s.mmap(&lazy, &MmapRequest::shared(4 * P, RW).fixed(va(a))).unwrap().flush.ignore();
    s.madvise(va(a), 4 * P, Advice::WillNeed).unwrap().ignore();
    assert_eq!(present(&s, a, 4), 4);
    let f = s.madvise(va(a), 4 * P, Advice::Remove).unwrap();
    assert_eq!((f.pages(), present(&s, a, 4)), (4, 0));
    s.fault(va(a + P), crate::vma::FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(s.translate(va(a + P)).unwrap().pfn, buf.pages()[1], "refaults the provider's page");
    // Private anonymous memory: EINVAL; not shared-writable: EACCES; no
    // fault handler: EOPNOTSUPP.
    let p = WINDOW.0 + 32 * P;
    s.mmap(&z, &MmapRequest::private(P, RW).fixed(va(p))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(p), P, Advice::Remove)), Err(EINVAL));
    let ro = WINDOW.0 + 40 * P;
    let no_write = Flags(VmFlags::empty(), VmFlags::MAYWRITE);
    s.mmap(&no_write, &MmapRequest::shared(P, VmFlags::READ).fixed(va(ro))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(ro), P, Advice::Remove)), Err(EACCES));
    let plain = WINDOW.0 + 48 * P;
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(plain))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(plain), P, Advice::Remove)), Err(EOPNOTSUPP));
}

#[test]
fn flag_advice_splits_merges_and_refuses_as_linux() {
    use crate::error::errno::{EINVAL, ENOMEM};
    let (mut s, z) = setup();
    let a = WINDOW.0 + 16 * P;
    s.mmap(&z, &MmapRequest::private(8 * P, RW).fixed(va(a))).unwrap().flush.ignore();
    s.madvise(va(a + 2 * P), 2 * P, Advice::DontFork).unwrap().ignore();
    assert_eq!(s.vmas().count(), 3);
    assert!(s.find_vma(va(a + 2 * P)).unwrap().flags().contains(VmFlags::DONTCOPY));
    s.madvise(va(a + 2 * P), 2 * P, Advice::DoFork).unwrap().ignore();
    assert_eq!(s.vmas().count(), 1, "merged back");
    s.madvise(va(a), 8 * P, Advice::Sequential).unwrap().ignore();
    s.madvise(va(a), 4 * P, Advice::Random).unwrap().ignore();
    let f = |s: &Space, at: u64| s.find_vma(va(at)).unwrap().flags() & (VmFlags::SEQ_READ | VmFlags::RAND_READ);
    assert_eq!((f(&s, a), f(&s, a + 4 * P)), (VmFlags::RAND_READ, VmFlags::SEQ_READ));
    s.madvise(va(a), 8 * P, Advice::Normal).unwrap().ignore();
    assert_eq!((f(&s, a), s.vmas().count()), (VmFlags::empty(), 1));
    // WIPEONFORK needs private anonymous memory; KEEPONFORK takes anything.
    let sh = WINDOW.0 + 32 * P;
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(sh))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(sh), P, Advice::WipeOnFork)), Err(EINVAL));
    assert_eq!(errno_of(s.madvise(va(sh), P, Advice::KeepOnFork)), Ok(()));
    s.madvise(va(a), P, Advice::WipeOnFork).unwrap().ignore();
    assert!(s.find_vma(va(a)).unwrap().flags().contains(VmFlags::WIPEONFORK));
    // DOFORK refuses VM_IO, DODUMP any VM_SPECIAL VMA.
    let io = WINDOW.0 + 40 * P;
    s.mmap(&Flags(VmFlags::IO, VmFlags::empty()), &MmapRequest::shared(P, RW).fixed(va(io))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(io), P, Advice::DontFork)), Ok(()));
    assert_eq!(errno_of(s.madvise(va(io), P, Advice::DoFork)), Err(EINVAL));
    assert_eq!(errno_of(s.madvise(va(io), P, Advice::DoDump)), Err(EINVAL));
    // The hole rule: [a, sh + P) has a hole between; both VMAs advised.
    assert_eq!(errno_of(s.madvise(va(a), sh + P - a, Advice::DontDump)), Err(ENOMEM));
    assert!(s.find_vma(va(a + 7 * P)).unwrap().flags().contains(VmFlags::DONTDUMP));
    assert!(s.find_vma(va(sh)).unwrap().flags().contains(VmFlags::DONTDUMP));
    // A refused VMA stops the walk: the VMA before it advised, not after.
    let after = WINDOW.0 + 41 * P;
    s.mmap(&Plain, &MmapRequest::shared(P, RW).fixed(va(after))).unwrap().flush.ignore();
    assert_eq!(errno_of(s.madvise(va(sh), after + P - sh, Advice::WipeOnFork)), Err(EINVAL));
    s.madvise(va(a), 8 * P, Advice::KeepOnFork).unwrap().ignore();
    s.madvise(va(sh), P, Advice::DontFork).unwrap().ignore();
    s.madvise(va(after), P, Advice::DontFork).unwrap().ignore();
    let dontcopy = |s: &Space, at: u64| s.find_vma(va(at)).unwrap().flags().contains(VmFlags::DONTCOPY);
    assert_eq!(errno_of(s.madvise(va(sh), after + P - sh, Advice::DoFork)), Err(EINVAL), "the I/O VMA refuses");
    assert!(!dontcopy(&s, sh), "before it: advised");
    assert!(dontcopy(&s, io) && dontcopy(&s, after), "it and after it: untouched");
    // COLD and PAGEOUT are accepted and change nothing.
    let before: Vec<_> = s.vmas().map(|v| (v.start(), v.end(), v.flags())).collect();
    s.madvise(va(a), 8 * P, Advice::Cold).unwrap().ignore();
    s.madvise(va(a), 8 * P, Advice::PageOut).unwrap().ignore();
    assert_eq!(s.vmas().map(|v| (v.start(), v.end(), v.flags())).collect::<Vec<_>>(), before);
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}

/// Ops that offer one frame for every page (as the shared zero page is
/// offered to reads), counting the runs asked for.
struct SameFrame {
    pfn: crate::Pfn,
    calls: std::sync::atomic::AtomicU64,
}

impl crate::vma::VmaOps for SameFrame {
    fn name(&self) -> &str {
        "same-frame"
    }

    fn map_pages(
        &self,
        _vma: &crate::vma::Vma,
        _first: u64,
        nr: u64,
        _access: crate::vma::FaultAccess,
    ) -> Vec<Option<crate::vma::FaultPage>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let page = crate::vma::FaultPage { pfn: self.pfn, copy_on_write: true, hold: None };
        vec![Some(page); nr as usize]
    }
}

struct SameFrameProvider(std::sync::Arc<SameFrame>);

impl crate::provider::MmapProvider for SameFrameProvider {
    fn name(&self) -> &str {
        "same-frame"
    }

    fn mmap_prepare(&self, desc: &mut crate::desc::VmaDesc) -> Result<(), MmError> {
        desc.set_ops(self.0.clone());
        Ok(())
    }
}

/// Found by the `linux_syscalls` fuzz target (`mmap` of 3 TiB with
/// `MAP_LOCKED`, populated through this advice): populating asked for
/// every leaf table's run of a huge range after the tables ran out (a
/// minute of one vCPU's time), and populated `PROT_NONE` VMAs. As
/// `__mm_populate`: a VMA nothing may access is skipped, and a VMA is left
/// at its first run that cannot be mapped.
#[test]
fn willneed_skips_prot_none_and_stops_where_the_tables_run_out() {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut s, _) = setup();
    let frame = s.frames().alloc(1).unwrap();
    let ops = std::sync::Arc::new(SameFrame { pfn: frame.pfns()[0], calls: Default::default() });
    let provider = SameFrameProvider(ops.clone());
    let none = WINDOW.0 + 16 * P;
    s.mmap(&provider, &MmapRequest::private(4 * P, VmFlags::empty()).fixed(va(none))).unwrap().flush.ignore();
    s.madvise(va(none), 4 * P, Advice::WillNeed).unwrap().ignore();
    assert_eq!((ops.calls.load(Relaxed), present(&s, none, 4)), (0, 0), "PROT_NONE is not populated");
    // 64 GiB: 32768 leaf tables' worth, far more than the space has.
    let (big, len) = (1u64 << 40, 64u64 << 30);
    s.mmap(&provider, &MmapRequest::private(len, VmFlags::READ).fixed(va(big))).unwrap().flush.ignore();
    let tables_before = s.stats().tables_in_use;
    s.madvise(va(big), len, Advice::WillNeed).unwrap().ignore();
    let runs = ops.calls.load(Relaxed);
    let tables = (s.stats().tables_in_use - tables_before) as u64;
    assert!(present(&s, big, 4) == 4, "the start is populated");
    assert!(runs <= tables + 1, "{runs} runs asked for, {tables} tables taken: it went on after they ran out");
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
    s.munmap(va(big), len).unwrap().ignore();
    s.munmap(va(none), 4 * P).unwrap().ignore();
}

/// `WILLNEED` over a read-only page and a writable one of private
/// anonymous memory, then `munmap`: every page comes back but the shared
/// zero page, which the provider allocated on the first read and keeps
/// until it goes (the `hypercalls` fuzz target took that for a leak).
#[test]
fn willneed_then_unmap_returns_every_page_but_the_providers_zero_page() {
    let (mut s, z) = setup();
    let free = s.stats().pool_free;
    let a = WINDOW.0 + 16 * PAGE_SIZE;
    let rw = VmFlags::READ | VmFlags::WRITE;
    s.mmap(&z, &MmapRequest::private(4 * PAGE_SIZE, rw).anonymous().fixed(va(a))).unwrap().flush.ignore();
    s.mprotect(va(a), PAGE_SIZE, VmFlags::READ).unwrap().ignore();
    s.madvise(va(a), 2 * PAGE_SIZE, Advice::WillNeed).unwrap().ignore();
    s.munmap(va(a), 4 * PAGE_SIZE).unwrap().ignore();
    assert_eq!(s.stats().pool_free, free - 1, "all but the zero page");
    assert_eq!(s.stats().pins, 0);
    drop(z);
    assert_eq!(s.stats().pool_free, free, "the zero page goes with its provider");
    let (_, v) = s.check_invariants();
    assert!(v.is_empty(), "{v:?}");
}
