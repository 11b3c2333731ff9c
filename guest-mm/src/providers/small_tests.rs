//! Small contracts of the providers and actions that the mapper tests do
//! not pin down: names (shown in logs and the VMM's VMA listings), the
//! flags a huge-page mapping carries, the error a misaligned one gets,
//! the fault-around bounds, and the debug forms of actions.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::{AnonOps, HugePageProvider, PageBuffer, ReadOnlyView};
use crate::addr::{GuestVirtAddr, PageSize, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::space::{AddressSpace, MmapRequest, SpaceConfig};
use crate::vma::VmaOps;
use crate::MmapProvider;

const M2: u64 = 2 << 20;

fn space() -> AddressSpace<GuestMemoryMmap<()>> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    AddressSpace::new(mem, cfg).unwrap()
}

#[test]
fn names() {
    let s = space();
    let anon = AnonOps::new(s.frames().clone(), s.memory().clone());
    assert_eq!(anon.name(), "anon");
    let buf = PageBuffer::new(s.frames(), 4).unwrap();
    assert_eq!(buf.name(), "page-buffer");
    let lazy = buf.lazy();
    assert_eq!(lazy.name(), "page-buffer-lazy");
    let mut s2 = space();
    let buf2 = PageBuffer::new(s2.frames(), 4).unwrap().lazy();
    let m = s2.mmap(&buf2, &MmapRequest::shared(4 * PAGE_SIZE, VmFlags::READ)).unwrap();
    m.flush.ignore();
    assert_eq!(s2.find_vma(m.addr).unwrap().ops().unwrap().name(), "page-buffer");
    let huge = Arc::new(HugePageProvider::new(GuestAddress(16 << 20), 4 * M2, PageSize::Size2M).unwrap());
    assert_eq!(huge.name(), "huge");
    assert_eq!(ReadOnlyView::new(huge).name(), "ro:huge");
}

#[test]
fn a_huge_page_mapping_is_hugetlb_and_cannot_grow_and_misalignment_names_the_request() {
    let mut s = space();
    let huge = HugePageProvider::new(GuestAddress(16 << 20), 4 * M2, PageSize::Size2M).unwrap();
    let m = s.mmap(&huge, &MmapRequest::shared(M2, VmFlags::READ)).unwrap();
    m.flush.ignore();
    let flags = s.find_vma(m.addr).unwrap().flags();
    assert!(flags.contains(VmFlags::HUGETLB | VmFlags::DONTEXPAND), "{flags:?}");
    let at = GuestVirtAddr::try_new((1 << 32) + PAGE_SIZE).unwrap();
    let e = s.mmap(&huge, &MmapRequest::shared(M2, VmFlags::READ).fixed(at)).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::Misaligned { what: "huge-page mapping", value: at.raw() | M2, align: M2 });
    // An address and a length misaligned by the same amount: the value
    // still shows it.
    let at = GuestVirtAddr::try_new((1 << 32) + M2 / 2).unwrap();
    let e = s.mmap(&huge, &MmapRequest::shared(M2 / 2, VmFlags::READ).fixed(at)).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::Misaligned { what: "huge-page mapping", value: at.raw(), align: M2 });
}

/// Puts `MAYWRITE` back: a provider a read-only view must not trust.
struct Widens;
impl MmapProvider for Widens {
    fn name(&self) -> &str {
        "widens"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        desc.set_flags(VmFlags::MAYWRITE);
        Ok(())
    }
}

#[test]
fn a_read_only_view_refuses_an_inner_provider_that_widens_it() {
    let mut s = space();
    let e =
        s.mmap(&ReadOnlyView::new(Arc::new(Widens)), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).map(|m| m.addr);
    assert_eq!(e.unwrap_err(), MmError::Access("write"));
    assert_eq!(s.vmas().count(), 0);
}

#[test]
fn fault_around_is_a_power_of_two_up_to_512_pages() {
    let mut s = space();
    for ok in [1, 2, 64, 512] {
        assert!(s.set_fault_around(ok).is_ok(), "{ok}");
    }
    for bad in [0, 3, 1024] {
        assert!(s.set_fault_around(bad).is_err(), "{bad}");
    }
}

#[test]
fn page_arrays_and_actions_print_what_they_hold() {
    let s = space();
    let pages = s.frames().alloc(3).unwrap();
    let arr = crate::action::PageArray::pin(s.frames(), pages.pfns().clone()).unwrap();
    assert!(!arr.is_empty());
    assert_eq!(format!("{arr:?}"), "PageArray[3 pages]");
    assert!(arr.slice(0, 0).unwrap().is_empty());
}

