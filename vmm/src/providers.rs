//! The providers a guest can name in `mmap` (its `fd` argument), built
//! once the address space exists, and the contents the VMM puts behind
//! them so the guest can check every mapping through the CPU.

use devices::{BarProvider, BarRegionProvider, BarWindow};
use guest_mm::providers::{GuestRamProvider, HugePageProvider, PageBuffer, ZeroProvider};
use guest_mm::{MmError, MmapProvider, PageSize, Pfn};
use vm_memory::{Bytes, GuestAddress};

use crate::kernel::abi::{fd, huge_pattern, page_pattern, BAR_REGION_OFFSET, PAGE_BUFFER_PAGES};
use crate::layout::{HUGE_PA, HUGE_SIZE, LOAD_PA, LOAD_SIZE, PAGE_SIZE, POOL_PA, POOL_SIZE};
use crate::mapper::Mapper;
use crate::memory::GuestMem;

/// Every provider of one guest.
pub struct Providers {
    guest_ram: GuestRamProvider,
    zero: ZeroProvider<GuestMem>,
    page_buffer: PageBuffer,
    page_buffer_lazy: PageBuffer,
    huge: HugePageProvider,
    bars: Vec<BarProvider>,
    bar_regions: Vec<BarRegionProvider>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").field("bars", &self.bars.len()).finish_non_exhaustive()
    }
}

impl Providers {
    /// Builds the providers and fills the page buffer and the huge-page
    /// region with their patterns.
    pub fn new(mapper: &Mapper, mem: &GuestMem, bars: &[BarWindow]) -> Result<Self, MmError> {
        let space = mapper.space();
        // The guest-RAM provider never maps the pool, the load region or the
        // huge-page region: those belong to other providers.
        let guest_ram = GuestRamProvider::new(
            space.layout(),
            &[
                (GuestAddress(POOL_PA), POOL_SIZE),
                (GuestAddress(LOAD_PA), LOAD_SIZE),
                (GuestAddress(HUGE_PA), HUGE_SIZE),
            ],
        );
        let zero = ZeroProvider::new(space.frames().clone(), mem.clone());
        let page_buffer = PageBuffer::new(space.frames(), PAGE_BUFFER_PAGES)?;
        for (i, &pfn) in page_buffer.pages().iter().enumerate() {
            let bytes: Vec<u8> = (0..PAGE_SIZE / 8).flat_map(|w| page_pattern(i as u64, w).to_le_bytes()).collect();
            mem.write_slice(&bytes, pfn.addr()).map_err(|_| MmError::GuestMemory { addr: pfn.addr().0 })?;
        }
        let page_buffer_lazy = page_buffer.lazy();
        let huge = HugePageProvider::new(GuestAddress(HUGE_PA), HUGE_SIZE, PageSize::Size2M)?;
        for page in (HUGE_PA..HUGE_PA + HUGE_SIZE).step_by(PAGE_SIZE as usize) {
            let bytes: Vec<u8> = (0..PAGE_SIZE / 8).flat_map(|w| huge_pattern(page + w * 8).to_le_bytes()).collect();
            mem.write_slice(&bytes, GuestAddress(page)).map_err(|_| MmError::GuestMemory { addr: page })?;
        }
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
        self.page_buffer.pages()
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
