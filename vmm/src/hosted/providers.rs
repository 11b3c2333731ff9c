//! The providers a guest can name in `mmap` (its `fd` argument), built
//! once the address space exists, and the contents the VMM puts behind
//! them so the guest can check every mapping through the CPU.
//!
//! Those contents are written the first time a provider is mapped
//! ([`FillOnFirstMap`]), not at start: a guest that never maps the huge-page
//! region or the page buffer pays nothing for them.

use std::sync::{Arc, OnceLock};

use devices::{BarProvider, BarRegionProvider, BarWindow};
use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{MmError, MmapProvider, PageSize, Pfn};
use vm_memory::{Bytes, GuestAddress};

use crate::hosted::mapper::Mapper;
use crate::hosted::stub::abi::{fd, huge_pattern, page_pattern, BAR_REGION_OFFSET, PAGE_BUFFER_PAGES};
use crate::layout::{HUGE_PA, HUGE_SIZE, LOAD_PA, LOAD_SIZE, PAGE_SIZE};
use crate::memory::GuestMem;

/// Writes a provider's contents into guest memory.
type Fill = Box<dyn Fn() -> Result<(), MmError> + Send + Sync>;

/// A provider whose backing is written the first time a mapping of it
/// gets past `mmap_prepare` (once; a failed write fails that mapping and
/// every later one).
pub struct FillOnFirstMap<P> {
    inner: P,
    fill: Arc<Fill>,
    filled: Arc<OnceLock<Result<(), MmError>>>,
}

impl<P: MmapProvider> FillOnFirstMap<P> {
    /// `inner`, with `fill` run before its first mapping.
    pub fn new(inner: P, fill: Fill) -> Self {
        FillOnFirstMap { inner, fill: Arc::new(fill), filled: Arc::default() }
    }

    /// Another provider over the same backing (a lazy view of the page
    /// buffer): whichever is mapped first fills it, once.
    pub fn view<Q: MmapProvider>(&self, inner: Q) -> FillOnFirstMap<Q> {
        FillOnFirstMap { inner, fill: self.fill.clone(), filled: self.filled.clone() }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Whether the contents have been written.
    pub fn is_filled(&self) -> bool {
        self.filled.get().is_some()
    }
}

impl<P: MmapProvider> MmapProvider for FillOnFirstMap<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mmap_prepare(&self, desc: &mut guest_mm::VmaDesc) -> Result<(), MmError> {
        self.inner.mmap_prepare(desc)?;
        self.filled.get_or_init(|| (self.fill)()).clone()
    }

    fn align(&self) -> u64 {
        self.inner.align()
    }
}

/// Every provider of one guest.
pub struct Providers {
    guest_ram: GuestRamProvider,
    zero: ZeroProvider<GuestMem>,
    page_buffer: FillOnFirstMap<PageBuffer>,
    page_buffer_lazy: FillOnFirstMap<PageBuffer>,
    huge: FillOnFirstMap<HugePageProvider>,
    bars: Vec<BarProvider>,
    bar_regions: Vec<BarRegionProvider>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").field("bars", &self.bars.len()).finish_non_exhaustive()
    }
}

impl Providers {
    /// Builds the providers; the page buffer and the huge-page region get
    /// their patterns when first mapped.
    pub fn new(mapper: &Mapper, mem: &GuestMem, bars: &[BarWindow]) -> Result<Self, MmError> {
        let space = mapper.space();
        // The guest-RAM provider never maps the pool (every region of it:
        // the fixed one and the free RAM it takes, so a frame the pool
        // hands out is never also a raw mapping), the load region or the
        // huge-page region: those belong to other providers.
        let mut forbidden = vec![(GuestAddress(LOAD_PA), LOAD_SIZE), (GuestAddress(HUGE_PA), HUGE_SIZE)];
        forbidden
            .extend(space.frames().lock().pool_regions().into_iter().map(|(s, e)| (s.addr(), (e.0 - s.0) * PAGE_SIZE)));
        let guest_ram = GuestRamProvider::new(space.layout(), &forbidden);
        let zero = ZeroProvider::new(space.frames().clone(), mem.clone());
        // The shared zero page now, with the other providers' pages: a
        // guest's first read fault then takes nothing from the pool, and
        // the pool's figures after a guest unmapped everything are those
        // from before it ran (the `hypercalls` fuzz target's teardown).
        zero.anon_ops().zero_page()?;
        let page_buffer = PageBuffer::new(space.frames(), PAGE_BUFFER_PAGES)?;
        let (pages, m) = (page_buffer.pages().to_vec(), mem.clone());
        let page_buffer = FillOnFirstMap::new(
            page_buffer,
            Box::new(move || {
                for (i, &pfn) in pages.iter().enumerate() {
                    let bytes: Vec<u8> =
                        (0..PAGE_SIZE / 8).flat_map(|w| page_pattern(i as u64, w).to_le_bytes()).collect();
                    m.write_slice(&bytes, pfn.addr()).map_err(|_| MmError::GuestMemory { addr: pfn.addr().0 })?;
                }
                Ok(())
            }),
        );
        // The lazy view shares the pages and their one fill.
        let page_buffer_lazy = page_buffer.view(page_buffer.inner().lazy());
        let huge = HugePageProvider::new(GuestAddress(HUGE_PA), HUGE_SIZE, PageSize::Size2M)?;
        let m = mem.clone();
        let huge = FillOnFirstMap::new(
            huge,
            Box::new(move || {
                for page in (HUGE_PA..HUGE_PA + HUGE_SIZE).step_by(PAGE_SIZE as usize) {
                    let bytes: Vec<u8> =
                        (0..PAGE_SIZE / 8).flat_map(|w| huge_pattern(page + w * 8).to_le_bytes()).collect();
                    m.write_slice(&bytes, GuestAddress(page)).map_err(|_| MmError::GuestMemory { addr: page })?;
                }
                Ok(())
            }),
        );
        let mut bar_regions = Vec::new();
        for (i, w) in bars.iter().enumerate() {
            let size = w.size.min(4 * PAGE_SIZE) - BAR_REGION_OFFSET;
            bar_regions.push(BarRegionProvider::new(i, *w, BAR_REGION_OFFSET, size)?);
        }
        let bars = bars.iter().enumerate().map(|(i, w)| BarProvider::new(i, *w)).collect();
        Ok(Providers { guest_ram, zero, page_buffer, page_buffer_lazy, huge, bars, bar_regions })
    }

