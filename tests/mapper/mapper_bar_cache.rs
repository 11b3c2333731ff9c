//! A BAR window's cache mode reaches the page-table entries the guest
//! walks (issue 20 item 15): an uncached window's leaves select the PAT
//! entry for UC (PCD | PWT), a write-combining window's the PAT entry for
//! WC (index 4: the PAT bit alone), for the whole window and the region
//! provider alike, and `mprotect` keeps the mode. Read with the
//! independent walker (`vmm_suite::walk`), not through guest-mm.
//!
//! Needs the `devices` crate (the root package's default `vmm-stack`
//! feature), unlike the other mapper tests.

use devices::{BarProvider, BarRegionProvider, BarWindow};
use guest_mm::{CacheMode, MmapProvider, MmapRequest, VmFlags, PAGE_SIZE};
use vm_memory::GuestAddress;
use vmm_suite::fixture::{space, va, Layout, Mem};
use vmm_suite::walk::{leaves, CACHE};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
const BASE: GuestAddress = GuestAddress(0xe000_0000);
const SIZE: u64 = 16 * PAGE_SIZE;
/// 4 KiB-entry cache bits: PWT, PCD, PAT.
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PAT: u64 = 1 << 7;

/// Maps `p` shared read-write and returns each leaf's (pa, cache bits).
fn mapped(s: &mut guest_mm::AddressSpace<Mem>, p: &dyn MmapProvider, len: u64, pgoff: u64) -> Vec<(u64, u64)> {
    let m = s.mmap(p, &MmapRequest::shared(len, RW).pgoff(pgoff)).expect("map");
    m.flush.ignore();
    let (start, end) = (m.addr.raw(), m.addr.raw() + len);
    leaves(s.memory(), s.cr3())
        .into_iter()
        .filter(|l| l.va >= start && l.end() <= end)
        .map(|l| (l.pa, l.attrs & CACHE))
        .collect()
}

#[test]
fn uncached_and_write_combining_windows_select_their_pat_entries() {
    for (cache, bits) in [(CacheMode::Uncached, PCD | PWT), (CacheMode::WriteCombining, PAT)] {
        let mut s = space(&L);
        let w = BarWindow { base: BASE, size: SIZE, cache };
        let got = mapped(&mut s, &BarProvider::new(0, w), SIZE, 0);
        let want: Vec<(u64, u64)> = (0..16).map(|i| (BASE.0 + i * PAGE_SIZE, bits)).collect();
        assert_eq!(got, want, "{cache:?} window");
        let region = BarRegionProvider::new(0, w, 0x100, 0x2f00).expect("region");
        let got = mapped(&mut s, &region, PAGE_SIZE, 0);
        assert_eq!(got, vec![(BASE.0, bits)], "{cache:?} region");
    }
}

#[test]
fn mprotect_keeps_a_write_combining_window_write_combining() {
    let mut s = space(&L);
    let w = BarWindow { base: BASE, size: SIZE, cache: CacheMode::WriteCombining };
    let bar = BarProvider::new(0, w);
    let m = s.mmap(&bar, &MmapRequest::shared(SIZE, RW)).expect("map");
    m.flush.ignore();
    s.mprotect(va(m.addr.raw() + 4 * PAGE_SIZE), 2 * PAGE_SIZE, VmFlags::READ).expect("ro").ignore();
    let all = leaves(s.memory(), s.cr3());
    let bar_leaves: Vec<_> = all.iter().filter(|l| l.va >= m.addr.raw() && l.end() <= m.addr.raw() + SIZE).collect();
    assert_eq!(bar_leaves.len(), 16);
    assert!(bar_leaves.iter().all(|l| l.attrs & CACHE == PAT), "{bar_leaves:?}");
}
