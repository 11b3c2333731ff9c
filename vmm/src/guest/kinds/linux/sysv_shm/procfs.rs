//! The files SysV shared memory shows: `/proc/sys/kernel/shmmax`,
//! `shmall` and `shmmni` (read, and written by root: an unsigned decimal,
//! `shmmni` at most `IPCMNI`, as `proc_doulongvec_minmax` and
//! `proc_dointvec_minmax` take them), and `/proc/sysvipc/shm`. They are
//! nodes the kind serves ([`Special::Tag`]), rendered from the table at
//! each read.

use super::super::fs::{Errno, Special, Vfs};
use super::abi;
use super::attach::Backing;
use super::table::{Limits, ShmTable, IPCMNI};

/// Tag of `/proc/sys/kernel/shmmax`.
pub const SHMMAX: u32 = 0x20;
/// Tag of `/proc/sys/kernel/shmall`.
pub const SHMALL: u32 = 0x21;
/// Tag of `/proc/sys/kernel/shmmni`.
pub const SHMMNI: u32 = 0x22;
/// Tag of `/proc/sysvipc/shm`.
pub const SYSVIPC_SHM: u32 = 0x23;

/// Registers the files in `vfs`.
pub fn register(vfs: &mut Vfs) -> Result<(), Errno> {
    vfs.register_special("/proc/sys/kernel/shmmax", Special::Tag(SHMMAX), 0o100644)?;
    vfs.register_special("/proc/sys/kernel/shmall", Special::Tag(SHMALL), 0o100644)?;
    vfs.register_special("/proc/sys/kernel/shmmni", Special::Tag(SHMMNI), 0o100644)?;
    vfs.register_special("/proc/sysvipc/shm", Special::Tag(SYSVIPC_SHM), 0o100444)
}

/// Is `tag` one of these files?
pub fn is_ours(tag: u32) -> bool {
    (SHMMAX..=SYSVIPC_SHM).contains(&tag)
}

/// The whole text of file `tag`.
pub fn render(tag: u32, t: &ShmTable<Backing>) -> Option<Vec<u8>> {
    let l = t.limits();
    Some(match tag {
        SHMMAX => format!("{}\n", l.shmmax).into_bytes(),
        SHMALL => format!("{}\n", l.shmall).into_bytes(),
        SHMMNI => format!("{}\n", l.shmmni).into_bytes(),
        SYSVIPC_SHM => abi::proc_sysvipc_shm(t.segments(), Backing::resident_bytes),
        _ => return None,
    })
}

/// `len` bytes of file `tag` from `at`.
pub fn read(tag: u32, t: &ShmTable<Backing>, at: u64, len: usize) -> Result<Vec<u8>, i32> {
    let text = render(tag, t).ok_or(libc::EINVAL)?;
    let from = usize::try_from(at).unwrap_or(usize::MAX).min(text.len());
    Ok(text[from..text.len().min(from.saturating_add(len))].to_vec())
}

/// A write of `data` at `at` to file `tag`: the new limits. A write past
/// the start changes nothing (`sysctl_writes_strict`).
pub fn write(tag: u32, limits: Limits, at: u64, data: &[u8]) -> Result<Limits, i32> {
    if at != 0 {
        return Ok(limits);
    }
    let text = std::str::from_utf8(data).map_err(|_| libc::EINVAL)?.trim();
    let v: u64 = text.parse().map_err(|_| libc::EINVAL)?;
    let mut l = limits;
    match tag {
        SHMMAX => l.shmmax = v,
        SHMALL => l.shmall = v,
        SHMMNI if v <= u64::from(IPCMNI) => l.shmmni = v,
        _ => return Err(libc::EINVAL),
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_read_and_parse_as_linux() {
        let t: ShmTable<Backing> = ShmTable::default();
        assert_eq!(read(SHMMAX, &t, 0, 64).ok(), Some(b"18446744073692774399\n".to_vec()));
        assert_eq!(read(SHMMNI, &t, 0, 64).ok(), Some(b"4096\n".to_vec()));
        assert_eq!(read(SHMMNI, &t, 2, 64).ok(), Some(b"96\n".to_vec()));
        assert_eq!(read(SHMMNI, &t, 9, 64).ok(), Some(Vec::new()));
        let l = Limits::default();
        assert_eq!(write(SHMMAX, l, 0, b"268435456\n").map(|l| l.shmmax), Ok(268_435_456));
        assert_eq!(write(SHMALL, l, 0, b" 4194304").map(|l| l.shmall), Ok(4_194_304));
        assert_eq!(write(SHMMNI, l, 0, b"32769\n"), Err(libc::EINVAL));
        assert_eq!(write(SHMMAX, l, 0, b"-1\n"), Err(libc::EINVAL));
        assert_eq!(write(SHMMAX, l, 0, b"12abc"), Err(libc::EINVAL));
        assert_eq!(write(SHMMAX, l, 3, b"1"), Ok(l));
        let head = read(SYSVIPC_SHM, &t, 0, 4096).unwrap_or_default();
        assert!(head.starts_with(b"       key      shmid perms"));
        assert_eq!(head.iter().filter(|&&b| b == b'\n').count(), 1, "an empty table is the header alone");
    }
}
