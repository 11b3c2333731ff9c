//! Changing the flags of part of the address space without touching the
//! page tables (mlock's lock bits, madvise's fork, dump and read-ahead
//! advice): the VMAs are cut at the range's ends, the pieces get their new
//! flags and merge with their neighbours again (`vma_modify_flags`).
//!
//! It does not validate the new flags (the callers decide what a VMA may
//! carry) and never changes a VMA's protection.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::error::MmError;
use crate::flags::VmFlags;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// The mapped parts of `[start, end)` in address order, each inside
    /// one VMA as the tree is now (later splits and merges keep each part
    /// inside one VMA), and the first address of the range no VMA covers.
    pub(super) fn mapped_parts(&self, start: u64, end: u64) -> (Vec<(u64, u64)>, Option<u64>) {
        let mut parts = Vec::new();
        let mut hole = None;
        let mut at = start;
        for v in self.vmas.overlapping(start, end) {
            let (s, e) = (v.start().raw().max(start), v.end().min(end));
            if s > at && hole.is_none() {
                hole = Some(at);
            }
            parts.push((s, e));
            at = e;
        }
        if at < end && hole.is_none() {
            hole = Some(at);
        }
        (parts, hole)
    }

    /// Sets the flags of `[s, e)`, which lies inside one VMA, to
    /// `f(old flags)`: splits the VMA at `s` and `e` (a piece that keeps
    /// its flags is not cut), then merges the changed piece with its
    /// neighbours. `ENOMEM` if the cuts would pass the VMA limit, `EINVAL`
    /// if they would split a huge-page VMA off its pages; then nothing
    /// changed.
    pub(super) fn modify_flags(&mut self, s: u64, e: u64, f: impl Fn(VmFlags) -> VmFlags) -> Result<(), MmError> {
        let Some(v) = self.vmas.find(s) else {
            return Err(MmError::NotMapped { addr: s });
        };
        if v.end() < e {
            return Err(MmError::NotMapped { addr: v.end() });
        }
        let new = f(v.flags());
        if new == v.flags() {
            return Ok(());
        }
        self.check_huge_split(s, e)?;
        self.check_map_count(s, e, None)?;
        self.split_vma(s);
        self.split_vma(e);
        self.vmas.update_range(s, e, |v| v.flags = new);
        self.merge_vmas(s);
        Ok(())
    }
}
