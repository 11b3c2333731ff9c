//! [`PageTables`]: the owner of one guest address space's tables.
//!
//! Holds the guest memory the tables live in, the allocator their frames
//! come from and the root. The operations live in the files named after
//! them (`map.rs`, `insert.rs`, `unmap.rs`, ...).

use vm_memory::{GuestAddress, GuestMemory, Permissions};

use super::flush::FlushSet;
use super::table::Table;
use super::walk::Writer;
use crate::addr::{GuestVirtAddr, Pfn, PAGE_SIZE};
use crate::error::MmError;
use crate::frames::TableAllocator;

/// x86-64 4-level page tables built inside guest memory `M`.
///
/// Addresses in entries are addresses of `M` (guest-physical for any
/// [`vm_memory::GuestMemoryBackend`]).
///
/// ```
/// use guest_mm::{GuestVirtAddr, MmError, PageProt, PageSize, PageTables, TableAllocator, VmFlags};
/// use vm_memory::{GuestAddress, GuestMemoryMmap};
///
/// let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
/// let alloc = TableAllocator::new(GuestAddress(60 << 20), 4 << 20).unwrap();
/// let mut pt = PageTables::new(mem, alloc).unwrap();
/// let va = GuestVirtAddr::try_new(0x4000_0000).unwrap();
/// let prot = PageProt::from_flags(VmFlags::READ | VmFlags::WRITE);
///
/// // A 2 MiB aligned range becomes one 2 MiB leaf.
/// let stats = pt.map_range(va, GuestAddress(0x20_0000), 2 << 20, prot, PageSize::Size1G).unwrap();
/// assert_eq!(stats.entries_written, 1);
/// let t = pt.translate(GuestVirtAddr::try_new(0x4000_1234).unwrap()).unwrap();
/// assert_eq!((t.phys, t.size), (GuestAddress(0x20_1234), PageSize::Size2M));
///
/// // Mapping over it again is refused, naming the start of the request.
/// assert_eq!(
///     pt.map_range(va, GuestAddress(0), 4096, prot, PageSize::Size4K),
///     Err(MmError::Exists { addr: 0x4000_0000 })
/// );
/// ```
#[derive(Debug)]
pub struct PageTables<M: GuestMemory> {
    pub(super) mem: M,
    pub(super) alloc: TableAllocator,
    pub(super) root: Pfn,
    /// Entries a failed map or insert wrote while a vCPU could see them
    /// and then cleared; see [`PageTables::take_rollback_flush`].
    pub(super) rolled_back: FlushSet,
}

impl<M: GuestMemory> PageTables<M> {
    /// Allocates and zeroes the root (PML4) from `alloc`. The whole table
    /// region of `alloc` (if it has one) must be writable guest memory.
    pub fn new(mem: M, mut alloc: TableAllocator) -> Result<Self, MmError> {
        let (first, end) = alloc.region();
        let bytes = (end.0 - first.0).saturating_mul(PAGE_SIZE);
        // An allocator without a region (tables from the pool only) has
        // nothing to check here.
        let fits = bytes == 0
            || usize::try_from(bytes).is_ok_and(|n| mem.check_range(first.addr(), n, Permissions::ReadWrite));
        if !fits {
            return Err(MmError::GuestMemory { addr: first.addr().0 });
        }
        let root = alloc.alloc()?;
        match Table::new(&mem, root, true) {
            Ok(t) => t.zero(),
            Err(e) => {
                alloc.free(root);
                return Err(e);
            }
        }
        Ok(PageTables { mem, alloc, root, rolled_back: FlushSet::default() })
    }

    /// Guest-physical address of the PML4: the value for CR3.
    pub fn root(&self) -> GuestAddress {
        self.root.addr()
    }

    /// The guest memory the tables live in.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The table-page allocator.
    pub fn allocator(&self) -> &TableAllocator {
        &self.alloc
    }

    /// The table-page allocator, mutably (failure injection in tests).
    pub fn allocator_mut(&mut self) -> &mut TableAllocator {
        &mut self.alloc
    }

    /// Table pages in use, the root included.
    pub fn tables_in_use(&self) -> usize {
        self.alloc.in_use()
    }

    /// What failed operations cleared after a hardware walker could have
    /// used it: a map or insert that fails undoes itself, but the entries
    /// it had written into tables already linked were live for a while.
    /// The caller flushes this like the set of an unmap; it is empty when
    /// nothing failed (or nothing failed after writing live entries).
    pub fn take_rollback_flush(&mut self) -> FlushSet {
        std::mem::take(&mut self.rolled_back)
    }

    /// A writer for one operation on the range starting at `start`;
    /// `unchecked` allocations bypass failure injection (rollback paths).
    pub(super) fn writer(&mut self, unchecked: bool, start: u64) -> Writer<'_, M> {
        Writer::new(&self.mem, &mut self.alloc, &mut self.rolled_back, self.root, unchecked, start)
    }
}

/// Checks a range argument: `va` and `len` page aligned, the range
/// canonical. Returns the exclusive end.
pub(super) fn check_range(va: GuestVirtAddr, len: u64) -> Result<u64, MmError> {
    if !va.is_aligned(PAGE_SIZE) {
        return Err(MmError::Misaligned { what: "address", value: va.raw(), align: PAGE_SIZE });
    }
    if len & (PAGE_SIZE - 1) != 0 {
        return Err(MmError::Misaligned { what: "length", value: len, align: PAGE_SIZE });
    }
    va.checked_end(len)
}
