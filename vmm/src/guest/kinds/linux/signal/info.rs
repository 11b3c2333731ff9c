//! Signal numbers, `sigaction` flags, `si_code` values and the
//! 128-byte `siginfo_t` as x86-64 Linux lays it out.

/// Signal numbers this kind names.
pub mod sig {
    /// Illegal instruction.
    pub const SIGILL: u32 = 4;
    /// Breakpoint.
    pub const SIGTRAP: u32 = 5;
    /// `abort`.
    pub const SIGABRT: u32 = 6;
    /// Bus error.
    pub const SIGBUS: u32 = 7;
    /// Arithmetic error.
    pub const SIGFPE: u32 = 8;
    /// Cannot be caught or blocked.
    pub const SIGKILL: u32 = 9;
    /// Invalid memory reference.
    pub const SIGSEGV: u32 = 11;
    /// Cannot be caught or blocked.
    pub const SIGSTOP: u32 = 19;
    /// A write with no reader.
    pub const SIGPIPE: u32 = 13;
}

/// `sa_flags` bits.
pub mod sa {
    /// The handler takes `(sig, info, ucontext)`.
    pub const SIGINFO: u64 = 4;
    /// `sa_restorer` is set (x86-64 requires it).
    pub const RESTORER: u64 = 0x0400_0000;
    /// Run on the alternate stack.
    pub const ONSTACK: u64 = 0x0800_0000;
    /// Make an interrupted waiting call again after the handler.
    pub const RESTART: u64 = 0x1000_0000;
    /// Do not block the signal in its own handler.
    pub const NODEFER: u64 = 0x4000_0000;
    /// Reset to the default action on delivery.
    pub const RESETHAND: u64 = 0x8000_0000;
}

/// `si_code` values.
pub mod code {
    /// Sent by `kill`.
    pub const SI_USER: i32 = 0;
    /// Sent by the kernel.
    pub const SI_KERNEL: i32 = 0x80;
    /// Sent by `tkill`/`tgkill`.
    pub const SI_TKILL: i32 = -6;
    /// Address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// Access not allowed by the mapping.
    pub const SEGV_ACCERR: i32 = 2;
    /// Misaligned address.
    pub const BUS_ADRALN: i32 = 1;
    /// No such physical address (nothing to back the page).
    pub const BUS_ADRERR: i32 = 2;
    /// Illegal opcode.
    pub const ILL_ILLOPN: i32 = 2;
    /// Integer divide by zero.
    pub const FPE_INTDIV: i32 = 1;
    /// Floating-point invalid operation.
    pub const FPE_FLTINV: i32 = 7;
}

/// The mask bit of signal `s` (1..=64).
pub fn bit(s: u32) -> u64 {
    1u64 << (s - 1)
}

/// Whether signal `s`'s default action leaves the process running:
/// `SIGCHLD`, `SIGCONT`, `SIGURG`, `SIGWINCH` are ignored, and the stop
/// signals (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`, `SIGTTOU`) are too, as
/// there is nothing here to stop for.
pub fn default_ignored(s: u32) -> bool {
    matches!(s, 17..=23 | 28)
}

/// What can never be blocked.
pub const UNBLOCKABLE: u64 = (1 << (sig::SIGKILL - 1)) | (1 << (sig::SIGSTOP - 1));

/// What a signal carries (`siginfo_t`'s fields this kind fills).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    /// `si_signo`.
    pub signo: u32,
    /// `si_code`.
    pub code: i32,
    /// What follows the header.
    pub fields: Fields,
}

/// The union part of `siginfo_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fields {
    /// `si_pid`, `si_uid` (a signal a process sent).
    Sender {
        /// Sender's process id.
        pid: u32,
        /// Sender's user id.
        uid: u32,
    },
    /// `si_addr` (a fault).
    Addr(u64),
}

/// Size of `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;
/// Offset of the union (`si_pid`, `si_addr`).
pub const SIGINFO_FIELDS: usize = 16;

impl SigInfo {
    /// A fault's signal with `code` at `addr`.
    pub fn fault(signo: u32, code: i32, addr: u64) -> Self {
        SigInfo { signo, code, fields: Fields::Addr(addr) }
    }

    /// `siginfo_t` as the handler reads it.
    pub fn to_bytes(&self) -> [u8; SIGINFO_SIZE] {
        let mut b = [0u8; SIGINFO_SIZE];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        let f = SIGINFO_FIELDS;
        match self.fields {
            Fields::Sender { pid, uid } => {
                b[f..f + 4].copy_from_slice(&pid.to_le_bytes());
                b[f + 4..f + 8].copy_from_slice(&uid.to_le_bytes());
            }
            Fields::Addr(a) => b[f..f + 8].copy_from_slice(&a.to_le_bytes()),
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siginfo_matches_libc() {
        assert_eq!(std::mem::size_of::<libc::siginfo_t>(), SIGINFO_SIZE);
        let b = SigInfo::fault(sig::SIGSEGV, code::SEGV_ACCERR, 0x1234_5000).to_bytes();
        // SAFETY: `siginfo_t` is plain data of exactly these 128 bytes
        // (asserted above); read_unaligned copes with the array's
        // alignment.
        let si: libc::siginfo_t = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        assert_eq!((si.si_signo, si.si_errno, si.si_code), (11, 0, 2));
        // SAFETY: a fault's siginfo has si_addr in its union.
        assert_eq!(unsafe { si.si_addr() } as u64, 0x1234_5000);
        let b = SigInfo { signo: 10, code: code::SI_TKILL, fields: Fields::Sender { pid: 100, uid: 0 } }.to_bytes();
        // SAFETY: as above.
        let si: libc::siginfo_t = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        // SAFETY: a kill's siginfo has si_pid and si_uid in its union.
        assert_eq!(unsafe { (si.si_pid(), si.si_uid()) }, (100, 0));
        assert_eq!(si.si_code, -6);
        assert_eq!(bit(1), 1);
        assert_eq!(UNBLOCKABLE, (1 << 8) | (1 << 18));
    }
}
