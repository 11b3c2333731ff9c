//! Pinned frames: what keeps a mapped frame from being freed or reused.
//!
//! [`Frames::pin`] checks every frame of an array once (guest RAM, not a
//! hole, not VMM-reserved) and takes one pin on each; the returned
//! [`Pinned`] handle (and every clone of it) keeps them pinned, and
//! dropping the last one unpins them. A pinned pool frame is never handed
//! out again, even after its owner ([`crate::PoolPages`]) let go.
//!
//! A page array ([`crate::PageArray`]) is pinned when it is made; every
//! VMA that maps part of it holds a clone of its handle until the VMA is
//! gone. So a leaf entry that maps a page-array frame always lies in a VMA
//! that pins that frame, and mapping or unmapping touches no per-frame
//! state at all: the cost of pinning is paid once per array, not per
//! mapping. A single page (a fault path, a copy-on-write copy) is pinned
//! the same way, as an array of one.

use std::fmt;
use std::sync::Arc;

use crate::addr::Pfn;
use crate::error::MmError;
use crate::frames::Frames;

/// Frames pinned in one [`Frames`]; cheap to clone, unpinned when the last
/// clone drops.
#[derive(Clone)]
pub struct Pinned(Arc<PinInner>);

struct PinInner {
    frames: Frames,
    pfns: Arc<[Pfn]>,
    /// The pins were taken (always, but in tests of the insert loop's own
    /// range check, which need frames pinning refuses).
    held: bool,
}

impl Frames {
    /// Pins every frame of `pfns` (a frame listed twice holds two pins), or
    /// none: `FrameNotInGuest` (EFAULT) for a frame outside guest RAM or in
    /// a hole, `FrameReserved` (EPERM) for a VMM-reserved one, `Invalid`
    /// when a frame's count is at its limit.
    pub fn pin(&self, pfns: Arc<[Pfn]>) -> Result<Pinned, MmError> {
        self.lock().pin_all(&pfns)?;
        Ok(Pinned(Arc::new(PinInner { frames: self.clone(), pfns, held: true })))
    }

    /// Frames not checked and not pinned, for tests that must get a bad
    /// frame past [`Frames::pin`] to reach a later check.
    #[cfg(test)]
    pub(crate) fn pin_unchecked_for_test(&self, pfns: Arc<[Pfn]>) -> Pinned {
        Pinned(Arc::new(PinInner { frames: self.clone(), pfns, held: false }))
    }
}

impl Pinned {
    /// The pinned frames.
    pub fn pfns(&self) -> &Arc<[Pfn]> {
        &self.0.pfns
    }

    /// The frame state the pins are held in.
    pub fn frames(&self) -> &Frames {
        &self.0.frames
    }

    /// Are `self` and `other` the same pin (clones of one handle)?
    pub fn same(&self, other: &Pinned) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for PinInner {
    fn drop(&mut self) {
        if self.held {
            self.frames.lock().unpin_all(&self.pfns);
        }
    }
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pinned[{} frames]", self.0.pfns.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    use super::*;
    use crate::frames::PhysLayout;

    #[test]
    fn pins_are_all_or_nothing_and_checked() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 12)]).unwrap();
        let mut layout = PhysLayout::from_memory(&mem);
        layout.reserve(GuestAddress(8 << 12), 4 << 12);
        let f = Frames::new(64, None).unwrap();
        f.block(&layout);
        let bad = [(Pfn(9), MmError::FrameReserved { pfn: 9 }), (Pfn(64), MmError::FrameNotInGuest { pfn: 64 })];
        for (p, err) in bad {
            assert_eq!(f.pin(Arc::from([Pfn(1), p].as_slice())).map(|_| ()), Err(err));
            assert_eq!(f.lock().pins().total(), 0);
        }
        let a = f.pin(Arc::from([Pfn(1), Pfn(2)].as_slice())).unwrap();
        let b = f.pin(Arc::from([Pfn(2)].as_slice())).unwrap();
        assert_eq!((f.pin_count(Pfn(1)), f.pin_count(Pfn(2))), (1, 2));
        assert!(a.same(&a.clone()) && !a.same(&b));
        assert_eq!(format!("{a:?}"), "Pinned[2 frames]");
        drop(a);
        assert_eq!((f.pin_count(Pfn(1)), f.pin_count(Pfn(2))), (0, 1));
        drop(b);
        assert_eq!(f.lock().pins().total(), 0);
    }
}
