//! A page quota several shared-memory objects draw on together: a tmpfs
//! mount's `size=` (Linux's `shmem_sb_info.max_blocks` and
//! `used_blocks`). An object charges it for each page it takes (a
//! `write`, an `fallocate`, a fault of a shared mapping in a hole) and
//! gives the page back when it drops it (truncate, hole punch, the
//! object going away).
//!
//! It is lock-free, so the fault path (which holds the address space)
//! and the file layer (which holds its own lock) never wait on each
//! other for it. It counts pages only; it allocates nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counts {
    limit: AtomicU64,
    used: AtomicU64,
}

/// A shared page quota; clones are the same quota.
#[derive(Clone)]
pub struct ShmemQuota(Arc<Counts>);

impl std::fmt::Debug for ShmemQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmemQuota").field("used", &self.used()).field("limit", &self.limit()).finish()
    }
}

impl ShmemQuota {
    /// A quota of `limit` pages, none used.
    pub fn new(limit: u64) -> Self {
        ShmemQuota(Arc::new(Counts { limit: AtomicU64::new(limit), used: AtomicU64::new(0) }))
    }

    /// Pages allowed.
    pub fn limit(&self) -> u64 {
        self.0.limit.load(Ordering::Relaxed)
    }

    /// Pages charged now.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Pages still free (0 when over a lowered limit).
    pub fn free(&self) -> u64 {
        self.limit().saturating_sub(self.used())
    }

    /// Charges `n` pages, all or none: false when fewer are free.
    #[must_use = "a refused charge must not take pages"]
    pub fn try_charge(&self, n: u64) -> bool {
        let limit = self.limit();
        self.0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    /// Gives `n` pages back (never below zero).
    pub fn uncharge(&self, n: u64) {
        let _ = self.0.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| Some(used.saturating_sub(n)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_all_or_nothing_and_shared_by_clones() {
        let q = ShmemQuota::new(4);
        let other = q.clone();
        assert!(q.try_charge(3));
        assert!(!other.try_charge(2), "only one page is free");
        assert_eq!((q.used(), q.free()), (3, 1));
        assert!(other.try_charge(1));
        assert!(!q.try_charge(1));
        q.uncharge(10);
        assert_eq!((other.used(), other.free()), (0, 4));
        assert!(!q.try_charge(u64::MAX), "an overflowing charge is refused");
    }
}
