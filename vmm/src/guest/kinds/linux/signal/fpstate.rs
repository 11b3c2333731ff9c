//! The FPU/SSE state in a signal frame: the 512-byte `fxsave` image
//! (`struct _fpstate` on x86-64: control and status words, the x87
//! registers, the 16 XMM registers, MXCSR), converted from and to what
//! `KVM_GET_FPU`/`KVM_SET_FPU` carry.
//!
//! What this does not carry: the AVX upper halves and other XSAVE
//! components (the frame is the `fxsave` form Linux uses without XSAVE;
//! `uc_flags` does not claim `UC_FP_XSTATE`).

use kvm_bindings::kvm_fpu;

/// Size of the image.
pub const FXSAVE_SIZE: usize = 512;
/// MXCSR bits that may be set (`MXCSR_MASK` of CPUs with DAZ); a value
/// from a frame is masked with it, as Linux does, so that no reserved
/// bit reaches the vCPU.
pub const MXCSR_MASK: u32 = 0xffff;

const FCW: usize = 0;
const FSW: usize = 2;
const FTW: usize = 4;
const FOP: usize = 6;
const FIP: usize = 8;
const FDP: usize = 16;
const MXCSR: usize = 24;
const MXCSR_MASK_AT: usize = 28;
const ST: usize = 32;
const XMM: usize = 160;

/// The `fxsave` image of `f`.
pub fn to_fxsave(f: &kvm_fpu) -> [u8; FXSAVE_SIZE] {
    let mut b = [0u8; FXSAVE_SIZE];
    b[FCW..FCW + 2].copy_from_slice(&f.fcw.to_le_bytes());
    b[FSW..FSW + 2].copy_from_slice(&f.fsw.to_le_bytes());
    b[FTW] = f.ftwx;
    b[FOP..FOP + 2].copy_from_slice(&f.last_opcode.to_le_bytes());
    b[FIP..FIP + 8].copy_from_slice(&f.last_ip.to_le_bytes());
    b[FDP..FDP + 8].copy_from_slice(&f.last_dp.to_le_bytes());
    b[MXCSR..MXCSR + 4].copy_from_slice(&f.mxcsr.to_le_bytes());
    b[MXCSR_MASK_AT..MXCSR_MASK_AT + 4].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    for (i, r) in f.fpr.iter().enumerate() {
        b[ST + 16 * i..ST + 16 * i + 16].copy_from_slice(r);
    }
    for (i, r) in f.xmm.iter().enumerate() {
        b[XMM + 16 * i..XMM + 16 * i + 16].copy_from_slice(r);
    }
    b
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The state an `fxsave` image holds (MXCSR masked with [`MXCSR_MASK`]).
pub fn from_fxsave(b: &[u8; FXSAVE_SIZE]) -> kvm_fpu {
    let mut f = kvm_fpu {
        fcw: u16_at(b, FCW),
        fsw: u16_at(b, FSW),
        ftwx: b[FTW],
        last_opcode: u16_at(b, FOP),
        last_ip: u64_at(b, FIP),
        last_dp: u64_at(b, FDP),
        mxcsr: u32_at(b, MXCSR) & MXCSR_MASK,
        ..Default::default()
    };
    for (i, r) in f.fpr.iter_mut().enumerate() {
        r.copy_from_slice(&b[ST + 16 * i..ST + 16 * i + 16]);
    }
    for (i, r) in f.xmm.iter_mut().enumerate() {
        r.copy_from_slice(&b[XMM + 16 * i..XMM + 16 * i + 16]);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_libcs_fpstate_and_round_trips() {
        // glibc's struct _libc_fpstate is the same 512 bytes.
        assert_eq!(std::mem::size_of::<libc::user_fpregs_struct>(), FXSAVE_SIZE);
        let mut f =
            kvm_fpu { fcw: 0x37f, fsw: 0x1234, ftwx: 0x81, last_opcode: 0x7ff, mxcsr: 0x1fa0, ..Default::default() };
        f.last_ip = 0x40_1000;
        f.last_dp = 0x7fff_0000;
        for (i, r) in f.xmm.iter_mut().enumerate() {
            *r = [i as u8 + 1; 16];
        }
        f.fpr[7] = [0xee; 16];
        let b = to_fxsave(&f);
        // SAFETY: user_fpregs_struct is plain data of exactly 512 bytes
        // (asserted above).
        let l: libc::user_fpregs_struct = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!((l.cwd, l.swd, l.ftw, l.fop, l.rip, l.rdp), (0x37f, 0x1234, 0x81, 0x7ff, 0x40_1000, 0x7fff_0000));
        assert_eq!((l.mxcsr, l.mxcr_mask), (0x1fa0, MXCSR_MASK));
        // xmm3 is words 12..16 of xmm_space.
        assert_eq!(l.xmm_space[12], 0x0404_0404);
        assert_eq!(l.st_space[28], 0xeeee_eeee);
        let back = from_fxsave(&b);
        assert_eq!((back.fcw, back.fsw, back.ftwx, back.mxcsr), (f.fcw, f.fsw, f.ftwx, f.mxcsr));
        assert_eq!((back.xmm, back.fpr, back.last_ip), (f.xmm, f.fpr, f.last_ip));
    }

    #[test]
    fn reserved_mxcsr_bits_never_reach_the_vcpu() {
        let mut b = [0u8; FXSAVE_SIZE];
        b[MXCSR..MXCSR + 4].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        assert_eq!(from_fxsave(&b).mxcsr, MXCSR_MASK);
    }
}
