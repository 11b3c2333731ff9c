//! # guest-mm: the guest memory mapper
//!
//! Builds a guest's x86-64 page tables inside its own memory and maps
//! guest-physical ranges and arrays of guest pages into guest-virtual
//! ranges through a prepare / complete action pipeline modelled on Linux's
//! `mmap_prepare` + `mmap_action`.
//!
//! It has no KVM dependency: it works over any [`vm_memory::GuestMemory`],
//! so everything here is testable without a virtual machine.
//!
//! The pieces, bottom up: [`addr`] and [`flags`] (types), [`paging`] (the
//! tables), [`frames`] (table pages, pool pages, pins), [`vma`] (the
//! VMA tree), [`desc`] and [`action`] (what a provider sees and chooses),
//! [`provider`] and [`providers`] (who maps what), and [`space`] (the
//! pipeline that ties them together).

pub mod action;
pub mod addr;
pub mod desc;
pub mod error;
pub mod flags;
pub mod frames;
pub mod mempolicy;
pub mod paging;
pub mod provider;
pub mod providers;
pub mod range;
pub mod space;
pub mod vma;

pub use action::{ActionKind, PageArray, PageRun};
pub use addr::{page_align_up, pages_to_bytes, GuestVirtAddr, PageSize, Pfn, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};
pub use desc::{probe_mmap_prepare, PreparedDesc, VmaDesc};
pub use error::{errno, MmError};
pub use flags::{CacheMode, PageProt, VmFlags, VM_ACCESS_FLAGS, VM_LOCKED_MASK, VM_REMAP_FLAGS, VM_SPECIAL};
pub use frames::{Frames, PhysLayout, PinCounts, Pinned, PoolCensus, PoolPages, TableAllocator};
pub use paging::{
    FlushSet, Leaf, MapStats, PageTables, SplitRecord, TableCensus, Translation, Unmapped, UsedLeaf, PAT_MSR_VALUE,
};
pub use provider::MmapProvider;
pub use range::{range_in_vma, range_in_vma_desc, range_is_subset};
pub use space::{
    vma_may_hold_thp, AddressSpace, Advice, Audit, Brk, Cows, FaultKind, Faulted, Forced, Forked, Mapped, Mbound,
    MmapRequest, MremapFlags, Placement, Remapped, SpaceConfig, SpaceStats, ThpMode, ThpPolicy, ThpSizeMode, Violation,
    DEFAULT_MAX_MAP_COUNT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL, MPOL_MF_STRICT, THP_MIN_ORDER, THP_PMD_ORDER,
};
pub use vma::{
    FaultAccess, FaultInfo, FaultPage, ObjectKey, Punched, Vma, VmaBudget, VmaOps, VmaTree, RAM_BYTES_PER_VMA,
    STACK_GUARD_GAP,
};
