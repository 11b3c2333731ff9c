//! `MAP_HUGETLB` anonymous memory: mappings whose pages come one 2 MiB
//! page at a time from a [`HugetlbPool`], faulted in on first touch and
//! mapped by one 2 MiB leaf (the fault path's huge-page branch), as
//! Linux's hugetlbfs does for an anonymous `MAP_HUGETLB` mapping.
//!
//! - Every mapping is `VM_HUGETLB | VM_DONTEXPAND` with a 2 MiB page size
//!   (`vm_ops->pagesize`), so `munmap`, `mprotect` and `mremap` keep it
//!   whole pages (`EINVAL`), it never merges and never grows in place.
//!   Its start, length and offset must be 2 MiB multiples (`EINVAL`; the
//!   caller rounds an anonymous length up first, as Linux's `mmap` does).
//! - `mmap` reserves one pool page per huge page of the mapping
//!   (`ENOMEM` when the pool cannot promise them), unless asked not to
//!   (`MAP_NORESERVE`); the first fault of each page consumes its
//!   reservation, later ones (after `MADV_DONTNEED`) take any free page or
//!   fail (the guest's `SIGBUS`).
//! - A **private** mapping's page belongs to the faulted run that maps it:
//!   `munmap` or `MADV_DONTNEED` gives it back to the pool at once. The
//!   reservations of a private mapping's unmapped piece are given back
//!   when the piece goes (`hugetlb_vm_op_close`); a moved piece keeps them.
//! - A **shared** mapping's pages belong to the mapping object (the
//!   anonymous hugetlbfs file behind it): `MADV_DONTNEED` only unmaps
//!   them, a refault finds the same bytes, and they return to the pool
//!   with the last VMA of the mapping (with its reservations).
//!   `MADV_REMOVE` punches them out of the object (every mapping of it,
//!   in every space, loses them; `VmaOps::remove`).
//! - A fork's child gets a copy of each private page at once, in a page
//!   taken without a reservation (its copy of the VMA has none, as in
//!   Linux); a shared mapping's pages are the child's too.
//!
//! Not here: hugetlbfs files and `memfd_create(MFD_HUGETLB)`, copy-on-write
//! of shared pages into private mappings, 1 GiB pages, `MAP_POPULATE`
//! prefaulting (pages fault in on touch).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use super::hugetlb_pool::{HugePage, HugetlbPool, PoolInner, FRAMES_PER_HUGE_PAGE, HUGE_PAGE_SIZE};
use super::hugetlb_reserve::Reservations;
use crate::desc::VmaDesc;
use crate::error::MmError;
use crate::flags::VmFlags;
use crate::provider::MmapProvider;
use crate::vma::{FaultInfo, FaultPage, ObjectKey, Punched, Vma, VmaOps};

/// The name of hugetlb mappings (as the eager huge-page provider's, so
/// `/proc` shows both as `/anon_hugepage (deleted)`).
pub const HUGETLB_NAME: &str = "huge";

/// Maps anonymous `MAP_HUGETLB` memory from a pool; see the module docs.
pub struct HugetlbProvider<M> {
    pool: Arc<PoolInner<M>>,
    noreserve: bool,
}

impl<M> HugetlbPool<M> {
    /// A provider of anonymous hugetlb mappings from this pool; with
    /// `noreserve` (`MAP_NORESERVE`) mappings reserve nothing.
    pub fn provider(&self, noreserve: bool) -> HugetlbProvider<M> {
        HugetlbProvider { pool: self.0.clone(), noreserve }
    }
}

#[derive(Default)]
pub(super) struct MapState {
    /// Reservations by huge-page index (`pgoff / 512`).
    pub(super) res: Reservations,
    /// A shared mapping's pages, by index.
    pub(super) pages: BTreeMap<u64, Arc<HugePage>>,
}

/// One mapping (`mmap` call): the ops of its VMAs. A shared one is also
/// the object behind a SysV `SHM_HUGETLB` segment
/// ([`super::HugetlbShm`]), which every attach maps.
pub(super) struct HugetlbMapping<M> {
    pool: Arc<PoolInner<M>>,
    shared: bool,
    state: Mutex<MapState>,
}

impl<M> HugetlbMapping<M> {
    /// A shared mapping object of `pool` holding the reservations of the
    /// huge-page indexes in `reserved` (taken by the caller).
    pub(super) fn shared_object(pool: Arc<PoolInner<M>>, reserved: BTreeSet<u64>) -> Self {
        let state = MapState { res: Reservations::holding(reserved), ..Default::default() };
        HugetlbMapping { pool, shared: true, state: Mutex::new(state) }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, MapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<M> Drop for HugetlbMapping<M> {
    fn drop(&mut self) {
        let n = self.lock().res.reserved.len() as u64;
        self.pool.unreserve(n);
    }
}

impl<M: GuestMemory + Send + Sync + 'static> HugetlbMapping<M> {
    /// A fresh zeroed page for index `idx`, with its reservation if it
    /// still has one.
    fn new_page(&self, st: &mut MapState, idx: u64) -> Result<Arc<HugePage>, MmError> {
        let reserved = st.res.reserved.remove(&idx);
        let page = match self.pool.take(reserved) {
            Ok(p) => p,
            Err(e) => {
                if reserved {
                    st.res.reserved.insert(idx);
                }
                return Err(e);
            }
        };
        self.pool.zero(&page)?;
        Ok(page)
    }
}

impl<M: GuestMemory + Send + Sync + 'static> VmaOps for HugetlbMapping<M> {
    fn name(&self) -> &str {
        HUGETLB_NAME
    }

