//! The `/proc` and `/sys` files a Linux program reads about itself,
//! registered in the file layer at start. Their contents come from the
//! address space as it is when the file is opened: the syscall layer
//! asks [`ProcFiles::refresh`] before every `open`, which renders the
//! file named (only that one) into a cell the file's callback reads.
//! `/proc/self/pagemap` is served by the kind at the offset read
//! ([`ProcFiles::pagemap`]): it is never rendered whole. Another
//! process's `/proc/PID/` files (`super::proc_pid`) are registered the
//! first time one is opened and rendered the same way
//! ([`ProcFiles::store`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use guest_mm::GuestVirtAddr;

use super::fs::{Errno, Special, Vfs};
use super::image::TASK_SIZE;
use super::procfs::{self, FileId, ImageFile, ImageSegment, ProcView, StatusExtra};
use crate::hosted::hypercall::HostedKernel;

/// Tag of `/proc/self/pagemap` ([`Special::Tag`]).
pub const PAGEMAP: u32 = 1;

/// Files rendered at open, by path.
type Cell = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// The generated files of one process.
#[derive(Default)]
pub struct ProcFiles {
    cell: Cell,
    /// The inode of each rendered file, to know one when it is read.
    inodes: Mutex<BTreeMap<u64, String>>,
    /// Files registered by [`ProcFiles::store`] (they stay registered).
    stored: Mutex<std::collections::BTreeSet<String>>,
}

/// The files rendered from the address space.
const RENDERED: &[&str] = &[
    "/proc/self/maps",
    "/proc/self/smaps",
    "/proc/self/smaps_rollup",
    "/proc/self/status",
    "/proc/self/comm",
    "/proc/self/stat",
    "/proc/self/cmdline",
    "/proc/meminfo",
    "/proc/sys/vm/nr_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages",
];

/// The directory of the 2 MiB pool's files in sysfs.
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/";

/// Files whose contents never change: `(path, contents)`.
const FIXED: &[(&str, &str)] = &[
    ("/proc/sys/vm/mmap_min_addr", "65536\n"),
    ("/proc/sys/vm/max_map_count", "65530\n"),
    ("/proc/sys/vm/overcommit_memory", "0\n"),
    // x86-64 has a 1 GiB hstate whenever the CPU has GB pages; none is
    // ever reserved here (MAP_HUGE_1GB and SHM_HUGE_1GB are ENOMEM).
    ("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-1048576kB/resv_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-1048576kB/surplus_hugepages", "0\n"),
    ("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_overcommit_hugepages", "0\n"),
];

impl ProcFiles {
    /// Registers every file in `vfs`.
    pub fn register(&self, vfs: &mut Vfs) -> Result<(), Errno> {
        for &path in RENDERED {
            let cell = self.cell.clone();
            vfs.register_synthetic(path, move || {
                cell.lock().unwrap_or_else(|e| e.into_inner()).get(path).cloned().unwrap_or_default()
            })?;
        }
        for &(path, text) in FIXED {
            vfs.register_synthetic(path, move || text.as_bytes().to_vec())?;
        }
        vfs.register_special("/proc/self/pagemap", Special::Tag(PAGEMAP), 0o100444)?;
        for path in super::proc_mem::paths() {
            vfs.register_special(&path, Special::Tag(super::proc_mem::MEM), super::proc_mem::MODE)?;
        }
        let mut inodes = self.inodes.lock().unwrap_or_else(|e| e.into_inner());
        for &path in RENDERED {
            let st = vfs.newfstatat(super::fs::Fd::CWD, path.as_bytes(), 0)?;
            inodes.insert(u64::from_le_bytes(st[8..16].try_into().unwrap_or_default()), path.to_string());
        }
        Ok(())
    }

    /// The rendered file with inode `ino`, if it is one.
    pub fn rendered(&self, ino: u64) -> Option<String> {
        self.inodes.lock().unwrap_or_else(|e| e.into_inner()).get(&ino).cloned()
    }

