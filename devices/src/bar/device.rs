//! The BAR register file model (see [`super::registers`] for the layout).

use std::collections::VecDeque;
use std::io;

use thiserror::Error;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::registers::*;
use crate::bus::{le_value, put_le_value, BusDevice};

/// How many accesses the device remembers for the VMM's report.
const ACCESS_LOG_LEN: usize = 256;

/// Errors creating a BAR device.
#[derive(Debug, Error)]
pub enum BarError {
    /// The window cannot hold the register file.
    #[error("BAR window of {size:#x} bytes is smaller than the register file ({REGISTER_FILE_LEN:#x})")]
    TooSmall {
        /// The window size asked for.
        size: u64,
    },
    /// The doorbell eventfd could not be created.
    #[error("cannot create the doorbell eventfd: {0}")]
    EventFd(#[source] io::Error),
}

/// One access that reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Offset into the window.
    pub offset: u64,
    /// Size in bytes.
    pub size: usize,
    /// A write (else a read).
    pub write: bool,
    /// Value written, or value returned by the read.
    pub value: u64,
}

/// The register file of one BAR window.
#[derive(Debug)]
pub struct BarDevice {
    size: u64,
    data: u64,
    last_access: u64,
    writes: u64,
    reads: u64,
    doorbells: u64,
    scratch: Vec<u8>,
    doorbell: EventFd,
    log: VecDeque<Access>,
}

impl BarDevice {
    /// A device for a window of `size` bytes.
    pub fn new(size: u64) -> Result<Self, BarError> {
        if size < REGISTER_FILE_LEN {
            return Err(BarError::TooSmall { size });
        }
        Ok(BarDevice {
            size,
            data: 0,
            last_access: 0,
            writes: 0,
            reads: 0,
            doorbells: 0,
            scratch: vec![0; (REGISTER_FILE_LEN - SCRATCH) as usize],
            doorbell: EventFd::new(EFD_NONBLOCK).map_err(BarError::EventFd)?,
            log: VecDeque::with_capacity(ACCESS_LOG_LEN),
        })
    }

    /// Window size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The doorbell eventfd; the VMM registers it as an ioeventfd at
    /// `window base + DOORBELL`.
    pub fn doorbell_eventfd(&self) -> &EventFd {
        &self.doorbell
    }

    /// Offset of the doorbell register in the window.
    pub const fn doorbell_offset() -> u64 {
        DOORBELL
    }

