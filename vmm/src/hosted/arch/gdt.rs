//! The GDT: one table shared by every vCPU, with a 64-bit TSS descriptor
//! per vCPU.
//!
//! Layout (selectors): `0x08` kernel code, `0x10` kernel data, `0x18` user
//! data, `0x20` user code, `0x28 + 16 * i` the TSS of vCPU `i`. The user
//! pair is in the order `syscall`/`sysret` need (see [`STAR`]).
//!
//! Each segment is described once ([`Segment`]) and both encoded into the
//! table and turned into the `kvm_segment` loaded into the vCPU, so the two
//! cannot disagree.

use kvm_bindings::kvm_segment;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x20 | 3;
/// Selector of vCPU 0's TSS.
pub const TSS_BASE_SEL: u16 = 0x28;

/// The IA32_STAR value: `syscall` loads CS = 0x08, SS = 0x10; `sysretq`
/// loads CS = 0x10 + 16 = 0x20 (| 3) and SS = 0x10 + 8 = 0x18 (| 3).
pub const STAR: u64 = ((KERNEL_DS as u64) << 48) | ((KERNEL_CS as u64) << 32);

/// Selector of vCPU `index`'s TSS.
pub const fn tss_selector(index: u8) -> u16 {
    TSS_BASE_SEL + 16 * index as u16
}

/// A segment as both the GDT and KVM see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Selector (with RPL).
    pub selector: u16,
    /// Linear base.
    pub base: u64,
    /// Limit (in units given by `granularity`).
    pub limit: u32,
    /// Descriptor type (4 bits).
    pub type_: u8,
    /// Code/data (true) or system (false).
    pub s: bool,
    /// Privilege level.
    pub dpl: u8,
    /// 64-bit code segment.
    pub l: bool,
    /// Default operand size 32 (must be clear when `l` is set).
    pub db: bool,
    /// 4 KiB granularity.
    pub g: bool,
}

/// Code, execute/read, accessed.
const TYPE_CODE: u8 = 0xb;
/// Data, read/write, accessed.
const TYPE_DATA: u8 = 0x3;
/// 64-bit TSS, busy (as loaded in TR).
pub const TYPE_TSS_BUSY: u8 = 0xb;

impl Segment {
    /// 64-bit code at `dpl`.
    pub const fn code64(selector: u16, dpl: u8) -> Segment {
        Segment { selector, base: 0, limit: 0xfffff, type_: TYPE_CODE, s: true, dpl, l: true, db: false, g: true }
    }

    /// Flat read/write data at `dpl`.
    pub const fn data(selector: u16, dpl: u8) -> Segment {
        Segment { selector, base: 0, limit: 0xfffff, type_: TYPE_DATA, s: true, dpl, l: false, db: true, g: true }
    }

    /// A 64-bit TSS at `base` of `size` bytes.
    pub const fn tss(selector: u16, base: u64, size: u32) -> Segment {
        Segment {
            selector,
            base,
            limit: size - 1,
            type_: TYPE_TSS_BUSY,
            s: false,
            dpl: 0,
            l: false,
            db: false,
            g: false,
        }
    }

    /// The low 8 bytes of the descriptor.
    pub fn descriptor_low(&self) -> u64 {
        let access = 0x80 | ((self.dpl as u64 & 3) << 5) | ((self.s as u64) << 4) | (self.type_ as u64 & 0xf);
        let flags = ((self.g as u64) << 3) | ((self.db as u64) << 2) | ((self.l as u64) << 1);
        (self.limit as u64 & 0xffff)
            | ((self.base & 0xff_ffff) << 16)
            | (access << 40)
            | (((self.limit as u64 >> 16) & 0xf) << 48)
            | (flags << 52)
            | (((self.base >> 24) & 0xff) << 56)
    }

    /// The high 8 bytes of a system descriptor (base bits 32..64).
    pub fn descriptor_high(&self) -> u64 {
        self.base >> 32
    }

    /// The segment register value for `KVM_SET_SREGS`.
    pub fn to_kvm(&self) -> kvm_segment {
        let limit = if self.g { (self.limit << 12) | 0xfff } else { self.limit };
        kvm_segment {
            base: self.base,
            limit,
            selector: self.selector,
            type_: self.type_,
            present: 1,
            dpl: self.dpl,
            db: self.db as u8,
            s: self.s as u8,
            l: self.l as u8,
            g: self.g as u8,
            avl: 0,
            unusable: 0,
            padding: 0,
        }
    }
}

/// The fixed segments in table order (after the null descriptor).
pub const FIXED_SEGMENTS: [Segment; 4] = [
    Segment::code64(KERNEL_CS, 0),
    Segment::data(KERNEL_DS, 0),
    Segment::data(USER_DS, 3),
    Segment::code64(USER_CS, 3),
];

/// The whole GDT as 8-byte words: null, the fixed segments, then one
/// 16-byte TSS descriptor per entry of `tss`.
pub fn build(tss: &[Segment]) -> Vec<u64> {
    let mut t = vec![0u64];
    t.extend(FIXED_SEGMENTS.iter().map(Segment::descriptor_low));
    for s in tss {
        t.push(s.descriptor_low());
        t.push(s.descriptor_high());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        // The values every hobby kernel and Linux's GDT_ENTRY macros give.
        assert_eq!(Segment::code64(KERNEL_CS, 0).descriptor_low(), 0x00af_9b00_0000_ffff);
        assert_eq!(Segment::data(KERNEL_DS, 0).descriptor_low(), 0x00cf_9300_0000_ffff);
        assert_eq!(Segment::code64(USER_CS, 3).descriptor_low(), 0x00af_fb00_0000_ffff);
        assert_eq!(Segment::data(USER_DS, 3).descriptor_low(), 0x00cf_f300_0000_ffff);
        let t = Segment::tss(0x28, 0xffff_ff80_1234_5678, 0x2069);
        assert_eq!(t.descriptor_low(), 0x1200_8b34_5678_2068);
        assert_eq!(t.descriptor_high(), 0xffff_ff80);
    }

    #[test]
    fn selectors_match_table_slots() {
        let tss = [Segment::tss(tss_selector(0), 0, 0x68), Segment::tss(tss_selector(1), 0, 0x68)];
        let gdt = build(&tss);
        for s in FIXED_SEGMENTS {
            assert_eq!(gdt[(s.selector >> 3) as usize], s.descriptor_low());
        }
        assert_eq!(gdt[(tss_selector(1) >> 3) as usize], tss[1].descriptor_low());
        assert_eq!(gdt.len(), 5 + 4);
        // sysretq: CS = STAR[63:48] + 16, SS = STAR[63:48] + 8.
        assert_eq!(((STAR >> 48) as u16 + 16) | 3, USER_CS);
        assert_eq!(((STAR >> 48) as u16 + 8) | 3, USER_DS);
        assert_eq!((STAR >> 32) as u16, KERNEL_CS);
    }

    #[test]
    fn kvm_segment_limits() {
        let k = Segment::code64(KERNEL_CS, 0).to_kvm();
        assert_eq!((k.limit, k.l, k.dpl, k.present), (0xffff_ffff, 1, 0, 1));
        let t = Segment::tss(0x28, 0x1000, 0x68).to_kvm();
        assert_eq!((t.limit, t.type_, t.s), (0x67, 0xb, 0));
    }
}