    /// Keeps `text` as the contents of the generated file `path` (another
    /// process's `/proc/PID/` file), registering it in `vfs` the first
    /// time.
    pub fn store(&self, vfs: &mut Vfs, path: &str, text: Vec<u8>) -> Result<(), Errno> {
        let first = self.stored.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string());
        if first {
            let (cell, key) = (self.cell.clone(), path.to_string());
            let made = vfs.register_synthetic(path, move || {
                cell.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned().unwrap_or_default()
            });
            let ino = made.and_then(|()| vfs.newfstatat(super::fs::Fd::CWD, path.as_bytes(), 0));
            match ino {
                Ok(st) => {
                    let ino = u64::from_le_bytes(st[8..16].try_into().unwrap_or_default());
                    self.inodes.lock().unwrap_or_else(|e| e.into_inner()).insert(ino, path.to_string());
                }
                Err(e) => {
                    self.stored.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
                    return Err(e);
                }
            }
        }
        self.cell.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string(), text);
        Ok(())
    }

    /// The paths [`ProcFiles::store`] keeps a text for.
    pub fn stored(&self) -> Vec<String> {
        let stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        let cell = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        stored.iter().filter(|p| cell.contains_key(p.as_str())).cloned().collect()
    }

    /// Lets go of the texts of `paths` (processes that are gone: their
    /// files stay registered and read empty until rendered again).
    pub fn forget(&self, paths: &[String]) {
        let mut cell = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        for p in paths {
            cell.remove(p.as_str());
        }
    }

    /// Renders the file `path` names, if it is one of the generated ones,
    /// from the address space as it is now.
    pub fn refresh(&self, hv: &HostedKernel, path: &[u8], view: &View<'_>) {
        let Some(&name) = RENDERED.iter().find(|p| p.as_bytes() == path) else { return };
        let text = render(name, Some(hv.mapper().space()), view);
        self.cell.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), text);
    }

    /// `len` bytes of `/proc/self/pagemap` at `offset` (never the whole
    /// file: 8 bytes per page of the user range).
    pub fn pagemap(&self, hv: &HostedKernel, offset: u64, len: usize, view: &View<'_>) -> Result<Vec<u8>, i32> {
        let segs: Vec<ImageSegment> = Vec::new();
        let m = hv.mapper();
        let (Ok(start_stack), Ok(task_size)) =
            (GuestVirtAddr::try_new(view.start_stack), GuestVirtAddr::try_new(TASK_SIZE))
        else {
            return Err(libc::EINVAL);
        };
        let pv = ProcView {
            space: m.space(),
            image: ImageFile { path: view.exe, id: view.exe_id, segments: &segs },
            start_stack,
            task_size,
            shmem_ino: None,
        };
        procfs::pagemap_read(&pv, offset, len).map_err(|e| e.errno())
    }
}

/// What the rendering needs to know about the process beyond its
/// address space.
pub struct View<'a> {
    /// The program's absolute path.
    pub exe: &'a str,
    /// The device and inode shown for it.
    pub exe_id: FileId,
    /// The image's file-backed parts (see `Image::file_parts`).
    pub file_parts: &'a [(u64, u64, u64)],
    /// An address in the initial stack.
    pub start_stack: u64,
    /// What `status` shows that the address space does not know.
    pub extra: StatusExtra,
    /// The hugetlb pool's counters (`/proc/meminfo`, sysfs).
    pub huge: guest_mm::providers::HugetlbCounts,
    /// Bytes of shared memory (`Shmem`): SysV segments' pages for now
    /// (memfds and shared anonymous memory are not counted yet).
    pub shmem: u64,
    /// The program's arguments (`cmdline`).
    pub argv: &'a [Vec<u8>],
    /// What `stat` shows beyond `extra`.
    pub stat: procfs::StatExtra,
}

