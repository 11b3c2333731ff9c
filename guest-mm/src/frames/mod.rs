//! Frame bookkeeping: page-table page allocation from the VMM-reserved
//! region, the physical layout checks, per-frame pin counts, pinned
//! frames, and the kernel page pool (its free list, owner set and census).

mod free_list;
mod layout;
mod owned;
mod pin;
mod pin_count;
mod pool;
mod pool_census;
#[cfg(test)]
mod pool_tests;
mod table_alloc;

pub use free_list::FreeView;
pub use layout::{PhysLayout, MAX_PFN};
pub use pin::Pinned;
pub use pin_count::PinCounts;
pub use pool::{FrameState, Frames, PoolPages};
pub use pool_census::PoolCensus;
pub use table_alloc::TableAllocator;
