//! # guest-mm: the guest memory mapper
//!
//! Builds a guest's x86-64 page tables inside its own memory and maps
//! guest-physical ranges and arrays of guest pages into guest-virtual
//! ranges through a prepare / complete action pipeline modelled on Linux's
//! `mmap_prepare` + `mmap_action`.
//!
//! It has no KVM dependency: it works over any [`vm_memory::GuestMemory`],
//! so everything here is testable without a virtual machine.

pub mod addr;
pub mod error;
pub mod flags;
pub mod frames;
pub mod paging;

pub use addr::{page_align_up, pages_to_bytes, GuestVirtAddr, PageSize, Pfn, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};
pub use error::{errno, MmError};
pub use flags::{CacheMode, PageProt, VmFlags, VM_ACCESS_FLAGS, VM_REMAP_FLAGS, VM_SPECIAL};
pub use frames::{MapCounts, TableAllocator};
