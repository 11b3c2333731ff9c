//! The PC's CMOS real-time clock (an MC146818 at ports `0x70`/`0x71`),
//! as far as firmware-less test kernels use it: the time and date from
//! the host's clock (BCD or binary, 24- or 12-hour, as register B says),
//! register A's update-in-progress bit (set for the last 244 µs of every
//! second, as on hardware and in QEMU), the alarm (seconds, minutes,
//! hours, `0xC0..` meaning "any"), register C's flags (read clears them)
//! and 114 bytes of CMOS RAM.
//!
//! What it does not do: raise IRQ 8 (an armed alarm wakes the machine
//! from S3, [`Rtc::next_alarm`], nothing else), periodic interrupts, or
//! let the guest set the clock (writes to the time registers are
//! ignored: the clock is the host's).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bus::{le_value, put_le_value, BusDevice};

/// The index port; the data port follows it.
pub const RTC_PORT: u16 = 0x70;
/// Width of the window (index and data).
pub const RTC_PORT_LEN: u64 = 2;

/// Register numbers.
pub mod reg {
    /// Seconds.
    pub const SECONDS: u8 = 0;
    /// Seconds alarm.
    pub const SECONDS_ALARM: u8 = 1;
    /// Minutes.
    pub const MINUTES: u8 = 2;
    /// Minutes alarm.
    pub const MINUTES_ALARM: u8 = 3;
    /// Hours.
    pub const HOURS: u8 = 4;
    /// Hours alarm.
    pub const HOURS_ALARM: u8 = 5;
    /// Day of the week, 1 (Sunday) to 7.
    pub const WEEKDAY: u8 = 6;
    /// Day of the month.
    pub const DAY: u8 = 7;
    /// Month.
    pub const MONTH: u8 = 8;
    /// Year in the century.
    pub const YEAR: u8 = 9;
    /// Register A: update in progress, divider, rate.
    pub const A: u8 = 0xa;
    /// Register B: enables and formats.
    pub const B: u8 = 0xb;
    /// Register C: interrupt flags (read clears).
    pub const C: u8 = 0xc;
    /// Register D: valid RAM and time.
    pub const D: u8 = 0xd;
    /// Century (where QEMU and SeaBIOS keep it).
    pub const CENTURY: u8 = 0x32;
}

/// Register A: update in progress.
pub const A_UIP: u8 = 0x80;
/// Register B: alarm interrupt enable.
pub const B_AIE: u8 = 0x20;
/// Register B: update-ended interrupt enable.
pub const B_UIE: u8 = 0x10;
/// Register B: binary (not BCD) values.
pub const B_DM: u8 = 0x04;
/// Register B: 24-hour mode.
pub const B_24H: u8 = 0x02;
/// Register C: some enabled flag is set.
pub const C_IRQF: u8 = 0x80;
/// Register C: alarm flag.
pub const C_AF: u8 = 0x20;
/// Register C: update-ended flag.
pub const C_UF: u8 = 0x10;

/// How long before each second's update UIP reads 1 (244 µs).
const UIP_HOLD: Duration = Duration::from_nanos(244_140);
/// Most seconds searched for an alarm match (a day: every alarm that can
/// match at all matches within one).
const DAY_SECS: u64 = 86_400;

/// The clock and its registers. Every access takes the host's time
/// (`SystemTime`, UTC); the `_at` methods take it as an argument, so that
/// tests choose it.
#[derive(Debug)]
pub struct Rtc {
    cmos: [u8; 128],
    index: u8,
    /// Register C's flags were last read (cleared) at this time.
    cleared: Duration,
}

