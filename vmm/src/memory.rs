//! Guest memory: guest RAM (anonymous, through `vm-memory`), host-backed
//! windows for passed-through BARs, and the bump allocator the VMM uses to
//! place the guest program image at boot.
//!
//! Registering any of this with KVM is `vstate::vm`'s job; mapping it into
//! the guest's virtual address space is guest-mm's.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};

use guest_mm::Pfn;
use thiserror::Error;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, MmapRegion};

use crate::input_file::{open_checked, Accept, InputError};
use crate::layout::PAGE_SIZE;

/// The guest memory type used throughout the VMM.
pub type GuestMem = GuestMemoryMmap;

/// Errors creating guest memory or host windows.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// Guest RAM could not be allocated.
    #[error("cannot allocate {size:#x} bytes of guest memory: {msg}")]
    Alloc {
        /// Requested size.
        size: u64,
        /// Why.
        msg: String,
    },
    /// A window backing file could not be opened, or is neither a
    /// regular file nor a character device.
    #[error("BAR backing: {0}")]
    Open(#[from] InputError),
    /// The backing file is smaller than the window.
    #[error("BAR backing {path} has {len:#x} bytes, the window needs {size:#x}")]
    BackingTooSmall {
        /// The path.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The window size.
        size: u64,
    },
    /// An anonymous shared-memory object could not be created.
    #[error("cannot create a shared-memory object: {0}")]
    Memfd(#[source] std::io::Error),
    /// mmap of a window failed.
    #[error("cannot mmap the BAR window at {gpa:#x}: {msg}")]
    Mmap {
        /// Guest-physical base.
        gpa: u64,
        /// Why.
        msg: String,
    },
    /// The boot allocator ran out of frames.
    #[error("the program image does not fit in the load region ({needed} more pages)")]
    LoadRegionFull {
        /// Pages that did not fit.
        needed: u64,
    },
}

/// Guest RAM of `size` bytes at guest-physical 0.
pub fn create_guest_memory(size: u64) -> Result<GuestMem, MemoryError> {
    let len = usize::try_from(size).map_err(|_| MemoryError::Alloc { size, msg: "too large for this host".into() })?;
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)]).map_err(|e| MemoryError::Alloc { size, msg: e.to_string() })
}

/// A host mapping that backs a passed-through BAR window: a file (or
/// shared-memory object) mapped shared, so writes on either side are
/// visible to the other.
#[derive(Debug)]
pub struct HostWindow {
    gpa: GuestAddress,
    region: MmapRegion,
    path: Option<PathBuf>,
}

impl HostWindow {
    /// Maps the first `size` bytes of `path` for the window at `gpa`.
    pub fn from_path(gpa: GuestAddress, size: u64, path: &Path) -> Result<Self, MemoryError> {
        // A regular file (a shared-memory object, a sysfs resource file) or
        // a character device; never a FIFO, which could hang the open.
        let (file, len) = open_checked(path, true, Accept::RegularOrCharDevice)?;
        // Character devices and some resource files report length 0; trust
        // mmap to refuse what it cannot map.
        let is_regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if is_regular && len < size {
            return Err(MemoryError::BackingTooSmall { path: path.to_owned(), len, size });
        }
        Self::map(gpa, size, file, Some(path.to_owned()))
    }

    /// An anonymous shared-memory object of `size` bytes for the window at
    /// `gpa` (the default passthrough backing of the built-in guest).
    pub fn anonymous(gpa: GuestAddress, size: u64) -> Result<Self, MemoryError> {
        // SAFETY: memfd_create reads a NUL-terminated name we own and
        // returns a new fd or -1; nothing else is touched.
        let fd = unsafe { libc::memfd_create(c"vmm-bar".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).map_err(MemoryError::Memfd)?;
        Self::map(gpa, size, file, None)
    }

    fn map(gpa: GuestAddress, size: u64, file: File, path: Option<PathBuf>) -> Result<Self, MemoryError> {
        let len = usize::try_from(size).map_err(|_| MemoryError::Mmap { gpa: gpa.0, msg: "too large".into() })?;
        let region = MmapRegionBuilder::new(len)
            .with_file_offset(FileOffset::new(file, 0))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED)
            .build()
            .map_err(|e| MemoryError::Mmap { gpa: gpa.0, msg: e.to_string() })?;
        Ok(HostWindow { gpa, region, path })
    }

    /// Guest-physical base.
    pub fn gpa(&self) -> GuestAddress {
        self.gpa
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.region.size() as u64
    }

