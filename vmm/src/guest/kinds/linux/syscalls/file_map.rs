//! `mmap` of a regular file: the checks Linux's `do_mmap` makes against
//! the descriptor's open mode, and the provider that maps the file's
//! pages under the file's name.
//!
//! - An in-memory file (`/tmp`, `/dev/shm`) maps its guest-RAM pages:
//!   shared mappings and `read`/`write` see the same bytes, private ones
//!   copy on write, a page wholly past the end is `SIGBUS`.
//! - A host file (`--file`) is mapped as a copy of its bytes taken at
//!   `mmap`: privately, or shared when the descriptor is read-only (the
//!   mapping can never be written then); a shared mapping of a writable
//!   host file is `ENODEV` (its writes could not reach the host file).
//!
//! The mode rules (Linux 6.12 `do_mmap`): no read access is `EACCES`;
//! `MAP_SHARED` with `PROT_WRITE` needs write access (`EACCES`); a
//! shared mapping of a descriptor without write access loses
//! `VM_SHARED` and `VM_MAYWRITE`, so a later `mprotect(PROT_WRITE)` is
//! `EACCES` too.

use guest_mm::providers::ShmemObject;
use guest_mm::{MmError, MmapProvider, VmFlags, VmaDesc};

use super::super::fs::{Fd, MapContents, MapFile};
use super::ctx::Ctx;
use crate::memory::GuestMem;

pub use super::super::procfs::FILE_PREFIX;

/// Bytes copied from a host file per read.
const HOST_CHUNK: usize = 1 << 20;

/// A mapping of a file's pages.
pub struct FileMapping {
    obj: ShmemObject<GuestMem>,
    name: String,
    /// Shared, but the descriptor is not writable: the VMA drops
    /// `VM_SHARED` and `VM_MAYWRITE`.
    read_only_shared: bool,
}

impl MmapProvider for FileMapping {
    fn name(&self) -> &str {
        &self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        self.obj.mmap_prepare(desc)?;
        if self.read_only_shared {
            desc.clear_flags(VmFlags::SHARED | VmFlags::MAYWRITE);
        }
        Ok(())
    }
}

/// The provider for `mmap` of descriptor `fd` (not a memfd, not a
/// device), `len` bytes at byte offset `off`, `shared` or private, with
/// `write` asked in the protection; or the errno Linux gives.
pub fn file_mapping(c: &Ctx<'_>, fd: Fd, off: u64, len: u64, shared: bool, write: bool) -> Result<FileMapping, i32> {
    let MapFile { readable, writable, path, dev, ino, contents } = c.linux.vfs().map_file(fd).map_err(|e| e.raw())?;
    if shared && write && !writable {
        return Err(libc::EACCES);
    }
    if !readable {
        return Err(libc::EACCES);
    }
    let name = format!("{FILE_PREFIX}{dev:x}:{ino}:{path}");
    let read_only_shared = shared && !writable;
    let obj = match contents {
        MapContents::Store(any) => *any.downcast::<ShmemObject<GuestMem>>().map_err(|_| libc::ENODEV)?,
        MapContents::Host(_) if shared && writable => return Err(libc::ENODEV),
        MapContents::Host(file) => host_copy(c, &file, &path, off, len)?,
    };
    Ok(FileMapping { obj, name, read_only_shared })
}

/// A copy of host file `file`'s bytes in `[off, off + len)`, in an
/// object of the file's size (so the end is where the file's is).
fn host_copy(c: &Ctx<'_>, file: &std::fs::File, path: &str, off: u64, len: u64) -> Result<ShmemObject<GuestMem>, i32> {
    use std::os::unix::fs::FileExt;
    let anon = c.linux.anon().ok_or(libc::ENOMEM)?;
    let size = file.metadata().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?.len();
    let obj = ShmemObject::new(&format!("{FILE_PREFIX}{path}"), anon.frames.clone(), anon.mem.clone(), size)
        .map_err(|e| e.errno())?;
    let end = off.saturating_add(len).min(size);
    let mut at = off;
    let mut buf = vec![0u8; HOST_CHUNK];
    while at < end {
        let want = usize::try_from(end - at).unwrap_or(HOST_CHUNK).min(HOST_CHUNK);
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let wrote = obj.write_at(at, &buf[..n]).map_err(|e| e.errno())?;
        if wrote < n {
            return Err(libc::ENOMEM);
        }
        at += n as u64;
    }
    Ok(obj)
}
