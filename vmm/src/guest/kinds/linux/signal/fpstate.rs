//! The FPU/SSE state in a signal frame: the 512-byte `fxsave` image
//! (`struct _fpstate` on x86-64: control and status words, the x87
//! registers, MXCSR, the 16 XMM registers), which is also the legacy
//! region of the vCPU's XSAVE state the runner reads and writes.
//!
//! What this does not carry: the AVX upper halves and other XSAVE
//! components (the frame is the `fxsave` form Linux uses without XSAVE;
//! `uc_flags` does not claim `UC_FP_XSTATE`).

use crate::guest::user_state::FxImage;

/// Size of the image.
pub const FXSAVE_SIZE: usize = 512;
/// MXCSR bits that may be set (`MXCSR_MASK` of CPUs with DAZ); a value
/// from a frame is masked with it, as Linux does, so that no reserved
/// bit reaches the vCPU.
pub const MXCSR_MASK: u32 = 0xffff;

/// Offset of the x87 control word.
pub const FCW: usize = 0;
/// Offset of MXCSR.
pub const MXCSR: usize = 24;
/// Offset of MXCSR_MASK.
pub const MXCSR_MASK_AT: usize = 28;
/// Offset of XMM0.
pub const XMM: usize = 160;

/// The state a handler starts with (and `rt_sigreturn` without an
/// image restores): what `fninit` and a reset MXCSR give.
pub fn initial() -> FxImage {
    let mut b = [0u8; FXSAVE_SIZE];
    b[FCW..FCW + 2].copy_from_slice(&0x37fu16.to_le_bytes());
    b[MXCSR..MXCSR + 4].copy_from_slice(&0x1f80u32.to_le_bytes());
    b[MXCSR_MASK_AT..MXCSR_MASK_AT + 4].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    b
}

/// An image from a frame, MXCSR masked with [`MXCSR_MASK`].
pub fn sanitized(mut b: FxImage) -> FxImage {
    let mx = u32::from_le_bytes([b[MXCSR], b[MXCSR + 1], b[MXCSR + 2], b[MXCSR + 3]]) & MXCSR_MASK;
    b[MXCSR..MXCSR + 4].copy_from_slice(&mx.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_libcs_fpstate() {
        // glibc's struct _libc_fpstate (user_fpregs_struct) is the same
        // 512 bytes.
        assert_eq!(std::mem::size_of::<libc::user_fpregs_struct>(), FXSAVE_SIZE);
        let mut b = initial();
        b[XMM + 3 * 16..XMM + 4 * 16].copy_from_slice(&[4u8; 16]);
        // SAFETY: user_fpregs_struct is plain data of exactly 512 bytes
        // (asserted above).
        let l: libc::user_fpregs_struct = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!((l.cwd, l.mxcsr, l.mxcr_mask), (0x37f, 0x1f80, MXCSR_MASK));
        // xmm3 is words 12..16 of xmm_space.
        assert_eq!(l.xmm_space[12], 0x0404_0404);
        assert_eq!(l.xmm_space[11], 0);
    }

    #[test]
    fn reserved_mxcsr_bits_never_reach_the_vcpu() {
        let mut b = [0u8; FXSAVE_SIZE];
        b[MXCSR..MXCSR + 4].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        b[XMM] = 9;
        let s = sanitized(b);
        assert_eq!(&s[MXCSR..MXCSR + 4], &MXCSR_MASK.to_le_bytes());
        assert_eq!(s[XMM], 9);
    }
}
