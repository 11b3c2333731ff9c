//! `memfd_create` files: each is a guest-mm shared-memory object
//! ([`ShmemObject`]) whose pages are guest RAM from the pool, so that
//! `read`/`write` on the descriptor and every mapping of it (shared, or
//! private copy-on-write) see the same pages. The descriptor is a node
//! the kind serves ([`Special::Tag`] from [`MEMFD_TAG_BASE`] to the IPC
//! tags, `super::ipc::IPC_TAG_BASE`); the object
//! lives while a descriptor or a mapping holds it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use guest_mm::providers::ShmemObject;
use guest_mm::MmError;

use super::fs::{Fd, Special, Vfs};
use crate::memory::GuestMem;

/// First tag of a memfd (tags below are the kind's other files).
pub const MEMFD_TAG_BASE: u32 = 0x1000;
/// Most memfds open at once (each costs a little host memory).
pub const MEMFD_MAX: usize = 4096;

/// The process's memfds, by tag.
#[derive(Default)]
pub struct Memfds {
    objects: Mutex<BTreeMap<u32, ShmemObject<GuestMem>>>,
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
    /// Creates an empty object named `memfd:NAME` and a descriptor for it.
    pub fn create(&self, vfs: &mut Vfs, obj: ShmemObject<GuestMem>, flags: u32) -> Result<Fd, i32> {
        const MFD_CLOEXEC: u32 = 1;
        const MFD_ALLOW_SEALING: u32 = 2;
        const MFD_HUGETLB: u32 = 4;
        const MFD_NOEXEC_SEAL: u32 = 8;
        const MFD_EXEC: u32 = 0x10;
        if flags & MFD_HUGETLB != 0 {
            // No huge pages are reserved.
            return Err(libc::ENOMEM);
        }
        if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC) != 0 {
            return Err(libc::EINVAL);
        }
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
        let oflags = libc::O_RDWR | if flags & MFD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
        let fd = vfs.open_anonymous(Special::Tag(tag), oflags, libc::S_IFREG | 0o777).map_err(|e| e.raw())?;
        objects.insert(tag, obj);
        Ok(fd)
    }

    /// The object of tag `tag`.
    pub fn get(&self, tag: u32) -> Option<ShmemObject<GuestMem>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).get(&tag).cloned()
    }

    /// Drops the objects no descriptor names any more (their mappings
    /// keep them alive on their own).
    pub fn release_unused(&self, vfs: &Vfs) {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        self.collect(vfs, &mut objects);
    }

    fn collect(&self, vfs: &Vfs, objects: &mut BTreeMap<u32, ShmemObject<GuestMem>>) {
        let live: std::collections::BTreeSet<u32> = vfs
            .open_fds()
            .into_iter()
            .filter_map(|(fd, _)| vfs.special(fd).ok().flatten().and_then(|s| tag_of(s.special)))
            .collect();
        objects.retain(|t, _| live.contains(t));
    }
}

/// An [`MmError`] as an errno.
pub fn errno(e: MmError) -> i32 {
    e.errno()
}
