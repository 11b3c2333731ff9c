//! VMA flags and the page protection derived from them.
//!
//! [`VmFlags`] mirrors the kernel's `vm_flags_t` bits that matter to this
//! mapper. [`PageProt`] is what ends up in a page-table entry: present,
//! writable, user, no-execute, and a [`CacheMode`] a provider may change
//! during prepare (I/O remaps default to uncached). This module computes
//! bits; it writes nothing.

use bitflags::bitflags;

bitflags! {
    /// Per-VMA flags (`VM_*`). Set, test and clear several at once with
    /// [`VmFlags::insert`], [`VmFlags::intersects`] and [`VmFlags::remove`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct VmFlags: u64 {
        /// Pages may be read.
        const READ = 1 << 0;
        /// Pages may be written.
        const WRITE = 1 << 1;
        /// Pages may be executed.
        const EXEC = 1 << 2;
        /// Writes are shared (not copy-on-write).
        const SHARED = 1 << 3;
        /// `READ` may be set by mprotect.
        const MAYREAD = 1 << 4;
        /// `WRITE` may be set by mprotect.
        const MAYWRITE = 1 << 5;
        /// `EXEC` may be set by mprotect.
        const MAYEXEC = 1 << 6;
        /// `SHARED` may be set.
        const MAYSHARE = 1 << 7;
        /// Memory-mapped I/O: accesses may have side effects.
        const IO = 1 << 14;
        /// Raw frame numbers, pinned by nothing.
        const PFNMAP = 1 << 10;
        /// A mix of counted pages and raw frames (page arrays).
        const MIXEDMAP = 1 << 28;
        /// May not grow by mremap or merge.
        const DONTEXPAND = 1 << 18;
        /// Left out of core dumps.
        const DONTDUMP = 1 << 26;
        /// Backed by huge pages.
        const HUGETLB = 1 << 22;
        /// Pages are locked in memory (`mlock`): populated when locked and
        /// not dropped by `MADV_DONTNEED`/`MADV_FREE`.
        const LOCKED = 1 << 13;
        /// With `LOCKED`: lock pages as they fault in, do not populate
        /// (`MLOCK_ONFAULT`, `MCL_ONFAULT`).
        const LOCKONFAULT = 1 << 19;
        /// Expect sequential reads (`MADV_SEQUENTIAL`).
        const SEQ_READ = 1 << 15;
        /// Expect random reads (`MADV_RANDOM`).
        const RAND_READ = 1 << 16;
        /// Not copied into a child on fork (`MADV_DONTFORK`).
        const DONTCOPY = 1 << 17;
        /// A child on fork gets zero pages here (`MADV_WIPEONFORK`).
        const WIPEONFORK = 1 << 25;
        /// Transparent huge pages wanted (`MADV_HUGEPAGE`, Linux's
        /// `VM_HUGEPAGE`): eligible under the `madvise` THP mode.
        const HUGEPAGE = 1 << 29;
        /// Transparent huge pages refused (`MADV_NOHUGEPAGE`, Linux's
        /// `VM_NOHUGEPAGE`): never eligible.
        const NOHUGEPAGE = 1 << 30;
        /// Sealed by `mseal`: the mapping may no longer be unmapped,
        /// moved, resized, replaced or have its protection changed, and
        /// discarding advice on it is refused when it is read-only
        /// anonymous memory (Linux's `VM_SEALED`, bit 63).
        const SEALED = 1 << 63;
        /// A stack that grows down (`MAP_GROWSDOWN`, Linux's
        /// `VM_GROWSDOWN`): a fault in the free range below it extends
        /// it, and new mappings keep a guard gap below it
        /// (`space/stack_grow.rs`).
        const GROWSDOWN = 1 << 8;
        /// Private anonymous memory whose pages the system may free at
        /// any time (`MAP_DROPPABLE`, Linux's `VM_DROPPABLE`): a later
        /// access reads zeros. Here `MADV_PAGEOUT` frees them.
        const DROPPABLE = 1 << 40;
    }
}

/// Flags set by every remap (`VM_REMAP_FLAGS` in the seeds).
pub const VM_REMAP_FLAGS: VmFlags =
    VmFlags::IO.union(VmFlags::PFNMAP).union(VmFlags::DONTEXPAND).union(VmFlags::DONTDUMP);

/// Flags that forbid merging a VMA with its neighbours (`VM_SPECIAL`).
pub const VM_SPECIAL: VmFlags = VmFlags::IO.union(VmFlags::DONTEXPAND).union(VmFlags::PFNMAP).union(VmFlags::MIXEDMAP);

/// The lock bits (`VM_LOCKED_MASK`): mlock sets, munlock clears both.
pub const VM_LOCKED_MASK: VmFlags = VmFlags::LOCKED.union(VmFlags::LOCKONFAULT);

/// The access bits a caller may request and mprotect may change.
pub const VM_ACCESS_FLAGS: VmFlags = VmFlags::READ.union(VmFlags::WRITE).union(VmFlags::EXEC);

impl VmFlags {
    /// Private and writable-capable: the kernel's `is_cow_mapping()`.
    pub fn is_cow_mapping(self) -> bool {
        !self.contains(VmFlags::SHARED) && self.contains(VmFlags::MAYWRITE)
    }

    /// mlock leaves these VMAs alone (no lock bits, not counted): the
    /// `VM_SPECIAL` ones and huge-page ones, as `mlock_fixup` does.
    pub fn is_unlockable(self) -> bool {
        self.intersects(VM_SPECIAL.union(VmFlags::HUGETLB))
    }

