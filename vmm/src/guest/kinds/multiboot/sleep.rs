//! The raw kernel's PC sleeps and wakes as a PC with ACPI firmware does:
//! S3 is entered through the PM1a control register ([`AcpiPm`]), the RTC
//! alarm ([`Rtc::next_alarm`]) wakes it when `RTC_EN` allows, and the
//! vCPU restarts in real mode at the waking vector the guest left in the
//! FACS ([`super::acpi`]), the 32-bit `Firmware_Waking_Vector` as SeaBIOS
//! reads it. What it does not do: keep the devices' state across sleep any
//! differently from a running machine (nothing is powered off), wake on
//! anything but the RTC alarm, read the 64-bit `X_Firmware_Waking_Vector`
//! (SeaBIOS does not either), or reboot for a zero vector as SeaBIOS does
//! (the run ends with an error naming it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::legacy::{AcpiPm, Rtc, SleepLatch};

use super::acpi;
use crate::guest::kind::Sleeper;
use crate::memory::GuestMem;

/// The PC's sleep state: the latch the PM registers set, and the devices
/// that decide the wake.
#[derive(Debug)]
pub struct PcSleep {
    /// Set when the guest writes `SLP_EN` with the S3 type.
    pub latch: Arc<SleepLatch>,
    /// The PM registers (their `RTC_EN`, the status a wake sets).
    pub pm: Arc<Mutex<AcpiPm>>,
    /// The RTC (its alarm).
    pub rtc: Arc<Mutex<Rtc>>,
}

impl Sleeper for PcSleep {
    fn take_request(&self) -> bool {
        self.latch.take()
    }

    fn wake_in(&self) -> Option<Duration> {
        let armed = self.pm.lock().unwrap_or_else(|e| e.into_inner()).rtc_wake_enabled();
        armed.then(|| self.rtc.lock().unwrap_or_else(|e| e.into_inner()).next_alarm_from_now()).flatten()
    }

    fn wake(&self, mem: &GuestMem) -> Result<u32, String> {
        self.pm.lock().unwrap_or_else(|e| e.into_inner()).wake(true);
        acpi::waking_vector(mem)
    }
}

#[cfg(test)]
mod tests {
    use devices::legacy::{PM1_CNT, PM1_EVT};
    use devices::BusDevice;
    use vm_memory::{Bytes, GuestAddress};

    use super::*;

    fn machine() -> (PcSleep, GuestMem) {
        let latch = Arc::new(SleepLatch::default());
        let pm = Arc::new(Mutex::new(AcpiPm::new(latch.clone())));
        let rtc = Arc::new(Mutex::new(Rtc::default()));
        let mem = GuestMem::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        acpi::write(&mem).unwrap();
        (PcSleep { latch, pm, rtc }, mem)
    }

    fn rtc_set(s: &PcSleep, r: u8, v: u8) {
        let mut rtc = s.rtc.lock().unwrap();
        rtc.write(0, &[r]);
        rtc.write(1, &[v]);
    }

    /// `x86/s3.c`'s sequence: the waking vector in the FACS, "any" alarms
    /// with AIE, `RTC_EN`, then `SLP_TYP` 1 with `SLP_EN`.
    #[test]
    fn s3_sleeps_until_the_alarm_and_wakes_at_the_vector() {
        let (s, mem) = machine();
        assert!(!s.take_request());
        mem.write_obj(0x1000u32, GuestAddress(acpi::FACS + acpi::FACS_WAKING_VECTOR)).unwrap();
        for r in [1, 3, 5] {
            rtc_set(&s, r, 0xc0);
        }
        rtc_set(&s, 0xb, 0x22);
        // No RTC_EN yet: nothing wakes the machine.
        assert_eq!(s.wake_in(), None);
        s.pm.lock().unwrap().write(u64::from(PM1_EVT) + 2, &0x400u16.to_le_bytes());
        let left = s.wake_in().expect("an armed alarm");
        assert!(left <= Duration::from_secs(1), "{left:?}");
        s.pm.lock().unwrap().write(u64::from(PM1_CNT), &0x2400u16.to_le_bytes());
        assert!(s.take_request());
        assert!(!s.take_request());
        assert_eq!(s.wake(&mem), Ok(0x1000));
        let mut sts = [0u8; 2];
        s.pm.lock().unwrap().read(u64::from(PM1_EVT), &mut sts);
        assert_eq!(u16::from_le_bytes(sts), 0x8400, "WAK_STS and RTC_STS");
    }
}
