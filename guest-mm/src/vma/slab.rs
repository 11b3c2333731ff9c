//! The VMA payloads of one [`super::VmaTree`], in one `Vec` with a free
//! list, named by stable `u32` handles.
//!
//! The tree's two indexes (the address-ordered map and the lookup radix,
//! `radix.rs`) hold only handles, so a lookup touches the index's few
//! bytes per level and one payload, not payload-sized index nodes. A
//! handle stays valid, naming the same VMA, until that VMA is taken out;
//! its slot is then reused by a later VMA (free slots first, so the `Vec`
//! follows the largest VMA count, which `max_map_count` bounds).

use super::radix::MAX_HANDLE;
use crate::vma::Vma;

/// VMAs by handle.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slab {
    slots: Vec<Option<Vma>>,
    /// Free slots, reused first.
    spare: Vec<u32>,
}

impl Slab {
    /// Stores `vma`, returning its handle (at most [`MAX_HANDLE`]).
    ///
    /// Handles are dense slot numbers: more than `MAX_HANDLE` live VMAs
    /// would need more than 2^31 slots of over 100 bytes each (256 GiB),
    /// far past any `max_map_count`, so that case is not handled here.
    pub(crate) fn put(&mut self, vma: Vma) -> u32 {
        if let Some(h) = self.spare.pop() {
            self.slots[h as usize] = Some(vma);
            return h;
        }
        let h = self.slots.len() as u32;
        debug_assert!(h <= MAX_HANDLE, "VMA slab full");
        self.slots.push(Some(vma));
        h
    }

    /// The VMA named by `h`, if it is live.
    #[inline]
    pub(crate) fn get(&self, h: u32) -> Option<&Vma> {
        self.slots.get(h as usize).and_then(Option::as_ref)
    }

    /// Mutable access to the VMA named by `h`, if it is live.
    pub(crate) fn get_mut(&mut self, h: u32) -> Option<&mut Vma> {
        self.slots.get_mut(h as usize).and_then(Option::as_mut)
    }

    /// Takes the VMA named by `h` out; its slot is reused later.
    pub(crate) fn take(&mut self, h: u32) -> Option<Vma> {
        let v = self.slots.get_mut(h as usize)?.take()?;
        self.spare.push(h);
        Some(v)
    }

    /// Number of live VMAs.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.slots.len() - self.spare.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::flags::VmFlags;

    fn vma(start: u64) -> Vma {
        Vma::bare(start, start + 0x1000, 0, VmFlags::READ)
    }

    #[test]
    fn handles_name_their_vma_until_taken_then_are_reused() {
        let mut s = Slab::default();
        let (a, b) = (s.put(vma(0x1000)), s.put(vma(0x2000)));
        assert_ne!(a, b);
        assert_eq!((s.get(a).unwrap().start().raw(), s.get(b).unwrap().start().raw()), (0x1000, 0x2000));
        assert_eq!(s.live(), 2);
        s.get_mut(b).unwrap().pgoff = 5;
        assert_eq!(s.take(b).unwrap().pgoff(), 5);
        assert!(s.get(b).is_none() && s.get_mut(b).is_none() && s.take(b).is_none());
        assert!(s.get(99).is_none() && s.take(99).is_none());
        assert_eq!(s.live(), 1);
        // The freed slot is reused, not a new one grown.
        assert_eq!(s.put(vma(0x3000)), b);
        assert_eq!(s.get(b).unwrap().start().raw(), 0x3000);
        assert_eq!((s.live(), s.slots.len()), (2, 2));
    }

    #[test]
    fn an_empty_slot_costs_no_more_than_a_vma() {
        // `Option<Vma>` uses a niche (the `Arc`s are non-null).
        assert_eq!(std::mem::size_of::<Option<Vma>>(), std::mem::size_of::<Vma>());
    }
}