/// Remaps the first page of its VMA only.
struct FirstPage;

impl MmapProvider for FirstPage {
    fn name(&self) -> &str {
        "first-page"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap(desc.start(), crate::Pfn(0x100), PAGE_SIZE);
        Ok(())
    }
}

#[test]
fn a_private_writable_remap_must_cover_its_whole_mapping() {
    let mut s = space();
    let rw = VmFlags::READ | VmFlags::WRITE;
    // Shared: a partial remap is fine.
    s.mmap(&FirstPage, &MmapRequest::shared(2 * PAGE_SIZE, rw)).unwrap().flush.ignore();
    // Private and writable (copy-on-write): refused, whichever end differs.
    let e = s.mmap(&FirstPage, &MmapRequest::private(2 * PAGE_SIZE, rw)).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::Invalid("private writable remap must cover the whole mapping"));
    // Covering it whole, it is accepted.
    s.mmap(&FirstPage, &MmapRequest::private(PAGE_SIZE, rw)).unwrap().flush.ignore();
}

#[test]
fn a_copy_on_write_fault_copies_the_page_it_breaks() {
    use vm_memory::Bytes;
    let mut s = space();
    let anon = AnonOps::new(s.frames().clone(), s.memory().clone());
    // Any VMA to pass along (anon's fault does not look at it).
    let m = s.mmap(&FirstPage, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).unwrap();
    m.flush.ignore();
    let vma = s.find_vma(m.addr).unwrap().clone();
    let src = s.frames().alloc(1).unwrap();
    let from = src.pfns()[0];
    s.memory().write_slice(&[0x5a; PAGE_SIZE as usize], from.addr()).unwrap();
    let write = crate::vma::FaultAccess { write: true, exec: false };
    let info = crate::vma::FaultInfo { addr: m.addr, pgoff: 0, access: write, cow_from: Some(from) };
    let copy = anon.fault(&vma, &info).unwrap();
    assert!(!copy.copy_on_write && copy.pfn != from);
    let mut page = [0u8; PAGE_SIZE as usize];
    s.memory().read_slice(&mut page, copy.pfn.addr()).unwrap();
    assert!(page.iter().all(|&b| b == 0x5a), "the copy holds the broken page's bytes");
    // A write to an absent page gets a zeroed one.
    let info = crate::vma::FaultInfo { cow_from: None, ..info };
    let fresh = anon.fault(&vma, &info).unwrap();
    s.memory().read_slice(&mut page, fresh.pfn.addr()).unwrap();
    assert!(page.iter().all(|&b| b == 0));
}

/// Maps two runs of page-array pages, one at each end of a 4 MiB VMA.
struct TwoRuns(crate::action::PageArray, crate::action::PageArray);

impl MmapProvider for TwoRuns {
    fn name(&self) -> &str {
        "two-runs"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        let first = crate::action::PageRun { start: desc.start(), pages: self.0.clone() };
        let last = GuestVirtAddr::try_new(desc.end() - PAGE_SIZE).map_err(|_| MmError::Invalid("end"))?;
        let second = crate::action::PageRun { start: last, pages: self.1.clone() };
        desc.mmap_action_map_kernel_pages_discontig(vec![first, second]);
        Ok(())
    }
}

#[test]
fn a_discontiguous_mapping_counts_what_each_run_wrote() {
    let mut s = space();
    let a = s.frames().alloc(2).unwrap();
    let pin = |p: &crate::frames::PoolPages| crate::action::PageArray::pin(s.frames(), p.pfns().clone()).unwrap();
    let (one, two) = (pin(&a), crate::action::PageArray::pin(s.frames(), Arc::from(&a.pfns()[..1])).unwrap());
    let at = GuestVirtAddr::try_new(1 << 40).unwrap();
    let m = s.mmap(&TwoRuns(one, two), &MmapRequest::shared(2 * M2, VmFlags::READ).fixed(at)).unwrap();
    m.flush.ignore();
    // Two runs in two leaf tables, under a new PDPT and directory.
    assert_eq!(m.stats.entries_written, 3);
    assert_eq!(m.stats.tables_allocated, 4);
}

/// Remaps one page at frame `0`.
struct OneFrame(u64);

