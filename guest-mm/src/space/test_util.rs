//! The address space the space/ unit tests share: 64 MiB of guest RAM, the
//! page tables at 48 MiB, a 64 MiB mmap window at 4 GiB (and, for lazy
//! anonymous memory, a page pool at 40 MiB).

#![allow(clippy::unwrap_used)]

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::{AddressSpace, SpaceConfig};
use crate::addr::GuestVirtAddr;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;

/// The mmap window, `[start, end)`.
pub(super) const WINDOW: (u64, u64) = (1 << 32, (1 << 32) + (64 << 20));

/// `a` as a canonical address (panics otherwise).
pub(super) fn va(a: u64) -> GuestVirtAddr {
    GuestVirtAddr::try_new(a).unwrap()
}

/// A fresh address space over 64 MiB of guest RAM.
pub(super) fn space() -> AddressSpace<GuestMemoryMmap<()>> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    AddressSpace::new(mem, cfg).unwrap()
}

/// A fresh address space over 64 MiB of guest RAM with a 4 MiB page
/// pool at 40 MiB (for lazy anonymous memory).
pub(super) fn pool_space() -> AddressSpace<GuestMemoryMmap<()>> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    AddressSpace::new(mem, cfg).unwrap()
}

/// A provider of empty VMAs (no action, no ops): mergeable with their like.
pub(super) struct Plain;

impl MmapProvider for Plain {
    fn name(&self) -> &str {
        "plain"
    }
    fn mmap_prepare(&self, _desc: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}

/// A provider of empty VMAs that sets `.0` and then clears `.1` in its
/// descriptor's flags, as a provider may.
pub(super) struct Flags(pub VmFlags, pub VmFlags);

impl MmapProvider for Flags {
    fn name(&self) -> &str {
        "flags"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.set_flags(self.0);
        desc.clear_flags(self.1);
        Ok(())
    }
}

/// A fresh address space like [`space`] with a 4 MiB page pool at 40 MiB
/// (1,024 pages) for anonymous memory.
pub(super) fn pooled_space() -> AddressSpace<GuestMemoryMmap<()>> {
    pooled_space_limited(super::DEFAULT_MAX_MAP_COUNT)
}

/// [`pooled_space`] with at most `max_map_count` VMAs.
pub(super) fn pooled_space_limited(max_map_count: usize) -> AddressSpace<GuestMemoryMmap<()>> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.mmap_window = (va(WINDOW.0), va(WINDOW.1));
    cfg.pool_region = Some((GuestAddress(40 << 20), 4 << 20));
    cfg.max_map_count = max_map_count;
    AddressSpace::new(mem, cfg).unwrap()
}

/// The first 8 bytes of the page `at` maps, read through a walk of the
/// page tables; `None` if no entry maps it.
pub(super) fn read_tag(s: &AddressSpace<GuestMemoryMmap<()>>, at: GuestVirtAddr) -> Option<u64> {
    use vm_memory::Bytes;
    let t = s.page_tables().translate(at)?;
    Some(s.memory().read_obj::<u64>(t.phys).unwrap())
}

/// Writes `tag` into the page `at` maps, after a write fault made it a
/// private writable page (panics if the fault fails or the entry is not
/// writable).
pub(super) fn write_tag(s: &mut AddressSpace<GuestMemoryMmap<()>>, at: GuestVirtAddr, tag: u64) {
    use vm_memory::Bytes;
    s.fault(at, crate::vma::FaultAccess::WRITE).unwrap().flush.ignore();
    let t = s.page_tables().translate(at).unwrap();
    assert!(t.prot.writable, "{at:#x} not writable after a write fault");
    s.memory().write_obj(tag, t.phys).unwrap();
}

/// Panics with the list if the space breaks an invariant.
pub(super) fn assert_sound(s: &AddressSpace<GuestMemoryMmap<()>>) {
    let (_, violations) = s.check_invariants();
    assert!(violations.is_empty(), "{violations:?}");
}

/// A space over [`pool_space`] with one-page faults (as Linux maps
/// anonymous memory), and a zero provider for its lazy mappings.
pub(super) fn lazy_space() -> (AddressSpace<GuestMemoryMmap<()>>, crate::providers::ZeroProvider<GuestMemoryMmap<()>>) {
    let mut s = pool_space();
    s.set_fault_around(1).unwrap();
    let z = crate::providers::ZeroProvider::new(s.frames().clone(), s.memory().clone());
    (s, z)
}

/// A private anonymous read/write mapping of `pages` pages fixed at `at`.
pub(super) fn anon_rw(
    s: &mut AddressSpace<GuestMemoryMmap<()>>,
    z: &crate::providers::ZeroProvider<GuestMemoryMmap<()>>,
    at: u64,
    pages: u64,
) {
    let rw = VmFlags::READ.union(VmFlags::WRITE);
    let req = super::MmapRequest::private(pages * crate::addr::PAGE_SIZE, rw).fixed(va(at)).anonymous();
    s.mmap(z, &req).unwrap().flush.ignore();
}
