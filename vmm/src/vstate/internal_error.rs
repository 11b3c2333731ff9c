//! Telling a guest stop the KVM backend caused (`KVM_EXIT_INTERNAL_ERROR`)
//! from a VMM failure: the sub-error named, and for an emulation failure
//! the instruction decoded, from the bytes KVM reports or, failing that,
//! from guest memory at CS:RIP.
//!
//! Decoding is a pure function of the bytes ([`describe`]), tested without
//! KVM; reading the vCPU state is the caller's.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// `KVM_INTERNAL_ERROR_EMULATION`.
pub const EMULATION: u32 = 1;
/// `KVM_INTERNAL_ERROR_SIMUL_EX`.
pub const SIMULTANEOUS_EXCEPTIONS: u32 = 2;
/// `KVM_INTERNAL_ERROR_DELIVERY_EV`.
pub const DELIVERY_EVENT: u32 = 3;
/// `KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON`.
pub const UNEXPECTED_EXIT_REASON: u32 = 4;
/// `KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES`.
const FLAG_INSTRUCTION_BYTES: u64 = 1;

/// The instruction bytes KVM put in an emulation failure's data, if it
/// says it did (`flags`, then `insn_size` and up to 15 bytes).
pub fn reported_bytes(suberror: u32, data: &[u64]) -> Option<Vec<u8>> {
    if suberror != EMULATION || data.len() < 3 || data[0] & FLAG_INSTRUCTION_BYTES == 0 {
        return None;
    }
    let mut raw = Vec::with_capacity(16);
    for w in &data[1..3] {
        raw.extend_from_slice(&w.to_le_bytes());
    }
    let n = usize::from(raw[0]).min(15);
    (n > 0).then(|| raw[1..1 + n].to_vec())
}

/// Decodes the first instruction of `bytes` for a CPU in `bitness`-bit
/// mode (16, 32 or 64) at `rip`, in Intel syntax.
pub fn decode(bytes: &[u8], bitness: u32, rip: u64) -> Option<String> {
    let bitness = if matches!(bitness, 16 | 32 | 64) { bitness } else { 64 };
    let mut d = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    let insn = d.decode();
    if insn.is_invalid() {
        return None;
    }
    let mut out = String::new();
    IntelFormatter::new().format(&insn, &mut out);
    let hex: Vec<String> = bytes[..insn.len().min(bytes.len())].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("`{out}` ({})", hex.join(" ")))
}

/// The message for an internal-error exit. `bytes` are the instruction
/// bytes (reported by KVM or read at CS:RIP), `bitness` the code size.
pub fn describe(suberror: u32, data: &[u64], bytes: Option<&[u8]>, bitness: u32, rip: u64) -> String {
    match suberror {
        EMULATION => {
            let insn = bytes.and_then(|b| decode(b, bitness, rip));
            match (insn, bytes) {
                (Some(i), _) => format!(
                    "the KVM backend could not emulate {i} at rip {rip:#x} ({bitness}-bit code): \
                     a limit of this KVM, not a VMM failure"
                ),
                (None, Some(b)) if !b.is_empty() => {
                    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!(
                        "the KVM backend could not emulate the bytes {} at rip {rip:#x} ({bitness}-bit code; \
                         not a valid instruction): a limit of this KVM, not a VMM failure",
                        hex.join(" ")
                    )
                }
                (None, _) => format!(
                    "the KVM backend could not emulate the instruction at rip {rip:#x} ({bitness}-bit code; \
                     bytes unavailable): a limit of this KVM, not a VMM failure"
                ),
            }
        }
        SIMULTANEOUS_EXCEPTIONS => {
            format!("KVM internal error: exceptions while delivering an exception at rip {rip:#x} (data {data:x?})")
        }
        DELIVERY_EVENT => format!("KVM internal error: event delivery failed at rip {rip:#x} (data {data:x?})"),
        UNEXPECTED_EXIT_REASON => format!("KVM internal error: unexpected hardware exit reason (data {data:x?})"),
        other => format!("KVM internal error, sub-error {other} at rip {rip:#x} (data {data:x?})"),
    }
}

/// The code size of a CS segment: 64 if long, 32 if default-32, else 16.
pub fn bitness(cs_l: u8, cs_db: u8) -> u32 {
    match (cs_l, cs_db) {
        (1, _) => 64,
        (_, 1) => 32,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_reported_bytes() {
        // flags = 1; insn_size = 3; bytes 0f 01 ca (clac).
        let w1 = u64::from_le_bytes([3, 0x0f, 0x01, 0xca, 0, 0, 0, 0]);
        let data = [1, w1, 0];
        let b = reported_bytes(EMULATION, &data).unwrap();
        assert_eq!(b, [0x0f, 0x01, 0xca]);
        let m = describe(EMULATION, &data, Some(&b), 32, 0x40_1000);
        assert!(m.contains("could not emulate `clac` (0f 01 ca) at rip 0x401000"), "{m}");
        assert!(m.contains("not a VMM failure"));
    }

    #[test]
    fn no_bytes_without_the_flag() {
        assert_eq!(reported_bytes(EMULATION, &[0, 0x0102_0304, 0]), None);
        assert_eq!(reported_bytes(EMULATION, &[1]), None);
        assert_eq!(reported_bytes(DELIVERY_EVENT, &[1, 0x0101, 0]), None);
        let m = describe(EMULATION, &[], None, 64, 0x1000);
        assert!(m.contains("bytes unavailable"), "{m}");
        // Bytes that do not decode are shown as bytes.
        let m = describe(EMULATION, &[], Some(&[0x0f, 0x38, 0xf0, 0xc0]), 64, 0x1000);
        assert!(m.contains("the bytes 0f 38 f0 c0") && m.contains("not a valid instruction"), "{m}");
    }

    #[test]
    fn decoding_depends_on_mode() {
        // 48 cf: iretq in 64-bit mode; in 32-bit mode 0x48 is `dec eax`.
        assert!(decode(&[0x48, 0xcf], 64, 0).unwrap().contains("iretq"));
        assert!(decode(&[0x48, 0xcf], 32, 0).unwrap().contains("dec eax"));
        assert!(decode(&[0xcc], 16, 0).unwrap().contains("int3"));
        assert_eq!(decode(&[0x0f], 64, 0), None);
        assert_eq!(bitness(1, 0), 64);
        assert_eq!(bitness(0, 1), 32);
        assert_eq!(bitness(0, 0), 16);
    }

    #[test]
    fn other_suberrors_are_named() {
        assert!(describe(SIMULTANEOUS_EXCEPTIONS, &[8], None, 64, 0).contains("exceptions while delivering"));
        assert!(describe(9, &[], None, 64, 0).contains("sub-error 9"));
    }
}
