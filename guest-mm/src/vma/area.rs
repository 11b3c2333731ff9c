//! One virtual memory area: a page-aligned range with flags, protection,
//! the provider that made it, and what that provider attached.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::addr::{GuestVirtAddr, PAGE_SHIFT};
use crate::flags::{PageProt, VmFlags, VM_SPECIAL};
use crate::frames::Pinned;
use crate::mempolicy::MemPolicy;
use crate::vma::VmaOps;

/// Identity of the provider that created a VMA; VMAs from different
/// providers never merge (the kernel compares `vm_file`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProviderId(pub usize);

/// State a provider attaches to a VMA; shared by the pieces of a split VMA
/// and dropped with the last of them.
pub type VmaPrivate = Arc<dyn Any + Send + Sync>;

/// A mapped range `[start, end)` of guest-virtual space.
#[derive(Clone)]
pub struct Vma {
    pub(crate) start: GuestVirtAddr,
    pub(crate) end: u64,
    pub(crate) pgoff: u64,
    pub(crate) flags: VmFlags,
    pub(crate) page_prot: PageProt,
    pub(crate) provider: ProviderId,
    pub(crate) provider_name: Arc<str>,
    pub(crate) ops: Option<Arc<dyn VmaOps>>,
    pub(crate) private: Option<VmaPrivate>,
    /// The pins of the page arrays whose frames its entries map: held
    /// while the VMA (or a piece of it, after a split) exists, so no such
    /// frame is freed or reused while an entry may map it. A piece keeps
    /// the pins of the whole; they drop with the last piece.
    pub(crate) pins: Vec<Pinned>,
    /// Its NUMA memory policy (`vm_policy`; `None`: the default), set by
    /// `mbind`. Shared, as Linux refcounts `vm_policy`: a policy holds
    /// two 1,024-node masks, too much to copy into every VMA.
    pub(crate) policy: Option<Arc<MemPolicy>>,
}

impl Vma {
    /// The VMA `[start, end)` (the pipeline's bounds) with what its
    /// descriptor settled on (`set_vma_from_desc`).
    pub(crate) fn from_parts(
        start: GuestVirtAddr,
        end: u64,
        parts: crate::desc::DescParts,
        provider: ProviderId,
        name: &str,
    ) -> Vma {
        Vma {
            start,
            end,
            pgoff: parts.pgoff,
            flags: parts.flags,
            page_prot: parts.page_prot,
            provider,
            provider_name: Arc::from(name),
            ops: parts.ops,
            private: parts.private,
            pins: Vec::new(),
            policy: None,
        }
    }

    /// First address.
    pub fn start(&self) -> GuestVirtAddr {
        self.start
    }
    /// Exclusive end.
    pub fn end(&self) -> u64 {
        self.end
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end - self.start.raw()
    }
    /// Size in base pages.
    pub fn pages(&self) -> u64 {
        self.size() >> PAGE_SHIFT
    }
    /// Offset, in pages, into what the provider maps.
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }
    /// Flags.
    pub fn flags(&self) -> VmFlags {
        self.flags
    }
    /// Protection of its entries.
    pub fn page_prot(&self) -> PageProt {
        self.page_prot
    }
    /// The provider that created it.
    pub fn provider(&self) -> ProviderId {
        self.provider
    }
    /// The provider's name.
    pub fn provider_name(&self) -> &str {
        &self.provider_name
    }
    /// Operations the provider attached.
    pub fn ops(&self) -> Option<&Arc<dyn VmaOps>> {
        self.ops.as_ref()
    }
    /// State the provider attached.
    pub fn private(&self) -> Option<&VmaPrivate> {
        self.private.as_ref()
    }
    /// Private anonymous memory: not shared, and its ops say anonymous
    /// ([`VmaOps::is_anonymous`]).
    pub fn is_private_anon(&self) -> bool {
        !self.flags.contains(VmFlags::SHARED) && self.ops.as_ref().is_some_and(|o| o.is_anonymous())
    }

    /// The pins it holds (see the field's docs).
    pub fn pins(&self) -> &[Pinned] {
        &self.pins
    }

    /// Holds `pin` for as long as the VMA (or a piece of it) exists: for
    /// a page inserted into it later (a fault path), pinned first.
    pub(crate) fn hold(&mut self, pin: Pinned) {
        if !self.pins.iter().any(|p| p.same(&pin)) {
            self.pins.push(pin);
        }
    }

    /// Its memory policy (`mbind`), `None` for the default.
    pub fn policy(&self) -> Option<&MemPolicy> {
        self.policy.as_deref()
    }

    /// Sealed by `mseal` ([`VmFlags::SEALED`]).
    pub fn is_sealed(&self) -> bool {
        self.flags.contains(VmFlags::SEALED)
    }

    /// Anonymous memory (its ops say so, [`VmaOps::is_anonymous`]).
    pub fn is_anonymous(&self) -> bool {
        self.ops.as_ref().is_some_and(|o| o.is_anonymous())
    }

    /// Does the VMA contain `addr`?
    pub fn contains(&self, addr: u64) -> bool {
        self.start.raw() <= addr && addr < self.end
    }

    /// Can `next`, which starts where `self` ends, be folded into `self`?
    /// Same provider, flags, protection, ops and private state, contiguous
    /// pgoff, no `VM_SPECIAL` flag (the kernel's `is_mergeable_vma`), and
    /// the same pins (a merge must not drop one), the same memory policy
    /// (`mpol_equal`).
    pub fn can_merge_with(&self, next: &Vma) -> bool {
        self.end == next.start.raw()
            && self.provider == next.provider
            && self.flags == next.flags
            && self.page_prot == next.page_prot
            && !self.flags.intersects(VM_SPECIAL)
            && self.pgoff.checked_add(self.pages()) == Some(next.pgoff)
            && same_arc(self.ops.as_ref(), next.ops.as_ref())
            && same_arc(self.private.as_ref(), next.private.as_ref())
            && self.pins.len() == next.pins.len()
            && self.pins.iter().zip(&next.pins).all(|(a, b)| a.same(b))
            && self.policy.as_deref() == next.policy.as_deref()
    }

    /// Splits at `addr` (strictly inside), returning the upper part; `self`
    /// keeps the lower part.
    pub(crate) fn split_off(&mut self, addr: GuestVirtAddr) -> Vma {
        debug_assert!(self.start < addr && addr.raw() < self.end);
        let mut hi = self.clone();
        let delta = (addr.raw() - self.start.raw()) >> PAGE_SHIFT;
        hi.start = addr;
        hi.pgoff = self.pgoff.wrapping_add(delta);
        self.end = addr.raw();
        hi
    }
}

