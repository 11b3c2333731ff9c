//! The memory counters of a line (`smaps`) or of the whole process
//! (`smaps_rollup`, `status`), gathered by walking the page tables under
//! it: only what the tables say, never guest-mm's bookkeeping.
//!
//! The rules (Linux 6.12's `smaps_pte_entry` / `smaps_account`):
//! - a leaf maps resident pages (present or PROT_NONE), except a
//!   copy-on-write leaf that no fork shared (the shared zero page, which
//!   `vm_normal_page` refuses) and the leaves of `VM_PFNMAP` VMAs (raw
//!   frames): those are not counted anywhere;
//! - a page a fork shared is mapped by as many processes as pin its frame
//!   (its map count): with more than one it counts in `Shared_*` and
//!   adds its size divided by that count to `Pss` (kept, as Linux keeps
//!   it, in units of 2^-12 bytes); otherwise, as every other page, in
//!   `Private_*` and whole in `Pss`;
//! - a page is dirty when its leaf's Dirty bit is set, or it is in a VMA
//!   of lazily faulted anonymous memory (such a page exists only after a
//!   write or a copy-on-write break: a read maps the zero page), as
//!   Linux maps a written anonymous page dirty;
//! - a page is anonymous when its line is anonymous memory, or it is a
//!   dirty page of a private file mapping (Linux's copy-on-write copy);
//! - `Referenced` is the Accessed bit; `Locked` the resident pages of
//!   `VM_LOCKED` VMAs;
//! - huge-page (`VM_HUGETLB`) VMAs count in `Private_Hugetlb` only, not
//!   in `Rss`, as Linux's hugetlb walk does.

use guest_mm::{VmFlags, Vma, PAGE_SIZE};

use super::region::{Backing, ProcView, Region};

/// `Pss` fields are kept in units of `2^-PSS_SHIFT` bytes (Linux's
/// `PSS_SHIFT`), so a page shared three ways adds no rounding error.
pub const PSS_SHIFT: u32 = 12;

/// Is a counted page of `vma` (backed as `backing`) anonymous? Anonymous
/// memory, or a dirty page of a private file mapping (Linux's
/// copy-on-write copy).
pub(super) fn page_is_anon(vma: &Vma, backing: Backing, dirty: bool) -> bool {
    backing == Backing::Anon || (dirty && backing == Backing::File && !vma.flags().contains(VmFlags::MAYSHARE))
}

/// The counters of `smaps`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemStats {
    /// `Rss`.
    pub resident: u64,
    /// `Pss`, in 2^-12 bytes ([`PSS_SHIFT`]).
    pub pss: u64,
    /// `Pss_Dirty`, in 2^-12 bytes.
    pub pss_dirty: u64,
    /// `Pss_Anon`, in 2^-12 bytes.
    pub pss_anon: u64,
    /// `Shared_Clean`.
    pub shared_clean: u64,
    /// `Shared_Dirty`.
    pub shared_dirty: u64,
    /// `Private_Clean`.
    pub private_clean: u64,
    /// `Private_Dirty`.
    pub private_dirty: u64,
    /// `Referenced`.
    pub referenced: u64,
    /// `Anonymous`.
    pub anonymous: u64,
    /// `Pss_File`.
    pub pss_file: u64,
    /// `Pss_Shmem`.
    pub pss_shmem: u64,
    /// `Locked`.
    pub locked: u64,
    /// `Private_Hugetlb`.
    pub private_hugetlb: u64,
    /// `AnonHugePages`: anonymous THPs mapped by a 2 MiB leaf.
    pub anon_huge: u64,
}

impl MemStats {
    /// Adds `other` in.
    pub fn add(&mut self, other: &MemStats) {
        self.resident += other.resident;
        self.pss += other.pss;
        self.pss_dirty += other.pss_dirty;
        self.pss_anon += other.pss_anon;
        self.shared_clean += other.shared_clean;
        self.shared_dirty += other.shared_dirty;
        self.private_clean += other.private_clean;
        self.private_dirty += other.private_dirty;
        self.referenced += other.referenced;
        self.anonymous += other.anonymous;
        self.pss_file += other.pss_file;
        self.pss_shmem += other.pss_shmem;
        self.locked += other.locked;
        self.private_hugetlb += other.private_hugetlb;
        self.anon_huge += other.anon_huge;
    }

    /// The counters of `region`, walking the tables under it.
    pub fn of_region(view: &ProcView<'_>, region: &Region<'_>) -> MemStats {
        let mut st = MemStats::default();
        let flags = region.flags();
        if flags.contains(VmFlags::PFNMAP) {
            return st;
        }
        let (start, end) = (region.start.raw(), region.end.raw());
        let hugetlb = flags.contains(VmFlags::HUGETLB);
        let lazy_anon = region.vma.is_anonymous();
        let locked = flags.contains(VmFlags::LOCKED);
        for leaf in view.space.page_tables().leaves(region.start, end - start) {
            let ls = leaf.va.raw();
            let bytes = (ls + leaf.size.bytes()).min(end) - ls.max(start);
            if hugetlb {
                st.private_hugetlb += bytes;
                continue;
            }
            // The map count of a page a fork shared: the spaces pinning it.
            let maps = match (leaf.is_copy_on_write(), leaf.is_fork_shared()) {
                (true, false) => continue,
                (true, true) => u64::from(view.space.frames().pin_count(leaf.frame())).max(1),
                (false, _) => 1,
            };
            st.resident += bytes;
            let pss = (bytes << PSS_SHIFT) / maps;
            st.pss += pss;
            let dirty = leaf.is_dirty() || lazy_anon;
            if dirty {
                st.pss_dirty += pss;
            }
            match (maps > 1, dirty) {
                (true, true) => st.shared_dirty += bytes,
                (true, false) => st.shared_clean += bytes,
                (false, true) => st.private_dirty += bytes,
                (false, false) => st.private_clean += bytes,
            }
            if leaf.is_accessed() {
                st.referenced += bytes;
            }
            if page_is_anon(region.vma, region.backing, dirty) {
                st.anonymous += bytes;
                st.pss_anon += pss;
            } else if region.backing == Backing::Shmem {
                st.pss_shmem += bytes;
            } else {
                st.pss_file += bytes;
            }
            if locked {
                st.locked += bytes;
            }
            if leaf.size == guest_mm::PageSize::Size2M && view.space.is_pmd_thp(region.vma, leaf.va) {
                st.anon_huge += bytes;
            }
        }
        debug_assert_eq!(st.resident % PAGE_SIZE, 0);
        st
    }

    /// The counters of the whole process (every shown line).
    pub fn of_process(view: &ProcView<'_>) -> MemStats {
        let mut total = MemStats::default();
        view.for_each_region(|r| total.add(&MemStats::of_region(view, &r)));
        total
    }
}