    /// Collects pending rings from the eventfd into the counter.
    pub fn drain_doorbell(&mut self) {
        match self.doorbell.read() {
            Ok(n) => self.doorbells = self.doorbells.wrapping_add(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => crate::warn_limited!("BAR doorbell eventfd read failed: {e}"),
        }
    }

    /// Doorbell rings seen so far (drains the eventfd first).
    pub fn doorbell_count(&mut self) -> u64 {
        self.drain_doorbell();
        self.doorbells
    }

    /// Accesses that reached the device (reads, writes).
    pub fn counts(&self) -> (u64, u64) {
        (self.reads, self.writes)
    }

    /// The most recent accesses, oldest first.
    pub fn accesses(&self) -> impl Iterator<Item = &Access> {
        self.log.iter()
    }

    fn record(&mut self, access: Access) {
        if self.log.len() == ACCESS_LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back(access);
    }

    /// The register at the 8-byte aligned `reg`, computed at read time.
    fn register(&mut self, reg: u64) -> Option<u64> {
        Some(match reg {
            ID => BAR_ID,
            DATA => self.data,
            CHECK => check_value(self.data),
            LAST_ACCESS => self.last_access,
            WRITE_COUNT => self.writes,
            READ_COUNT => self.reads,
            DOORBELL_COUNT => self.doorbell_count(),
            _ => return None,
        })
    }

    fn scratch_range(&self, offset: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = offset.checked_sub(SCRATCH)? as usize;
        let end = start.checked_add(len)?;
        (end <= self.scratch.len()).then_some(start..end)
    }
}

/// True for a naturally sized access that stays inside one 8-byte register.
fn in_one_register(offset: u64, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && (offset % 8) + len as u64 <= 8
}

impl BusDevice for BarDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.reads = self.reads.wrapping_add(1);
        if let Some(r) = self.scratch_range(offset, data.len()) {
            data.copy_from_slice(&self.scratch[r]);
        } else if offset >= REGISTER_FILE_LEN && offset < self.size && in_one_register(offset, data.len()) {
            put_le_value(data, echo_value(offset) >> ((offset % 8) * 8));
        } else if in_one_register(offset, data.len()) {
            let reg = offset & !7;
            match self.register(reg) {
                Some(v) => put_le_value(data, v >> ((offset % 8) * 8)),
                None => {
                    crate::warn_limited!("BAR: read of unknown register at offset {offset:#x}");
                    put_le_value(data, u64::MAX);
                }
            }
        } else {
            crate::warn_limited!("BAR: unsupported {}-byte read at offset {offset:#x}", data.len());
            put_le_value(data, u64::MAX);
        }
        let value = le_value(data);
        if offset & !7 != LAST_ACCESS {
            self.last_access = encode_access(offset, data.len(), false);
        }
        self.record(Access { offset, size: data.len(), write: false, value });
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes = self.writes.wrapping_add(1);
        self.last_access = encode_access(offset, data.len(), true);
        let value = le_value(data);
        self.record(Access { offset, size: data.len(), write: true, value });
        if let Some(r) = self.scratch_range(offset, data.len()) {
            self.scratch[r].copy_from_slice(data);
            return;
        }
        if !in_one_register(offset, data.len()) {
            crate::warn_limited!("BAR: unsupported {}-byte write at offset {offset:#x}", data.len());
            return;
        }
        match offset & !7 {
            DATA => {
                let shift = (offset % 8) * 8;
                let mask = if data.len() == 8 { u64::MAX } else { ((1u64 << (data.len() * 8)) - 1) << shift };
                self.data = (self.data & !mask) | ((value << shift) & mask);
            }
            // The same path an ioeventfd takes, so the count is the same
            // whether or not KVM intercepted the write.
            DOORBELL => {
                if let Err(e) = self.doorbell.write(1) {
                    crate::warn_limited!("BAR doorbell eventfd write failed: {e}");
                }
            }
            reg => crate::warn_limited!("BAR: write to read-only or unknown register {reg:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dev: &mut BarDevice, offset: u64, len: usize) -> u64 {
        let mut d = vec![0u8; len];
        dev.read(offset, &mut d);
        le_value(&d)
    }

    #[test]
    fn check_register_is_computed_from_data() {
        let mut dev = BarDevice::new(0x1000).unwrap();
        assert_eq!(read(&mut dev, ID, 8), BAR_ID);
        dev.write(DATA, &0x0123_4567_89ab_cdefu64.to_le_bytes());
        assert_eq!(read(&mut dev, DATA, 8), 0x0123_4567_89ab_cdef);
        assert_eq!(read(&mut dev, CHECK, 8), check_value(0x0123_4567_89ab_cdef));
        assert_ne!(check_value(0x0123_4567_89ab_cdef), 0x0123_4567_89ab_cdef);
        // Partial write of the high half; partial read of bytes 2..4.
        dev.write(DATA + 4, &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(read(&mut dev, DATA, 8), 0xddcc_bbaa_89ab_cdef);
        assert_eq!(read(&mut dev, DATA + 2, 2), 0x89ab);
        assert_eq!(read(&mut dev, CHECK, 4), check_value(0xddcc_bbaa_89ab_cdef) & 0xffff_ffff);
    }

    #[test]
    fn last_access_reports_offset_size_direction() {
        let mut dev = BarDevice::new(0x2000).unwrap();
        dev.write(SCRATCH + 0x12, &[1, 2]);
        assert_eq!(read(&mut dev, LAST_ACCESS, 8), encode_access(SCRATCH + 0x12, 2, true));
        // Reading LAST_ACCESS does not overwrite it.
        assert_eq!(read(&mut dev, LAST_ACCESS, 8), encode_access(SCRATCH + 0x12, 2, true));
        read(&mut dev, DATA + 4, 4);
        assert_eq!(read(&mut dev, LAST_ACCESS, 8), encode_access(DATA + 4, 4, false));
        assert_eq!(read(&mut dev, SCRATCH + 0x12, 2), 0x0201);
        let (reads, writes) = dev.counts();
        assert_eq!((reads, writes), (5, 1));
        assert_eq!(read(&mut dev, WRITE_COUNT, 8), 1);
        let last = dev.accesses().last().copied().unwrap();
        assert_eq!(last, Access { offset: WRITE_COUNT, size: 8, write: false, value: 1 });
    }

    #[test]
    fn doorbell_counts_rings_from_either_path() {
        let mut dev = BarDevice::new(0x1000).unwrap();
        dev.write(DOORBELL, &[1, 0, 0, 0]);
        // An ioeventfd signals the same eventfd without reaching the model.
        dev.doorbell_eventfd().write(2).unwrap();
        assert_eq!(read(&mut dev, DOORBELL_COUNT, 8), 3);
        assert_eq!(read(&mut dev, DOORBELL_COUNT, 8), 3);
    }

    #[test]
    fn echo_region_names_its_offset() {
        let mut dev = BarDevice::new(0x3000).unwrap();
        assert_eq!(read(&mut dev, 0x1800, 8), echo_value(0x1800));
        assert_eq!(read(&mut dev, 0x2ff8, 8), ECHO_TAG | 0x2ff8);
        assert_eq!(read(&mut dev, 0x1804, 4), (ECHO_TAG | 0x1800) >> 32);
        assert_eq!(read(&mut dev, 0x3000, 8), u64::MAX);
        dev.write(0x1800, &[1; 8]);
        assert_eq!(read(&mut dev, 0x1800, 8), echo_value(0x1800));
    }

    #[test]
    fn bad_accesses_read_all_ones() {
        let mut dev = BarDevice::new(0x2000).unwrap();
        assert_eq!(read(&mut dev, 0x40, 8), u64::MAX);
        // Straddling two registers.
        assert_eq!(read(&mut dev, DATA + 6, 4), 0xffff_ffff);
        // Writes to read-only registers are ignored.
        dev.write(ID, &[0; 8]);
        assert_eq!(read(&mut dev, ID, 8), BAR_ID);
        // Scratch end edge.
        dev.write(REGISTER_FILE_LEN - 2, &[7, 8]);
        assert_eq!(read(&mut dev, REGISTER_FILE_LEN - 2, 2), 0x0807);
        assert_eq!(read(&mut dev, REGISTER_FILE_LEN - 1, 2), 0xffff);
    }

    #[test]
    fn window_too_small() {
        assert!(matches!(BarDevice::new(0x800), Err(BarError::TooSmall { size: 0x800 })));
    }
}
