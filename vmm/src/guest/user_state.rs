//! The user-mode state of a vCPU as a kind may read and replace it: at a
//! system call ([`crate::guest::kind::GuestKind::syscall_in`]) and at a
//! user-mode exception the VMM did not resolve
//! ([`crate::guest::kind::GuestKind::on_user_fault`]). A personality
//! that delivers signals builds a frame from it and resumes elsewhere.
//!
//! What a kind cannot do through it: leave user mode. The segment
//! registers are never taken from it, and the flags a program could not
//! set itself (IOPL, IF, VM, NT, ...) are kept as they were
//! ([`user_rflags`]), whatever the kind wrote.
//!
//! What this module does not do: read or write the vCPU itself. The
//! runner fills a [`UserState`] before the kind's call and applies it
//! after; the FPU is reached through [`FpuAccess`], only when the kind
//! asks (ioctls a kind that never asks never makes).

use kvm_bindings::kvm_regs;

/// The legacy region of the FPU/SSE state, as `fxsave` writes it: x87
/// control, status and registers, MXCSR, XMM0-15 (512 bytes).
pub type FxImage = [u8; 512];

/// The arithmetic flags, `TF`, `DF`, `AC` and `RF`: what user mode may
/// change in RFLAGS (Linux's `FIX_EFLAGS`, used by `rt_sigreturn`).
pub const USER_SETTABLE_RFLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x1_0000;

/// RFLAGS `new` may give user mode: its [`USER_SETTABLE_RFLAGS`] bits, every
/// other bit from `old` (the flags user mode had).
pub fn user_rflags(old: u64, new: u64) -> u64 {
    (old & !USER_SETTABLE_RFLAGS) | (new & USER_SETTABLE_RFLAGS)
}

/// Reads and writes the FPU/SSE state of the vCPU a [`UserState`]
/// belongs to.
pub trait FpuAccess {
    /// The legacy region (`KVM_GET_XSAVE`).
    fn read_fpu(&self) -> Result<FxImage, String>;
    /// Replaces it, MXCSR's reserved bits cleared; other XSAVE
    /// components stay (`KVM_SET_XSAVE`).
    fn write_fpu(&self, fpu: &FxImage) -> Result<(), String>;
}

/// The user-mode registers of one vCPU, as the kind sees them and as the
/// runner applies them when the kind is done.
pub struct UserState<'a> {
    /// General registers, `rip`, `rsp` and `rflags` as user mode has them
    /// (at a system call: as they were at the exit, see
    /// [`crate::guest::kind::GuestKind::syscall_in`]).
    pub regs: kvm_regs,
    fpu: &'a dyn FpuAccess,
    new_fpu: Option<FxImage>,
}

impl std::fmt::Debug for UserState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserState").field("regs", &self.regs).finish_non_exhaustive()
    }
}

impl<'a> UserState<'a> {
    /// The state with registers `regs`, whose FPU `fpu` reaches.
    pub fn new(regs: kvm_regs, fpu: &'a dyn FpuAccess) -> Self {
        UserState { regs, fpu, new_fpu: None }
    }

    /// The FPU/SSE state (what [`UserState::set_fpu`] set, if it did).
    pub fn fpu(&self) -> Result<FxImage, String> {
        match &self.new_fpu {
            Some(f) => Ok(*f),
            None => self.fpu.read_fpu(),
        }
    }

    /// Replaces the FPU/SSE state (applied with the registers).
    pub fn set_fpu(&mut self, fpu: FxImage) {
        self.new_fpu = Some(fpu);
    }

    /// The FPU state to write, if the kind replaced it.
    pub fn take_new_fpu(&mut self) -> Option<FxImage> {
        self.new_fpu.take()
    }

    /// Writes `fpu` through this state's vCPU now.
    pub fn write_fpu(&self, fpu: &FxImage) -> Result<(), String> {
        self.fpu.write_fpu(fpu)
    }
}

/// What a kind makes of a user-mode exception the VMM did not resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// What the runner does for every kind: resume an armed
    /// `expect_fault`, or end the run with the fault.
    Default,
    /// Resume user mode with the [`UserState`] as the kind left it.
    Resume,
    /// End the run as if the program had exited with this status.
    Exit(i32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rflags_keep_iopl_and_if() {
        // IOPL 3, NT, VM asked for: kept from the old value (IF on, IOPL 0).
        let old = 0x202;
        let new = 0x3000 | 0x4000 | 0x2_0000 | 0x1 | 0x400;
        assert_eq!(user_rflags(old, new), 0x202 | 0x1 | 0x400);
        // Clearing IF is refused as well.
        assert_eq!(user_rflags(0x202, 0), 0x202);
        // The arithmetic flags and DF/TF/AC go through.
        assert_eq!(user_rflags(0x2, 0xffff_ffff) & USER_SETTABLE_RFLAGS, USER_SETTABLE_RFLAGS);
    }

    struct NoFpu;
    impl FpuAccess for NoFpu {
        fn read_fpu(&self) -> Result<FxImage, String> {
            Err("no fpu".into())
        }
        fn write_fpu(&self, _: &FxImage) -> Result<(), String> {
            Err("no fpu".into())
        }
    }

    #[test]
    fn a_set_fpu_is_read_back_without_the_vcpu() {
        let mut s = UserState::new(kvm_regs::default(), &NoFpu);
        assert!(s.fpu().is_err());
        let mut f = [0u8; 512];
        f[24] = 0x80;
        s.set_fpu(f);
        assert_eq!(s.fpu().map(|f| f[24]), Ok(0x80));
        assert!(s.take_new_fpu().is_some());
        assert!(s.take_new_fpu().is_none());
    }
}