impl MmapProvider for OneFrame {
    fn name(&self) -> &str {
        "one-frame"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        desc.mmap_action_remap_full(crate::Pfn(self.0));
        desc.set_success_hook(Box::new(|_| Ok(None)));
        Ok(())
    }
}

#[test]
fn a_remap_may_end_exactly_at_the_physical_address_width() {
    let mut s = space();
    let max = crate::frames::MAX_PFN;
    let ok = s.mmap(&OneFrame(max - 1), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ));
    ok.unwrap().flush.ignore();
    let e = s.mmap(&OneFrame(max), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::Invalid("frame beyond the physical address width"));
}

#[test]
fn guest_ram_ranges_end_exactly_at_the_top_and_name_forbidden_ones() {
    let mut s = space();
    let layout = crate::frames::PhysLayout::from_memory(s.memory());
    let ram = super::GuestRamProvider::new(&layout, &[(GuestAddress(0x10_0000), 0x1_0000)]);
    // Ending exactly at 2^64 is not a wrap: it is refused as not RAM.
    let pages = 2;
    let top = (1u64 << 52) - pages;
    let req = MmapRequest::shared(pages * PAGE_SIZE, VmFlags::READ).pgoff(top);
    let e = s.mmap(&ram, &req).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::Invalid("range is not guest RAM"));
    // A forbidden range is named by its physical bounds.
    let req = MmapRequest::shared(2 * PAGE_SIZE, VmFlags::READ).pgoff(0x10f);
    let e = s.mmap(&ram, &req).map(|m| m.addr).unwrap_err();
    assert_eq!(e, MmError::NotAllowed { start: 0x10_f000, end: 0x11_1000 });
}

#[test]
fn a_descriptor_prints_its_action_and_hooks() {
    let at = GuestVirtAddr::try_new(1 << 32).unwrap();
    let mut d = crate::VmaDesc::new(
        at,
        at.raw() + PAGE_SIZE,
        0,
        VmFlags::READ,
        crate::flags::PageProt::from_flags(VmFlags::READ),
    );
    OneFrame(7).mmap_prepare(&mut d).unwrap();
    let text = format!("{d:?}");
    assert!(text.contains("MmapAction") && text.contains("success_hook: true"), "{text}");
}