    /// Host address of the mapping (for the KVM memory slot).
    pub fn host_addr(&self) -> u64 {
        self.region.as_ptr() as u64
    }

    /// The backing path, if it is a named file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads a little-endian u64 at `offset` (host side of the window).
    pub fn read_u64(&self, offset: u64) -> Option<u64> {
        use vm_memory::VolatileMemory;
        let off = usize::try_from(offset).ok()?;
        self.region.as_volatile_slice().get_ref::<u64>(off).ok().map(|r| r.load())
    }

    /// Writes a little-endian u64 at `offset` (host side of the window).
    pub fn write_u64(&self, offset: u64, value: u64) -> bool {
        use vm_memory::VolatileMemory;
        let Ok(off) = usize::try_from(offset) else { return false };
        match self.region.as_volatile_slice().get_ref::<u64>(off) {
            Ok(r) => {
                r.store(value);
                true
            }
            Err(_) => false,
        }
    }
}

/// Hands out page frames from `[start, end)` for the program image and
/// stacks, in ascending order. Never frees: the image lives as long as the
/// guest.
#[derive(Debug)]
pub struct BootFrames {
    next: u64,
    end: u64,
}

impl BootFrames {
    /// Frames of `[start, end)` (page aligned).
    pub fn new(start: GuestAddress, end: GuestAddress) -> Self {
        BootFrames { next: start.0 / PAGE_SIZE, end: end.0 / PAGE_SIZE }
    }

    /// Frames left.
    pub fn available(&self) -> u64 {
        self.end.saturating_sub(self.next)
    }

    /// `n` frames (contiguous, but callers must not rely on it).
    pub fn alloc(&mut self, n: u64) -> Result<Vec<Pfn>, MemoryError> {
        let end = self.next.checked_add(n).filter(|&e| e <= self.end).ok_or(MemoryError::LoadRegionFull {
            needed: self.next.saturating_add(n).saturating_sub(self.end).max(1),
        })?;
        let v = (self.next..end).map(Pfn).collect();
        self.next = end;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::{Bytes, GuestMemoryBackend};

    use super::*;

    #[test]
    fn guest_memory_is_one_region_at_zero() {
        let m = create_guest_memory(0x10_0000).unwrap();
        assert_eq!(m.num_regions(), 1);
        m.write_obj(0x1234u64, GuestAddress(0xff000)).unwrap();
        assert_eq!(m.read_obj::<u64>(GuestAddress(0xff000)).unwrap(), 0x1234);
    }

    #[test]
    fn boot_frames_run_out_cleanly() {
        let mut b = BootFrames::new(GuestAddress(0x1000), GuestAddress(0x4000));
        assert_eq!(b.alloc(2).unwrap(), vec![Pfn(1), Pfn(2)]);
        assert!(matches!(b.alloc(2), Err(MemoryError::LoadRegionFull { needed: 1 })));
        assert_eq!(b.alloc(1).unwrap(), vec![Pfn(3)]);
    }

    #[test]
    fn anonymous_window_round_trip() {
        let w = HostWindow::anonymous(GuestAddress(0xe000_0000), 0x2000).unwrap();
        assert_eq!(w.size(), 0x2000);
        assert!(w.write_u64(0x1ff8, 0xdead_beef));
        assert_eq!(w.read_u64(0x1ff8), Some(0xdead_beef));
        assert_eq!(w.read_u64(0x2000), None);
    }

    #[test]
    fn file_window_shares_with_the_file() {
        let path = std::env::temp_dir().join(format!("vmm-window-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 0x1000]).unwrap();
        let w = HostWindow::from_path(GuestAddress(0xe000_0000), 0x1000, &path).unwrap();
        w.write_u64(8, 0x0102_0304_0506_0708);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert!(matches!(
            HostWindow::from_path(GuestAddress(0), 0x2000, &path),
            Err(MemoryError::BackingTooSmall { .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_fifo_or_directory_backing_is_refused_without_blocking() {
        use crate::input_file::InputError;
        let path = std::env::temp_dir().join(format!("vmm-window-fifo-{}", std::process::id()));
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = HostWindow::from_path(GuestAddress(0xe000_0000), 0x1000, &path).unwrap_err();
        assert!(matches!(e, MemoryError::Open(InputError::NotRegular { kind: "a FIFO", .. })), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = HostWindow::from_path(GuestAddress(0xe000_0000), 0x1000, Path::new("/")).unwrap_err();
        // (Opening a directory for writing fails before the check.)
        assert!(matches!(e, MemoryError::Open(_)), "{e}");
    }
}
