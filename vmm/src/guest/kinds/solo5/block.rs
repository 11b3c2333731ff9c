//! Block devices of a Solo5 unikernel: host files attached by name to
//! the block devices its manifest declares (`vmm run --block NAME=FILE`,
//! as `solo5-spt --block:NAME=FILE`), and the `pread64`/`pwrite64` calls
//! the `spt` bindings make on them.
//!
//! Attaching (at load, [`Devices::attach`]): every block device the
//! manifest declares must be given a file, and every file must name a
//! declared block device (network devices are `net.rs`'s).
//! The file is opened read-write, regular files only, without blocking
//! (`input_file::open_checked`); its size is the capacity, which must be
//! a whole number (at least one) of the device's blocks ([`BLOCK_SIZE`]
//! bytes, or what `--block-sector-size NAME=N` says), as `solo5-spt`
//! requires. The capacity, the block size, a descriptor
//! number the VMM makes up (from [`FIRST_FD`]) and `attached` are written
//! into the manifest the unikernel reads, where `solo5-spt` writes them.
//!
//! Serving ([`Devices::call`]): `solo5-spt`'s seccomp filter allows
//! `pread64`/`pwrite64` only on a device's descriptor, for exactly one
//! block (`count == block_size`), at `offset <= capacity - block_size`
//! (compared unsigned, so a negative offset is refused too); anything
//! else is killed by `SIGSYS`, and so it is here (`call` returns `None`).
//! An allowed call copies through the unikernel's page tables (`EFAULT`
//! for a buffer that is not mapped user-writable or user-readable, and
//! then nothing is read into it or written to the file) and does the
//! host I/O at that offset; a host error is returned as its errno. The
//! offset need not be block-aligned: the filter does not check it.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::layout::TIMER_FD;
use super::note::{self, NoteError, BLOCK_BASIC, ENTRY, NET_BASIC};
use super::numbers::nr;
use crate::hosted::hypercall::{Args, HostedKernel, Outcome};
use crate::input_file::{open_checked, Accept, InputError};

/// The block size `solo5-spt` gives a block device unless
/// `--block-sector-size` says otherwise.
pub const BLOCK_SIZE: u16 = 512;
/// The descriptor number of the first attached device; the next ones
/// follow in manifest order.
pub const FIRST_FD: i32 = TIMER_FD + 1;

/// Offsets in a `struct mft_entry` (Solo5's `mft_abi.h`).
const CAPACITY_AT: usize = 72;
const BLOCK_SIZE_AT: usize = 80;
const HOSTFD_AT: usize = 88;
const ATTACHED_AT: usize = 96;

/// Errors attaching block devices.
#[derive(Debug, Error)]
pub enum BlockError {
    /// A declared block device has no file.
    #[error("device '{0}' declared but not attached (attach it with --block {0}=FILE)")]
    NotAttached(String),
    /// A file names no declared block device.
    #[error("--block {0}: the unikernel's manifest declares no block device '{0}'")]
    NotDeclared(String),
    /// The manifest declares a device of a type Solo5 does not define.
    #[error("device '{name}' has type {kind}, which Solo5 does not define")]
    UnknownType {
        /// Its name.
        name: String,
        /// Its type.
        kind: u32,
    },
    /// The file cannot be opened read-write, or is not a regular file.
    #[error("block device '{name}': {source}")]
    Open {
        /// The device.
        name: String,
        /// Why.
        #[source]
        source: InputError,
    },
    /// The file's size is not a whole number of blocks.
    #[error("block device '{name}': {path} holds {size} bytes, not a whole number (at least one) of {block_size}-byte blocks")]
    BadSize {
        /// The device.
        name: String,
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The device's block size.
        block_size: u16,
    },
    /// A sector size names no declared block device.
    #[error("--block-sector-size {0}: the unikernel's manifest declares no block device '{0}'")]
    SizeNotDeclared(String),
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] NoteError),
}

/// One attached device.
#[derive(Debug)]
struct Device {
    name: String,
    fd: i32,
    file: File,
    capacity: u64,
    block_size: u16,
}

