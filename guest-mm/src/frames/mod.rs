//! Frame bookkeeping: page-table page allocation from the VMM-reserved
//! region, the physical layout checks, per-frame map counts, and the kernel
//! page pool.

mod layout;
pub(crate) mod map_count;
mod pool;
mod table_alloc;

pub use layout::{PhysLayout, MAX_PFN};
pub use map_count::MapCounts;
pub use pool::{FrameState, Frames, PoolCensus, PoolPages};
pub use table_alloc::TableAllocator;
