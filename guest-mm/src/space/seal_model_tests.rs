//! mseal and `MREMAP_DONTUNMAP`: examples of each rule, then property
//! tests of random operation sequences against the reference model in
//! `anon_model.rs` (one mix weighted to moves, one to seals, one to
//! `mbind`).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::anon_model::{Op, World, REGION};
use super::test_util::{
    assert_sound, pooled_space, pooled_space_limited, read_tag, space, va, write_tag, Plain, WINDOW,
};
use super::{Advice, MmapRequest, MremapFlags, DISCARD_ADVICE};
use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::desc::VmaDesc;
use crate::error::{errno, MmError};
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::providers::ZeroProvider;

const P: u64 = PAGE_SIZE;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

fn anon(
    s: &mut super::AddressSpace<vm_memory::GuestMemoryMmap<()>>,
    z: &ZeroProvider<vm_memory::GuestMemoryMmap<()>>,
    at: u64,
    pages: u64,
) {
    let req = MmapRequest::private(pages * P, RW).fixed(va(at)).pgoff(at >> PAGE_SHIFT);
    s.mmap(z, &req).unwrap().flush.ignore();
}

#[test]
fn sealing_splits_merges_and_refuses_every_change() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    s.mmap(&Plain, &MmapRequest::shared(8 * P, RW).fixed(va(w))).unwrap().flush.ignore();
    // Argument checks first, then holes; nothing sealed.
    assert_eq!(s.mseal(va(w), P, 1).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.mseal(va(w + 1), P, 0).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.mseal(va(w), u64::MAX, 0).unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.mseal(va(w + 4 * P), 8 * P, 0), Err(MmError::NotMapped { addr: w + 8 * P }));
    assert_eq!(s.mseal(va(w), 0, 0), Ok(()));
    assert!(s.vmas().all(|v| !v.is_sealed()));
    // Sealing the middle splits the VMA in three.
    s.mseal(va(w + 2 * P), 3 * P + 1, 0).unwrap();
    let v: Vec<_> = s.vmas().map(|v| (v.start().raw(), v.end(), v.is_sealed())).collect();
    assert_eq!(v, vec![(w, w + 2 * P, false), (w + 2 * P, w + 6 * P, true), (w + 6 * P, w + 8 * P, false)]);
    let before: Vec<String> = s.vmas().map(|v| format!("{v:?}")).collect();
    // Everything that would change the sealed part is refused.
    let sealed = MmError::Sealed { addr: w + 2 * P };
    assert_eq!(s.munmap(va(w), 3 * P).map(|f| f.ignore()), Err(sealed.clone()));
    assert_eq!(s.mprotect(va(w + 5 * P), 2 * P, RW).map(|f| f.ignore()), Err(sealed.clone()), "even the same access");
    let over = MmapRequest::shared(P, VmFlags::READ).fixed(va(w + 3 * P));
    assert_eq!(s.mmap(&Plain, &over).map(|m| m.addr), Err(sealed.clone()));
    assert_eq!(s.mremap(va(w + 2 * P), P, P, true, Some(va(w + 64 * P))).map(|r| r.addr), Err(sealed.clone()));
    assert_eq!(s.mremap(va(w + 2 * P), 4 * P, 2 * P, false, None).map(|r| r.addr), Err(sealed.clone()));
    assert_eq!(s.mremap(va(w + 2 * P), 4 * P, 5 * P, true, None).map(|r| r.addr), Err(sealed.clone()));
    // Another mapping may not move or grow onto it either.
    let onto = s.mremap(va(w), P, P, true, Some(va(w + 4 * P))).map(|r| r.addr);
    assert_eq!(onto, Err(sealed.clone()));
    let after: Vec<String> = s.vmas().map(|v| format!("{v:?}")).collect();
    assert_eq!(before, after, "nothing changed");
    // The unsealed neighbours still change; sealing again is a no-op;
    // sealing the whole merges the pieces into one sealed VMA.
    s.mprotect(va(w), 2 * P, VmFlags::READ).unwrap().ignore();
    s.mprotect(va(w), 2 * P, RW).unwrap().ignore();
    s.mseal(va(w + 2 * P), 4 * P, 0).unwrap();
    s.mseal(va(w), 8 * P, 0).unwrap();
    let v: Vec<_> = s.vmas().map(|v| (v.start().raw(), v.end(), v.is_sealed())).collect();
    assert_eq!(v, vec![(w, w + 8 * P, true)]);
    assert_eq!(s.munmap(va(w + 7 * P), P).map(|f| f.ignore()), Err(MmError::Sealed { addr: w }));
    // Nor may a provider be run over it again (the compat entry point).
    assert_eq!(s.compat_mmap_prepare(va(w), &Plain), Err(MmError::Sealed { addr: w }));
    // munmap of a hole beside it is still fine.
    assert_eq!(s.munmap(va(w + 8 * P), P).map(|f| f.ignore()), Ok(()));
    assert_sound(&s);
}

