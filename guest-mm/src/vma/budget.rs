//! The VMAs all address spaces of one guest may hold together: a space
//! and every space made from it (`AddressSpace::sibling`, `fork`) share
//! one [`VmaBudget`], which their VMA trees charge as they gain VMAs and
//! credit as they lose them (and when they are dropped), so its count is
//! exact at every moment.
//!
//! Why: `vm.max_map_count` bounds one space, and nothing bounded the sum.
//! A VMA is host memory of the VMM (a few hundred bytes with its
//! indexes) where Linux takes a `vm_area_struct` from the guest's own
//! RAM: a guest that forked a process of 60,000 VMAs 255 times held
//! 1.3 GB of VMM memory with 64 MiB of RAM. [`VmaBudget::for_ram`] gives
//! one VMA per [`RAM_BYTES_PER_VMA`] bytes of guest RAM (about a quarter
//! of RAM in host memory), never less than one space's
//! `max_map_count`, so a single process keeps Linux's limit whatever the
//! guest's size.
//!
//! Not here: refusing an operation (the space checks before it changes
//! anything: `space/limits.rs`, `space/fork.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Guest RAM per VMA of [`VmaBudget::for_ram`]: 1 KiB (a VMA costs the
/// VMM about 200-300 bytes, so the budget's VMAs cost about a quarter of
/// RAM).
pub const RAM_BYTES_PER_VMA: u64 = 1024;

/// A shared count of VMAs and its limit (clones share the count).
#[derive(Clone, Debug)]
pub struct VmaBudget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    limit: usize,
    used: AtomicUsize,
}

impl VmaBudget {
    /// A budget of `limit` VMAs, none used.
    pub fn new(limit: usize) -> Self {
        VmaBudget(Arc::new(Shared { limit, used: AtomicUsize::new(0) }))
    }

    /// The budget for a guest of `ram_bytes` of RAM whose spaces each
    /// hold at most `max_map_count` VMAs: one VMA per
    /// [`RAM_BYTES_PER_VMA`], at least `max_map_count`.
    pub fn for_ram(ram_bytes: u64, max_map_count: usize) -> Self {
        let by_ram = usize::try_from(ram_bytes / RAM_BYTES_PER_VMA).unwrap_or(usize::MAX);
        Self::new(by_ram.max(max_map_count))
    }

    /// Most VMAs all the spaces may hold.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// VMAs the spaces hold now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Whether `more` VMAs than now still fit.
    pub fn fits(&self, more: usize) -> bool {
        self.used().saturating_add(more) <= self.0.limit
    }

    /// Whether `other` is this budget (shared, not equal).
    pub fn same(&self, other: &VmaBudget) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Counts `n` more VMAs (a tree's insert or split; never refused:
    /// the space checked [`VmaBudget::fits`] before the operation).
    pub(crate) fn charge(&self, n: usize) {
        self.0.used.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` fewer VMAs (never below zero: a tree credits only what
    /// it charged).
    pub(crate) fn credit(&self, n: usize) {
        let _ = self.0.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_ram_but_never_drops_below_max_map_count() {
        assert_eq!(VmaBudget::for_ram(64 << 20, 65530).limit(), 65536);
        assert_eq!(VmaBudget::for_ram(1 << 30, 65530).limit(), 1 << 20);
        assert_eq!(VmaBudget::for_ram(16 << 20, 65530).limit(), 65530);
        let b = VmaBudget::new(3);
        let c = b.clone();
        assert!(b.same(&c) && !b.same(&VmaBudget::new(3)));
        c.charge(2);
        assert_eq!(b.used(), 2);
        assert!(b.fits(1) && !b.fits(2));
        b.credit(5);
        assert_eq!(c.used(), 0, "never below zero");
    }
}
