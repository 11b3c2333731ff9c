//! The life of VMAs that carry operations: every tree change that makes or
//! removes a VMA goes through here, so the provider's `open` and `close`
//! are called where Linux calls them.
//!
//! The rule kept: a VMA is created by `mmap` (no `open`, as the kernel's
//! `mmap` hook is the creation) or announced by `open` (a split or move
//! made it), and each VMA is closed exactly once when it leaves the tree
//! for good (unmap, the part a merge folds away, a replaced range, an
//! undone mapping). A range a fixed mapping detaches is only closed when
//! the mapping commits; a rollback puts the very same VMAs back, so it
//! neither opens nor closes anything.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::vma::Vma;

/// Calls `close` on each VMA, then drops them.
pub(crate) fn close_all(vmas: Vec<Vma>) {
    for v in &vmas {
        if let Some(ops) = v.ops() {
            ops.close(v);
        }
    }
}

fn open(v: &Vma) {
    if let Some(ops) = v.ops() {
        ops.open(v);
    }
}

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Makes `addr` a VMA boundary; the upper piece of a split VMA is
    /// announced with `open` (`__split_vma`).
    pub(crate) fn split_vma(&mut self, addr: u64) {
        let spans = self.vmas.find(addr).is_some_and(|v| v.start().raw() < addr);
        if !spans {
            return;
        }
        self.split_thp_at(addr);
        self.vmas.split_at(addr);
        if let Some(hi) = self.vmas.find(addr).filter(|v| v.start().raw() == addr) {
            open(hi);
        }
    }

    /// Takes `[start, end)` out of the tree, splitting (with `open`) the
    /// VMAs that straddle its ends. The caller closes the returned pieces
    /// with [`close_all`] when they are gone for good.
    pub(crate) fn take_vmas(&mut self, start: u64, end: u64) -> Vec<Vma> {
        self.split_vma(start);
        self.split_vma(end);
        self.vmas.remove_range(start, end)
    }

    /// Merges the VMA at `addr` with its neighbours; a VMA folded into
    /// another is closed. Returns the start of the result.
    pub(crate) fn merge_vmas(&mut self, addr: u64) -> u64 {
        let Some(cur) = self.vmas.find(addr).filter(|v| v.start().raw() == addr).cloned() else {
            return addr;
        };
        let mut around = Vec::with_capacity(3);
        if let Some(prev) = addr.checked_sub(1).and_then(|a| self.vmas.find(a)) {
            around.push(prev.clone());
        }
        if let Some(next) = self.vmas.find(cur.end()).filter(|v| v.start().raw() == cur.end()) {
            around.push(next.clone());
        }
        around.push(cur);
        let start = self.vmas.merge_around(addr);
        // The survivor keeps its start; each other VMA whose start is no
        // longer a VMA start was folded away.
        let gone: Vec<Vma> = around
            .into_iter()
            .filter(|v| self.vmas.find(v.start().raw()).is_none_or(|w| w.start() != v.start()))
            .collect();
        close_all(gone);
        start
    }

    /// A fixed mapping of `[ns, ne)` committed over `originals`, which the
    /// detach split into `removed` (gone) and remnants (still in the tree,
    /// outside the new range): each piece of an original but its first is
    /// announced with `open`, then the removed pieces are closed.
    pub(crate) fn commit_vmas(&mut self, (ns, ne): (u64, u64), originals: &[Vma], removed: Vec<Vma>) {
        for o in originals {
            let (s, e) = (o.start().raw(), o.end());
            let mut pieces: Vec<&Vma> = self
                .vmas
                .overlapping(s, e)
                .filter(|v| v.end() <= ns || v.start().raw() >= ne)
                .chain(removed.iter().filter(|v| v.start().raw() >= s && v.end() <= e))
                .collect();
            pieces.sort_by_key(|v| v.start());
            for p in pieces.iter().skip(1) {
                open(p);
            }
        }
        close_all(removed);
    }
}