/// Offers, around a fault, a pattern of pages: present or not, and
/// copy-on-write or not, from a pool of pinned frames; logs each
/// `map_pages` call as `(first, nr)`.
struct Patchy {
    frames: Vec<crate::Pfn>,
    hold: Arc<crate::frames::PoolPages>,
    calls: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl Patchy {
    fn new(pool: Arc<crate::frames::PoolPages>) -> Arc<Patchy> {
        Arc::new(Patchy { frames: pool.pfns().to_vec(), hold: pool, calls: Default::default() })
    }
}

impl VmaOps for Patchy {
    fn name(&self) -> &str {
        "patchy"
    }
    fn fault(&self, _vma: &crate::vma::Vma, vmf: &crate::vma::FaultInfo) -> Result<crate::vma::FaultPage, MmError> {
        let pfn = self.frames[vmf.pgoff as usize];
        Ok(crate::vma::FaultPage { pfn, copy_on_write: false, hold: Some(self.hold.clone()) })
    }
    fn map_pages(
        &self,
        _vma: &crate::vma::Vma,
        first: u64,
        nr: u64,
        _access: crate::vma::FaultAccess,
    ) -> Vec<Option<crate::vma::FaultPage>> {
        self.calls.lock().unwrap().push((first, nr));
        (first..first + nr)
            .map(|i| {
                // Page 2 offered as absent; 5, 6 and 7 copy-on-write.
                (i != 2).then(|| crate::vma::FaultPage {
                    pfn: self.frames[i as usize],
                    copy_on_write: i >= 5,
                    hold: Some(self.hold.clone()),
                })
            })
            .collect()
    }
}

/// A provider whose VMAs get [`Patchy`] ops.
struct PatchyProvider(Arc<Patchy>);

impl MmapProvider for PatchyProvider {
    fn name(&self) -> &str {
        "patchy"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        desc.set_ops(self.0.clone());
        Ok(())
    }
}

#[test]
fn fault_around_maps_each_offered_stretch_where_it_belongs() {
    let mut s = space();
    s.set_fault_around(8).unwrap();
    let pool = Arc::new(s.frames().alloc(8).unwrap());
    let ops = Patchy::new(pool);
    let rw = VmFlags::READ | VmFlags::WRITE;
    let at = GuestVirtAddr::try_new(1 << 40).unwrap();
    let m = s.mmap(&PatchyProvider(ops.clone()), &MmapRequest::shared(8 * PAGE_SIZE, rw).fixed(at)).unwrap();
    m.flush.ignore();
    let read = crate::vma::FaultAccess { write: false, exec: false };
    let f = s.fault(GuestVirtAddr::try_new(at.raw() + 3 * PAGE_SIZE).unwrap(), read).unwrap();
    f.flush.ignore();
    for i in 0..8u64 {
        let t = s.page_tables().translate(GuestVirtAddr::try_new(at.raw() + i * PAGE_SIZE).unwrap());
        match i {
            2 => assert!(t.is_none(), "page {i} was offered as absent"),
            _ => {
                let t = t.unwrap_or_else(|| panic!("page {i} not mapped"));
                assert_eq!(t.pfn, ops.frames[i as usize], "page {i}");
                assert_eq!(t.prot.writable, i < 5, "page {i}: copy-on-write pages stay read-only");
            }
        }
    }
    assert_eq!(f.around, 6, "{:?}", f.kind);
    // An instruction fetch needs an executable VMA.
    let exec = crate::vma::FaultAccess { write: false, exec: true };
    let e = s.fault(GuestVirtAddr::try_new(at.raw() + 2 * PAGE_SIZE).unwrap(), exec).map(|f| f.around).unwrap_err();
    assert_eq!(e, MmError::Access("exec"));
    let x = GuestVirtAddr::try_new(2 << 40).unwrap();
    let rx = VmFlags::READ | VmFlags::EXEC;
    s.mmap(&PatchyProvider(ops), &MmapRequest::shared(8 * PAGE_SIZE, rx).fixed(x)).unwrap().flush.ignore();
    s.fault(x, exec).unwrap().flush.ignore();
}

#[test]
fn madvise_numbers_the_limit_and_the_audit_count() {
    use crate::space::Advice;
    assert_eq!(Advice::from_linux(3).unwrap(), Advice::WillNeed);
    assert_eq!(Advice::from_linux(4).unwrap(), Advice::DontNeed);
    // Every number round-trips; the gaps (KSM, THP, hwpoison) and numbers
    // past the last are refused.
    for n in 0..=30u64 {
        match Advice::from_linux(n) {
            Ok(a) => assert_eq!(a.to_linux(), n),
            Err(e) => {
                assert_eq!(e.errno(), crate::errno::EINVAL);
                assert!(matches!(n, 5..=7 | 12..=15 | 25..), "{n} refused");
            }
        }
    }
    assert!(Advice::from_linux(100).is_err(), "MADV_HWPOISON");
    let mut s = space();
    assert_eq!(s.max_map_count(), crate::space::DEFAULT_MAX_MAP_COUNT);
    for i in 0..3u64 {
        let at = GuestVirtAddr::try_new((1 << 40) + i * 2 * PAGE_SIZE).unwrap();
        s.mmap(&OneFrame(0x100), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ).fixed(at)).unwrap().flush.ignore();
    }
    let (audit, violations) = s.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(audit.vmas, 3);
}

/// Ops of a mapping made of 2 MiB pages (`pagesize`), faulting nothing.
struct TwoMegPages;

impl VmaOps for TwoMegPages {
    fn name(&self) -> &str {
        "two-meg"
    }
    fn fault(&self, _vma: &crate::vma::Vma, _vmf: &crate::vma::FaultInfo) -> Result<crate::vma::FaultPage, MmError> {
        Err(MmError::NotSupported("no faults here"))
    }
    fn pagesize(&self, _vma: &crate::vma::Vma) -> u64 {
        M2
    }
}

/// Gives its VMAs [`TwoMegPages`].
struct TwoMegProvider;

impl MmapProvider for TwoMegProvider {
    fn name(&self) -> &str {
        "two-meg"
    }
    fn mmap_prepare(&self, desc: &mut crate::VmaDesc) -> Result<(), MmError> {
        desc.set_ops(Arc::new(TwoMegPages));
        Ok(())
    }
}

