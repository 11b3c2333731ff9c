//! One virtual memory area: a page-aligned range with flags, protection,
//! the provider that made it, and what that provider attached.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::addr::{GuestVirtAddr, PAGE_SHIFT};
use crate::flags::{PageProt, VmFlags, VM_SPECIAL};
use crate::frames::Pinned;
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

    /// Does the VMA contain `addr`?
    pub fn contains(&self, addr: u64) -> bool {
        self.start.raw() <= addr && addr < self.end
    }

    /// Can `next`, which starts where `self` ends, be folded into `self`?
    /// Same provider, flags, protection, ops and private state, contiguous
    /// pgoff, no `VM_SPECIAL` flag (the kernel's `is_mergeable_vma`), and
    /// the same pins (a merge must not drop one).
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
