//! Network devices of a Solo5 unikernel: host tap interfaces attached by
//! name to the network devices its manifest declares (`vmm run --net
//! NAME=TAP`, as `solo5-spt --net:NAME=TAP`), and the `read`/`write`
//! calls the `spt` bindings make on them.
//!
//! Attaching (at load, [`Nets::attach`]): every network device the
//! manifest declares must be given a tap, and every `--net` and
//! `--net-mac` must name a declared network device. The tap is opened
//! as `solo5-spt` opens it, or taken from the caller as `@FD`
//! (`tap.rs`); its MTU, the MAC address
//! (`--net-mac NAME=MAC`, else a random locally administered one), a
//! descriptor number the VMM makes up (the block devices' numbering:
//! `FIRST_FD` + the device's place in the manifest) and `attached` are
//! written into the manifest entry, where `solo5-spt` writes them.
//!
//! Serving: `solo5-spt`'s filter allows `read` and `write` on a network
//! device's descriptor only (any other descriptor is `SIGSYS`, and so it
//! is here: [`Nets::read`] and [`Nets::write`] return `None`). A `read`
//! is one `read(2)` of the non-blocking tap: one frame, truncated to the
//! buffer as the tap truncates it, `EAGAIN` (`SOLO5_R_AGAIN`) when none
//! is pending, `EFAULT` (the frame is lost, as under Linux) for a buffer
//! the unikernel may not write. A `write` is one frame: fewer bytes than
//! an Ethernet header or more than the MTU plus the header are refused
//! with `EINVAL` before the tap sees anything (the tap itself refuses the
//! short ones so; `solo5-spt` would pass an oversized one on), and a
//! buffer the unikernel may not read is `EFAULT`.
//!
//! Readiness ([`Nets::ready`]): the taps polled for a pending frame, by
//! manifest index (the `solo5_handle_t` the yield reports).

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use guest_mm::errno;
use thiserror::Error;

use super::block::FIRST_FD;
use super::mac::Mac;
use super::note::{self, NoteError, ENTRY, NET_BASIC};
use super::tap::{self, Tap, TapError};
use crate::hosted::hypercall::{Args, HostedKernel, Outcome};

/// Bytes of an Ethernet header (`ETH_HLEN`).
pub const ETH_HLEN: u64 = 14;
/// The most bytes one `read` takes from a tap (more than any frame).
const READ_MAX: u64 = 1 << 17;

/// Offsets in a `struct mft_entry` (Solo5's `mft_abi.h`).
const MAC_AT: usize = 72;
const MTU_AT: usize = 78;
const HOSTFD_AT: usize = 88;
const ATTACHED_AT: usize = 96;

/// Errors attaching network devices.
#[derive(Debug, Error)]
pub enum NetError {
    /// A declared network device has no tap.
    #[error("device '{0}' declared but not attached (attach it with --net {0}=TAP)")]
    NotAttached(String),
    /// A `--net` names no declared network device.
    #[error("--net {0}: the unikernel's manifest declares no network device '{0}'")]
    NotDeclared(String),
    /// A `--net-mac` names no declared network device.
    #[error("--net-mac {0}: the unikernel's manifest declares no network device '{0}'")]
    MacNotDeclared(String),
    /// The tap cannot be attached.
    #[error("network device '{name}': {source}")]
    Tap {
        /// The device.
        name: String,
        /// Why.
        #[source]
        source: TapError,
    },
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] NoteError),
}

/// One attached network device.
#[derive(Debug)]
struct Device {
    name: String,
    /// Its descriptor as the unikernel sees it.
    fd: i32,
    /// Its manifest index (`solo5_handle_t`).
    handle: u64,
    tap: File,
    mtu: u16,
    mac: Mac,
}