impl Default for Rtc {
    fn default() -> Self {
        Rtc::new_at(now())
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Days since 1970-01-01 as (year, month 1-12, day 1-31), by the
/// proleptic Gregorian calendar (an era is 400 years of 146097 days).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl Rtc {
    /// A clock whose flags are clear at `now` (time since the Unix epoch).
    pub fn new_at(now: Duration) -> Rtc {
        let mut cmos = [0u8; 128];
        cmos[usize::from(reg::A)] = 0x26;
        cmos[usize::from(reg::B)] = B_24H;
        cmos[usize::from(reg::D)] = 0x80;
        Rtc { cmos, index: 0, cleared: now }
    }

    fn encode(&self, v: u64) -> u8 {
        let v = (v % 100) as u8;
        if self.cmos[usize::from(reg::B)] & B_DM != 0 {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn hours(&self, h: u64) -> u8 {
        if self.cmos[usize::from(reg::B)] & B_24H != 0 {
            return self.encode(h);
        }
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        self.encode(h12) | if h >= 12 { 0x80 } else { 0 }
    }

    /// Register `r` as the guest reads it at `now` (register C's read
    /// side effect aside).
    fn value_at(&self, r: u8, now: Duration) -> u8 {
        let secs = now.as_secs();
        let (year, month, day) = civil(secs / DAY_SECS);
        let tod = secs % DAY_SECS;
        match r {
            reg::SECONDS => self.encode(tod % 60),
            reg::MINUTES => self.encode(tod / 60 % 60),
            reg::HOURS => self.hours(tod / 3600),
            // 1970-01-01 was a Thursday (5 with Sunday = 1).
            reg::WEEKDAY => self.encode((secs / DAY_SECS + 4) % 7 + 1),
            reg::DAY => self.encode(day),
            reg::MONTH => self.encode(month),
            reg::YEAR => self.encode(year % 100),
            reg::CENTURY => self.encode(year / 100),
            reg::A => {
                let uip = Duration::from_nanos(u64::from(now.subsec_nanos())) >= Duration::from_secs(1) - UIP_HOLD;
                (self.cmos[usize::from(reg::A)] & !A_UIP) | if uip { A_UIP } else { 0 }
            }
            r => self.cmos[usize::from(r & 0x7f)],
        }
    }

    /// Whether the alarm matches the time at second `secs`.
    fn alarm_matches(&self, secs: u64) -> bool {
        let at = Duration::from_secs(secs);
        [(reg::SECONDS_ALARM, reg::SECONDS), (reg::MINUTES_ALARM, reg::MINUTES), (reg::HOURS_ALARM, reg::HOURS)]
            .iter()
            .all(|&(alarm, time)| {
                let a = self.cmos[usize::from(alarm)];
                a & 0xc0 == 0xc0 || a == self.value_at(time, at)
            })
    }

    /// Register C at `now`: the flags of the updates since it was last
    /// read, which the read clears.
    fn take_flags(&mut self, now: Duration) -> u8 {
        let (from, to) = (self.cleared.as_secs(), now.as_secs());
        self.cleared = now.max(self.cleared);
        let mut flags = 0;
        if to > from {
            flags |= C_UF;
            if (from + 1..=to).take(DAY_SECS as usize).any(|s| self.alarm_matches(s)) {
                flags |= C_AF;
            }
        }
        // AIE and UIE sit at the bits of AF and UF.
        if flags & self.cmos[usize::from(reg::B)] & (B_AIE | B_UIE) != 0 {
            flags |= C_IRQF;
        }
        flags
    }

    /// When the alarm next fires after `now` (time since the Unix epoch),
    /// if its interrupt is enabled: the wake-up time of a machine in S3.
    pub fn next_alarm(&self, now: Duration) -> Option<Duration> {
        if self.cmos[usize::from(reg::B)] & B_AIE == 0 {
            return None;
        }
        let s = now.as_secs();
        (s + 1..=s + DAY_SECS).find(|&t| self.alarm_matches(t)).map(Duration::from_secs)
    }

    /// [`Rtc::next_alarm`] from the host's clock, as a time from now.
    pub fn next_alarm_from_now(&self) -> Option<Duration> {
        let n = now();
        self.next_alarm(n).map(|t| t.saturating_sub(n))
    }

    /// A read of `data.len()` bytes at `offset` at time `now`.
    pub fn read_at(&mut self, offset: u64, data: &mut [u8], now: Duration) {
        let v = match offset {
            1 if self.index == reg::C => self.take_flags(now),
            1 => self.value_at(self.index, now),
            _ => 0xff,
        };
        put_le_value(data, u64::from(v));
    }

    /// A write at `offset` (at time `now`, for register B's enables).
    pub fn write_at(&mut self, offset: u64, data: &[u8], now: Duration) {
        let v = le_value(data) as u8;
        match offset {
            // Bit 7 masks NMIs; the index is the rest.
            0 => self.index = v & 0x7f,
            _ => match self.index {
                reg::SECONDS | reg::MINUTES | reg::HOURS | reg::WEEKDAY | reg::DAY | reg::MONTH | reg::YEAR => {
                    log::debug!("rtc: the guest set time register {:#x}: ignored (the clock is the host's)", self.index)
                }
                reg::A => self.cmos[usize::from(reg::A)] = v & !A_UIP,
                reg::B => {
                    // Flags count from when their interrupt was enabled.
                    let _ = self.take_flags(now);
                    self.cmos[usize::from(reg::B)] = v;
                }
                reg::C | reg::D => {}
                r => self.cmos[usize::from(r)] = v,
            },
        }
    }
}

impl BusDevice for Rtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.read_at(offset, data, now());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.write_at(offset, data, now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(rtc: &mut Rtc, r: u8, at: Duration) -> u8 {
        rtc.write_at(0, &[r], at);
        let mut d = [0u8];
        rtc.read_at(1, &mut d, at);
        d[0]
    }

    fn set(rtc: &mut Rtc, r: u8, v: u8, at: Duration) {
        rtc.write_at(0, &[r | 0x80], at);
        rtc.write_at(1, &[v], at);
    }

    /// 2024-02-29 23:59:58 UTC, a Thursday.
    const LEAP: u64 = 1_709_251_198;

    #[test]
    fn time_and_date_in_bcd_binary_and_12_hours() {
        let at = Duration::from_secs(LEAP);
        let mut rtc = Rtc::new_at(at);
        let regs = [reg::SECONDS, reg::MINUTES, reg::HOURS, reg::WEEKDAY, reg::DAY, reg::MONTH, reg::YEAR];
        let read = |rtc: &mut Rtc| regs.map(|r| get(rtc, r, at));
        assert_eq!(read(&mut rtc), [0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24]);
        assert_eq!(get(&mut rtc, reg::CENTURY, at), 0x20);
        set(&mut rtc, reg::B, B_24H | B_DM, at);
        assert_eq!(read(&mut rtc), [58, 59, 23, 5, 29, 2, 24]);
        set(&mut rtc, reg::B, 0, at);
        assert_eq!(get(&mut rtc, reg::HOURS, at), 0x80 | 0x11);
        assert_eq!(get(&mut rtc, reg::HOURS, Duration::from_secs(LEAP - 23 * 3600)), 0x12);
        // Two seconds later: 2024-03-01, a Friday.
        let next = Duration::from_secs(LEAP + 2);
        assert_eq!([reg::DAY, reg::MONTH, reg::WEEKDAY].map(|r| get(&mut rtc, r, next)), [1, 3, 6]);
        // The epoch, and 2000-01-01 (a Saturday).
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(10_957), (2000, 1, 1));
        assert_eq!(get(&mut rtc, reg::WEEKDAY, Duration::from_secs(946_684_800)), 7);
        // Time writes are ignored; RAM keeps what is written.
        set(&mut rtc, reg::SECONDS, 0x11, at);
        set(&mut rtc, 0x40, 0xab, at);
        assert_eq!(get(&mut rtc, 0x40, at), 0xab);
        assert_eq!(get(&mut rtc, reg::D, at), 0x80);
    }

    #[test]
    fn update_in_progress_is_the_last_244_us() {
        let mut rtc = Rtc::new_at(Duration::ZERO);
        let at = |ns| Duration::from_secs(LEAP) + Duration::from_nanos(ns);
        assert_eq!(get(&mut rtc, reg::A, at(0)), 0x26);
        assert_eq!(get(&mut rtc, reg::A, at(999_755_000)), 0x26);
        assert_eq!(get(&mut rtc, reg::A, at(999_756_000)), 0xa6);
        assert_eq!(get(&mut rtc, reg::A, at(999_999_999)), 0xa6);
        set(&mut rtc, reg::A, 0xff, at(0));
        assert_eq!(get(&mut rtc, reg::A, at(0)), 0x7f);
    }

    /// What `x86/s3.c` does: "any" alarms, AIE, then S3 until the alarm.
    #[test]
    fn alarms_and_flags() {
        let t0 = Duration::from_millis(LEAP * 1000 + 300);
        let mut rtc = Rtc::new_at(t0);
        assert_eq!(rtc.next_alarm(t0), None, "AIE is off");
        for r in [reg::SECONDS_ALARM, reg::MINUTES_ALARM, reg::HOURS_ALARM] {
            set(&mut rtc, r, 0xc0, t0);
        }
        set(&mut rtc, reg::B, B_24H | B_AIE, t0);
        assert_eq!(rtc.next_alarm(t0), Some(Duration::from_secs(LEAP + 1)));
        assert_eq!(get(&mut rtc, reg::C, t0), 0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(get(&mut rtc, reg::C, t1), C_IRQF | C_AF | C_UF);
        assert_eq!(get(&mut rtc, reg::C, t1), 0, "read clears");
        // An alarm at 00:00:05 (BCD), from 23:59:58.3: seven seconds on.
        set(&mut rtc, reg::SECONDS_ALARM, 0x05, t0);
        set(&mut rtc, reg::MINUTES_ALARM, 0x00, t0);
        set(&mut rtc, reg::HOURS_ALARM, 0x00, t0);
        assert_eq!(rtc.next_alarm(t0), Some(Duration::from_secs(LEAP + 7)));
        // Passing 00:00:01 sets UF, not AF (AIE on, UIE off: no IRQF).
        assert_eq!(get(&mut rtc, reg::C, t0 + Duration::from_secs(3)), C_UF);
        // An alarm that never matches (minute 0x99).
        set(&mut rtc, reg::MINUTES_ALARM, 0x99, t0);
        assert_eq!(rtc.next_alarm(t0), None);
        // The index port reads all-ones.
        let mut d = [0u8];
        rtc.read_at(0, &mut d, t0);
        assert_eq!(d, [0xff]);
    }
}
