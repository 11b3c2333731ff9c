//! Tests of the shared-memory object: its bytes against a `Vec<u8>`
//! model under random writes, truncations and hole punches (with the pool
//! balance: the object holds exactly the pages it says), and its mappings
//! (shared ones see one page, private ones copy on write), checked by
//! walking the page tables and reading guest memory.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::ShmemObject;
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::space::{AddressSpace, MmapRequest, SpaceConfig};
use crate::vma::FaultAccess;

type Mem = GuestMemoryMmap<()>;

fn space() -> AddressSpace<Mem> {
    let mem = Mem::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.pool_region = Some((GuestAddress(40 << 20), 64 * PAGE_SIZE));
    AddressSpace::new(mem, cfg).unwrap()
}

fn object(s: &AddressSpace<Mem>, size: u64) -> ShmemObject<Mem> {
    ShmemObject::new("memfd:test", s.frames().clone(), s.memory().clone(), size).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Punch(u64, u64),
}

/// Offsets and lengths around a few pages, so edges get hit.
fn op() -> impl Strategy<Value = Op> {
    let off = 0u64..6 * PAGE_SIZE;
    prop_oneof![
        3 => (off.clone(), any::<u8>(), 1usize..2 * PAGE_SIZE as usize).prop_map(|(o, b, n)| Op::Write(o, vec![b | 1; n])),
        1 => off.clone().prop_map(Op::SetLen),
        1 => (off, 0u64..3 * PAGE_SIZE).prop_map(|(o, n)| Op::Punch(o, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn bytes_match_the_model_and_pages_balance(ops in proptest::collection::vec(op(), 1..24)) {
        let s = space();
        let free0 = s.stats().pool_free;
        let o = object(&s, 0);
        let mut model: Vec<u8> = Vec::new();
        for op in ops {
            match op {
                Op::Write(off, data) => {
                    prop_assert_eq!(o.write_at(off, &data).unwrap(), data.len());
                    let end = off as usize + data.len();
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
                Op::SetLen(n) => {
                    o.set_len(n).unwrap();
                    model.resize(n as usize, 0);
                }
                Op::Punch(off, n) => {
                    o.punch_hole(off, n).unwrap();
                    let (a, b) = ((off as usize).min(model.len()), ((off + n) as usize).min(model.len()));
                    model[a..b].fill(0);
                }
            }
            prop_assert_eq!(o.len(), model.len() as u64);
            let mut buf = vec![0xeeu8; model.len() + 100];
            prop_assert_eq!(o.read_at(0, &mut buf).unwrap(), model.len());
            prop_assert!(buf[..model.len()] == model[..], "bytes differ from the model");
            // Nothing past the end, and no page held past it.
            prop_assert_eq!(o.read_at(model.len() as u64, &mut buf).unwrap(), 0);
            let pages = o.resident_pages();
            prop_assert!(pages <= o.len().div_ceil(PAGE_SIZE));
            prop_assert_eq!(s.stats().pool_free, free0 - pages as usize, "pool pages");
        }
        drop(o);
        prop_assert_eq!(s.stats().pool_free, free0, "pages not returned with the object");
    }
}

/// The byte at `addr` through the page tables, or `None` if unmapped.
fn peek(s: &AddressSpace<Mem>, addr: GuestVirtAddr) -> Option<u8> {
    let t = s.translate(addr)?;
    let mut b = [0u8];
    s.memory().read_slice(&mut b, t.phys).unwrap();
    Some(b[0])
}

/// Faults `addr` in for `access` (as the CPU would) and, for a write,
/// stores `v` through the translation it then has.
fn touch(s: &mut AddressSpace<Mem>, addr: GuestVirtAddr, write: Option<u8>) {
    let access = FaultAccess { write: write.is_some(), exec: false };
    s.fault(addr, access).unwrap().flush.ignore();
    let t = s.translate(addr).unwrap();
    if let Some(v) = write {
        assert!(t.prot.writable, "a write fault left {addr:?} read-only");
        s.memory().write_slice(&[v], t.phys).unwrap();
    }
}

#[test]
fn shared_mappings_and_the_object_see_one_page_private_ones_copy() {
    let mut s = space();
    let o = object(&s, 2 * PAGE_SIZE);
    o.write_at(10, b"A").unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let a = s.mmap(&o, &MmapRequest::shared(2 * PAGE_SIZE, rw)).unwrap();
    a.flush.ignore();
    let b = s.mmap(&o, &MmapRequest::shared(2 * PAGE_SIZE, rw)).unwrap();
    b.flush.ignore();
    let p = s.mmap(&o, &MmapRequest::private(2 * PAGE_SIZE, rw)).unwrap();
    p.flush.ignore();
    let at = |m: GuestVirtAddr, off: u64| m.checked_add(off).unwrap();

    // A write through one shared mapping is seen by the other and by read_at.
    touch(&mut s, at(a.addr, 10), None);
    assert_eq!(peek(&s, at(a.addr, 10)), Some(b'A'));
    touch(&mut s, at(a.addr, 11), Some(b'B'));
    touch(&mut s, at(b.addr, 11), None);
    assert_eq!(peek(&s, at(b.addr, 11)), Some(b'B'));
    let mut buf = [0u8; 2];
    o.read_at(10, &mut buf).unwrap();
    assert_eq!(&buf, b"AB");
    assert_eq!(s.translate(a.addr).unwrap().pfn, o.frame(0).unwrap());

    // The private mapping reads the object's page read-only, then a write
    // gets its own copy: the object and the shared mappings keep theirs.
    touch(&mut s, at(p.addr, 10), None);
    let t = s.translate(p.addr).unwrap();
    assert_eq!((t.pfn, t.prot.writable), (o.frame(0).unwrap(), false));
    touch(&mut s, at(p.addr, 10), Some(b'P'));
    assert_ne!(s.translate(p.addr).unwrap().pfn, o.frame(0).unwrap());
    assert_eq!((peek(&s, at(p.addr, 10)), peek(&s, at(p.addr, 11))), (Some(b'P'), Some(b'B')));
    assert_eq!(peek(&s, at(a.addr, 10)), Some(b'A'));
    // A private write in a hole: the object gets a zeroed page first (as
    // Linux's `do_cow_fault` through `shmem_fault`), the mapping a copy.
    touch(&mut s, at(p.addr, PAGE_SIZE + 5), Some(b'Q'));
    let own = s.translate(at(p.addr, PAGE_SIZE)).unwrap().pfn;
    assert!(o.frame(1).is_some_and(|f| f != own), "the object's page, not the copy");
    o.read_at(PAGE_SIZE + 5, &mut buf[..1]).unwrap();
    assert_eq!(buf[0], 0);

    // Past the end: the fault fails (SIGBUS), nothing is mapped.
    o.set_len(PAGE_SIZE).unwrap();
    let err = s.fault(at(b.addr, PAGE_SIZE), FaultAccess::READ).map(|_| ()).unwrap_err();
    assert!(matches!(err, MmError::NotSupported(_)), "{err:?}");
    assert_eq!(peek(&s, at(b.addr, PAGE_SIZE)), None);
}

#[test]
fn a_truncated_page_that_is_still_mapped_is_not_reused_until_unmapped() {
    let mut s = space();
    let free0 = s.stats().pool_free;
    let o = object(&s, PAGE_SIZE);
    let m = s.mmap(&o, &MmapRequest::shared(PAGE_SIZE, VmFlags::READ | VmFlags::WRITE)).unwrap();
    m.flush.ignore();
    touch(&mut s, m.addr, Some(7));
    let old = o.frame(0).unwrap();
    o.set_len(0).unwrap();
    assert_eq!(o.resident_pages(), 0);
    // The mapping keeps the page (pinned); the pool does not hand it out.
    assert_eq!(s.translate(m.addr).unwrap().pfn, old);
    let all = s.frames().alloc(s.stats().pool_free as u64).unwrap();
    assert!(!all.pfns().contains(&old), "a mapped frame was handed out");
    drop(all);
    s.munmap(m.addr, PAGE_SIZE).unwrap().ignore();
    assert_eq!(s.stats().pool_free, free0, "the page came back once unmapped");
}

#[test]
fn bad_sizes_and_ranges() {
    let s = space();
    assert!(ShmemObject::new("x", s.frames().clone(), s.memory().clone(), u64::MAX).is_err());
    let o = object(&s, 0);
    assert!(o.set_len(u64::MAX).is_err());
    assert!(o.write_at(u64::MAX - 1, b"ab").is_err());
    assert!(o.punch_hole(5, u64::MAX).is_err());
    assert_eq!(o.read_at(u64::MAX, &mut [0u8; 4]).unwrap(), 0);
    assert!(o.is_empty());
    // The pool runs dry: a short write, the bytes before the failure are
    // kept; then ENOMEM.
    let big = vec![1u8; 80 * PAGE_SIZE as usize];
    let n = o.write_at(0, &big).unwrap();
    assert!(n > 0 && n < big.len(), "{n}");
    assert_eq!(o.len(), o.resident_pages() * PAGE_SIZE);
    assert_eq!(n as u64, o.len());
    let e = o.write_at(o.len(), b"x").unwrap_err();
    assert_eq!(e.errno(), crate::error::errno::ENOMEM);
}
