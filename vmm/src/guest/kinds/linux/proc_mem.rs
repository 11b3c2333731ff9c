//! `/proc/self/mem` (and `/proc/PID/mem` for the process's own pid): the
//! address space as a file whose offset is a virtual address, served as
//! Linux 6.12's `mem_rw` serves it. Every byte moves through guest-mm's
//! forced access ([`guest_mm::AddressSpace::read_forced`],
//! [`guest_mm::AddressSpace::write_forced`], `FOLL_FORCE`): a write into
//! a read-only private mapping writes a private copy and leaves the page
//! read-only to the program; a shared read-only mapping, an I/O mapping
//! or a hole is refused. A transfer that moves nothing is `EIO`; one that
//! runs into a refused page moves the bytes before it.
//!
//! Not here: the descriptor's offset (the file layer's), other
//! processes' memory (there are none).

use guest_mm::GuestVirtAddr;

use super::fs::{Fd, SpecialFile};
use super::process::Linux;
use crate::hosted::hypercall::HostedKernel;

/// Tag of `/proc/self/mem` ([`super::fs::Special::Tag`]).
pub const MEM: u32 = 2;

/// Its mode as `stat` shows it (Linux: `S_IRUSR | S_IWUSR`).
pub const MODE: u32 = 0o100600;

/// The paths it has: `/proc/self/mem` and `/proc/PID/mem`.
pub fn paths() -> [String; 2] {
    ["/proc/self/mem".to_string(), format!("/proc/{}/mem", super::process::PID)]
}

/// Reads `len` bytes of the address space at `at`.
pub fn read(linux: &Linux, hv: &HostedKernel, vcpu: u8, at: u64, len: usize) -> Result<Vec<u8>, i32> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let va = GuestVirtAddr::try_new(at).map_err(|_| libc::EIO)?;
    let d = hv.space_op(vcpu, |m| {
        let mut buf = vec![0u8; len];
        let f = m.space_mut().read_forced(va, &mut buf)?;
        buf.truncate(f.bytes);
        Ok((buf, f.flush))
    });
    if let Some(msg) = d.fatal {
        linux.note_fatal(msg);
    }
    d.result.map_err(|_| libc::EIO)
}

/// Writes `data` into the address space at `at`; returns the bytes
/// written.
pub fn write(linux: &Linux, hv: &HostedKernel, vcpu: u8, at: u64, data: &[u8]) -> Result<usize, i32> {
    if data.is_empty() {
        return Ok(0);
    }
    let va = GuestVirtAddr::try_new(at).map_err(|_| libc::EIO)?;
    let d = hv.space_op(vcpu, |m| {
        let f = m.space_mut().write_forced(va, data)?;
        Ok((f.bytes, f.flush))
    });
    if let Some(msg) = d.fatal {
        linux.note_fatal(msg);
    }
    d.result.map_err(|_| libc::EIO)
}

/// `EBADF` unless the descriptor was opened for reading (`write`
/// false) or writing (`write` true).
pub fn check_mode(file: &SpecialFile, write: bool) -> Result<(), i32> {
    let acc = file.flags & libc::O_ACCMODE;
    let ok =
        if write { acc == libc::O_WRONLY || acc == libc::O_RDWR } else { acc == libc::O_RDONLY || acc == libc::O_RDWR };
    if ok && file.flags & libc::O_PATH == 0 {
        Ok(())
    } else {
        Err(libc::EBADF)
    }
}

impl Linux {
    /// Writes `data` to a file the kind serves itself (tag `tag`), at
    /// `off` or at the descriptor's offset (which then moves); a SysV
    /// sysctl is written at the descriptor's offset.
    pub fn write_special(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        fd: Fd,
        tag: u32,
        data: &[u8],
        off: Option<u64>,
    ) -> Result<usize, i32> {
        if super::sysv_shm::procfs::is_ours(tag) {
            return self.write_sysctl(fd, tag, data).map(|n| n as usize);
        }
        if super::thp_sysfs::is_ours(tag) {
            if self.proc().uid != 0 {
                return Err(libc::EPERM);
            }
            let mut knobs = self.thp_knobs.lock().unwrap_or_else(|e| e.into_inner());
            return super::thp_sysfs::write(tag, hv.mapper().space().thp_policy(), &mut knobs, data);
        }
        let file = self.vfs().special(fd).map_err(|e| e.raw())?.ok_or(libc::EBADF)?;
        if tag != MEM {
            return Err(libc::EINVAL);
        }
        check_mode(&file, true)?;
        let at = off.unwrap_or(file.offset);
        let n = write(self, hv, vcpu, at, data)?;
        if off.is_none() {
            self.vfs().set_offset(fd, at.wrapping_add(n as u64)).map_err(|e| e.raw())?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(flags: i32) -> SpecialFile {
        SpecialFile { special: super::super::fs::Special::Tag(MEM), offset: 0, flags }
    }

    #[test]
    fn access_modes_decide_reads_and_writes() {
        assert_eq!(check_mode(&file(libc::O_RDONLY), false), Ok(()));
        assert_eq!(check_mode(&file(libc::O_RDONLY), true), Err(libc::EBADF));
        assert_eq!(check_mode(&file(libc::O_WRONLY), false), Err(libc::EBADF));
        assert_eq!(check_mode(&file(libc::O_WRONLY), true), Ok(()));
        assert_eq!(check_mode(&file(libc::O_RDWR), true), Ok(()));
        assert_eq!(check_mode(&file(libc::O_RDWR | libc::O_PATH), false), Err(libc::EBADF));
        assert_eq!(paths()[1], format!("/proc/{}/mem", crate::guest::kinds::linux::process::PID));
    }
}