    fn fault(&self, _vma: &Vma, vmf: &FaultInfo) -> Result<FaultPage, MmError> {
        if vmf.pgoff % FRAMES_PER_HUGE_PAGE != 0 {
            return Err(MmError::Misaligned { what: "huge-page fault", value: vmf.pgoff, align: FRAMES_PER_HUGE_PAGE });
        }
        let idx = vmf.pgoff / FRAMES_PER_HUGE_PAGE;
        let mut st = self.lock();
        let page = match st.pages.get(&idx) {
            Some(p) => p.clone(),
            None => {
                let p = self.new_page(&mut st, idx)?;
                if self.shared {
                    st.pages.insert(idx, p.clone());
                }
                p
            }
        };
        Ok(FaultPage { pfn: page.head(), copy_on_write: false, hold: Some(page) })
    }

    fn mremap(&self, vma: &Vma, new_start: crate::addr::GuestVirtAddr, _new_len: u64) -> Result<(), MmError> {
        self.lock().res.moving(vma, new_start);
        Ok(())
    }

    fn close(&self, vma: &Vma) {
        // hugetlb_vm_op_close: the piece's unconsumed reservations go.
        let gone = self.lock().res.close(vma, self.shared);
        self.pool.unreserve(gone);
    }

    fn pagesize(&self, _vma: &Vma) -> u64 {
        HUGE_PAGE_SIZE
    }

    /// A shared mapping is an object (anonymous `MAP_SHARED|MAP_HUGETLB`
    /// memory, a SysV `SHM_HUGETLB` segment) every mapping of which, in
    /// every space, maps the same pages; a private one is not.
    fn object_key(&self) -> Option<ObjectKey> {
        self.shared.then_some(ObjectKey(self as *const Self as *const () as usize))
    }

    /// `MADV_REMOVE` of a shared mapping (hugetlbfs's punch of the file
    /// behind it): the whole huge pages inside `[offset, offset + len)`
    /// go; the partial pages at the edges are zeroed in place. The
    /// reservations of pages never faulted stay. A later touch of a
    /// punched page faults a fresh one from the unreserved free pages, as
    /// on Linux (its reservation went with the page).
    fn remove(&self, _vma: &Vma, offset: u64, len: u64) -> Result<Option<Punched>, MmError> {
        if !self.shared {
            return Ok(None);
        }
        let end = offset.checked_add(len).ok_or(MmError::Overflow { addr: offset, len })?;
        let (hs, he) = (offset.div_ceil(HUGE_PAGE_SIZE), end / HUGE_PAGE_SIZE);
        let mut st = self.lock();
        let edges =
            if hs > he { [(offset, end), (0, 0)] } else { [(offset, hs * HUGE_PAGE_SIZE), (he * HUGE_PAGE_SIZE, end)] };
        for (a, b) in edges.into_iter().filter(|(a, b)| a < b) {
            if let Some(p) = st.pages.get(&(a / HUGE_PAGE_SIZE)) {
                let at = p.head().addr().0 + a % HUGE_PAGE_SIZE;
                let zeros = vec![0u8; (b - a) as usize];
                self.pool.mem.write_slice(&zeros, GuestAddress(at)).map_err(|_| MmError::GuestMemory { addr: at })?;
            }
        }
        if hs >= he {
            return Ok(Some(Punched { pages: 0..0, frames: None }));
        }
        // The pages go back to the pool when the last mapping lets go.
        // Reservations of pages never faulted stay (a punch gives back
        // what the freed pages had, which their faults consumed).
        let gone: Vec<Arc<HugePage>> = (hs..he).filter_map(|i| st.pages.remove(&i)).collect();
        drop(st);
        drop(gone);
        Ok(Some(Punched { pages: hs * FRAMES_PER_HUGE_PAGE..he * FRAMES_PER_HUGE_PAGE, frames: None }))
    }

    /// A private mapping's copy in a fork's child has its own state and
    /// no reservations (`hugetlb_dup_vma_private`): its pages come from
    /// the free pages, and its exit gives back none of the parent's
    /// reservations. A shared mapping's copy shares the mapping.
    fn dup_for_fork(&self, _vma: &Vma) -> Option<Arc<dyn VmaOps>> {
        if self.shared {
            return None;
        }
        let fresh = HugetlbMapping { pool: self.pool.clone(), shared: false, state: Mutex::new(MapState::default()) };
        Some(Arc::new(fresh))
    }
}

impl<M: GuestMemory + Send + Sync + 'static> MmapProvider for HugetlbProvider<M> {
    fn name(&self) -> &str {
        HUGETLB_NAME
    }

    fn align(&self) -> u64 {
        HUGE_PAGE_SIZE
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        super::hugetlb_pool::check_huge_desc(desc)?;
        let first = desc.pgoff / FRAMES_PER_HUGE_PAGE;
        let n = desc.size() / HUGE_PAGE_SIZE;
        let mut state = MapState::default();
        if !self.noreserve {
            self.pool.reserve(n)?;
            state.res.reserved.extend(first..first + n);
        }
        let shared = desc.test_flags(VmFlags::SHARED);
        let mapping = HugetlbMapping { pool: self.pool.clone(), shared, state: Mutex::new(state) };
        desc.set_flags(VmFlags::HUGETLB | VmFlags::DONTEXPAND);
        desc.set_ops(Arc::new(mapping));
        Ok(())
    }
}
