//! Model tests of a shared-memory object with live mappings, as a tmpfs
//! file is used: `write`/`read` on the object, loads and stores through
//! a shared and a private mapping, truncation and hole punches followed
//! by [`AddressSpace::unmap_mapping_range`], and second mappings of the
//! shared one made by `mremap` with an old size of 0, all against a `Vec<u8>` of
//! the file and a map of the private copies. Every load and store goes
//! through the page tables as the CPU would (walk, fault when absent,
//! read or write guest memory at the translation), so a stale entry left
//! by a truncation shows as a wrong byte; the quota must always equal the
//! pages the object holds.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{ShmemObject, ShmemQuota};
use crate::addr::{GuestVirtAddr, PAGE_SIZE};
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::space::{AddressSpace, Cows, MmapRequest, SpaceConfig};
use crate::vma::FaultAccess;

type Mem = GuestMemoryMmap<()>;

/// Pages each mapping spans (past the largest file the ops make).
const SPAN: u64 = 8;

fn space() -> AddressSpace<Mem> {
    let mem = Mem::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
    let mut cfg = SpaceConfig::new((GuestAddress(48 << 20), 4 << 20));
    cfg.pool_region = Some((GuestAddress(40 << 20), 96 * PAGE_SIZE));
    AddressSpace::new(mem, cfg).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    Read(u64, usize),
    Truncate(u64),
    Punch(u64, u64),
    Store {
        shared: bool,
        off: u64,
        byte: u8,
    },
    Load {
        shared: bool,
        off: u64,
    },
    /// `mremap(shared + first page, 0, pages, MREMAP_MAYMOVE)`: a second
    /// mapping of the shared mapping's pages from that page on.
    Dup {
        first: u64,
        pages: u64,
    },
    /// A store or load through the `which`-th duplicate (modulo their
    /// number), at `off` into it.
    DupStore {
        which: usize,
        off: u64,
        byte: u8,
    },
    DupLoad {
        which: usize,
        off: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let off = 0u64..6 * PAGE_SIZE;
    let in_map = 0u64..SPAN * PAGE_SIZE;
    prop_oneof![
        3 => (off.clone(), any::<u8>(), 1usize..2 * PAGE_SIZE as usize).prop_map(|(o, b, n)| Op::Write(o, vec![b | 1; n])),
        1 => (off.clone(), 1usize..3 * PAGE_SIZE as usize).prop_map(|(o, n)| Op::Read(o, n)),
        1 => off.clone().prop_map(Op::Truncate),
        1 => (off, 1u64..3 * PAGE_SIZE).prop_map(|(o, n)| Op::Punch(o, n)),
        3 => (any::<bool>(), in_map.clone(), 1u8..=255).prop_map(|(shared, off, byte)| Op::Store { shared, off, byte }),
        3 => (any::<bool>(), in_map.clone()).prop_map(|(shared, off)| Op::Load { shared, off }),
        1 => (0u64..SPAN, 1u64..4).prop_map(|(first, pages)| Op::Dup { first, pages }),
        2 => (any::<usize>(), in_map.clone(), 1u8..=255).prop_map(|(which, off, byte)| Op::DupStore { which, off, byte }),
        2 => (any::<usize>(), in_map).prop_map(|(which, off)| Op::DupLoad { which, off }),
    ]
}

/// The byte at `va` as a load sees it: `None` when the fault fails.
fn load(s: &mut AddressSpace<Mem>, va: GuestVirtAddr) -> Option<u8> {
    if s.translate(va).is_none() {
        match s.fault(va, FaultAccess::READ) {
            Ok(f) => f.flush.ignore(),
            Err(_) => return None,
        }
    }
    let t = s.translate(va).unwrap();
    let mut b = [0u8];
    s.memory().read_slice(&mut b, t.phys).unwrap();
    Some(b[0])
}

/// Stores `v` at `va`; false when the fault fails.
fn store(s: &mut AddressSpace<Mem>, va: GuestVirtAddr, v: u8) -> bool {
    if !s.translate(va).is_some_and(|t| t.prot.writable) {
        match s.fault(va, FaultAccess::WRITE) {
            Ok(f) => f.flush.ignore(),
            Err(_) => return false,
        }
    }
    let t = s.translate(va).unwrap();
    assert!(t.prot.writable, "a write fault left {va:?} read-only");
    s.memory().write_slice(&[v], t.phys).unwrap();
    true
}

/// The private mapping's view of page `index` in the model: its copy, or
/// the file's bytes (`None` past the end: `SIGBUS`).
fn private_byte(file: &[u8], copies: &BTreeMap<u64, Vec<u8>>, off: u64) -> Option<u8> {
    let index = off / PAGE_SIZE;
    if let Some(c) = copies.get(&index) {
        return Some(c[(off % PAGE_SIZE) as usize]);
    }
    let pages = (file.len() as u64).div_ceil(PAGE_SIZE);
    (index < pages).then(|| file.get(off as usize).copied().unwrap_or(0))
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut s = space();
    let free0 = s.stats().pool_free;
    let quota = ShmemQuota::new(64);
    let o = ShmemObject::with_quota("tmpfs:model", s.frames().clone(), s.memory().clone(), 0, quota.clone()).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let shared = s.mmap(&o, &MmapRequest::shared(SPAN * PAGE_SIZE, rw)).unwrap();
    shared.flush.ignore();
    let private = s.mmap(&o, &MmapRequest::private(SPAN * PAGE_SIZE, rw)).unwrap();
    private.flush.ignore();
    let ops_key = o.vma_ops();
    let mut file: Vec<u8> = Vec::new();
    let mut copies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut dups: Vec<(GuestVirtAddr, u64, u64)> = Vec::new();
    for op in ops {
        match op {
            Op::Write(off, data) => {
                prop_assert_eq!(o.write_at(off, &data).unwrap(), data.len());
                let end = off as usize + data.len();
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[off as usize..end].copy_from_slice(&data);
            }
            Op::Read(off, n) => {
                let mut buf = vec![0xeeu8; n];
                let got = o.read_at(off, &mut buf).unwrap();
                let want = file.get(off as usize..).map_or(&[][..], |t| &t[..n.min(t.len())]);
                prop_assert!(&buf[..got] == want, "read at {off:#x}");
            }
            Op::Truncate(n) => {
                o.set_len(n).unwrap();
                let first = n.div_ceil(PAGE_SIZE);
                s.unmap_mapping_range(&ops_key, first, u64::MAX, Cows::Even).unwrap().ignore();
                file.resize(n as usize, 0);
                copies.retain(|&i, _| i < first);
            }
            Op::Punch(off, n) => {
                let (first, end) = (off.div_ceil(PAGE_SIZE), (off + n) / PAGE_SIZE);
                let frames: BTreeSet<_> = o.frames_in(first, end).into_iter().collect();
                o.punch_hole(off, n).unwrap();
                s.unmap_mapping_range(&ops_key, first, end, Cows::Keep(&frames)).unwrap().ignore();
                let (a, b) = ((off as usize).min(file.len()), ((off + n) as usize).min(file.len()));
                file[a..b].fill(0);
            }
            Op::Store { shared: true, off, byte } => {
                let pages = (file.len() as u64).div_ceil(PAGE_SIZE);
                if off >= file.len() as u64 && off / PAGE_SIZE < pages {
                    // Past the end in the last page: the byte lands in the
                    // page but not in the file (a later grow may show it,
                    // as on Linux); the model does not follow that.
                    continue;
                }
                let ok = store(&mut s, shared.addr.checked_add(off).unwrap(), byte);
                prop_assert_eq!(ok, off / PAGE_SIZE < pages, "shared store at {:#x}", off);
                if ok {
                    file[off as usize] = byte;
                }
            }
            Op::Store { shared: false, off, byte } => {
                let index = off / PAGE_SIZE;
                let before: Option<Vec<u8>> = copies.get(&index).cloned().or_else(|| {
                    let pages = (file.len() as u64).div_ceil(PAGE_SIZE);
                    (index < pages).then(|| {
                        (index * PAGE_SIZE..(index + 1) * PAGE_SIZE)
                            .map(|i| file.get(i as usize).copied().unwrap_or(0))
                            .collect()
                    })
                });
                let ok = store(&mut s, private.addr.checked_add(off).unwrap(), byte);
                prop_assert_eq!(ok, before.is_some(), "private store at {:#x}", off);
                if let Some(mut page) = before {
                    page[(off % PAGE_SIZE) as usize] = byte;
                    copies.insert(index, page);
                }
            }
            Op::Load { shared: true, off } => {
                let got = load(&mut s, shared.addr.checked_add(off).unwrap());
                let pages = (file.len() as u64).div_ceil(PAGE_SIZE);
                let want = (off / PAGE_SIZE < pages).then(|| file.get(off as usize).copied().unwrap_or(0));
                prop_assert_eq!(got, want, "shared load at {:#x}", off);
            }
            Op::Dup { first, pages } => {
                let at = shared.addr.checked_add(first * PAGE_SIZE).unwrap();
                let d = s.mremap(at, 0, pages * PAGE_SIZE, true, None).unwrap();
                d.flush.ignore();
                prop_assert!(s.translate(d.addr).is_none(), "a duplicate starts empty");
                dups.push((d.addr, first, pages));
            }
            Op::DupStore { which, off, byte } => {
                let Some(&(addr, first, pages)) = dups.get(which % dups.len().max(1)) else { continue };
                let off = off % (pages * PAGE_SIZE);
                let foff = first * PAGE_SIZE + off;
                let fpages = (file.len() as u64).div_ceil(PAGE_SIZE);
                if foff >= file.len() as u64 && foff / PAGE_SIZE < fpages {
                    continue; // past the end in the last page, as for a shared store
                }
                let ok = store(&mut s, addr.checked_add(off).unwrap(), byte);
                prop_assert_eq!(ok, foff / PAGE_SIZE < fpages, "duplicate store at {:#x}", foff);
                if ok {
                    file[foff as usize] = byte;
                }
            }
            Op::DupLoad { which, off } => {
                let Some(&(addr, first, pages)) = dups.get(which % dups.len().max(1)) else { continue };
                let off = off % (pages * PAGE_SIZE);
                let foff = first * PAGE_SIZE + off;
                let got = load(&mut s, addr.checked_add(off).unwrap());
                let fpages = (file.len() as u64).div_ceil(PAGE_SIZE);
                let want = (foff / PAGE_SIZE < fpages).then(|| file.get(foff as usize).copied().unwrap_or(0));
                prop_assert_eq!(got, want, "duplicate load at {:#x}", foff);
            }
            Op::Load { shared: false, off } => {
                let got = load(&mut s, private.addr.checked_add(off).unwrap());
                prop_assert_eq!(got, private_byte(&file, &copies, off), "private load at {:#x}", off);
            }
        }
        prop_assert_eq!(o.len(), file.len() as u64);
        prop_assert_eq!(quota.used(), o.resident_pages(), "the quota counts the object's pages");
    }
    s.munmap(shared.addr, SPAN * PAGE_SIZE).unwrap().ignore();
    s.munmap(private.addr, SPAN * PAGE_SIZE).unwrap().ignore();
    for (addr, _, pages) in dups {
        s.munmap(addr, pages * PAGE_SIZE).unwrap().ignore();
    }
    drop((o, ops_key));
    prop_assert_eq!(quota.used(), 0, "the pages went back to the quota with the object");
    prop_assert_eq!(s.stats().pool_free, free0, "pool pages leaked");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn mappings_follow_writes_truncations_and_punches(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

#[test]
fn a_truncation_unmaps_shared_pages_and_private_copies_past_the_end() {
    let mut s = space();
    let o = ShmemObject::new("tmpfs:t", s.frames().clone(), s.memory().clone(), 0).unwrap();
    o.write_at(0, &vec![7u8; 3 * PAGE_SIZE as usize]).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let sh = s.mmap(&o, &MmapRequest::shared(3 * PAGE_SIZE, rw)).unwrap();
    sh.flush.ignore();
    let pr = s.mmap(&o, &MmapRequest::private(3 * PAGE_SIZE, rw)).unwrap();
    pr.flush.ignore();
    let at = |m: GuestVirtAddr, p: u64| m.checked_add(p * PAGE_SIZE).unwrap();
    for p in 0..3 {
        assert_eq!(load(&mut s, at(sh.addr, p)), Some(7));
        assert!(store(&mut s, at(pr.addr, p), 9));
    }
    o.set_len(PAGE_SIZE + 1).unwrap();
    let flush = s.unmap_mapping_range(&o.vma_ops(), 2, u64::MAX, Cows::Even).unwrap();
    assert!(!flush.is_empty(), "present entries were cleared: they must be flushed");
    // Page 2 is gone from both (walked, not trusted), pages 0 and 1 stay.
    assert!(s.translate(at(sh.addr, 2)).is_none() && s.translate(at(pr.addr, 2)).is_none());
    assert!(s.translate(at(sh.addr, 1)).is_some() && s.translate(at(pr.addr, 1)).is_some());
    assert_eq!(load(&mut s, at(pr.addr, 1)), Some(9), "the private copy of a page inside the file stays");
    let e = s.fault(at(sh.addr, 2), FaultAccess::READ).map(|_| ()).unwrap_err();
    assert!(matches!(e, MmError::NotSupported(_)), "past the end: SIGBUS, got {e:?}");
    // A VMA of another object is left alone.
    let other = ShmemObject::new("tmpfs:u", s.frames().clone(), s.memory().clone(), PAGE_SIZE).unwrap();
    let om = s.mmap(&other, &MmapRequest::shared(PAGE_SIZE, rw)).unwrap();
    om.flush.ignore();
    assert!(store(&mut s, om.addr, 1));
    s.unmap_mapping_range(&o.vma_ops(), 0, u64::MAX, Cows::Even).unwrap().ignore();
    assert!(s.translate(om.addr).is_some());
    assert!(s.translate(sh.addr).is_none());
}

#[test]
fn the_quota_limits_writes_allocations_and_faults() {
    let mut s = space();
    let q = ShmemQuota::new(2);
    let o = ShmemObject::with_quota("tmpfs:q", s.frames().clone(), s.memory().clone(), 0, q.clone()).unwrap();
    // A short write at the quota, then ENOSPC.
    assert_eq!(o.write_at(0, &vec![1u8; 3 * PAGE_SIZE as usize]).unwrap(), 2 * PAGE_SIZE as usize);
    assert_eq!(o.write_at(2 * PAGE_SIZE, b"x").unwrap_err().errno(), crate::error::errno::ENOSPC);
    assert_eq!(o.allocate(4 * PAGE_SIZE, 1, false).unwrap_err().errno(), crate::error::errno::ENOSPC);
    assert_eq!(o.len(), 2 * PAGE_SIZE, "a refused allocation does not grow the file");
    // A shared fault in a hole past the quota fails (SIGBUS).
    o.set_len(4 * PAGE_SIZE).unwrap();
    let m = s.mmap(&o, &MmapRequest::shared(4 * PAGE_SIZE, VmFlags::READ | VmFlags::WRITE)).unwrap();
    m.flush.ignore();
    assert!(!store(&mut s, m.addr.checked_add(3 * PAGE_SIZE).unwrap(), 5));
    // Punching frees quota; the fault then succeeds.
    o.punch_hole(0, PAGE_SIZE).unwrap();
    assert_eq!(q.used(), 1);
    assert!(store(&mut s, m.addr.checked_add(3 * PAGE_SIZE).unwrap(), 5));
    assert_eq!((q.used(), o.resident_pages()), (2, 2));
    // SEEK_DATA/SEEK_HOLE see the holes.
    assert_eq!(o.seek_data(0), Some(PAGE_SIZE));
    assert_eq!(o.seek_hole(PAGE_SIZE), Some(2 * PAGE_SIZE));
    assert_eq!(o.seek_data(2 * PAGE_SIZE), Some(3 * PAGE_SIZE));
    assert_eq!(o.seek_hole(3 * PAGE_SIZE), Some(4 * PAGE_SIZE));
    assert_eq!(o.seek_data(4 * PAGE_SIZE), None);
}

#[test]
fn madv_remove_punches_the_object_and_every_mapping_of_it_reads_zeroes() {
    let mut s = space();
    let o = ShmemObject::new("zero", s.frames().clone(), s.memory().clone(), 4 * PAGE_SIZE).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let a = s.mmap(&o, &MmapRequest::shared(4 * PAGE_SIZE, rw)).unwrap();
    a.flush.ignore();
    let b = s.mmap(&o, &MmapRequest::shared(4 * PAGE_SIZE, rw)).unwrap();
    b.flush.ignore();
    let at = |m: GuestVirtAddr, p: u64| m.checked_add(p * PAGE_SIZE).unwrap();
    for p in 0..4 {
        assert!(store(&mut s, at(a.addr, p), 5));
        assert_eq!(load(&mut s, at(b.addr, p)), Some(5), "both mappings share the page");
    }
    assert_eq!(o.resident_pages(), 4);
    // Pages 1 and 2 through the first mapping: the object drops them and
    // both mappings lose their entries (walked).
    let flush = s.madvise(at(a.addr, 1), 2 * PAGE_SIZE, crate::space::Advice::Remove).unwrap();
    assert!(!flush.is_empty(), "present entries were cleared: they must be flushed");
    assert_eq!(o.resident_pages(), 2, "the object punched pages 1 and 2");
    for m in [a.addr, b.addr] {
        assert!(s.translate(at(m, 1)).is_none() && s.translate(at(m, 2)).is_none());
        assert!(s.translate(at(m, 0)).is_some() && s.translate(at(m, 3)).is_some());
    }
    assert_eq!(load(&mut s, at(b.addr, 1)), Some(0), "a punched page reads zeroes");
    assert_eq!(load(&mut s, at(a.addr, 2)), Some(0));
    assert_eq!(load(&mut s, at(a.addr, 3)), Some(5), "outside the range the data stays");
    // MADV_DONTNEED, by contrast, keeps the object's pages.
    s.madvise(at(a.addr, 3), PAGE_SIZE, crate::space::Advice::DontNeed).unwrap().ignore();
    assert!(s.translate(at(a.addr, 3)).is_none());
    assert_eq!(load(&mut s, at(a.addr, 3)), Some(5), "DONTNEED then a touch finds the same page");
}

/// `MADV_REMOVE` through a shared mapping keeps the private copies a
/// private mapping of the same object made in this space (Linux's shmem
/// punch clears without `even_cows`), drops the private mapping's entries
/// that still map the object's pages, and records the punch for the other
/// spaces ([`AddressSpace::take_punches`]).
#[test]
fn madv_remove_keeps_this_spaces_private_copies_and_records_the_punch() {
    let mut s = space();
    let o = ShmemObject::new("keep", s.frames().clone(), s.memory().clone(), 2 * PAGE_SIZE).unwrap();
    o.write_at(0, &[6u8; 2 * PAGE_SIZE as usize]).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let sh = s.mmap(&o, &MmapRequest::shared(2 * PAGE_SIZE, rw)).unwrap();
    sh.flush.ignore();
    let pr = s.mmap(&o, &MmapRequest::private(2 * PAGE_SIZE, rw)).unwrap();
    pr.flush.ignore();
    let page1 = pr.addr.checked_add(PAGE_SIZE).unwrap();
    assert!(store(&mut s, pr.addr, 8), "page 0: a private copy");
    assert_eq!(load(&mut s, page1), Some(6), "page 1: the object's page, mapped copy-on-write");
    let frames: BTreeSet<_> = o.frames_in(0, 2).into_iter().collect();
    s.madvise(sh.addr, 2 * PAGE_SIZE, crate::space::Advice::Remove).unwrap().ignore();
    assert_eq!(o.resident_pages(), 0);
    assert_eq!(load(&mut s, pr.addr), Some(8), "the private copy stays");
    assert!(s.translate(page1).is_none(), "the entry of the punched page went (walked)");
    assert_eq!(load(&mut s, page1), Some(0), "and it refaults as the hole");
    let punches = s.take_punches();
    assert_eq!(punches.len(), 1);
    let (key, p) = &punches[0];
    assert_eq!(Some(*key), o.vma_ops().object_key());
    assert_eq!((p.pages.clone(), p.frames.as_ref()), (0..2, Some(&frames)));
    assert!(s.take_punches().is_empty(), "taken once");
}

/// A hole punch in an object mapped privately over a large range looks
/// at the pages present there, not at every page of the range: its work
/// (tables viewed, counted on this thread) stays small for a 1 GiB
/// mapping holding two of the object's pages. The old per-page walk
/// viewed a table for every one of the 262,144 pages.
#[test]
fn a_punch_in_a_sparse_private_mapping_walks_only_what_is_present() {
    let mut s = space();
    let len = 1u64 << 30;
    let o = ShmemObject::new("tmpfs:sparse", s.frames().clone(), s.memory().clone(), len).unwrap();
    o.write_at(0, &[3u8; 8]).unwrap();
    o.write_at(len - PAGE_SIZE, &[4u8; 8]).unwrap();
    let pr = s.mmap(&o, &MmapRequest::private(len, VmFlags::READ | VmFlags::WRITE)).unwrap();
    pr.flush.ignore();
    let last = pr.addr.checked_add(len - PAGE_SIZE).unwrap();
    assert_eq!((load(&mut s, pr.addr), load(&mut s, last)), (Some(3), Some(4)));
    let frames: BTreeSet<_> = o.frames_in(0, len / PAGE_SIZE).into_iter().collect();
    assert_eq!(frames.len(), 2);
    o.punch_hole(0, len).unwrap();
    let before = crate::paging::table::views();
    let flush = s.unmap_mapping_range(&o.vma_ops(), 0, len / PAGE_SIZE, Cows::Keep(&frames)).unwrap();
    let viewed = crate::paging::table::views() - before;
    assert!(viewed < 200, "the punch viewed {viewed} tables for two present pages");
    assert!(!flush.is_empty());
    // Both entries went (walked), and the pages read as the hole they are.
    assert!(s.translate(pr.addr).is_none() && s.translate(last).is_none());
    assert_eq!((load(&mut s, pr.addr), load(&mut s, last)), (Some(0), Some(0)));
}

/// A private mapping made PROT_NONE still holds the object's frame in its
/// (not present) leaf; a hole punch must clear it as Linux's
/// `unmap_mapping_range` zaps every entry of the object's pages, or the
/// page comes back with the punched data (and a frame the object freed)
/// once the mapping is made readable again.
#[test]
fn a_punch_clears_prot_none_entries_of_the_objects_pages() {
    let mut s = space();
    let o = ShmemObject::new("tmpfs:none", s.frames().clone(), s.memory().clone(), 2 * PAGE_SIZE).unwrap();
    o.write_at(0, &[5u8; 8]).unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let pr = s.mmap(&o, &MmapRequest::private(2 * PAGE_SIZE, rw)).unwrap();
    pr.flush.ignore();
    assert_eq!(load(&mut s, pr.addr), Some(5));
    s.mprotect(pr.addr, 2 * PAGE_SIZE, VmFlags::empty()).unwrap().ignore();
    let frames: BTreeSet<_> = o.frames_in(0, 2).into_iter().collect();
    o.punch_hole(0, 2 * PAGE_SIZE).unwrap();
    s.unmap_mapping_range(&o.vma_ops(), 0, 2, Cows::Keep(&frames)).unwrap().ignore();
    assert!(
        s.page_tables().leaves(pr.addr, 2 * PAGE_SIZE).is_empty(),
        "no leaf of the punched page may stay, PROT_NONE or not"
    );
    s.mprotect(pr.addr, 2 * PAGE_SIZE, rw).unwrap().ignore();
    assert_eq!(load(&mut s, pr.addr), Some(0), "the punched page reads as a hole");
}

/// `mincore` of a shmem object's mappings counts the pages the object
/// holds, mapped here or not (Linux's page cache), in shared and private
/// mappings; a hole and a punched page are not resident; a private write
/// over a hole gives the object the page.
#[test]
fn mincore_counts_the_objects_pages_in_every_mapping() {
    let mut s = space();
    let o = ShmemObject::new("mc", s.frames().clone(), s.memory().clone(), 4 * PAGE_SIZE).unwrap();
    o.write_at(0, b"x").unwrap();
    o.write_at(2 * PAGE_SIZE, b"y").unwrap();
    let rw = VmFlags::READ | VmFlags::WRITE;
    let sh = s.mmap(&o, &MmapRequest::shared(4 * PAGE_SIZE, rw)).unwrap();
    sh.flush.ignore();
    let pr = s.mmap(&o, &MmapRequest::private(4 * PAGE_SIZE, rw)).unwrap();
    pr.flush.ignore();
    assert!(s.page_tables().leaves(sh.addr, 4 * PAGE_SIZE).is_empty(), "nothing mapped yet");
    assert_eq!(s.mincore(sh.addr, 4 * PAGE_SIZE).unwrap(), [1, 0, 1, 0]);
    assert_eq!(s.mincore(pr.addr, 4 * PAGE_SIZE).unwrap(), [1, 0, 1, 0]);
    // A window into the middle: offsets follow the VMA's.
    assert_eq!(s.mincore(pr.addr.checked_add(2 * PAGE_SIZE).unwrap(), 2 * PAGE_SIZE).unwrap(), [1, 0]);
    // A mapping from page 1 of the object on: its offset counts.
    let off = s.mmap(&o, &MmapRequest::shared(3 * PAGE_SIZE, rw).pgoff(1)).unwrap();
    off.flush.ignore();
    assert_eq!(s.mincore(off.addr, 3 * PAGE_SIZE).unwrap(), [0, 1, 0]);
    let frames: BTreeSet<_> = o.frames_in(0, 1).into_iter().collect();
    o.punch_hole(0, PAGE_SIZE).unwrap();
    s.unmap_mapping_range(&o.vma_ops(), 0, 1, Cows::Keep(&frames)).unwrap().ignore();
    // A private write over a hole: the object gets the page first (as
    // Linux's `do_cow_fault` through `shmem_fault`), so it is resident in
    // the shared mapping too.
    assert!(store(&mut s, pr.addr.checked_add(3 * PAGE_SIZE).unwrap(), 4), "a private copy over a hole");
    assert_eq!(s.mincore(sh.addr, 4 * PAGE_SIZE).unwrap(), [0, 0, 1, 1]);
    assert_eq!(s.mincore(pr.addr, 4 * PAGE_SIZE).unwrap(), [0, 0, 1, 1]);
    assert_eq!(o.resident_pages(), 2);
    assert_eq!(load(&mut s, sh.addr.checked_add(3 * PAGE_SIZE).unwrap()), Some(0), "the object's page stays zero");
}

/// A punch takes every page of its range, past the size too (a page
/// allocated with `KEEP_SIZE`, the rest of the last partial page), as
/// Linux's `shmem_truncate_range`; before, the range stopped at the size
/// and such pages kept their data and their quota.
#[test]
fn a_punch_takes_the_pages_past_the_size_too() {
    let s = space();
    let q = ShmemQuota::new(8);
    let o =
        ShmemObject::with_quota("past", s.frames().clone(), s.memory().clone(), PAGE_SIZE + 100, q.clone()).unwrap();
    o.allocate(0, 3 * PAGE_SIZE, true).unwrap();
    assert_eq!((o.len(), o.resident_pages(), q.used()), (PAGE_SIZE + 100, 3, 3));
    o.punch_hole(PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
    assert_eq!((o.len(), o.resident_pages(), q.used()), (PAGE_SIZE + 100, 1, 1));
}