    /// The `MAY*` bits a mapping's access bits need.
    pub fn may_bits_for(access: VmFlags) -> VmFlags {
        let mut may = VmFlags::empty();
        if access.contains(VmFlags::READ) {
            may |= VmFlags::MAYREAD;
        }
        if access.contains(VmFlags::WRITE) {
            may |= VmFlags::MAYWRITE;
        }
        if access.contains(VmFlags::EXEC) {
            may |= VmFlags::MAYEXEC;
        }
        may
    }
}

/// Memory type of a mapping, selected through the PAT/PCD/PWT bits with
/// the VMM's PAT layout (see [`crate::paging::PAT_MSR_VALUE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CacheMode {
    /// Normal RAM: write-back.
    #[default]
    WriteBack,
    /// Write-through.
    WriteThrough,
    /// Strong uncacheable: device registers.
    Uncached,
    /// Write-combining: frame buffers, doorbell pages.
    WriteCombining,
}

/// Page protection: the permission bits of a leaf entry plus its cache mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageProt {
    /// The entry is present (PROT_NONE mappings are not).
    pub present: bool,
    /// Writes allowed.
    pub writable: bool,
    /// Reachable from CPL 3.
    pub user: bool,
    /// Instruction fetch forbidden (XD).
    pub no_execute: bool,
    /// Memory type.
    pub cache: CacheMode,
}

impl PageProt {
    /// No access at all: entries are written not present but keep their
    /// frame, so mprotect can restore them.
    pub const NONE: PageProt =
        PageProt { present: false, writable: false, user: true, no_execute: true, cache: CacheMode::WriteBack };

    /// The protection a user mapping with `flags` gets (`vm_get_page_prot`).
    /// Write implies read on x86; a private writable mapping is mapped
    /// writable because this mapper does not implement copy-on-write.
    pub fn from_flags(flags: VmFlags) -> PageProt {
        let access = flags & VM_ACCESS_FLAGS;
        if access.is_empty() {
            return PageProt::NONE;
        }
        PageProt {
            present: true,
            writable: access.contains(VmFlags::WRITE),
            user: true,
            no_execute: !access.contains(VmFlags::EXEC),
            cache: CacheMode::WriteBack,
        }
    }

    /// The same protection with another cache mode.
    pub const fn with_cache(self, cache: CacheMode) -> PageProt {
        PageProt { cache, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_test_clear_several_at_once() {
        let mut f = VmFlags::READ;
        f.insert(VM_REMAP_FLAGS);
        assert!(f.contains(VmFlags::IO | VmFlags::PFNMAP | VmFlags::DONTEXPAND | VmFlags::DONTDUMP));
        assert!(f.intersects(VmFlags::MIXEDMAP | VmFlags::PFNMAP));
        assert!(!f.intersects(VmFlags::MIXEDMAP | VmFlags::HUGETLB));
        f.remove(VmFlags::IO | VmFlags::PFNMAP);
        assert!(!f.intersects(VmFlags::IO | VmFlags::PFNMAP));
        assert!(f.contains(VmFlags::READ | VmFlags::DONTEXPAND));
    }

    #[test]
    fn special_and_remap_sets() {
        assert!(VM_SPECIAL.contains(VmFlags::MIXEDMAP));
        assert!(!VM_SPECIAL.contains(VmFlags::DONTDUMP));
        assert!(VM_REMAP_FLAGS.contains(VmFlags::DONTDUMP));
        assert!(!VM_REMAP_FLAGS.contains(VmFlags::MIXEDMAP));
    }

    #[test]
    fn cow_rule() {
        assert!((VmFlags::MAYWRITE).is_cow_mapping());
        assert!(!(VmFlags::MAYWRITE | VmFlags::SHARED).is_cow_mapping());
        assert!(!(VmFlags::READ).is_cow_mapping());
    }

    #[test]
    fn may_bits_follow_each_access_bit() {
        let table: &[(VmFlags, VmFlags)] = &[
            (VmFlags::empty(), VmFlags::empty()),
            (VmFlags::READ, VmFlags::MAYREAD),
            (VmFlags::WRITE, VmFlags::MAYWRITE),
            (VmFlags::EXEC, VmFlags::MAYEXEC),
            (VmFlags::READ | VmFlags::WRITE, VmFlags::MAYREAD | VmFlags::MAYWRITE),
            (VM_ACCESS_FLAGS, VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC),
            // Bits other than access bits need nothing.
            (VmFlags::SHARED | VmFlags::IO, VmFlags::empty()),
        ];
        for &(access, want) in table {
            assert_eq!(VmFlags::may_bits_for(access), want, "{access:?}");
        }
    }

    #[test]
    fn prot_from_flags() {
        let table: &[(VmFlags, bool, bool, bool)] = &[
            // flags, present, writable, no_execute
            (VmFlags::empty(), false, false, true),
            (VmFlags::READ, true, false, true),
            (VmFlags::READ | VmFlags::WRITE, true, true, true),
            (VmFlags::WRITE, true, true, true),
            (VmFlags::READ | VmFlags::EXEC, true, false, false),
            (VmFlags::READ | VmFlags::IO, true, false, true),
        ];
        for &(flags, present, writable, nx) in table {
            let p = PageProt::from_flags(flags);
            assert_eq!((p.present, p.writable, p.no_execute), (present, writable, nx), "{flags:?}");
            assert!(p.user);
        }
        let wc = PageProt::from_flags(VmFlags::READ).with_cache(CacheMode::WriteCombining);
        assert_eq!(wc.cache, CacheMode::WriteCombining);
    }
}
