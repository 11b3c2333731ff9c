//! The reservations a private hugetlb mapping holds, by huge-page index,
//! and what a VMA's move or close does to them (`hugetlb_vm_op_close`):
//! shared by anonymous `MAP_HUGETLB` mappings and hugetlbfs files'
//! private mappings.

use std::collections::BTreeSet;

use super::hugetlb_pool::FRAMES_PER_HUGE_PAGE;
use crate::addr::GuestVirtAddr;
use crate::vma::Vma;

/// A mapping's reservations and the VMA about to move.
#[derive(Debug, Default)]
pub(super) struct Reservations {
    /// Huge-page indexes (`pgoff / 512`) holding a reservation.
    pub(super) reserved: BTreeSet<u64>,
    /// Start of a VMA about to move: its close keeps the reservations.
    moving: Option<u64>,
}

impl Reservations {
    /// Holding `reserved` already (a shared object's, taken by its maker).
    pub(super) fn holding(reserved: BTreeSet<u64>) -> Self {
        Reservations { reserved, moving: None }
    }

    /// `vma` moves to `new_start` (mremap): the close that follows is the
    /// old place's, and the reservations go with the VMA.
    pub(super) fn moving(&mut self, vma: &Vma, new_start: GuestVirtAddr) {
        if new_start != vma.start() {
            self.moving = Some(vma.start().raw());
        }
    }

    /// `vma` closes: the reservations of its pieces not yet consumed are
    /// dropped (a shared mapping's belong to the object and stay).
    /// Returns how many the pool gets back.
    pub(super) fn close(&mut self, vma: &Vma, shared: bool) -> u64 {
        if self.moving.take_if(|&mut s| s == vma.start().raw()).is_some() || shared {
            return 0;
        }
        let first = vma.pgoff() / FRAMES_PER_HUGE_PAGE;
        let end = (vma.pgoff() + vma.pages()) / FRAMES_PER_HUGE_PAGE;
        let gone: Vec<u64> = self.reserved.range(first..end).copied().collect();
        for i in &gone {
            self.reserved.remove(i);
        }
        gone.len() as u64
    }
}
