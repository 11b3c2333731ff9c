//! Forced access (`read_forced`, `write_forced`): an example of each rule
//! in `remote.rs`, checked by walking the page tables and reading guest
//! memory at the frames found, then property tests of random sequences
//! (forced writes and reads among maps, protects, writes, discards and
//! moves) against the reference model in `anon_model.rs`, which checks
//! after every step that a read-only page is never writable.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vm_memory::{Bytes, GuestMemoryMmap};

use super::anon_model::{Op, World, REGION};
use super::test_util::{assert_sound, pooled_space, read_tag, va, Flags, WINDOW};
use super::{AddressSpace, MmapRequest};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::providers::{ShmemObject, ZeroProvider};
use crate::vma::FaultAccess;

const P: u64 = PAGE_SIZE;
type Space = AddressSpace<GuestMemoryMmap<()>>;

fn anon(s: &mut Space, z: &ZeroProvider<GuestMemoryMmap<()>>, at: u64, pages: u64, prot: VmFlags) {
    let req = MmapRequest::private(pages * P, prot).fixed(va(at)).pgoff(at >> PAGE_SHIFT);
    s.mmap(z, &req).unwrap().flush.ignore();
}

fn write(s: &mut Space, at: u64, data: &[u8]) -> Result<usize, MmError> {
    s.write_forced(va(at), data).map(|f| {
        f.flush.ignore();
        f.bytes
    })
}

