//! Register layout of the BAR device (offsets into its window).
//!
//! Every register is 64 bits wide at an 8-byte aligned offset; an access
//! of 1, 2, 4 or 8 bytes that lies inside one register reads or writes
//! those bytes of it (little endian). The scratch area is plain memory.
//! Beyond the register file, every naturally aligned 8 bytes read as
//! [`echo_value`] of their offset, so a mapping of any page of the window
//! proves which page it reached. Anything else reads as all-ones; writes
//! outside the writable registers are ignored.
//!
//! | offset | name             | access | meaning |
//! |--------|------------------|--------|---------|
//! | 0x00   | `ID`             | RO     | [`BAR_ID`] |
//! | 0x08   | `DATA`           | RW     | a value the guest writes |
//! | 0x10   | `CHECK`          | RO     | [`check_value`]`(DATA)`, computed by the device |
//! | 0x18   | `LAST_ACCESS`    | RO     | [`encode_access`] of the latest access other than a read of this register |
//! | 0x20   | `WRITE_COUNT`    | RO     | writes that reached the device |
//! | 0x28   | `READ_COUNT`     | RO     | reads that reached the device (including this one) |
//! | 0x30   | `DOORBELL`       | WO     | any write rings; wired to an ioeventfd, so it does not exit to the VMM |
//! | 0x38   | `DOORBELL_COUNT` | RO     | rings seen so far |
//! | 0x100..0x1000 | `SCRATCH` | RW     | byte-addressable memory |
//! | 0x1000..      | `ECHO`    | RO     | [`echo_value`]`(offset)` |

/// Identification register.
pub const ID: u64 = 0x00;
/// Guest-written data register.
pub const DATA: u64 = 0x08;
/// `check_value(DATA)`.
pub const CHECK: u64 = 0x10;
/// The latest access, encoded by [`encode_access`].
pub const LAST_ACCESS: u64 = 0x18;
/// Number of writes the device saw.
pub const WRITE_COUNT: u64 = 0x20;
/// Number of reads the device saw.
pub const READ_COUNT: u64 = 0x28;
/// Doorbell (write-only).
pub const DOORBELL: u64 = 0x30;
/// Number of doorbell rings.
pub const DOORBELL_COUNT: u64 = 0x38;
/// Start of the scratch memory.
pub const SCRATCH: u64 = 0x100;
/// End (exclusive) of the register file; the smallest window that holds it.
pub const REGISTER_FILE_LEN: u64 = 0x1000;

/// Value of the `ID` register ("GMM-BAR1").
pub const BAR_ID: u64 = 0x3152_4142_2d4d_4d47;

/// What `CHECK` reads after the guest wrote `data` to `DATA`: the bitwise
/// complement rotated left by 13, so no plain memory could echo it.
pub const fn check_value(data: u64) -> u64 {
    (!data).rotate_left(13)
}

/// Tag in the high bits of [`echo_value`].
pub const ECHO_TAG: u64 = 0xec40_0000_0000_0000;

/// What the 8 bytes at `offset` (beyond the register file) read as.
pub const fn echo_value(offset: u64) -> u64 {
    ECHO_TAG | (offset & !7)
}

/// `LAST_ACCESS` encoding: bits 0..32 offset, bits 32..40 size in bytes,
/// bit 40 set for a write.
pub const fn encode_access(offset: u64, size: usize, write: bool) -> u64 {
    (offset & 0xffff_ffff) | ((size as u64 & 0xff) << 32) | ((write as u64) << 40)
}
