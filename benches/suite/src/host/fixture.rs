//! The host-side benchmark fixture: 2 GiB of guest memory, an empty
//! address space over it, and 262,144 scattered frames to map.
//!
//! Guest memory is mapped lazily; only page-table pages (and the floor's
//! store target) are ever touched, so the fixture costs a few MiB.

use std::sync::Arc;

use guest_mm::{AddressSpace, GuestVirtAddr, PageArray, Pfn, SpaceConfig};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::error::BenchError;

/// Guest memory of the host-side benchmarks.
pub type Mem = GuestMemoryMmap<()>;

/// How many scattered frames item 1 maps.
pub const PAGES: u64 = 262_144;

/// Guest RAM.
pub const RAM: u64 = 2 << 30;
/// Our page-table region (start, size).
pub const TABLES: (u64, u64) = (1900 << 20, 64 << 20);
/// Our kernel page pool (start, size).
pub const POOL: (u64, u64) = (1800 << 20, 4 << 20);
/// The region the peers' tables (and the floor's stores) use, apart from
/// ours so they never disturb our tables.
pub const PEER_TABLES: (u64, u64) = (1968 << 20, 64 << 20);
/// The mmap placement window: 16 GiB from 64 GiB (1 GiB aligned).
pub const WINDOW: (u64, u64) = (64 << 30, 80 << 30);
/// The first frame of the scattered set (256 MiB).
const FIRST_FRAME: u64 = 0x10000;

/// Guest memory, an empty address space and the scattered frames.
pub struct Fixture {
    /// The address space under test.
    pub space: AddressSpace<Mem>,
    /// Frames `FIRST_FRAME..FIRST_FRAME + PAGES` in a fixed random order,
    /// pinned in the address space's frame state once, here.
    pub array: PageArray,
}

impl Fixture {
    /// Builds the fixture.
    pub fn new() -> Result<Fixture, BenchError> {
        let mem = Mem::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .map_err(|e| BenchError::Check(format!("guest memory for the host benchmarks: {e}")))?;
        let mut cfg = SpaceConfig::new((GuestAddress(TABLES.0), TABLES.1));
        cfg.pool_region = Some((GuestAddress(POOL.0), POOL.1));
        cfg.mmap_window = (va(WINDOW.0)?, va(WINDOW.1)?);
        // The one-page-per-call sweep holds one VMA per page (page arrays
        // never merge): above the default vm.max_map_count.
        cfg.max_map_count = PAGES as usize + 16;
        let space = AddressSpace::new(mem, cfg).map_err(BenchError::mm("address space"))?;
        let array = PageArray::pin(space.frames(), scattered(PAGES)).map_err(BenchError::mm("pinning the frames"))?;
        Ok(Fixture { space, array })
    }

    /// The frames in mapping order.
    pub fn frames(&self) -> &[Pfn] {
        self.array.as_slice()
    }

    /// The host address of guest-physical `gpa` (valid for the fixture's
    /// lifetime; the memory is one region).
    pub fn host_address(&self, gpa: u64) -> Result<*mut u8, BenchError> {
        self.space
            .memory()
            .get_host_address(GuestAddress(gpa))
            .map_err(|e| BenchError::Check(format!("guest address {gpa:#x}: {e}")))
    }
}

/// A canonical guest-virtual address. The error message is built only on
/// error: this runs inside timed loops' setup.
pub fn va(a: u64) -> Result<GuestVirtAddr, BenchError> {
    GuestVirtAddr::try_new(a).map_err(|source| BenchError::Mm { context: format!("address {a:#x}"), source })
}

/// The addresses of `n` consecutive pieces of `step` bytes from `base`,
/// computed before a timed loop uses them.
pub fn addresses(base: u64, step: u64, n: u64) -> Result<Vec<GuestVirtAddr>, BenchError> {
    (0..n).map(|i| va(base + i * step)).collect()
}

/// `n` distinct frames from `FIRST_FRAME` in a fixed pseudo-random order
/// (a Fisher–Yates shuffle driven by xorshift64, so every run maps the
/// same permutation).
pub fn scattered(n: u64) -> Arc<[Pfn]> {
    let mut v: Vec<Pfn> = (0..n).map(|i| Pfn(FIRST_FRAME + i)).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_is_a_permutation() {
        let v = scattered(4096);
        let mut s: Vec<u64> = v.iter().map(|p| p.0).collect();
        let in_order = s.windows(2).filter(|w| w[1] == w[0] + 1).count();
        s.sort_unstable();
        assert_eq!(s, (FIRST_FRAME..FIRST_FRAME + 4096).collect::<Vec<_>>());
        // Shuffled: almost no neighbours stay consecutive.
        assert!(in_order < 64, "{in_order} consecutive pairs");
    }
}