/// The attached network devices.
#[derive(Debug, Default)]
pub struct Nets(Vec<Device>);

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Nets {
    /// Attaches `nets` (device name, tap name) to the network devices
    /// declared in `manifest`, with the addresses `macs` (device name,
    /// address; generated for a device not named), filling in their
    /// manifest entries.
    pub fn attach(manifest: &mut [u8], nets: &[(String, String)], macs: &[(String, Mac)]) -> Result<Nets, NetError> {
        Self::attach_with(manifest, nets, macs, tap::attach)
    }

    /// [`Nets::attach`] with the taps opened by `open`.
    pub(super) fn attach_with(
        manifest: &mut [u8],
        nets: &[(String, String)],
        macs: &[(String, Mac)],
        open: impl Fn(&str) -> Result<Tap, TapError>,
    ) -> Result<Nets, NetError> {
        let declared = note::devices(manifest)?;
        let is_net = |n: &str| declared.iter().any(|d| d.kind == NET_BASIC && d.name == n);
        if let Some(d) = declared.iter().find(|d| d.kind == NET_BASIC && !nets.iter().any(|(n, _)| *n == d.name)) {
            return Err(NetError::NotAttached(d.name.clone()));
        }
        if let Some((n, _)) = nets.iter().find(|(n, _)| !is_net(n)) {
            return Err(NetError::NotDeclared(n.clone()));
        }
        if let Some((n, _)) = macs.iter().find(|(n, _)| !is_net(n)) {
            return Err(NetError::MacNotDeclared(n.clone()));
        }
        let mut out = Vec::new();
        for (d, fd) in declared.iter().zip(FIRST_FD..).filter(|(d, _)| d.kind == NET_BASIC) {
            let Some((_, tap_name)) = nets.iter().find(|(n, _)| *n == d.name) else {
                return Err(NetError::NotAttached(d.name.clone()));
            };
            let tap = open(tap_name).map_err(|source| NetError::Tap { name: d.name.clone(), source })?;
            let mac = macs.iter().find(|(n, _)| *n == d.name).map_or_else(Mac::generate, |&(_, m)| m);
            let handle = ((d.at - 8) / ENTRY) as u64;
            out.push(Device { name: d.name.clone(), fd, handle, tap: tap.file, mtu: tap.mtu, mac });
        }
        // Every tap is attached: only now is the manifest changed.
        for (d, dev) in declared.iter().filter(|d| d.kind == NET_BASIC).zip(&out) {
            let e = &mut manifest[d.at..d.at + ENTRY];
            e[MAC_AT..MAC_AT + 6].copy_from_slice(&dev.mac.0);
            e[MTU_AT..MTU_AT + 2].copy_from_slice(&dev.mtu.to_le_bytes());
            e[MTU_AT + 2..HOSTFD_AT].fill(0);
            e[HOSTFD_AT..ATTACHED_AT].fill(0);
            e[HOSTFD_AT..HOSTFD_AT + 4].copy_from_slice(&dev.fd.to_le_bytes());
            e[ATTACHED_AT] = 1;
            log::info!(
                "solo5: network device '{}': MAC {}, MTU {}, descriptor {}, handle {}",
                dev.name,
                dev.mac,
                dev.mtu,
                dev.fd,
                dev.handle
            );
        }
        Ok(Nets(out))
    }

    /// No network device is attached.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn by_fd(&self, fd: u64) -> Option<&Device> {
        self.0.iter().find(|d| u64::try_from(d.fd) == Ok(fd))
    }

    /// Serves `read(fd, buf, count)` on a network device; `None` if `fd`
    /// is not one (the caller kills the run).
    pub fn read(&self, hv: &HostedKernel, args: &Args) -> Option<Outcome> {
        let [fd, buf, count, ..] = args.a;
        let dev = self.by_fd(fd)?;
        let mut frame = vec![0u8; count.min(READ_MAX) as usize];
        Some(match (&dev.tap).read(&mut frame) {
            Ok(n) => match hv.copy_to_user(buf, &frame[..n]) {
                Ok(()) => Outcome::ret(n as i64),
                Err(e) => Outcome::err(e),
            },
            Err(e) => Outcome::err(errno_of(&e)),
        })
    }

    /// Serves `write(fd, buf, count)` on a network device: one frame;
    /// `None` if `fd` is not one (the caller kills the run).
    pub fn write(&self, hv: &HostedKernel, args: &Args) -> Option<Outcome> {
        let [fd, buf, count, ..] = args.a;
        let dev = self.by_fd(fd)?;
        if !(ETH_HLEN..=u64::from(dev.mtu) + ETH_HLEN).contains(&count) {
            return Some(Outcome::err(errno::EINVAL));
        }
        Some(match hv.copy_from_user(buf, count) {
            Ok(frame) => match (&dev.tap).write(&frame) {
                Ok(n) => Outcome::ret(n as i64),
                Err(e) => Outcome::err(errno_of(&e)),
            },
            Err(e) => Outcome::err(e),
        })
    }

    /// The devices with a frame pending (or an error a read would
    /// report), as (manifest index, poll events), waiting up to `timeout`
    /// for one; none if the wait failed (logged).
    pub fn ready(&self, timeout: Duration) -> Vec<(u64, u32)> {
        let files: Vec<&File> = self.0.iter().map(|d| &d.tap).collect();
        match tap::poll_readable(&files, timeout) {
            Ok(ev) => {
                self.0.iter().zip(ev).filter(|(_, e)| *e != 0).map(|(d, e)| (d.handle, u32::from(e as u16))).collect()
            }
            Err(e) => {
                log::warn!("solo5: polling the network devices failed: {e}");
                Vec::new()
            }
        }
    }
}
