//! The ACPI power-management registers of a PC, at the I/O base QEMU's
//! PIIX4 uses (`0x600`): the PM1a event block (status, enable), the PM1a
//! control block and the 24-bit PM timer (3.579545 MHz). Writing
//! `SLP_TYP`/`SLP_EN` for S3 records a request in a [`SleepLatch`]; the
//! VMM suspends the machine and resumes it through the firmware's waking
//! vector ([`AcpiPm::wake`] sets the status bits a resume leaves).
//!
//! What it does not do: S4/S5 (any other sleep type is ignored, with a
//! log line), SCI interrupts, GPE blocks, or decide when to wake (that is
//! the RTC's alarm, read by the VMM).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::bus::{le_value, put_le_value, BusDevice};

/// The first port.
pub const PM_BASE: u16 = 0x600;
/// The ports: event block (4), control block (2, padded to 4), timer (4).
pub const PM_LEN: u64 = 12;
/// Offset of the PM1a event block (status at +0, enable at +2).
pub const PM1_EVT: u16 = 0;
/// Offset of the PM1a control block.
pub const PM1_CNT: u16 = 4;
/// Offset of the PM timer.
pub const PM_TMR: u16 = 8;

/// PM1 status/enable: the RTC alarm.
pub const PM1_RTC: u16 = 1 << 10;
/// PM1 status: the machine woke.
pub const PM1_WAK_STS: u16 = 1 << 15;
/// PM1 control: SCI enabled (ACPI mode).
pub const PM1_SCI_EN: u16 = 1 << 0;
/// PM1 control: sleep enable (write-only).
pub const PM1_SLP_EN: u16 = 1 << 13;
/// The `SLP_TYP` of S3 (the DSDT's `\_S3`, QEMU's value).
pub const SLP_TYP_S3: u16 = 1;
/// The PM timer's frequency.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// "The guest asked to enter S3": set by the device, taken by the vCPU
/// that wrote it.
#[derive(Debug, Default)]
pub struct SleepLatch {
    requested: AtomicBool,
}

impl SleepLatch {
    /// Records a request.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Whether a request was made since the last call (and clears it).
    pub fn take(&self) -> bool {
        self.requested.swap(false, Ordering::AcqRel)
    }
}

/// The registers.
#[derive(Debug)]
pub struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
    epoch: Instant,
    sleep: std::sync::Arc<SleepLatch>,
}

impl AcpiPm {
    /// The registers as firmware leaves them (ACPI mode on), reporting
    /// sleep requests to `sleep`.
    pub fn new(sleep: std::sync::Arc<SleepLatch>) -> AcpiPm {
        AcpiPm { status: 0, enable: 0, control: PM1_SCI_EN, epoch: Instant::now(), sleep }
    }

    /// Whether the RTC alarm may wake the machine (`RTC_EN`).
    pub fn rtc_wake_enabled(&self) -> bool {
        self.enable & PM1_RTC != 0
    }

    /// What a wake leaves: `WAK_STS`, and `RTC_STS` for an RTC wake.
    pub fn wake(&mut self, by_rtc: bool) {
        self.status |= PM1_WAK_STS | if by_rtc { PM1_RTC } else { 0 };
    }

    fn register(&self, offset: u64) -> Option<(u16, u32)> {
        let r = match offset {
            0..=1 => (0, u32::from(self.status)),
            2..=3 => (2, u32::from(self.enable)),
            4..=7 => (4, u32::from(self.control & !PM1_SLP_EN)),
            8..=11 => {
                let ticks = self.epoch.elapsed().as_nanos() * u128::from(PM_TIMER_HZ) / 1_000_000_000;
                (8, (ticks & 0xff_ffff) as u32)
            }
            _ => return None,
        };
        Some(r)
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.register(offset) {
            Some((start, value)) => put_le_value(data, u64::from(value) >> (8 * (offset - u64::from(start)))),
            None => put_le_value(data, u64::MAX),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let v = le_value(data) as u16;
        match offset {
            // Write 1 to clear.
            PM1_EVT_STS => self.status &= !v,
            2 => self.enable = v,
            4 => {
                self.control = v & !PM1_SLP_EN;
                if v & PM1_SLP_EN != 0 {
                    match (v >> 10) & 7 {
                        SLP_TYP_S3 => self.sleep.request(),
                        t => log::warn!("acpi: sleep type {t} requested: only S3 ({SLP_TYP_S3}) is implemented"),
                    }
                }
            }
            o => log::debug!("acpi: write of {v:#x} at PM offset {o}: ignored"),
        }
    }
}

const PM1_EVT_STS: u64 = PM1_EVT as u64;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rw16(pm: &mut AcpiPm, off: u64) -> u16 {
        let mut d = [0u8; 2];
        pm.read(off, &mut d);
        u16::from_le_bytes(d)
    }

    /// What `x86/s3.c` writes: RTC_EN, then SLP_TYP 1 | SLP_EN.
    #[test]
    fn s3_entry_and_wake_status() {
        let latch = Arc::new(SleepLatch::default());
        let mut pm = AcpiPm::new(latch.clone());
        assert_eq!(rw16(&mut pm, 4), PM1_SCI_EN);
        assert!(!pm.rtc_wake_enabled());
        pm.write(2, &0x400u16.to_le_bytes());
        assert!(pm.rtc_wake_enabled());
        assert!(!latch.take());
        pm.write(4, &0x2400u16.to_le_bytes());
        assert!(latch.take());
        assert!(!latch.take(), "taken once");
        // SLP_EN reads as 0; SLP_TYP stays.
        assert_eq!(rw16(&mut pm, 4), 0x400);
        // S5 is not S3.
        pm.write(4, &0x2000u16.to_le_bytes());
        assert!(!latch.take());
        pm.wake(true);
        assert_eq!(rw16(&mut pm, 0), PM1_WAK_STS | PM1_RTC);
        pm.write(0, &PM1_WAK_STS.to_le_bytes());
        assert_eq!(rw16(&mut pm, 0), PM1_RTC);
        // Byte reads of the enable register's high byte.
        let mut b = [0u8];
        pm.read(3, &mut b);
        assert_eq!(b, [0x04]);
    }

    #[test]
    fn the_timer_counts_at_3_58_mhz_in_24_bits() {
        let mut pm = AcpiPm::new(Arc::new(SleepLatch::default()));
        let mut d = [0u8; 4];
        pm.read(8, &mut d);
        let a = u32::from_le_bytes(d);
        std::thread::sleep(std::time::Duration::from_millis(20));
        pm.read(8, &mut d);
        let b = u32::from_le_bytes(d);
        assert!(a < 1 << 24 && b < 1 << 24);
        let ticks = b.wrapping_sub(a) & 0xff_ffff;
        // 20 ms is 71591 ticks; allow a loaded host's delay.
        assert!((71_000..3_579_545).contains(&ticks), "{ticks}");
        pm.read(12, &mut d);
        assert_eq!(d, [0xff; 4]);
    }
}
