//! The VMA count limit (`vm.max_map_count`): a mapping storm stops with
//! `ENOMEM` exactly at the limit, every operation that would need one VMA
//! more (a new mapping, a munmap or mprotect that splits, a fixed mapping
//! that splits what it replaces) is refused with nothing changed, the
//! address space stays consistent (VMAs against an independent walk of
//! the tables), and after a munmap the guest can map again.

use guest_mm::providers::GuestRamProvider;
use guest_mm::{errno, AddressSpace, MmapRequest, SpaceConfig, VmFlags, PAGE_SIZE};
use vm_memory::GuestAddress;
use vmm_suite::census::census;
use vmm_suite::fixture::{va, Layout, Mem};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
const LIMIT: usize = 300;

fn space_with_limit(limit: usize) -> AddressSpace<Mem> {
    let mem = Mem::from_ranges(&[(GuestAddress(0), L.ram as usize)]).expect("memory");
    let mut cfg = SpaceConfig::new((GuestAddress(L.tables.0), L.tables.1));
    cfg.pool_region = Some((GuestAddress(L.pool.0), L.pool.1));
    cfg.mmap_window = (va(L.window.0), va(L.window.1));
    cfg.max_map_count = limit;
    AddressSpace::new(mem, cfg).expect("address space")
}

/// VMAs are ordered and disjoint, every mapped page lies in a VMA, and
/// the independent walk counts exactly the leaves the VMAs should hold
/// (each VMA here maps all its pages with 4 KiB leaves).
fn consistent(s: &AddressSpace<Mem>) {
    let vmas: Vec<(u64, u64)> = s.vmas().map(|v| (v.start().raw(), v.end())).collect();
    assert!(vmas.windows(2).all(|w| w[0].1 <= w[1].0), "VMAs overlap or are unordered");
    let pages: u64 = vmas.iter().map(|(a, b)| (b - a) / PAGE_SIZE).sum();
    let c = census(s.memory(), s.cr3());
    assert_eq!(c.leaves, [pages, 0, 0], "walk disagrees with the VMAs");
    assert_eq!(c.empty_tables, 0);
    for l in s.page_tables().leaves(va(L.window.0), L.window.1 - L.window.0) {
        assert!(s.find_vma(l.va).is_some(), "leaf at {:#x} outside every VMA", l.va.raw());
    }
    assert_eq!(s.stats().vmas, vmas.len());
}

/// One page of guest RAM, frame `0x100 + i`, as its own VMA (a remap is
/// `VM_SPECIAL`: neighbours never merge).
fn one_page(i: u64) -> MmapRequest {
    MmapRequest::shared(PAGE_SIZE, RW).pgoff(0x100 + i % 0x100)
}

#[test]
fn the_default_is_linux_default() {
    assert_eq!(SpaceConfig::new((GuestAddress(L.tables.0), L.tables.1)).max_map_count, 65530);
}

#[test]
fn a_mapping_storm_stops_at_the_limit_and_recovers_after_munmap() {
    let mut s = space_with_limit(LIMIT);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    let mut addrs = Vec::new();
    let err = loop {
        match s.mmap(&ram, &one_page(addrs.len() as u64)) {
            Ok(m) => {
                m.flush.ignore();
                addrs.push(m.addr);
                assert!(addrs.len() <= LIMIT, "mapped past the limit");
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.errno(), errno::ENOMEM, "{err}");
    assert_eq!(addrs.len(), LIMIT);
    assert!(s.take_deferred_flush().is_empty());
    consistent(&s);
    // Still refused, with a hint, a fixed address, and for a big mapping.
    let free = va(L.window.0);
    for req in [one_page(7).fixed_noreplace(free), MmapRequest::shared(64 * PAGE_SIZE, RW).pgoff(0x100)] {
        assert_eq!(s.mmap(&ram, &req).map(|m| m.addr).unwrap_err().errno(), errno::ENOMEM);
    }
    consistent(&s);
    // Unmapping one makes room for exactly one.
    s.munmap(addrs[10], PAGE_SIZE).expect("munmap").ignore();
    s.mmap(&ram, &one_page(1).fixed_noreplace(free)).expect("room again").flush.ignore();
    assert_eq!(s.mmap(&ram, &one_page(2)).map(|m| m.addr).unwrap_err().errno(), errno::ENOMEM);
    // A fixed mapping that replaces one VMA exactly needs no more.
    s.mmap(&ram, &one_page(3).fixed(addrs[20])).expect("replace one").flush.ignore();
    consistent(&s);
    assert_eq!(s.stats().vmas, LIMIT);
}

#[test]
fn splits_at_the_limit_are_refused_and_change_nothing() {
    let mut s = space_with_limit(LIMIT);
    let ram = GuestRamProvider::new(s.layout(), &[]);
    // One 8-page VMA, then single pages up to the limit.
    let big = s.mmap(&ram, &MmapRequest::shared(8 * PAGE_SIZE, RW).pgoff(0x300)).expect("big");
    big.flush.ignore();
    for i in 1..LIMIT as u64 {
        s.mmap(&ram, &one_page(i)).expect("fill").flush.ignore();
    }
    assert_eq!(s.stats().vmas, LIMIT);
    let mid = va(big.addr.raw() + 2 * PAGE_SIZE);
    let snapshot =
        |s: &AddressSpace<Mem>| (s.vmas().map(|v| format!("{v:?}")).collect::<Vec<_>>(), census(s.memory(), s.cr3()));
    let before = snapshot(&s);
    // munmap of the middle (1 VMA becomes 2).
    assert_eq!(s.munmap(mid, PAGE_SIZE).map(|f| f.ignore()).unwrap_err().errno(), errno::ENOMEM);
    assert_eq!(snapshot(&s), before);
    // mprotect of the middle (1 becomes 3).
    let e = s.mprotect(mid, PAGE_SIZE, VmFlags::READ).map(|f| f.ignore()).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
    assert_eq!(snapshot(&s), before);
    // A fixed mapping over the middle (1 becomes 3).
    let e = s.mmap(&ram, &one_page(0).fixed(mid)).map(|m| m.addr).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
    assert_eq!(snapshot(&s), before);
    assert!(s.take_deferred_flush().is_empty());
    consistent(&s);
    // munmap at an edge shrinks the VMA: allowed. mprotect at an edge
    // still splits (1 becomes 2): refused.
    s.munmap(big.addr, PAGE_SIZE).expect("head").ignore();
    let tail = va(big.addr.raw() + 7 * PAGE_SIZE);
    let e = s.mprotect(tail, PAGE_SIZE, VmFlags::READ).map(|f| f.ignore()).unwrap_err();
    assert_eq!(e.errno(), errno::ENOMEM);
    consistent(&s);
    // One below the limit, the middle munmap fits.
    let single = s.vmas().find(|v| v.pages() == 1).map(|v| v.start()).expect("a single page");
    s.munmap(single, PAGE_SIZE).expect("one less").ignore();
    s.munmap(va(big.addr.raw() + 4 * PAGE_SIZE), PAGE_SIZE).expect("middle").ignore();
    assert_eq!(s.stats().vmas, LIMIT);
    consistent(&s);
}
