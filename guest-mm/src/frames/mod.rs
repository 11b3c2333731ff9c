//! Frame bookkeeping: page-table page allocation from the VMM-reserved
//! region, per-frame map counts, and the kernel page pool.

mod map_count;
mod table_alloc;

pub use map_count::MapCounts;
pub use table_alloc::TableAllocator;