/// The attached block devices.
#[derive(Debug, Default)]
pub struct Devices(Vec<Device>);

/// Reads at `offset` until `buf` is full or the file ends.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Devices {
    /// Attaches `blocks` (name, host file) to the block devices declared
    /// in `manifest`, with the block sizes `sizes` (name, bytes: a power
    /// of two from 512, checked by the caller; [`BLOCK_SIZE`] for a
    /// device not named), filling in their manifest entries.
    pub fn attach(
        manifest: &mut [u8],
        blocks: &[(String, PathBuf)],
        sizes: &[(String, u16)],
    ) -> Result<Devices, BlockError> {
        let declared = note::devices(manifest)?;
        for d in &declared {
            match d.kind {
                BLOCK_BASIC if !blocks.iter().any(|(n, _)| *n == d.name) => {
                    return Err(BlockError::NotAttached(d.name.clone()))
                }
                BLOCK_BASIC | NET_BASIC => {}
                kind => return Err(BlockError::UnknownType { name: d.name.clone(), kind }),
            }
        }
        let is_block = |n: &str| declared.iter().any(|d| d.kind == BLOCK_BASIC && d.name == n);
        if let Some((n, _)) = blocks.iter().find(|(n, _)| !is_block(n)) {
            return Err(BlockError::NotDeclared(n.clone()));
        }
        if let Some((n, _)) = sizes.iter().find(|(n, _)| !is_block(n)) {
            return Err(BlockError::SizeNotDeclared(n.clone()));
        }
        let mut out = Vec::with_capacity(declared.len());
        for (d, fd) in declared.iter().zip(FIRST_FD..).filter(|(d, _)| d.kind == BLOCK_BASIC) {
            let Some((_, path)) = blocks.iter().find(|(n, _)| *n == d.name) else {
                return Err(BlockError::NotAttached(d.name.clone()));
            };
            let block_size = sizes.iter().find(|(n, _)| *n == d.name).map_or(BLOCK_SIZE, |&(_, b)| b);
            let (file, capacity) = open(&d.name, path, block_size)?;
            out.push(Device { name: d.name.clone(), fd, file, capacity, block_size });
        }
        // Every file is open: only now is the manifest changed.
        for (d, dev) in declared.iter().filter(|d| d.kind == BLOCK_BASIC).zip(&out) {
            let e = &mut manifest[d.at..d.at + ENTRY];
            e[CAPACITY_AT..CAPACITY_AT + 8].copy_from_slice(&dev.capacity.to_le_bytes());
            e[BLOCK_SIZE_AT..HOSTFD_AT].fill(0);
            e[BLOCK_SIZE_AT..BLOCK_SIZE_AT + 2].copy_from_slice(&dev.block_size.to_le_bytes());
            e[HOSTFD_AT..ATTACHED_AT].fill(0);
            e[HOSTFD_AT..HOSTFD_AT + 4].copy_from_slice(&dev.fd.to_le_bytes());
            e[ATTACHED_AT] = 1;
            log::info!(
                "solo5: block device '{}': {} bytes in {}-byte blocks, descriptor {}",
                dev.name,
                dev.capacity,
                dev.block_size,
                dev.fd
            );
        }
        Ok(Devices(out))
    }

    /// The device `fd` names, if `solo5-spt`'s filter lets a transfer of
    /// `count` bytes at `offset` through to it.
    fn allowed(&self, fd: u64, count: u64, offset: u64) -> Option<&Device> {
        self.0.iter().find(|d| {
            let bs = u64::from(d.block_size);
            u64::try_from(d.fd) == Ok(fd) && count == bs && offset <= d.capacity - bs
        })
    }

    /// Serves `pread64`/`pwrite64(fd, buf, count, offset)`; `None` if
    /// the call is not allowed (the caller kills the run).
    pub fn call(&self, hv: &HostedKernel, args: &Args) -> Option<Outcome> {
        let [fd, buf, count, offset, _, _] = args.a;
        let dev = self.allowed(fd, count, offset)?;
        Some(match args.nr {
            nr::PREAD64 => {
                let mut data = vec![0u8; usize::from(dev.block_size)];
                match read_full(&dev.file, &mut data, offset) {
                    Ok(n) => match hv.copy_to_user(buf, &data[..n]) {
                        Ok(()) => Outcome::ret(n as i64),
                        Err(e) => Outcome::err(e),
                    },
                    Err(e) => Outcome::err(errno_of(&e)),
                }
            }
            nr::PWRITE64 => match hv.copy_from_user(buf, count) {
                Ok(data) => match dev.file.write_all_at(&data, offset) {
                    Ok(()) => Outcome::ret(data.len() as i64),
                    Err(e) => Outcome::err(errno_of(&e)),
                },
                Err(e) => Outcome::err(e),
            },
            _ => return None,
        })
    }
}

