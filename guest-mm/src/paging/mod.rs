//! x86-64 4-level page tables that live in guest memory.
//!
//! The tables are read by the guest's hardware page walker while vCPUs
//! run, so every entry is written as one aligned 8-byte store and a new
//! table is completely filled before it is linked into its parent.
//! Huge leaves (2 MiB, 1 GiB) are used wherever the virtual range, the
//! physical range and their alignment allow, split only when a partial
//! unmap or protect needs it, and tables are freed when they become empty.
//!
//! This module does not know about VMAs, providers or policy: it maps what
//! it is told to. Validation of frames and ranges happens in prepare.
//!
//! CONTRACT (implemented in the files of this module):
//!
//! ```text
//! pub struct PageTables<M: GuestMemory> { .. }
//! impl<M: GuestMemory> PageTables<M> {
//!     /// Allocates and zeroes the root (PML4) from `alloc`.
//!     pub fn new(mem: M, alloc: TableAllocator) -> Result<Self, MmError>;
//!     pub fn root(&self) -> GuestAddress;            // value for CR3
//!     pub fn memory(&self) -> &M;
//!     pub fn allocator(&self) -> &TableAllocator;
//!     pub fn allocator_mut(&mut self) -> &mut TableAllocator;
//!
//!     /// Maps [va, va+len) to the contiguous [pa, pa+len). Picks the largest
//!     /// leaf <= max_leaf that alignment of va, pa and the remaining length
//!     /// allow. The range must be unmapped (caller guarantees; a present
//!     /// entry found on the way is an Err(Exists) after undoing what this
//!     /// call wrote). On Err nothing this call wrote or allocated remains.
//!     pub fn map_range(&mut self, va: GuestVirtAddr, pa: GuestAddress, len: u64,
//!                      prot: PageProt, max_leaf: PageSize) -> Result<MapStats, MmError>;
//!
//!     /// Batched insert of 4 KiB pages: pages[i] at va + i*4K. One walk per
//!     /// leaf table, then a tight loop over up to 512 entries; each entry
//!     /// gets the software COUNTED bit and counts.get(pfn) is incremented in
//!     /// the same pass. On Err nothing this call wrote or allocated remains
//!     /// (counts restored).
//!     pub fn insert_pages(&mut self, va: GuestVirtAddr, pages: &[Pfn], prot: PageProt,
//!                         counts: &mut MapCounts) -> Result<MapStats, MmError>;
//!
//!     /// Clears every leaf in [va, va+len) (page aligned). Huge leaves only
//!     /// partly covered are split first (all splits are reserved up front,
//!     /// so an ENOMEM leaves everything unchanged). COUNTED leaves decrement
//!     /// their frame's count; frames whose count reaches 0 are pushed to
//!     /// `released`. Tables left empty are unlinked and freed.
//!     pub fn unmap_range(&mut self, va: GuestVirtAddr, len: u64, counts: &mut MapCounts,
//!                        released: &mut Vec<Pfn>) -> Result<Unmapped, MmError>;
//!
//!     /// Rewrites the permission/cache bits of present leaves in range
//!     /// (splitting partly covered huge leaves, atomically as above).
//!     pub fn protect_range(&mut self, va: GuestVirtAddr, len: u64, prot: PageProt)
//!         -> Result<FlushSet, MmError>;
//!
//!     /// Walks guest memory (never trusting the writer) for va.
//!     pub fn translate(&self, va: GuestVirtAddr) -> Option<Translation>;
//!
//!     /// Every present leaf in [va, va+len), in address order.
//!     pub fn leaves(&self, va: GuestVirtAddr, len: u64) -> Vec<Leaf>;
//!
//!     /// Re-installs leaves captured by `leaves()` into an unmapped range
//!     /// (re-counting COUNTED ones) and re-joins the huge leaves recorded in
//!     /// `splits` so the tree is exactly as before `unmap_range`. Rollback
//!     /// path: its table allocations bypass failure injection.
//!     pub fn restore(&mut self, leaves: &[Leaf], splits: &[SplitRecord],
//!                    counts: &mut MapCounts) -> Result<(), MmError>;
//! }
//! ```

// The implementation files are declared here as they land.