fn same_arc<T: ?Sized>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

impl fmt::Debug for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vma")
            .field("start", &format_args!("{:#x}", self.start.raw()))
            .field("end", &format_args!("{:#x}", self.end))
            .field("pgoff", &format_args!("{:#x}", self.pgoff))
            .field("flags", &self.flags)
            .field("prot", &self.page_prot)
            .field("provider", &self.provider_name)
            .finish()
    }
}

#[cfg(test)]
impl Vma {
    /// A bare VMA `[start, end)` for tests: provider 1, no ops, no state.
    pub(crate) fn bare(start: u64, end: u64, pgoff: u64, flags: VmFlags) -> Vma {
        Vma {
            start: GuestVirtAddr::try_new(start).unwrap_or_else(|e| panic!("{e}")),
            end,
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            provider: ProviderId(1),
            provider_name: Arc::from("t"),
            ops: None,
            private: None,
            pins: Vec::new(),
            policy: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::addr::Pfn;
    use crate::frames::Frames;

    struct NoOps;
    impl VmaOps for NoOps {
        fn name(&self) -> &str {
            "no-ops"
        }
    }

    fn vma(start: u64, end: u64, pgoff: u64) -> Vma {
        let flags = VmFlags::READ | VmFlags::WRITE;
        Vma {
            start: GuestVirtAddr::try_new(start).unwrap(),
            end,
            pgoff,
            flags,
            page_prot: PageProt::from_flags(flags),
            provider: ProviderId(3),
            provider_name: Arc::from("prov"),
            ops: None,
            private: None,
            pins: Vec::new(),
            policy: None,
        }
    }

    #[test]
    fn accessors_return_the_fields() {
        let ops: Arc<dyn VmaOps> = Arc::new(NoOps);
        let private: VmaPrivate = Arc::new(7u32);
        let frames = Frames::new(64, None).unwrap();
        let pin = frames.pin(Arc::from([Pfn(1)].as_slice())).unwrap();
        let mut v = vma(0x4000, 0x7000, 9);
        v.ops = Some(ops.clone());
        v.private = Some(private.clone());
        v.hold(pin.clone());
        assert_eq!((v.start().raw(), v.end(), v.size(), v.pages(), v.pgoff()), (0x4000, 0x7000, 0x3000, 3, 9));
        assert_eq!(v.flags(), VmFlags::READ | VmFlags::WRITE);
        assert_eq!(v.page_prot(), PageProt::from_flags(VmFlags::READ | VmFlags::WRITE));
        assert_eq!((v.provider(), v.provider_name()), (ProviderId(3), "prov"));
        assert!(Arc::ptr_eq(v.ops().unwrap(), &ops));
        assert!(Arc::ptr_eq(v.private().unwrap(), &private));
        assert_eq!(v.pins().len(), 1);
        assert!(v.pins()[0].same(&pin));
        assert!(format!("{v:?}").contains("0x4000"));
    }

    #[test]
    fn hold_keeps_each_pin_once() {
        let frames = Frames::new(64, None).unwrap();
        let a = frames.pin(Arc::from([Pfn(1)].as_slice())).unwrap();
        let b = frames.pin(Arc::from([Pfn(2)].as_slice())).unwrap();
        let mut v = vma(0x1000, 0x2000, 0);
        v.hold(a.clone());
        v.hold(a.clone());
        assert_eq!(v.pins().len(), 1);
        v.hold(b.clone());
        assert_eq!(v.pins().len(), 2);
        assert!(v.pins()[1].same(&b));
        // The VMA holds the frames pinned until it goes.
        assert_eq!(frames.pin_count(Pfn(1)), 1);
        drop(a);
        assert_eq!(frames.pin_count(Pfn(1)), 1);
        drop(v);
        assert_eq!(frames.pin_count(Pfn(1)), 0);
    }

    #[test]
    fn contains_is_half_open() {
        let v = vma(0x1000, 0x3000, 0);
        assert!(!v.contains(0xfff) && v.contains(0x1000) && v.contains(0x2fff) && !v.contains(0x3000));
    }

    #[test]
    fn merging_needs_every_attribute_equal() {
        let a = vma(0x1000, 0x3000, 10);
        let b = || vma(0x3000, 0x4000, 12);
        assert!(a.can_merge_with(&b()));
        // Each difference alone forbids it.
        let mut not_adjacent = vma(0x4000, 0x5000, 12);
        assert!(!a.can_merge_with(&not_adjacent));
        not_adjacent.start = GuestVirtAddr::try_new(0x2000).unwrap();
        assert!(!a.can_merge_with(&not_adjacent));
        let mut x = b();
        x.provider = ProviderId(4);
        assert!(!a.can_merge_with(&x));
        let mut x = b();
        x.flags = VmFlags::READ;
        assert!(!a.can_merge_with(&x));
        let mut x = b();
        x.page_prot = PageProt::from_flags(VmFlags::READ);
        assert!(!a.can_merge_with(&x));
        let mut x = b();
        x.pgoff = 13;
        assert!(!a.can_merge_with(&x));
        let mut x = b();
        x.pgoff = 11;
        assert!(!a.can_merge_with(&x));
        // pgoff that would overflow.
        let mut hi = vma(0x1000, 0x3000, u64::MAX - 1);
        let mut x = b();
        x.pgoff = 0;
        assert!(!hi.can_merge_with(&x));
        // VM_SPECIAL on both.
        hi = vma(0x1000, 0x3000, 10);
        hi.flags |= VmFlags::IO;
        let mut x = b();
        x.flags |= VmFlags::IO;
        x.page_prot = hi.page_prot;
        assert!(!hi.can_merge_with(&x));
        // Ops and private state: the same Arc merges, another does not.
        let ops: Arc<dyn VmaOps> = Arc::new(NoOps);
        let (mut p, mut q) = (vma(0x1000, 0x3000, 10), b());
        p.ops = Some(ops.clone());
        assert!(!p.can_merge_with(&q));
        q.ops = Some(Arc::new(NoOps));
        assert!(!p.can_merge_with(&q));
        q.ops = Some(ops);
        assert!(p.can_merge_with(&q));
        let state: VmaPrivate = Arc::new(1u8);
        p.private = Some(state.clone());
        assert!(!p.can_merge_with(&q));
        q.private = Some(Arc::new(1u8));
        assert!(!p.can_merge_with(&q));
        q.private = Some(state);
        assert!(p.can_merge_with(&q));
        // Pins: the same set merges; a missing or different one does not.
        let frames = Frames::new(64, None).unwrap();
        let pa = frames.pin(Arc::from([Pfn(1)].as_slice())).unwrap();
        let pb = frames.pin(Arc::from([Pfn(1)].as_slice())).unwrap();
        p.hold(pa.clone());
        assert!(!p.can_merge_with(&q));
        q.hold(pb);
        assert!(!p.can_merge_with(&q));
        q.pins = vec![pa];
        assert!(p.can_merge_with(&q));
    }

    #[test]
    fn split_off_moves_pgoff() {
        let mut v = vma(0x10000, 0x20000, 100);
        let hi = v.split_off(GuestVirtAddr::try_new(0x13000).unwrap());
        assert_eq!((v.start().raw(), v.end(), v.pgoff()), (0x10000, 0x13000, 100));
        assert_eq!((hi.start().raw(), hi.end(), hi.pgoff()), (0x13000, 0x20000, 103));
        assert!(v.can_merge_with(&hi));
    }
}
