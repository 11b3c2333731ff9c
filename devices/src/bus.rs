//! Address-range dispatch for port I/O and MMIO.
//!
//! A [`Bus`] maps non-overlapping windows `[base, base + len)` to devices.
//! An access is forwarded to the device whose window contains *all* of its
//! bytes, with the offset of the first byte inside that window; the device
//! never learns the absolute address. An access that no window claims (or
//! that straddles a window's end) is logged (rate-limited per call site,
//! see [`crate::log_limit`]) and reads as all-ones, and the guest goes on.
//!
//! The bus is built once before vCPUs start and then shared read-only
//! (`Arc<Bus>`); devices carry their own lock. This module does not decide
//! *what* an access means: that is the device's business.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use thiserror::Error;

/// A device on a bus. It sees the offset into its own window and the data
/// of one access (1, 2, 4 or 8 bytes, little endian, as the CPU issued it).
pub trait BusDevice: Send {
    /// Fills `data` with what a read of `data.len()` bytes at `offset`
    /// returns.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Handles a write of `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus (vCPU threads) and the event loop.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Which address space a bus decodes (used in log messages only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// x86 I/O ports (`in`/`out`).
    Pio,
    /// Memory-mapped I/O (guest-physical addresses).
    Mmio,
}

impl fmt::Display for BusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusKind::Pio => f.write_str("port"),
            BusKind::Mmio => f.write_str("mmio"),
        }
    }
}

/// Errors building a bus.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BusError {
    /// A window of length zero.
    #[error("{kind} window at {base:#x} has zero length")]
    Empty {
        /// The bus.
        kind: BusKind,
        /// Base of the window.
        base: u64,
    },
    /// `base + len` does not fit in 64 bits.
    #[error("{kind} window at {base:#x} with length {len:#x} overflows")]
    Overflow {
        /// The bus.
        kind: BusKind,
        /// Base of the window.
        base: u64,
        /// Its length.
        len: u64,
    },
    /// The window overlaps one already on the bus.
    #[error("{kind} window [{base:#x}, {end:#x}) overlaps [{other_base:#x}, {other_end:#x})")]
    Overlap {
        /// The bus.
        kind: BusKind,
        /// Base of the new window.
        base: u64,
        /// Exclusive end of the new window.
        end: u64,
        /// Base of the existing window.
        other_base: u64,
        /// Exclusive end of the existing window.
        other_end: u64,
    },
}

struct Window {
    len: u64,
    device: SharedDevice,
}

/// Dispatches accesses to devices by address range.
pub struct Bus {
    kind: BusKind,
    /// Keyed by window base.
    windows: BTreeMap<u64, Window>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for (base, w) in &self.windows {
            l.entry(&format_args!("[{:#x}, {:#x})", base, base + w.len));
        }
        l.finish()
    }
}

/// The value an unclaimed read returns.
const UNCLAIMED_BYTE: u8 = 0xff;

impl Bus {
    /// An empty bus.
    pub fn new(kind: BusKind) -> Self {
        Bus { kind, windows: BTreeMap::new() }
    }

    /// The address space this bus decodes.
    pub fn kind(&self) -> BusKind {
        self.kind
    }

    /// Puts `device` at `[base, base + len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let kind = self.kind;
        if len == 0 {
            return Err(BusError::Empty { kind, base });
        }
        let end = base.checked_add(len).ok_or(BusError::Overflow { kind, base, len })?;
        // The only candidates for overlap are the last window starting
        // below `end` (it may reach into us) — every other window either
        // starts at or after `end` or ends before that one starts.
        if let Some((&other_base, w)) = self.windows.range(..end).next_back() {
            let other_end = other_base + w.len;
            if other_end > base {
                return Err(BusError::Overlap { kind, base, end, other_base, other_end });
            }
        }
        self.windows.insert(base, Window { len, device });
        Ok(())
    }

    /// The device and offset for an access of `len` bytes at `addr`, if one
    /// window holds all of it.
    fn resolve(&self, addr: u64, len: usize) -> Option<(&SharedDevice, u64)> {
        let (&base, w) = self.windows.range(..=addr).next_back()?;
        let offset = addr - base;
        let last = offset.checked_add(len.max(1) as u64 - 1)?;
        (last < w.len).then_some((&w.device, offset))
    }

    /// Reads `data.len()` bytes at `addr`. Returns `false` (and fills `data`
    /// with all-ones) when no device claims the access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((dev, offset)) => {
                lock(dev).read(offset, data);
                true
            }
            None => {
                crate::warn_limited!("unclaimed {} read of {} bytes at {addr:#x}", self.kind, data.len());
                data.fill(UNCLAIMED_BYTE);
                false
            }
        }
    }

    /// Writes `data` at `addr`. Returns `false` (the write is dropped) when
    /// no device claims the access.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((dev, offset)) => {
                lock(dev).write(offset, data);
                true
            }
            None => {
                crate::warn_limited!("unclaimed {} write of {} bytes at {addr:#x}: {data:02x?}", self.kind, data.len());
                false
            }
        }
    }
}