fn read(s: &mut Space, at: u64, len: usize) -> Result<Vec<u8>, MmError> {
    let mut buf = vec![0u8; len];
    let n = s.read_forced(va(at), &mut buf).map(|f| {
        f.flush.ignore();
        f.bytes
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// The byte at `at` in the frame a walk finds (present or PROT_NONE).
fn byte_at(s: &Space, at: u64) -> u8 {
    let leaf = s.page_tables().used_leaf(va(at)).unwrap();
    s.memory().read_obj::<u8>(leaf.phys).unwrap()
}

#[test]
fn a_forced_write_into_a_read_only_zero_page_copies_and_stays_read_only() {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    anon(&mut s, &z, a, 2, VmFlags::READ);
    // Both pages read: the shared zero page, copy-on-write.
    s.fault(va(a), FaultAccess::READ).unwrap().flush.ignore();
    s.mprotect(va(a + P), P, VmFlags::READ).unwrap().ignore();
    s.fault(va(a + P), FaultAccess::READ).unwrap().flush.ignore();
    let zero = s.page_tables().translate(va(a)).unwrap().pfn;
    assert_eq!(s.page_tables().translate(va(a + P)).unwrap().pfn, zero);
    let free = s.stats().pool_free;
    let f = s.write_forced(va(a + 5), &[1]).unwrap();
    assert_eq!(f.bytes, 1);
    // The zero page's entry was replaced: it must be flushed.
    assert_eq!(f.flush.ranges(), &[(va(a), P)]);
    let t = s.page_tables().translate(va(a)).unwrap();
    assert_ne!(t.pfn, zero, "a private copy");
    assert!(!t.prot.writable, "still read-only");
    assert!(!s.page_tables().is_copy_on_write(va(a)), "private now");
    assert_eq!(s.stats().pool_free, free - 1);
    assert_eq!(byte_at(&s, a + 5), 1);
    // The zero page itself is untouched, and still mapped next door.
    assert_eq!(s.memory().read_obj::<u64>(zero.addr()).unwrap(), 0);
    assert_eq!(read(&mut s, a + P, 8).unwrap(), vec![0; 8]);
    assert_eq!(read(&mut s, a, 8).unwrap(), vec![0, 0, 0, 0, 0, 1, 0, 0]);
    // The guest's own write still faults: the VMA has no WRITE.
    assert_eq!(s.fault(va(a), FaultAccess::WRITE).unwrap_err().errno(), errno::EACCES);
    // A second forced write goes to the same private page.
    write(&mut s, a + 6, &[2]).unwrap();
    assert_eq!(s.page_tables().translate(va(a)).unwrap().pfn, t.pfn);
    assert_eq!(s.stats().pool_free, free - 1);
    // mprotect may make the private page writable; its bytes stay.
    s.mprotect(va(a), 2 * P, VmFlags::READ | VmFlags::WRITE).unwrap().ignore();
    assert!(s.page_tables().translate(va(a)).unwrap().prot.writable);
    assert!(!s.page_tables().translate(va(a + P)).unwrap().prot.writable, "the zero page stays read-only");
    assert_eq!(byte_at(&s, a + 6), 2);
    assert_sound(&s);
}

#[test]
fn a_forced_write_fills_an_absent_page_read_only_and_reads_see_it() {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    anon(&mut s, &z, a, 4, VmFlags::READ | VmFlags::EXEC);
    // Across a page boundary, both absent.
    assert_eq!(write(&mut s, a + P - 2, &[7, 8, 9, 10]), Ok(4));
    for page in [a, a + P] {
        let t = s.page_tables().translate(va(page)).unwrap();
        assert!(!t.prot.writable && !s.page_tables().is_copy_on_write(va(page)));
    }
    assert_eq!(byte_at(&s, a + P - 1), 8);
    assert_eq!(byte_at(&s, a + P + 1), 10);
    assert_eq!(read(&mut s, a + P - 2, 4).unwrap(), vec![7, 8, 9, 10]);
    // Untouched pages stay absent.
    assert!(s.page_tables().used_leaf(va(a + 2 * P)).is_none());
    assert_sound(&s);
}

#[test]
fn prot_none_private_memory_is_read_and_written_through_its_leaves() {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    anon(&mut s, &z, a, 2, VmFlags::empty());
    // An absent page reads as zeros and stays absent.
    assert_eq!(read(&mut s, a, 4).unwrap(), vec![0; 4]);
    assert!(s.page_tables().used_leaf(va(a)).is_none());
    // A write maps a private PROT_NONE leaf the CPU faults on.
    assert_eq!(write(&mut s, a + 1, &[5]), Ok(1));
    assert!(s.page_tables().translate(va(a)).is_none());
    let leaf = s.page_tables().used_leaf(va(a)).unwrap();
    assert!(!leaf.present && !leaf.copy_on_write);
    assert_eq!(byte_at(&s, a + 1), 5);
    assert_eq!(read(&mut s, a, 2).unwrap(), vec![0, 5]);
    assert_eq!(s.fault(va(a), FaultAccess::READ).unwrap_err().errno(), errno::EACCES);
    // Readable again: the same private page, read-only.
    s.mprotect(va(a), P, VmFlags::READ).unwrap().ignore();
    let t = s.page_tables().translate(va(a)).unwrap();
    assert_eq!((t.phys, t.prot.writable), (leaf.phys, false));
    // A PROT_NONE copy-on-write leaf (the zero page made PROT_NONE) is
    // copied on a forced write, and the copy stays PROT_NONE.
    s.mprotect(va(a + P), P, VmFlags::READ).unwrap().ignore();
    s.fault(va(a + P), FaultAccess::READ).unwrap().flush.ignore();
    let zero = s.page_tables().translate(va(a + P)).unwrap().phys;
    s.mprotect(va(a + P), P, VmFlags::empty()).unwrap().ignore();
    assert!(s.page_tables().used_leaf(va(a + P)).unwrap().copy_on_write);
    assert_eq!(write(&mut s, a + P, &[9]), Ok(1));
    let leaf = s.page_tables().used_leaf(va(a + P)).unwrap();
    assert!(!leaf.present && !leaf.copy_on_write && leaf.phys != zero);
    assert_eq!(s.memory().read_obj::<u8>(zero).unwrap(), 0, "the zero page is untouched");
    assert_sound(&s);
}

#[test]
fn a_private_mapping_of_an_object_is_copied_and_the_object_never_written() {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let o = ShmemObject::new("memfd:t", s.frames().clone(), s.memory().clone(), 2 * P).unwrap();
    o.write_at(0, b"file").unwrap();
    let a = WINDOW.0 + 16 * P;
    s.mmap(&o, &MmapRequest::private(2 * P, VmFlags::READ).fixed(va(a))).unwrap().flush.ignore();
    assert_eq!(read(&mut s, a, 4).unwrap(), b"file");
    assert!(s.page_tables().is_copy_on_write(va(a)));
    assert_eq!(write(&mut s, a, b"mine"), Ok(4));
    assert_eq!(read(&mut s, a, 4).unwrap(), b"mine");
    let mut back = [0u8; 4];
    o.read_at(0, &mut back).unwrap();
    assert_eq!(&back, b"file", "the object keeps its bytes");
    assert_ne!(s.page_tables().translate(va(a)).unwrap().pfn, o.frame(0).unwrap());
    assert!(!s.page_tables().translate(va(a)).unwrap().prot.writable);
    // A shared read-only mapping of it: readable, never forced writable.
    let b = a + 8 * P;
    s.mmap(&o, &MmapRequest::shared(2 * P, VmFlags::READ).fixed(va(b))).unwrap().flush.ignore();
    assert_eq!(read(&mut s, b, 4).unwrap(), b"file");
    assert_eq!(write(&mut s, b, b"xx").unwrap_err().errno(), errno::EACCES);
    o.read_at(0, &mut back).unwrap();
    assert_eq!(&back, b"file");
    // A shared writable one is written as the guest would write it.
    let c = a + 16 * P;
    let rw = VmFlags::READ | VmFlags::WRITE;
    s.mmap(&o, &MmapRequest::shared(2 * P, rw).fixed(va(c))).unwrap().flush.ignore();
    assert_eq!(write(&mut s, c + 1, b"ee"), Ok(2));
    o.read_at(0, &mut back).unwrap();
    assert_eq!(&back, b"feee");
    assert_sound(&s);
}

#[test]
fn unmapped_io_and_partial_transfers_are_refused_or_short() {
    let mut s = pooled_space();
    s.set_fault_around(1).unwrap();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    anon(&mut s, &z, a, 1, VmFlags::READ | VmFlags::WRITE);
    // Nothing mapped at the start: the first page's error.
    assert_eq!(read(&mut s, a - P, 8), Err(MmError::NotMapped { addr: a - P }));
    assert_eq!(write(&mut s, a + P, &[1]), Err(MmError::NotMapped { addr: a + P }));
    // Running off the end: the bytes before the hole.
    assert_eq!(write(&mut s, a + P - 3, &[1; 8]), Ok(3));
    assert_eq!(read(&mut s, a + P - 3, 8).unwrap(), vec![1; 3]);
    assert!(s.find_vma(va(a + P)).is_none(), "nothing mapped by it");
    // An I/O mapping is never forced, even for a read.
    let io = WINDOW.0 + 32 * P;
    let req = MmapRequest::private(P, VmFlags::READ | VmFlags::WRITE).fixed(va(io));
    s.mmap(&Flags(VmFlags::IO | VmFlags::PFNMAP, VmFlags::empty()), &req).unwrap().flush.ignore();
    assert_eq!(read(&mut s, io, 1).unwrap_err().errno(), errno::EACCES);
    assert_eq!(write(&mut s, io, &[1]).unwrap_err().errno(), errno::EACCES);
    // A private mapping that may never be written (MAYWRITE cleared).
    let ro = WINDOW.0 + 40 * P;
    let req = MmapRequest::private(P, VmFlags::READ).fixed(va(ro));
    s.mmap(&Flags(VmFlags::empty(), VmFlags::MAYWRITE), &req).unwrap().flush.ignore();
    assert_eq!(write(&mut s, ro, &[1]).unwrap_err().errno(), errno::EACCES);
    // The supervisor half and an empty transfer.
    assert!(read(&mut s, 0xffff_8000_0000_0000, 1).is_err());
    assert_eq!(read(&mut s, a, 0).unwrap(), Vec::<u8>::new());
    assert_sound(&s);
}

#[test]
fn the_model_sees_forced_writes_in_read_only_pages() {
    let mut w = World::new();
    w.apply(&Op::Map { page: 8, pages: 8 });
    w.apply(&Op::Read { page: 9 });
    w.apply(&Op::Protect { page: 8, pages: 8, write: false });
    w.apply(&Op::ForceWrite { page: 9 });
    w.apply(&Op::ForceWrite { page: 10 });
    w.apply(&Op::Write { page: 9 });
    w.apply(&Op::ForceRead { page: 9 });
    w.apply(&Op::Move { page: 8, pages: 4, to: Some(40), dont_unmap: false });
    w.apply(&Op::Protect { page: 40, pages: 4, write: true });
    w.apply(&Op::Write { page: 41 });
    w.apply(&Op::ForceRead { page: 42 });
    w.apply(&Op::ForceWrite { page: 60 });
}

fn span() -> impl Strategy<Value = (u64, u64)> {
    (0..REGION).prop_flat_map(|p| (Just(p), 1..=(REGION - p).min(12)))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => span().prop_map(|(page, pages)| Op::Map { page, pages }),
        1 => span().prop_map(|(page, pages)| Op::Unmap { page, pages }),
        3 => (span(), any::<bool>()).prop_map(|((page, pages), write)| Op::Protect { page, pages, write }),
        1 => span().prop_map(|(page, pages)| Op::DontNeed { page, pages }),
        1 => span().prop_map(|(page, pages)| Op::Seal { page, pages }),
        3 => (0..REGION).prop_map(|page| Op::Write { page }),
        2 => (0..REGION).prop_map(|page| Op::Read { page }),
        4 => (0..REGION).prop_map(|page| Op::ForceWrite { page }),
        3 => (0..REGION).prop_map(|page| Op::ForceRead { page }),
        1 => (span(), prop::option::of(0..REGION), any::<bool>())
            .prop_map(|((page, pages), to, dont_unmap)| Op::Move { page, pages, to, dont_unmap }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn forced_access_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        w.apply(&Op::Map { page: 8, pages: 24 });
        w.apply(&Op::Protect { page: 16, pages: 8, write: false });
        for op in &ops {
            w.apply(op);
        }
    }
}

#[test]
fn read_tag_agrees_with_forced_reads() {
    let mut s = pooled_space();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let a = WINDOW.0 + 16 * P;
    anon(&mut s, &z, a, 1, VmFlags::READ);
    write(&mut s, a, &0x1234u64.to_le_bytes()).unwrap();
    assert_eq!(read_tag(&s, va(a)), Some(0x1234));
}