#[test]
fn discarding_advice_is_refused_only_on_sealed_read_only_private_anonymous_memory() {
    let mut s = pooled_space();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 4);
    write_tag(&mut s, va(w), 7);
    s.mseal(va(w), 2 * P, 0).unwrap();
    // Sealed but writable: the caller could write zeroes anyway.
    s.madvise(va(w + P), P, Advice::DontNeed).unwrap().ignore();
    // Read-only (sealed first, so mprotect is no longer possible: make a
    // read-only sealed mapping from scratch).
    let r = w + 32 * P;
    anon(&mut s, &z, r, 2);
    write_tag(&mut s, va(r), 9);
    s.mprotect(va(r), 2 * P, VmFlags::READ).unwrap().ignore();
    s.mseal(va(r), 2 * P, 0).unwrap();
    let e = s.madvise(va(r), 2 * P, Advice::DontNeed).map(|f| f.ignore());
    assert_eq!(e, Err(MmError::Sealed { addr: r }));
    assert_eq!(read_tag(&s, va(r)), Some(9), "the page stayed");
    for adv in DISCARD_ADVICE {
        assert_eq!(s.check_madvise_seal(va(r), P, adv).unwrap_err().errno(), errno::EPERM, "advice {adv}");
        assert_eq!(s.check_madvise_seal(va(w), P, adv), Ok(()), "writable, advice {adv}");
    }
    // Non-discarding advice is allowed.
    for adv in [0, 1, 2, 3, 14, 15] {
        assert_eq!(s.check_madvise_seal(va(r), P, adv), Ok(()), "advice {adv}");
    }
    s.madvise(va(r), 2 * P, Advice::WillNeed).unwrap().ignore();
    // Not anonymous (no ops saying so): read-only and sealed, allowed.
    let f = w + 64 * P;
    s.mmap(&Plain, &MmapRequest::private(P, VmFlags::READ).fixed(va(f))).unwrap().flush.ignore();
    s.mseal(va(f), P, 0).unwrap();
    assert_eq!(s.check_madvise_seal(va(f), P, 4), Ok(()));
    s.madvise(va(f), P, Advice::DontNeed).unwrap().ignore();
    assert_sound(&s);
}

#[test]
fn dontunmap_moves_the_pages_and_leaves_the_old_range_mapped_and_empty() {
    let mut s = pooled_space();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    s.set_fault_around(1).unwrap();
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 6);
    for i in 0..6 {
        write_tag(&mut s, va(w + i * P), 100 + i);
    }
    let du = MremapFlags { dont_unmap: true, ..MremapFlags::MAY_MOVE };
    // Refusals: not MAYMOVE, a length change, a remap (VM_PFNMAP).
    let e = s.mremap_with(va(w), 2 * P, 2 * P, MremapFlags { may_move: false, ..du }).map(|r| r.addr);
    assert_eq!(e.unwrap_err().errno(), errno::EINVAL);
    assert_eq!(s.mremap_with(va(w), 2 * P, 3 * P, du).map(|r| r.addr).unwrap_err().errno(), errno::EINVAL);
    // Pages 1..3 to a free range found top-down.
    let r = s.mremap_with(va(w + P), 2 * P, 2 * P, du).unwrap();
    r.flush.ignore();
    let to = r.addr.raw();
    assert_eq!(to, WINDOW.1 - 2 * P);
    assert_eq!((read_tag(&s, va(to)), read_tag(&s, va(to + P))), (Some(101), Some(102)));
    // The old range: one VMA as before, no entries, refaults zero pages.
    let v = s.find_vma(va(w)).unwrap();
    assert_eq!((v.start().raw(), v.end()), (w, w + 6 * P));
    assert_eq!((read_tag(&s, va(w + P)), read_tag(&s, va(w + 2 * P))), (None, None));
    assert_eq!((read_tag(&s, va(w)), read_tag(&s, va(w + 3 * P))), (Some(100), Some(103)));
    s.fault(va(w + P), crate::vma::FaultAccess::READ).unwrap().flush.ignore();
    assert_eq!(read_tag(&s, va(w + P)), Some(0));
    // The copy keeps the offsets of its pages.
    let c = s.find_vma(va(to)).unwrap();
    assert_eq!((c.pgoff(), c.end()), ((w >> PAGE_SHIFT) + 1, to + 2 * P));
    // To a fixed target over another mapping, which goes.
    let t = w + 32 * P;
    anon(&mut s, &z, t, 4);
    write_tag(&mut s, va(t + 3 * P), 55);
    let r = s.mremap_with(va(w + 4 * P), 2 * P, 2 * P, MremapFlags { fixed: Some(va(t + 2 * P)), ..du }).unwrap();
    r.flush.ignore();
    assert_eq!(r.addr.raw(), t + 2 * P);
    assert_eq!((read_tag(&s, va(t + 2 * P)), read_tag(&s, va(t + 3 * P))), (Some(104), Some(105)));
    assert_sound(&s);
}