#[test]
fn mremap_of_a_huge_page_mapping_needs_every_argument_aligned_to_its_pages() {
    let mut s = space();
    let at = GuestVirtAddr::try_new(1 << 40).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    s.mmap(&TwoMegProvider, &MmapRequest::shared(2 * M2, rw).fixed(at)).unwrap().flush.ignore();
    let misaligned = |value| MmError::Misaligned { what: "huge-page mremap", value, align: M2 };
    // A new length that is not whole pages.
    let e = s.mremap(at, 2 * M2, 2 * M2 + PAGE_SIZE, true, None).map(|r| r.addr).unwrap_err();
    assert_eq!(e, misaligned(at.raw() | (2 * M2) | (2 * M2 + PAGE_SIZE)));
    // Two arguments off by the same amount: each is refused (they must not
    // cancel out).
    let to = GuestVirtAddr::try_new((1 << 41) + M2 / 2).unwrap();
    let e = s.mremap(at, 2 * M2, M2 + M2 / 2, true, Some(to)).map(|r| r.addr).unwrap_err();
    assert_eq!(e, misaligned(at.raw() | (2 * M2) | (M2 + M2 / 2) | to.raw()));
    // A misaligned address and old length that share their offset bits are
    // each refused.
    let e = s.mremap(GuestVirtAddr::try_new(at.raw() + M2 / 2).unwrap(), M2 / 2, 2 * M2, true, None).map(|r| r.addr);
    assert_eq!(e.unwrap_err(), misaligned((at.raw() + M2 / 2) | (M2 / 2) | (2 * M2)));
    // Whole pages: shrinking in place works.
    let r = s.mremap(at, 2 * M2, M2, false, None).unwrap();
    assert_eq!(r.addr, at);
    r.flush.ignore();
}

#[test]
fn willneed_populates_the_absent_pages_of_its_range_with_their_own_frames() {
    let mut s = space();
    s.set_fault_around(1).unwrap();
    let pool = Arc::new(s.frames().alloc(8).unwrap());
    let ops = Patchy::new(pool);
    let at = GuestVirtAddr::try_new(1 << 40).unwrap();
    let page = |i: u64| GuestVirtAddr::try_new(at.raw() + i * PAGE_SIZE).unwrap();
    let m = s.mmap(&PatchyProvider(ops.clone()), &MmapRequest::shared(8 * PAGE_SIZE, VmFlags::READ).fixed(at)).unwrap();
    m.flush.ignore();
    let read = crate::vma::FaultAccess { write: false, exec: false };
    s.fault(page(3), read).unwrap().flush.ignore();
    s.madvise(page(1), 6 * PAGE_SIZE, crate::space::Advice::WillNeed).unwrap().ignore();
    for i in 0..8u64 {
        let t = s.page_tables().translate(page(i));
        match i {
            // Outside the range, or offered as absent.
            0 | 2 | 7 => assert!(t.is_none(), "page {i}"),
            _ => assert_eq!(t.map(|t| t.pfn), Some(ops.frames[i as usize]), "page {i}"),
        }
    }
}

#[test]
fn willneed_asks_for_each_run_of_absent_pages_once_and_never_across_a_leaf_table() {
    let mut s = space();
    s.set_fault_around(1).unwrap();
    let pool = Arc::new(s.frames().alloc(8).unwrap());
    let ops = Patchy::new(pool);
    // Eight pages, the 2 MiB boundary (a new leaf table) after the third.
    let at = GuestVirtAddr::try_new((1 << 40) + M2 - 3 * PAGE_SIZE).unwrap();
    let page = |i: u64| GuestVirtAddr::try_new(at.raw() + i * PAGE_SIZE).unwrap();
    let m = s.mmap(&PatchyProvider(ops.clone()), &MmapRequest::shared(8 * PAGE_SIZE, VmFlags::READ).fixed(at)).unwrap();
    m.flush.ignore();
    let read = crate::vma::FaultAccess { write: false, exec: false };
    s.fault(page(5), read).unwrap().flush.ignore();
    ops.calls.lock().unwrap().clear();
    s.madvise(page(1), 7 * PAGE_SIZE, crate::space::Advice::WillNeed).unwrap().ignore();
    // Pages 1-2 up to the boundary, 3-4 up to the present page 5, 6-7.
    assert_eq!(*ops.calls.lock().unwrap(), vec![(1, 2), (3, 2), (6, 2)]);
    for i in 0..8u64 {
        let t = s.page_tables().translate(page(i)).map(|t| t.pfn);
        // Page 0 is outside the range; Patchy offers page 2 as absent.
        assert_eq!(t, (i != 0 && i != 2).then(|| ops.frames[i as usize]), "page {i}");
    }
}
