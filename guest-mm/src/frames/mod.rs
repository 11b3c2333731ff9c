//! Frame bookkeeping: page-table page allocation from the VMM-reserved
//! region, the physical layout checks, per-frame pin counts, pinned
//! frames, and the kernel page pool.

mod layout;
mod pin;
mod pin_count;
mod pool;
mod table_alloc;

pub use layout::{PhysLayout, MAX_PFN};
pub use pin::Pinned;
pub use pin_count::PinCounts;
pub use pool::{FrameState, Frames, PoolCensus, PoolPages};
pub use table_alloc::TableAllocator;
