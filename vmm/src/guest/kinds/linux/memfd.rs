//! `memfd_create` files: each is a guest-mm shared-memory object
//! ([`ShmemObject`]) whose pages are guest RAM from the pool, so that
//! `read`/`write` on the descriptor and every mapping of it (shared, or
//! private copy-on-write) see the same pages; with `MFD_HUGETLB` it is a
//! hugetlbfs file ([`HugetlbFile`]) whose 2 MiB pages come from the
//! `--hugepages` pool. The descriptor is a node the kind serves
//! ([`Special::Tag`] from [`MEMFD_TAG_BASE`] to the IPC tags,
//! `super::ipc::IPC_TAG_BASE`); the object lives while a descriptor or a
//! mapping holds it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use guest_mm::providers::{HugetlbFile, ShmemObject};
use guest_mm::MmError;

use super::fs::{Fd, Special, Vfs};
use crate::memory::GuestMem;

/// First tag of a memfd (tags below are the kind's other files).
pub const MEMFD_TAG_BASE: u32 = 0x1000;
/// Most memfds open at once (each costs a little host memory).
pub const MEMFD_MAX: usize = 4096;

/// What a memfd is.
#[derive(Clone)]
pub enum MemfdObject {
    /// A tmpfs-like object of 4 KiB pages.
    Shmem(ShmemObject<GuestMem>),
    /// A hugetlbfs file (`MFD_HUGETLB`).
    Huge(HugetlbFile<GuestMem>),
}

/// `memfd_create` flags.
pub mod mfd {
    /// Close on exec.
    pub const CLOEXEC: u32 = 1;
    /// Seals may be added.
    pub const ALLOW_SEALING: u32 = 2;
    /// A hugetlbfs file.
    pub const HUGETLB: u32 = 4;
    /// Not executable, sealed so.
    pub const NOEXEC_SEAL: u32 = 8;
    /// Executable.
    pub const EXEC: u32 = 0x10;
    /// Where `MFD_HUGE_*` (log2 of the page size) starts.
    pub const HUGE_SHIFT: u32 = 26;
    /// The page-size bits.
    pub const HUGE_MASK: u32 = 0x3f;
}

/// Checks `memfd_create`'s flags as Linux 6.12 does (`EINVAL` for unknown
/// flags, page-size bits without `MFD_HUGETLB`, or `EXEC` with
/// `NOEXEC_SEAL`); returns whether the file is a hugetlbfs one. The only
/// huge page size is 2 MiB (the default, or `MFD_HUGE_2MB`): any other
/// is `ENODEV`, as on a Linux without that size's pool.
pub fn check_flags(flags: u32) -> Result<bool, i32> {
    let all = mfd::CLOEXEC | mfd::ALLOW_SEALING | mfd::HUGETLB | mfd::NOEXEC_SEAL | mfd::EXEC;
    let huge = flags & mfd::HUGETLB != 0;
    let allowed = if huge { all | (mfd::HUGE_MASK << mfd::HUGE_SHIFT) } else { all };
    if flags & !allowed != 0 || (flags & mfd::EXEC != 0 && flags & mfd::NOEXEC_SEAL != 0) {
        return Err(libc::EINVAL);
    }
    if huge && !matches!((flags >> mfd::HUGE_SHIFT) & mfd::HUGE_MASK, 0 | 21) {
        return Err(libc::ENODEV);
    }
    Ok(huge)
}

/// The process's memfds, by tag.
#[derive(Default)]
pub struct Memfds {
    objects: Mutex<BTreeMap<u32, MemfdObject>>,
    next: Mutex<u32>,
}

/// The memfd tag of a special node, if it is one.
pub fn tag_of(s: Special) -> Option<u32> {
    match s {
        Special::Tag(t) if (MEMFD_TAG_BASE..super::ipc::IPC_TAG_BASE).contains(&t) => Some(t),
        _ => None,
    }
}

impl Memfds {
    /// Makes a descriptor for `obj` (a new empty object named
    /// `memfd:NAME`); `flags` as [`check_flags`] accepts them.
    pub fn create(&self, vfs: &mut Vfs, obj: MemfdObject, flags: u32) -> Result<Fd, i32> {
        check_flags(flags)?;
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if objects.len() >= MEMFD_MAX {
            self.collect(vfs, &mut objects);
            if objects.len() >= MEMFD_MAX {
                return Err(libc::ENFILE);
            }
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let tag = MEMFD_TAG_BASE + *next;
        *next = next.wrapping_add(1) % (super::ipc::IPC_TAG_BASE - MEMFD_TAG_BASE);
        let oflags = libc::O_RDWR | if flags & mfd::CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
        let fd = vfs.open_anonymous(Special::Tag(tag), oflags, libc::S_IFREG | 0o777).map_err(|e| e.raw())?;
        objects.insert(tag, obj);
        Ok(fd)
    }

    /// The object of tag `tag`, if it is a 4 KiB-page one.
    pub fn get(&self, tag: u32) -> Option<ShmemObject<GuestMem>> {
        match self.objects.lock().unwrap_or_else(|e| e.into_inner()).get(&tag) {
            Some(MemfdObject::Shmem(o)) => Some(o.clone()),
            _ => None,
        }
    }

    /// The hugetlbfs file of tag `tag`, if it is one.
    pub fn get_huge(&self, tag: u32) -> Option<HugetlbFile<GuestMem>> {
        match self.objects.lock().unwrap_or_else(|e| e.into_inner()).get(&tag) {
            Some(MemfdObject::Huge(f)) => Some(f.clone()),
            _ => None,
        }
    }

    /// Drops the objects no descriptor names any more (their mappings
    /// keep them alive on their own).
    pub fn release_unused(&self, vfs: &Vfs) {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        self.collect(vfs, &mut objects);
    }

    fn collect(&self, vfs: &Vfs, objects: &mut BTreeMap<u32, MemfdObject>) {
        // Open descriptions of every process, not the current one's
        // descriptors (after a fork another process may hold the only one).
        let live: std::collections::BTreeSet<u32> = vfs.open_specials().into_iter().filter_map(tag_of).collect();
        objects.retain(|t, _| live.contains(t));
    }
}

/// An [`MmError`] as an errno.
pub fn errno(e: MmError) -> i32 {
    e.errno()
}