/// Opens a device's file and checks its size: whole `block_size`-byte
/// blocks, at least one.
fn open(name: &str, path: &Path, block_size: u16) -> Result<(File, u64), BlockError> {
    let (file, size) =
        open_checked(path, true, Accept::Regular).map_err(|source| BlockError::Open { name: name.into(), source })?;
    if size < u64::from(block_size) || size % u64::from(block_size) != 0 {
        return Err(BlockError::BadSize { name: name.into(), path: path.to_owned(), size, block_size });
    }
    Ok((file, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest with the reserved entry and then `devs` (name, type).
    fn manifest(devs: &[(&str, u32)]) -> Vec<u8> {
        let mut m = vec![1, 0, 0, 0];
        m.extend_from_slice(&(devs.len() as u32 + 1).to_le_bytes());
        let mut first = vec![0u8; ENTRY];
        first[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
        m.extend_from_slice(&first);
        for (name, kind) in devs {
            let mut e = vec![0u8; ENTRY];
            e[..name.len()].copy_from_slice(name.as_bytes());
            e[68..72].copy_from_slice(&kind.to_le_bytes());
            m.extend_from_slice(&e);
        }
        m
    }

    fn file(name: &str, len: usize) -> PathBuf {
        let p = std::env::temp_dir().join(format!("vmm-block-{}-{name}", std::process::id()));
        std::fs::write(&p, vec![0u8; len]).unwrap();
        p
    }

    #[test]
    fn attached_entries_are_written_where_solo5_reads_them() {
        let (a, b) = (file("a", 4096), file("b", 512));
        let mut m = manifest(&[("disk", 1), ("logs", 1)]);
        let blocks = vec![("logs".to_string(), b.clone()), ("disk".to_string(), a.clone())];
        let devs = Devices::attach(&mut m, &blocks, &[]).unwrap();
        let at = |i: usize, off: usize| 8 + i * ENTRY + off;
        let u64_at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(at(1, 72)), 4096);
        assert_eq!(u16::from_le_bytes([m[at(1, 80)], m[at(1, 81)]]), 512);
        assert_eq!(u64_at(at(1, 88)), FIRST_FD as u64);
        assert_eq!(m[at(1, 96)], 1);
        assert_eq!(u64_at(at(2, 72)), 512);
        assert_eq!(u64_at(at(2, 88)), FIRST_FD as u64 + 1);
        assert_eq!(m[at(2, 96)], 1);
        // The reserved entry is left alone.
        assert_eq!(m[at(0, 96)], 0);
        // The policy: the device's descriptor, one block, within capacity.
        let fd = FIRST_FD as u64;
        assert!(devs.allowed(fd, 512, 0).is_some() && devs.allowed(fd, 512, 4096 - 512).is_some());
        assert!(devs.allowed(fd, 512, 4096 - 511).is_none());
        assert!(devs.allowed(fd, 512, u64::MAX).is_none());
        assert!(devs.allowed(fd, 1024, 0).is_none() && devs.allowed(fd, 0, 0).is_none());
        assert!(devs.allowed(fd + 1, 512, 0).is_some() && devs.allowed(fd + 1, 512, 512).is_none());
        assert!(devs.allowed(fd + 2, 512, 0).is_none() && devs.allowed(3, 512, 0).is_none());
        let _ = (std::fs::remove_file(a), std::fs::remove_file(b));
    }

    /// `--block-sector-size:NAME=N`: the manifest says N, the file must
    /// hold whole N-byte blocks, and the policy moves N bytes at a time.
    #[test]
    fn a_sector_size_sizes_the_device_its_entry_and_its_policy() {
        let f = file("sect", 8192);
        let blocks = vec![("disk".to_string(), f.clone())];
        let mut m = manifest(&[("disk", 1)]);
        let devs = Devices::attach(&mut m, &blocks, &[("disk".into(), 4096)]).unwrap();
        let at = 8 + ENTRY;
        assert_eq!(u16::from_le_bytes([m[at + 80], m[at + 81]]), 4096);
        let fd = FIRST_FD as u64;
        assert!(devs.allowed(fd, 4096, 0).is_some() && devs.allowed(fd, 4096, 4096).is_some());
        assert!(devs.allowed(fd, 512, 0).is_none() && devs.allowed(fd, 4096, 4097).is_none());
        // 8 KiB is not a whole number of 16 KiB blocks: refused, manifest alone.
        let mut m = manifest(&[("disk", 1)]);
        let m0 = m.clone();
        let e = Devices::attach(&mut m, &blocks, &[("disk".into(), 16384)]).unwrap_err();
        assert!(matches!(e, BlockError::BadSize { size: 8192, block_size: 16384, .. }), "{e}");
        assert!(e.to_string().contains("16384-byte blocks"), "{e}");
        // A sector size for a device the manifest does not declare.
        let e = Devices::attach(&mut m, &blocks, &[("other".into(), 4096)]).unwrap_err();
        assert!(matches!(&e, BlockError::SizeNotDeclared(n) if n == "other"), "{e}");
        assert_eq!(m, m0);
        let _ = std::fs::remove_file(f);
    }

    #[test]
    fn refusals_leave_the_manifest_alone() {
        let ok = file("ok", 1024);
        let odd = file("odd", 1000);
        let empty = file("empty", 0);
        let blk = |n: &str, p: &Path| vec![(n.to_string(), p.to_path_buf())];
        let m0 = manifest(&[("disk", 1)]);
        let mut m = m0.clone();
        let e = Devices::attach(&mut m, &[], &[]).unwrap_err();
        assert_eq!(e.to_string(), "device 'disk' declared but not attached (attach it with --block disk=FILE)");
        let mut two = blk("disk", &ok);
        two.extend(blk("other", &ok));
        assert!(matches!(Devices::attach(&mut m, &two, &[]), Err(BlockError::NotDeclared(n)) if n == "other"));
        assert!(matches!(
            Devices::attach(&mut m, &blk("disk", &odd), &[]),
            Err(BlockError::BadSize { size: 1000, .. })
        ));
        assert!(matches!(Devices::attach(&mut m, &blk("disk", &empty), &[]), Err(BlockError::BadSize { size: 0, .. })));
        let dir = std::env::temp_dir();
        assert!(matches!(Devices::attach(&mut m, &blk("disk", &dir), &[]), Err(BlockError::Open { .. })));
        assert!(matches!(
            Devices::attach(&mut m, &blk("disk", Path::new("/dev/zero")), &[]),
            Err(BlockError::Open { .. })
        ));
        assert_eq!(m, m0);
        // A network device is left to `net.rs`; a block device after it
        // keeps its place in the descriptor numbering.
        let mut net = manifest(&[("net0", 2)]);
        assert!(Devices::attach(&mut net, &[], &[]).unwrap().0.is_empty());
        assert_eq!(net, manifest(&[("net0", 2)]));
        let mut mixed = manifest(&[("net0", 2), ("disk", 1)]);
        let devs = Devices::attach(&mut mixed, &blk("disk", &ok), &[]).unwrap();
        assert_eq!(devs.0.len(), 1);
        assert_eq!(devs.0[0].fd, FIRST_FD + 1);
        assert_eq!(mixed[8 + ENTRY..8 + 2 * ENTRY], manifest(&[("net0", 2)])[8 + ENTRY..]);
        let mut to_net = blk("disk", &ok);
        to_net.extend(blk("net0", &ok));
        assert!(matches!(Devices::attach(&mut mixed, &to_net, &[]), Err(BlockError::NotDeclared(n)) if n == "net0"));
        let mut odd_type = manifest(&[("x", 7)]);
        assert!(matches!(Devices::attach(&mut odd_type, &[], &[]), Err(BlockError::UnknownType { kind: 7, .. })));
        // No device declared, none given: nothing to do.
        let mut none = manifest(&[]);
        assert!(Devices::attach(&mut none, &[], &[]).unwrap().0.is_empty());
        assert!(matches!(Devices::attach(&mut none, &blk("disk", &ok), &[]), Err(BlockError::NotDeclared(_))));
        for p in [ok, odd, empty] {
            let _ = std::fs::remove_file(p);
        }
    }

    /// A file ends: `read_full` returns what there was, from the offset
    /// asked, and the rest of the buffer is left alone.
    #[test]
    fn read_full_stops_at_the_end_of_the_file() {
        let p = std::env::temp_dir().join(format!("vmm-block-{}-short", std::process::id()));
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let mut buf = [0xaa; 512];
        assert_eq!(read_full(&f, &mut buf, 0).unwrap(), 100);
        assert_eq!(buf[..100], data[..]);
        assert!(buf[100..].iter().all(|&b| b == 0xaa));
        let mut buf = [0xaa; 64];
        assert_eq!(read_full(&f, &mut buf, 50).unwrap(), 50);
        assert_eq!(buf[..50], data[50..]);
        assert_eq!(read_full(&f, &mut buf, 100).unwrap(), 0);
        assert_eq!(read_full(&f, &mut buf, 1 << 40).unwrap(), 0);
        let _ = std::fs::remove_file(p);
    }

    /// A host error is the call's result, its errno as the host gave it
    /// (`EIO` when it has none), not retried.
    #[test]
    fn host_errors_are_returned_with_their_errno() {
        let p = std::env::temp_dir().join(format!("vmm-block-{}-wronly", std::process::id()));
        std::fs::write(&p, [0u8; 512]).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let e = read_full(&f, &mut [0; 512], 0).unwrap_err();
        assert_eq!(errno_of(&e), libc::EBADF);
        assert_eq!(errno_of(&std::io::Error::from_raw_os_error(libc::ENOSPC)), libc::ENOSPC);
        assert_eq!(errno_of(&std::io::Error::other("no errno")), libc::EIO);
        let _ = std::fs::remove_file(p);
    }

    /// The devices' descriptors are not the ones the unikernel already
    /// uses for its epoll set and timer.
    #[test]
    fn device_descriptors_follow_the_timer_and_epoll_ones() {
        let f = file("fds", 512);
        let mut m = manifest(&[("disk", 1)]);
        let devs = Devices::attach(&mut m, &[("disk".to_string(), f.clone())], &[]).unwrap();
        let fd = u64::from_le_bytes(m[8 + ENTRY + 88..8 + ENTRY + 96].try_into().unwrap());
        assert!(fd > TIMER_FD as u64 && fd > super::super::layout::EPOLL_FD as u64, "{fd}");
        assert!(devs.allowed(fd, 512, 0).is_some());
        assert!(devs.allowed(TIMER_FD as u64, 512, 0).is_none());
        let _ = std::fs::remove_file(f);
    }

    /// A file given under a name the manifest does not declare, while the
    /// declared one is missing: the message names the device to attach.
    #[test]
    fn a_misnamed_file_reports_the_missing_device() {
        let f = file("misnamed", 512);
        let mut m = manifest(&[("disk", 1)]);
        let e = Devices::attach(&mut m, &[("dsik".to_string(), f.clone())], &[]).unwrap_err();
        assert!(matches!(&e, BlockError::NotAttached(n) if n == "disk"), "{e}");
        let _ = std::fs::remove_file(f);
    }
}
