//! A standard guest layout for mapper tests and benchmarks.

use guest_mm::{AddressSpace, GuestVirtAddr, SpaceConfig};
use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Guest memory type used by the tests.
pub type Mem = GuestMemoryMmap<()>;

/// Where things are in the test guest's physical memory.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Total RAM.
    pub ram: u64,
    /// Page-table region (VMM reserved).
    pub tables: (u64, u64),
    /// Kernel page pool.
    pub pool: (u64, u64),
    /// A 2 MiB-aligned region for the huge-page provider.
    pub huge: (u64, u64),
    /// The mmap placement window.
    pub window: (u64, u64),
}

impl Layout {
    /// 64 MiB of RAM: tables at 48 MiB (4 MiB), pool at 32 MiB (8 MiB),
    /// huge pages at 16 MiB (8 MiB), window of 64 MiB at 64 GiB.
    pub const SMALL: Layout = Layout {
        ram: 64 << 20,
        tables: (48 << 20, 4 << 20),
        pool: (32 << 20, 8 << 20),
        huge: (16 << 20, 8 << 20),
        window: (64 << 30, (64 << 30) + (64 << 20)),
    };
}

/// Guest memory and an empty address space for `l`.
pub fn space(l: &Layout) -> AddressSpace<Mem> {
    let mem = Mem::from_ranges(&[(GuestAddress(0), l.ram as usize)]).expect("guest memory");
    space_over(mem, l)
}

/// An empty address space over existing memory.
pub fn space_over(mem: Mem, l: &Layout) -> AddressSpace<Mem> {
    let mut cfg = SpaceConfig::new((GuestAddress(l.tables.0), l.tables.1));
    cfg.pool_region = Some((GuestAddress(l.pool.0), l.pool.1));
    cfg.mmap_window = (va(l.window.0), va(l.window.1));
    AddressSpace::new(mem, cfg).expect("address space")
}

/// A guest-virtual address; panics on a non-canonical constant.
pub fn va(a: u64) -> GuestVirtAddr {
    GuestVirtAddr::try_new(a).expect("canonical address")
}