    /// The provider behind handle `handle`: `EBADF` for a handle that names
    /// nothing; an absent BAR gets a provider that fails with `ENXIO`.
    pub fn get(&self, handle: u64) -> Result<Handle<'_>, i32> {
        let bar = |list_len: usize, base: u64| -> Option<usize> {
            let i = usize::try_from(handle - base).ok()?;
            (i < list_len).then_some(i)
        };
        Ok(match handle {
            fd::GUEST_RAM => Handle::Shared(&self.guest_ram),
            fd::ZERO => Handle::Shared(&self.zero),
            fd::PAGE_BUFFER => Handle::Shared(&self.page_buffer),
            fd::PAGE_BUFFER_LAZY => Handle::Shared(&self.page_buffer_lazy),
            fd::HUGE => Handle::Shared(&self.huge),
            h if (fd::BAR0..fd::BAR_REGION0).contains(&h) => match bar(self.bars.len(), fd::BAR0) {
                Some(i) => Handle::Shared(&self.bars[i]),
                None => Handle::Absent(BarProvider::unknown(h - fd::BAR0)),
            },
            h if (fd::BAR_REGION0..fd::END).contains(&h) => match bar(self.bar_regions.len(), fd::BAR_REGION0) {
                Some(i) => Handle::Shared(&self.bar_regions[i]),
                None => Handle::Absent(BarProvider::unknown(h - fd::BAR_REGION0)),
            },
            _ => return Err(libc::EBADF),
        })
    }

    /// The page buffer's frames, in buffer order.
    pub fn page_buffer_pages(&self) -> &[Pfn] {
        self.page_buffer.inner().pages()
    }

    /// Whether the page buffer and the huge-page region have been filled
    /// (mapped at least once).
    pub fn filled(&self) -> (bool, bool) {
        (self.page_buffer.is_filled(), self.huge.is_filled())
    }
}

/// A provider looked up by handle.
pub enum Handle<'a> {
    /// One of the guest's providers.
    Shared(&'a dyn MmapProvider),
    /// A BAR that does not exist.
    Absent(BarProvider),
}