/// A provider whose VMAs carry `VM_PFNMAP` (as a remap's do).
struct PfnMap;
impl MmapProvider for PfnMap {
    fn name(&self) -> &str {
        "pfnmap"
    }
    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        desc.set_flags(VmFlags::PFNMAP);
        Ok(())
    }
}

#[test]
fn dontunmap_refuses_pfnmap_and_dontexpand_mappings() {
    let mut s = space();
    let w = WINDOW.0 + 16 * P;
    s.mmap(&PfnMap, &MmapRequest::shared(2 * P, RW).fixed(va(w))).unwrap().flush.ignore();
    let du = MremapFlags { dont_unmap: true, ..MremapFlags::MAY_MOVE };
    let e = s.mremap_with(va(w), P, P, du).map(|r| r.addr);
    assert_eq!(e, Err(MmError::Invalid("MREMAP_DONTUNMAP of a VM_DONTEXPAND or VM_PFNMAP mapping")));
    // A plain move of it is fine.
    s.mremap(va(w), P, P, true, Some(va(w + 16 * P))).unwrap().flush.ignore();
    assert_eq!(s.vmas().count(), 2);
}

#[test]
fn dontunmap_respects_the_vma_limit() {
    let mut s = pooled_space();
    let z = ZeroProvider::new(s.frames().clone(), s.memory().clone());
    let w = WINDOW.0 + 16 * P;
    anon(&mut s, &z, w, 2);
    let mut s2 = pooled_space_limited(1);
    let z2 = ZeroProvider::new(s2.frames().clone(), s2.memory().clone());
    anon(&mut s2, &z2, w, 2);
    let du = MremapFlags { dont_unmap: true, ..MremapFlags::MAY_MOVE };
    let e = s2.mremap_with(va(w), 2 * P, 2 * P, du).map(|r| r.addr);
    assert_eq!(e.unwrap_err().errno(), errno::ENOMEM);
    assert_eq!(s2.vmas().count(), 1);
    // With room it works.
    s.mremap_with(va(w), 2 * P, 2 * P, du).unwrap().flush.ignore();
    assert_eq!(s.vmas().count(), 2);
}

fn span() -> impl Strategy<Value = (u64, u64)> {
    (0..REGION, 1u64..10)
}

fn op(moves: u32, seals: u32) -> impl Strategy<Value = Op> {
    op_with(moves, seals, 1)
}

/// [`op`] with `binds` for `mbind`.
fn op_with(moves: u32, seals: u32, binds: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => span().prop_map(|(page, pages)| Op::Map { page, pages }),
        1 => span().prop_map(|(page, pages)| Op::Unmap { page, pages }),
        2 => (span(), any::<bool>()).prop_map(|((page, pages), write)| Op::Protect { page, pages, write }),
        seals => span().prop_map(|(page, pages)| Op::Seal { page, pages }),
        2 => span().prop_map(|(page, pages)| Op::DontNeed { page, pages }),
        4 => (0..REGION).prop_map(|page| Op::Write { page }),
        1 => (0..REGION).prop_map(|page| Op::Read { page }),
        moves => (span(), prop::option::of(0..REGION), any::<bool>())
            .prop_map(|((page, pages), to, dont_unmap)| Op::Move { page, pages, to, dont_unmap }),
        binds => (span(), 0..super::anon_model::POLICIES.len(), any::<bool>())
            .prop_map(|((page, pages), policy, mv)| Op::Mbind { page, pages, policy, mv }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn moves_match_the_model(ops in prop::collection::vec(op(6, 1), 1..80)) {
        let mut w = World::new();
        // Start from mapped memory (two VMAs that do not merge): a random
        // span then hits mappings more often.
        w.apply(&Op::Map { page: 8, pages: 24 });
        w.apply(&Op::Protect { page: 20, pages: 4, write: false });
        for op in &ops {
            w.apply(op);
        }
    }

    #[test]
    fn binds_match_the_model(ops in prop::collection::vec(op_with(1, 1, 4), 1..80)) {
        let mut w = World::new();
        w.apply(&Op::Map { page: 8, pages: 24 });
        w.apply(&Op::Map { page: 40, pages: 16 });
        for op in &ops {
            w.apply(op);
        }
    }

    #[test]
    fn seals_match_the_model(ops in prop::collection::vec(op(2, 4), 1..80)) {
        let mut w = World::new();
        w.apply(&Op::Map { page: 8, pages: 24 });
        w.apply(&Op::Map { page: 40, pages: 16 });
        for op in &ops {
            w.apply(op);
        }
    }
}
