//! The ACPI tables a firmware would leave for a raw kernel, written where
//! a BIOS writes them (the `0xE0000..0x100000` area, reserved in the
//! multiboot memory map): an RSDP (revision 2), an RSDT and an XSDT
//! listing one FADT (revision 1: the PM1a event and control blocks, the
//! PM timer, the RTC's century register), the FADT's FACS (with the
//! firmware waking vector S3 resume jumps to) and an empty DSDT.
//!
//! What it does not do: describe devices (no MADT, no AML beyond the
//! DSDT header; the sleep type of S3 is QEMU's, 1), or keep a kernel
//! that loads itself over `0xF0000` from overwriting them (it is written
//! after them).

use devices::legacy::{PM1_CNT, PM1_EVT, PM_BASE, PM_TMR};
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMem;

/// Where the tables start (the RSDP, 16-byte aligned as ACPI requires).
pub const ACPI_BASE: u64 = 0xf_0000;
const RSDT: u64 = ACPI_BASE + 0x40;
const XSDT: u64 = ACPI_BASE + 0x80;
const FADT: u64 = ACPI_BASE + 0x100;
/// The FACS (64-byte aligned, as ACPI requires).
pub const FACS: u64 = ACPI_BASE + 0x200;
const DSDT: u64 = ACPI_BASE + 0x240;
/// Bytes from [`ACPI_BASE`] the tables take.
pub const ACPI_LEN: u64 = 0x280;
/// Offset of the 32-bit firmware waking vector in the FACS.
pub const FACS_WAKING_VECTOR: u64 = 12;
const FADT_LEN: usize = 116;
const SCI_IRQ: u16 = 9;
/// The RTC's century register (`devices::legacy::Rtc`).
const CENTURY_REG: u8 = 0x32;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// The byte that makes `bytes` sum to zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A table: the standard header and `body`, checksummed.
fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 36];
    put(&mut t, 0, sig);
    put(&mut t, 4, &((36 + body.len()) as u32).to_le_bytes());
    t[8] = revision;
    put(&mut t, 10, b"VMM   ");
    put(&mut t, 16, b"VMMACPI ");
    put(&mut t, 24, &1u32.to_le_bytes());
    put(&mut t, 28, b"VMM ");
    put(&mut t, 32, &1u32.to_le_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

fn rsdp() -> Vec<u8> {
    let mut r = vec![0u8; 36];
    put(&mut r, 0, b"RSD PTR ");
    put(&mut r, 9, b"VMM   ");
    r[15] = 2;
    put(&mut r, 16, &(RSDT as u32).to_le_bytes());
    put(&mut r, 20, &36u32.to_le_bytes());
    put(&mut r, 24, &XSDT.to_le_bytes());
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

fn fadt() -> Vec<u8> {
    let mut b = vec![0u8; FADT_LEN - 36];
    let at = |off: usize| off - 36;
    put(&mut b, at(36), &(FACS as u32).to_le_bytes());
    put(&mut b, at(40), &(DSDT as u32).to_le_bytes());
    put(&mut b, at(46), &SCI_IRQ.to_le_bytes());
    for (off, port) in [(56, PM1_EVT), (64, PM1_CNT), (76, PM_TMR)] {
        put(&mut b, at(off), &u32::from(PM_BASE + port).to_le_bytes());
    }
    // PM1 event block 4 bytes, control 2, PM2 none, timer 4.
    put(&mut b, at(88), &[4, 2, 0, 4]);
    b[at(108)] = CENTURY_REG;
    // WBINVD works; C1 is supported on every processor.
    put(&mut b, at(112), &0b101u32.to_le_bytes());
    table(b"FACP", 1, &b)
}

fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    put(&mut f, 0, b"FACS");
    put(&mut f, 4, &64u32.to_le_bytes());
    f[32] = 1;
    f
}

/// The tables as bytes from [`ACPI_BASE`] ([`ACPI_LEN`] of them).
pub fn image() -> Vec<u8> {
    let mut img = vec![0u8; ACPI_LEN as usize];
    let rel = |a: u64| (a - ACPI_BASE) as usize;
    put(&mut img, 0, &rsdp());
    put(&mut img, rel(RSDT), &table(b"RSDT", 1, &(FADT as u32).to_le_bytes()));
    put(&mut img, rel(XSDT), &table(b"XSDT", 1, &FADT.to_le_bytes()));
    put(&mut img, rel(FADT), &fadt());
    put(&mut img, rel(FACS), &facs());
    put(&mut img, rel(DSDT), &table(b"DSDT", 1, &[]));
    img
}

/// Writes the tables into guest RAM.
pub fn write(mem: &GuestMem) -> Result<(), String> {
    mem.write_slice(&image(), GuestAddress(ACPI_BASE))
        .map_err(|e| format!("cannot write the ACPI tables at {ACPI_BASE:#x}: {e}"))
}

/// The 32-bit firmware waking vector the guest left in the FACS.
pub fn waking_vector(mem: &GuestMem) -> Result<u32, String> {
    mem.read_obj::<u32>(GuestAddress(FACS + FACS_WAKING_VECTOR))
        .map_err(|e| format!("cannot read the FACS at {FACS:#x}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Low memory with the tables, searched as a kernel searches it.
    struct Low(Vec<u8>);

    impl Low {
        fn new() -> Low {
            let mut m = vec![0u8; 0x10_0000];
            let img = image();
            m[ACPI_BASE as usize..ACPI_BASE as usize + img.len()].copy_from_slice(&img);
            Low(m)
        }
        fn u32(&self, a: u64) -> u32 {
            u32::from_le_bytes(self.0[a as usize..a as usize + 4].try_into().unwrap())
        }
        fn u64(&self, a: u64) -> u64 {
            u64::from_le_bytes(self.0[a as usize..a as usize + 8].try_into().unwrap())
        }
        fn sums_to_zero(&self, a: u64, len: u64) -> bool {
            self.0[a as usize..(a + len) as usize].iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0
        }
        /// A checked table at `a` with signature `sig`: its length.
        fn table(&self, a: u64, sig: &[u8; 4]) -> u64 {
            assert_eq!(&self.0[a as usize..a as usize + 4], sig, "at {a:#x}");
            let len = u64::from(self.u32(a + 4));
            assert!(self.sums_to_zero(a, len), "{sig:?} checksum");
            len
        }
    }

    /// The walk `lib/x86/acpi.c` does: the RSDP on a 16-byte boundary of
    /// `0xE0000..0x100000`, the RSDT's entries, the FADT's FACS.
    #[test]
    fn a_kernel_finds_fadt_and_facs() {
        let m = Low::new();
        let rsdp = (0xe_0000..0x10_0000u64).step_by(16).find(|&a| &m.0[a as usize..a as usize + 8] == b"RSD PTR ");
        let rsdp = rsdp.expect("RSDP");
        assert!(m.sums_to_zero(rsdp, 20) && m.sums_to_zero(rsdp, 36));
        assert_eq!((m.0[rsdp as usize + 15], m.u32(rsdp + 20)), (2, 36));
        let rsdt = u64::from(m.u32(rsdp + 16));
        let n = (m.table(rsdt, b"RSDT") - 36) / 4;
        let xsdt = m.u64(rsdp + 24);
        assert_eq!((m.table(xsdt, b"XSDT") - 36) / 8, n);
        let entries: Vec<u64> = (0..n).map(|i| u64::from(m.u32(rsdt + 36 + 4 * i))).collect();
        assert_eq!(entries, [m.u64(xsdt + 36)]);
        let fadt = entries[0];
        assert_eq!(m.table(fadt, b"FACP"), 116);
        let facs = u64::from(m.u32(fadt + 36));
        assert_eq!(&m.0[facs as usize..facs as usize + 4], b"FACS");
        assert_eq!((facs % 64, m.u32(facs + 4)), (0, 64));
        assert_eq!(m.u32(facs + FACS_WAKING_VECTOR), 0);
        m.table(u64::from(m.u32(fadt + 40)), b"DSDT");
        // PM1a event, control, timer at QEMU's PIIX4 ports.
        assert_eq!([56, 64, 76].map(|o| m.u32(fadt + o)), [0x600, 0x604, 0x608]);
        assert_eq!(&m.0[(fadt + 88) as usize..(fadt + 92) as usize], [4, 2, 0, 4]);
        // Everything inside the BIOS area a multiboot kernel sees reserved.
        assert!(info_reserved(ACPI_BASE, ACPI_BASE + ACPI_LEN));
    }

    fn info_reserved(start: u64, end: u64) -> bool {
        let (lo, hi) = super::super::info::LOW_RESERVED;
        lo <= start && end <= hi
    }
}