impl Handle<'_> {
    /// The provider.
    pub fn provider(&self) -> &dyn MmapProvider {
        match self {
            Handle::Shared(p) => *p,
            Handle::Absent(p) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use guest_mm::{MmapRequest, VmFlags};

    use super::*;
    use crate::memory::create_guest_memory;

    fn read_u64(mem: &GuestMem, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        mem.read_slice(&mut b, GuestAddress(pa)).unwrap();
        u64::from_le_bytes(b)
    }

    #[test]
    fn huge_pages_come_off_the_top_of_ram_and_out_of_the_pool() {
        use crate::hosted::mapper::{hugetlb_region, pool_regions, PoolRam};
        use crate::layout::{POOL_PA, POOL_RAM_PA, POOL_SIZE};
        let size = 128 << 20;
        let mem = create_guest_memory(size).unwrap();
        let pool = PoolRam::AllFreeButHuge { pages: 4 };
        let top = size - (8 << 20);
        assert_eq!(hugetlb_region(&mem, pool), Some((GuestAddress(top), 8 << 20)));
        assert_eq!(
            pool_regions(&mem, pool),
            vec![(GuestAddress(POOL_PA), POOL_SIZE), (GuestAddress(POOL_RAM_PA), top - POOL_RAM_PA)]
        );
        // None asked, or more than RAM above the VMM's own holds: no region.
        assert_eq!(hugetlb_region(&mem, PoolRam::AllFreeButHuge { pages: 0 }), None);
        assert_eq!(hugetlb_region(&mem, PoolRam::AllFree), None);
        assert_eq!(hugetlb_region(&mem, PoolRam::AllFreeButHuge { pages: size / (2 << 20) }), None);
        assert_eq!(pool_regions(&mem, PoolRam::AllFreeButHuge { pages: 0 }), pool_regions(&mem, PoolRam::AllFree));
        // The space's pool never hands out a huge page's frame.
        let mapper = Mapper::with_options(mem.clone(), 64, pool).unwrap();
        let total = mapper.space().frames().lock().pool_total();
        assert_eq!(total, (POOL_SIZE + top - POOL_RAM_PA) / PAGE_SIZE);
        let all = mapper.space().frames().alloc(total).unwrap();
        assert!(all.pfns().iter().all(|p| p.addr().0 < top));
    }

    #[test]
    fn the_pool_takes_free_ram_past_the_window_and_the_guest_ram_provider_maps_only_the_window() {
        use crate::hosted::mapper::{pool_regions, PoolRam};
        use crate::layout::{FREE_PA, POOL_PA, POOL_RAM_PA, POOL_SIZE};
        let size = 128 << 20;
        let mem = create_guest_memory(size).unwrap();
        assert_eq!(
            pool_regions(&mem, PoolRam::AllFree),
            vec![(GuestAddress(POOL_PA), POOL_SIZE), (GuestAddress(POOL_RAM_PA), size - POOL_RAM_PA)]
        );
        assert_eq!(pool_regions(&mem, PoolRam::FixedOnly), vec![(GuestAddress(POOL_PA), POOL_SIZE)]);
        let small = create_guest_memory(crate::layout::MIN_MEM_SIZE).unwrap();
        assert_eq!(pool_regions(&small, PoolRam::AllFree).len(), 1, "no free RAM past the window at the minimum");

        for (pool, pool_ram_mappable) in [(PoolRam::AllFree, false), (PoolRam::FixedOnly, true)] {
            let mut mapper = Mapper::with_options(mem.clone(), 64, pool).unwrap();
            let total = mapper.space().frames().lock().pool_total();
            let want = if pool == PoolRam::AllFree { POOL_SIZE + size - POOL_RAM_PA } else { POOL_SIZE };
            assert_eq!(total, want / PAGE_SIZE);
            let p = Providers::new(&mapper, &mem, &[]).unwrap();
            let ram = p.get(fd::GUEST_RAM).unwrap();
            for (pa, ok) in [
                (FREE_PA, true),
                (POOL_RAM_PA - PAGE_SIZE, true),
                (POOL_RAM_PA, pool_ram_mappable),
                (size - PAGE_SIZE, pool_ram_mappable),
                (POOL_PA, false),
            ] {
                let req = MmapRequest { pgoff: pa / PAGE_SIZE, ..MmapRequest::shared(PAGE_SIZE, VmFlags::READ) };
                match mapper.space_mut().mmap(ram.provider(), &req) {
                    Ok(m) => {
                        assert!(ok, "{pool:?}: guest RAM at {pa:#x} mapped");
                        m.flush.ignore();
                    }
                    Err(e) => {
                        assert!(!ok, "{pool:?}: guest RAM at {pa:#x} refused: {e}");
                        assert_eq!(e.errno(), guest_mm::errno::EPERM, "{pool:?} at {pa:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn regions_are_filled_when_first_mapped_not_before() {
        let mem = create_guest_memory(crate::layout::MIN_MEM_SIZE).unwrap();
        let mut mapper = Mapper::new(mem.clone()).unwrap();
        let p = Providers::new(&mapper, &mem, &[]).unwrap();
        let probe = HUGE_PA + 2 * PAGE_SIZE + 8;
        assert_eq!(p.filled(), (false, false));
        assert_eq!(read_u64(&mem, probe), 0, "the huge-page region was written before any mapping");
        let buf0 = p.page_buffer_pages()[0].addr().0;
        assert_eq!(read_u64(&mem, buf0 + 8), 0);

        // Mapping another provider fills nothing.
        let zero = p.get(fd::ZERO).unwrap();
        mapper
            .space_mut()
            .mmap(zero.provider(), &MmapRequest::private(PAGE_SIZE, VmFlags::READ))
            .unwrap()
            .flush
            .ignore();
        assert_eq!(p.filled(), (false, false));

        let huge = p.get(fd::HUGE).unwrap();
        mapper.space_mut().mmap(huge.provider(), &MmapRequest::shared(2 << 20, VmFlags::READ)).unwrap().flush.ignore();
        assert_eq!(p.filled(), (false, true));
        assert_eq!(read_u64(&mem, probe), huge_pattern(probe));
        assert_eq!(read_u64(&mem, buf0 + 8), 0, "the page buffer is filled only when it is mapped");

        let pb = p.get(fd::PAGE_BUFFER).unwrap();
        mapper.space_mut().mmap(pb.provider(), &MmapRequest::shared(PAGE_SIZE, VmFlags::READ)).unwrap().flush.ignore();
        assert_eq!(p.filled(), (true, true));
        assert_eq!(read_u64(&mem, buf0 + 8), page_pattern(0, 1));
    }
}