/// Renders `name` (a `/proc/self/` path or one of [`RENDERED`]'s) from
/// `space` as seen through `view`; `space` is `None` for a zombie.
pub fn render(name: &str, space: Option<&guest_mm::AddressSpace<crate::memory::GuestMem>>, view: &View<'_>) -> Vec<u8> {
    let Some(space) = space else {
        // A zombie has no memory: what Linux shows without an mm.
        return match name {
            "/proc/self/status" => procfs::status(None, &view.extra),
            "/proc/self/stat" => procfs::stat(None, &view.extra, &view.stat),
            "/proc/self/comm" => format!("{}\n", view.extra.name).into_bytes(),
            _ => Vec::new(),
        };
    };
    let segs: Vec<ImageSegment> = view
        .file_parts
        .iter()
        .filter_map(|&(s, e, off)| {
            Some(ImageSegment {
                start: GuestVirtAddr::try_new(s).ok()?,
                end: GuestVirtAddr::try_new(e).ok()?,
                offset: off,
            })
        })
        .collect();
    let (Ok(start_stack), Ok(task_size)) =
        (GuestVirtAddr::try_new(view.start_stack), GuestVirtAddr::try_new(TASK_SIZE))
    else {
        return Vec::new();
    };
    let pv = ProcView {
        space,
        image: ImageFile { path: view.exe, id: view.exe_id, segments: &segs },
        start_stack,
        task_size,
        shmem_ino: None,
    };
    let h = &view.huge;
    if let Some(file) = name.strip_prefix(HUGEPAGES_DIR) {
        return procfs::hugepages_file(file, h.total, h.free, h.reserved).unwrap_or_default();
    }
    match name {
        "/proc/meminfo" => procfs::meminfo(&procfs::MemInfo {
            shmem: view.shmem,
            anon_huge: procfs::MemStats::of_process(&pv).anon_huge,
            ..mem_info(space, h)
        }),
        "/proc/sys/vm/nr_hugepages" => format!("{}\n", h.total).into_bytes(),
        "/proc/self/maps" => procfs::maps(&pv),
        "/proc/self/smaps" => procfs::smaps(&pv),
        "/proc/self/smaps_rollup" => procfs::smaps_rollup(&pv),
        "/proc/self/status" => procfs::status(Some(&pv), &view.extra),
        "/proc/self/stat" => procfs::stat(Some(&pv), &view.extra, &view.stat),
        "/proc/self/cmdline" => procfs::cmdline(view.argv, false),
        "/proc/self/comm" => format!("{}\n", view.extra.name).into_bytes(),
        _ => Vec::new(),
    }
}

/// `/proc/meminfo`'s numbers: RAM's size, the page pool's free pages, the
/// hugetlb pool's counters.
fn mem_info(
    space: &guest_mm::AddressSpace<crate::memory::GuestMem>,
    h: &guest_mm::providers::HugetlbCounts,
) -> procfs::MemInfo {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let total = space.memory().iter().map(|r| r.len()).sum();
    let free = (space.stats().pool_free as u64).saturating_mul(guest_mm::PAGE_SIZE);
    procfs::MemInfo {
        total,
        free,
        hugepages_total: h.total,
        hugepages_free: h.free,
        hugepages_rsvd: h.reserved,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::fs::{Fd, VfsConfig};
    use super::*;

    fn read_all(vfs: &mut Vfs, path: &str) -> Vec<u8> {
        let fd = vfs.openat(Fd::CWD, path.as_bytes(), libc::O_RDONLY, 0).unwrap();
        let b = vfs.read(fd, 4096).unwrap();
        vfs.close(fd).unwrap();
        b
    }

    #[test]
    fn stored_files_register_once_update_and_can_be_forgotten() {
        let mut vfs = Vfs::new(&VfsConfig::default());
        let f = ProcFiles::default();
        f.register(&mut vfs).unwrap();
        assert!(vfs.openat(Fd::CWD, b"/proc/7/stat", libc::O_RDONLY, 0).is_err(), "nothing before a store");
        f.store(&mut vfs, "/proc/7/stat", b"one".to_vec()).unwrap();
        assert_eq!(read_all(&mut vfs, "/proc/7/stat"), b"one");
        // Stored again: the same node, the new text.
        f.store(&mut vfs, "/proc/7/stat", b"two".to_vec()).unwrap();
        assert_eq!(read_all(&mut vfs, "/proc/7/stat"), b"two");
        let st = vfs.newfstatat(Fd::CWD, b"/proc/7/stat", 0).unwrap();
        let ino = u64::from_le_bytes(st[8..16].try_into().unwrap());
        assert_eq!(f.rendered(ino).as_deref(), Some("/proc/7/stat"));
        f.store(&mut vfs, "/proc/8/maps", b"m".to_vec()).unwrap();
        assert_eq!(f.stored(), vec!["/proc/7/stat".to_string(), "/proc/8/maps".into()]);
        f.forget(&["/proc/7/stat".to_string()]);
        assert_eq!(f.stored(), vec!["/proc/8/maps".to_string()]);
        assert_eq!(read_all(&mut vfs, "/proc/7/stat"), b"", "forgotten: empty until stored again");
        f.store(&mut vfs, "/proc/7/stat", b"three".to_vec()).unwrap();
        assert_eq!(read_all(&mut vfs, "/proc/7/stat"), b"three");
    }
}
