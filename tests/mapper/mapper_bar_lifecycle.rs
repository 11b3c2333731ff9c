//! A BAR window counts the VMAs that map it through `mapped`, `open` and
//! `close` (splits, partial unmaps, fixed replaces, rollbacks) and refuses
//! to be removed while any is left.
//!
//! Needs the `devices` crate (the root package's default `vmm-stack`
//! feature), unlike the other mapper tests.

use devices::{BarProvider, BarWindow};
use guest_mm::{errno, MmError, MmapProvider, MmapRequest, VmFlags, VmaDesc, PAGE_SIZE};
use vm_memory::GuestAddress;
use vmm_suite::fixture::{space, va, Layout};

const L: Layout = Layout::SMALL;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
const W: BarWindow = BarWindow::uncached(GuestAddress(0xe000_0000), 16 * PAGE_SIZE);

#[test]
fn a_window_is_counted_through_splits_and_cannot_be_removed_while_mapped() {
    let mut s = space(&L);
    let bar = BarProvider::new(0, W);
    let a = s.mmap(&bar, &MmapRequest::shared(W.size, RW)).expect("map").addr;
    let b = s.mmap(&bar, &MmapRequest::shared(W.size, RW)).expect("map twice").addr;
    assert_eq!(bar.mapped_vmas(), 2);
    // A hole splits the first in two; an mprotect in the second makes three.
    s.munmap(a.checked_add(4 * PAGE_SIZE).expect("va"), 2 * PAGE_SIZE).expect("hole").ignore();
    s.mprotect(b.checked_add(4 * PAGE_SIZE).expect("va"), 2 * PAGE_SIZE, VmFlags::READ).expect("ro").ignore();
    let carrying =
        |s: &guest_mm::AddressSpace<vmm_suite::fixture::Mem>| s.vmas().filter(|v| v.provider_name() == "bar0").count();
    assert_eq!(bar.mapped_vmas(), carrying(&s));
    assert_eq!(bar.mapped_vmas(), 5);
    assert_eq!(bar.remove().expect_err("busy").errno(), errno::EBUSY);
    // A fixed mapping that fails after its VMA existed puts the old pieces
    // back without counting anything twice.
    struct Failing;
    impl MmapProvider for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn mmap_prepare(&self, d: &mut VmaDesc) -> Result<(), MmError> {
            d.set_success_hook(Box::new(|_| Err(MmError::OutOfMemory("injected"))));
            Ok(())
        }
    }
    assert!(s.mmap(&Failing, &MmapRequest::shared(8 * PAGE_SIZE, RW).fixed(b)).is_err());
    assert_eq!(bar.mapped_vmas(), 5);
    // A successful fixed replace over part of a window.
    s.mmap(&Nothing, &MmapRequest::shared(2 * PAGE_SIZE, RW).fixed(a)).expect("replace").flush.ignore();
    assert_eq!(bar.mapped_vmas(), carrying(&s));
    s.munmap(va(L.window.0), L.window.1 - L.window.0).expect("all").ignore();
    assert_eq!(bar.mapped_vmas(), 0);
    bar.remove().expect("unmapped window may go");
    let e = s.mmap(&bar, &MmapRequest::shared(W.size, RW)).expect_err("removed");
    assert_eq!(e.errno(), errno::ENXIO);
}

struct Nothing;
impl MmapProvider for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    fn mmap_prepare(&self, _: &mut VmaDesc) -> Result<(), MmError> {
        Ok(())
    }
}