/// Locks a device, recovering from a poisoned lock: a device is a register
/// file, and a panic in another thread must not take the bus down with it.
pub(crate) fn lock(dev: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

/// Assembles up to 8 little-endian bytes into a value (shorter slices are
/// zero-extended, longer ones truncated).
pub fn le_value(data: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = data.len().min(8);
    buf[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(buf)
}

/// Writes the low `data.len()` bytes of `value` into `data` (little endian;
/// bytes beyond 8 are all-ones).
pub fn put_le_value(data: &mut [u8], value: u64) {
    let bytes = value.to_le_bytes();
    for (i, b) in data.iter_mut().enumerate() {
        *b = bytes.get(i).copied().unwrap_or(UNCLAIMED_BYTE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every access it sees.
    #[derive(Default)]
    struct Recorder {
        log: Vec<(bool, u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = offset as u8 + i as u8;
            }
            self.log.push((false, offset, data.to_vec()));
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.log.push((true, offset, data.to_vec()));
        }
    }

    fn recorder() -> Arc<Mutex<Recorder>> {
        Arc::new(Mutex::new(Recorder::default()))
    }

    #[test]
    fn dispatch_passes_offset_only() {
        let mut bus = Bus::new(BusKind::Mmio);
        let a = recorder();
        let b = recorder();
        bus.insert(a.clone(), 0x1000, 0x100).unwrap();
        bus.insert(b.clone(), 0x2000, 0x10).unwrap();

        let mut d = [0u8; 4];
        assert!(bus.read(0x1010, &mut d));
        assert_eq!(d, [0x10, 0x11, 0x12, 0x13]);
        assert!(bus.write(0x200c, &[1, 2, 3, 4]));
        assert!(bus.write(0x1000, &[9]));

        let a = a.lock().unwrap();
        assert_eq!(a.log[0], (false, 0x10, vec![0x10, 0x11, 0x12, 0x13]));
        assert_eq!(a.log[1], (true, 0, vec![9]));
        assert_eq!(b.lock().unwrap().log, vec![(true, 0xc, vec![1, 2, 3, 4])]);
    }

    #[test]
    fn unclaimed_reads_all_ones() {
        let mut bus = Bus::new(BusKind::Pio);
        let a = recorder();
        bus.insert(a.clone(), 0x3f8, 8).unwrap();
        let mut d = [0u8; 2];
        assert!(!bus.read(0x80, &mut d));
        assert_eq!(d, [0xff, 0xff]);
        assert!(!bus.write(0x80, &[1]));
        // Straddling the end of a window is not claimed either.
        let mut d = [0u8; 4];
        assert!(!bus.read(0x3fe, &mut d));
        assert_eq!(d, [0xff; 4]);
        // Below the first window.
        assert!(!bus.read(0, &mut d));
        assert!(a.lock().unwrap().log.is_empty());
        // Last byte of the window is claimed.
        let mut d = [0u8; 1];
        assert!(bus.read(0x3ff, &mut d));
    }

    #[test]
    fn insert_rejects_bad_windows() {
        let mut bus = Bus::new(BusKind::Mmio);
        bus.insert(recorder(), 0x1000, 0x1000).unwrap();
        let cases: &[(u64, u64)] = &[(0x1800, 0x10), (0x800, 0x801), (0x0, 0x3000), (0x1fff, 1)];
        for &(base, len) in cases {
            assert!(matches!(bus.insert(recorder(), base, len), Err(BusError::Overlap { .. })), "{base:#x}+{len:#x}");
        }
        assert_eq!(bus.insert(recorder(), 0x5000, 0), Err(BusError::Empty { kind: BusKind::Mmio, base: 0x5000 }));
        assert!(matches!(bus.insert(recorder(), u64::MAX, 2), Err(BusError::Overflow { .. })));
        // Adjacent windows are fine.
        bus.insert(recorder(), 0x800, 0x800).unwrap();
        bus.insert(recorder(), 0x2000, 0x10).unwrap();
        assert_eq!(
            BusError::Overlap { kind: BusKind::Mmio, base: 0x1800, end: 0x1810, other_base: 0x1000, other_end: 0x2000 }
                .to_string(),
            "mmio window [0x1800, 0x1810) overlaps [0x1000, 0x2000)"
        );
    }

    #[test]
    fn le_helpers() {
        assert_eq!(le_value(&[0x34, 0x12]), 0x1234);
        assert_eq!(le_value(&[1; 9]), 0x0101_0101_0101_0101);
        let mut d = [0u8; 3];
        put_le_value(&mut d, 0x00ab_cdef);
        assert_eq!(d, [0xef, 0xcd, 0xab]);
        let mut d = [0u8; 10];
        put_le_value(&mut d, 0);
        assert_eq!(&d[8..], &[0xff, 0xff]);
    }
}
