//! The x86-64 `rt_sigframe` as Linux builds it on the user stack, and
//! the choice of where it goes.
//!
//! ```text
//! frame + 0     pretcode        the handler's return address: sa_restorer
//! frame + 8     struct ucontext uc_flags, uc_link, uc_stack,
//!                               uc_mcontext (struct sigcontext: r8..r15,
//!                               rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp,
//!                               rip, eflags, cs/gs/fs/ss, err, trapno,
//!                               oldmask, cr2, fpstate, 8 reserved words),
//!                               uc_sigmask
//! frame + 312   siginfo_t       128 bytes
//! ...           (padding)
//! fpstate       fxsave image    512 bytes, 64-byte aligned, above the frame
//! ```
//!
//! The handler starts with `rsp` = frame, so `(rsp + 8) % 16 == 0` as at
//! any function's entry. Nothing here touches the vCPU or guest memory:
//! the bytes are built and parsed here and written by the caller.

use kvm_bindings::kvm_regs;

use super::fpstate::FXSAVE_SIZE;
use super::info::{SigInfo, SIGINFO_SIZE};

/// Offset of `uc` in the frame.
pub const UC: usize = 8;
/// Offset of `uc_stack` in `ucontext`.
pub const UC_STACK: usize = 16;
/// Offset of `uc_mcontext` (`struct sigcontext`) in `ucontext`.
pub const UC_MCONTEXT: usize = 40;
/// Offset of `uc_sigmask` in `ucontext`.
pub const UC_SIGMASK: usize = 296;
/// Size of the kernel's `struct ucontext`.
pub const UCONTEXT_SIZE: usize = 304;
/// Offset of `info` in the frame.
pub const INFO: usize = UC + UCONTEXT_SIZE;
/// Size of `struct rt_sigframe`.
pub const FRAME_SIZE: usize = INFO + SIGINFO_SIZE;
/// Bytes below `rsp` a signal frame leaves alone (the ABI's red zone).
pub const RED_ZONE: u64 = 128;
/// `uc_flags`: `UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS`, as Linux sets
/// them (no `UC_FP_XSTATE`: the FPU state is the `fxsave` image).
pub const UC_FLAGS: u64 = 2 | 4;

/// `struct sigcontext` slots (8-byte words from `uc_mcontext`), in
/// glibc's `REG_*` order.
mod sc {
    pub const R8: usize = 0;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RBP: usize = 10;
    pub const RBX: usize = 11;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RCX: usize = 14;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const EFLAGS: usize = 17;
    pub const CSGSFS: usize = 18;
    pub const ERR: usize = 19;
    pub const TRAPNO: usize = 20;
    pub const OLDMASK: usize = 21;
    pub const CR2: usize = 22;
    pub const FPSTATE: usize = 23;
}

/// What a fault adds to the saved context (zero for other signals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// `err`: the exception's error code.
    pub err: u64,
    /// `trapno`: the vector.
    pub trapno: u64,
    /// `cr2`: the faulting address.
    pub cr2: u64,
}

/// `uc_stack` as saved: the alternate stack's settings at delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    /// `ss_sp`.
    pub sp: u64,
    /// `ss_flags`.
    pub flags: u32,
    /// `ss_size`.
    pub size: u64,
}

/// Where a frame goes: its address and the `fxsave` image's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The frame (`rsp` at the handler).
    pub frame: u64,
    /// The FPU image (64-byte aligned, above the frame).
    pub fpstate: u64,
}

/// Places a frame below `top` (the interrupted `rsp` less the red zone,
/// or the top of the alternate stack), as Linux's `get_sigframe` does;
/// `None` if that wraps below 0.
pub fn place(top: u64) -> Option<Placement> {
    let fpstate = top.checked_sub(FXSAVE_SIZE as u64)? & !63;
    let frame = (fpstate.checked_sub(FRAME_SIZE as u64)? & !15).checked_sub(8)?;
    Some(Placement { frame, fpstate })
}

/// Everything a frame holds.
#[derive(Clone, Debug)]
pub struct FrameContent<'a> {
    /// The return address (`sa_restorer`).
    pub restorer: u64,
    /// The interrupted registers.
    pub regs: &'a kvm_regs,
    /// The user code and stack selectors.
    pub cs: u16,
    /// The user stack selector.
    pub ss: u16,
    /// The fault details.
    pub trap: Trap,
    /// The mask to restore.
    pub mask: u64,
    /// The alternate stack at delivery.
    pub altstack: AltStack,
    /// The signal's information.
    pub info: &'a SigInfo,
    /// The `fxsave` image.
    pub fx: &'a [u8; FXSAVE_SIZE],
}

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The bytes from `at.frame` to the end of the FPU image.
pub fn build(at: Placement, c: &FrameContent<'_>) -> Vec<u8> {
    let len = (at.fpstate - at.frame) as usize + FXSAVE_SIZE;
    let mut b = vec![0u8; len];
    put(&mut b, 0, c.restorer);
    let uc = UC;
    put(&mut b, uc, UC_FLAGS);
    put(&mut b, uc + UC_STACK, c.altstack.sp);
    b[uc + UC_STACK + 8..uc + UC_STACK + 12].copy_from_slice(&c.altstack.flags.to_le_bytes());
    put(&mut b, uc + UC_STACK + 16, c.altstack.size);
    let r = c.regs;
    let words = [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp,
        r.rip, r.rflags,
    ];
    let mc = uc + UC_MCONTEXT;
    for (i, w) in words.iter().enumerate() {
        put(&mut b, mc + 8 * i, *w);
    }
    // cs, gs, fs, ss: four 16-bit selectors in one word.
    put(&mut b, mc + 8 * sc::CSGSFS, u64::from(c.cs) | (u64::from(c.ss) << 48));
    put(&mut b, mc + 8 * sc::ERR, c.trap.err);
    put(&mut b, mc + 8 * sc::TRAPNO, c.trap.trapno);
    put(&mut b, mc + 8 * sc::OLDMASK, c.mask);
    put(&mut b, mc + 8 * sc::CR2, c.trap.cr2);
    put(&mut b, mc + 8 * sc::FPSTATE, at.fpstate);
    put(&mut b, uc + UC_SIGMASK, c.mask);
    b[INFO..INFO + SIGINFO_SIZE].copy_from_slice(&c.info.to_bytes());
    let fx = (at.fpstate - at.frame) as usize;
    b[fx..fx + FXSAVE_SIZE].copy_from_slice(c.fx);
    b
}

/// What `rt_sigreturn` takes back from a `ucontext` (the bytes at the
/// caller's `rsp`, [`UCONTEXT_SIZE`] of them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Restored {
    /// The registers, `rip`, `rsp` and `eflags` as saved (the caller
    /// keeps user mode's privileges whatever they say).
    pub regs: kvm_regs,
    /// `uc_sigmask`.
    pub mask: u64,
    /// Where the FPU image is (0: none).
    pub fpstate: u64,
    /// `uc_stack`.
    pub altstack: AltStack,
    /// The code selector saved.
    pub cs: u16,
    /// The stack selector saved.
    pub ss: u16,
}

/// Reads a `ucontext`; `None` if `b` is short.
pub fn parse(b: &[u8]) -> Option<Restored> {
    if b.len() < UCONTEXT_SIZE {
        return None;
    }
    let mc = UC_MCONTEXT;
    let w = |i: usize| get(b, mc + 8 * i);
    let regs = kvm_regs {
        r8: w(sc::R8),
        r9: w(sc::R8 + 1),
        r10: w(sc::R8 + 2),
        r11: w(sc::R8 + 3),
        r12: w(sc::R8 + 4),
        r13: w(sc::R8 + 5),
        r14: w(sc::R8 + 6),
        r15: w(sc::R8 + 7),
        rdi: w(sc::RDI),
        rsi: w(sc::RSI),
        rbp: w(sc::RBP),
        rbx: w(sc::RBX),
        rdx: w(sc::RDX),
        rax: w(sc::RAX),
        rcx: w(sc::RCX),
        rsp: w(sc::RSP),
        rip: w(sc::RIP),
        rflags: w(sc::EFLAGS),
    };
    let mut flags = [0u8; 4];
    flags.copy_from_slice(&b[UC_STACK + 8..UC_STACK + 12]);
    let altstack = AltStack { sp: get(b, UC_STACK), flags: u32::from_le_bytes(flags), size: get(b, UC_STACK + 16) };
    let sel = w(sc::CSGSFS);
    Some(Restored {
        regs,
        mask: get(b, UC_SIGMASK),
        fpstate: w(sc::FPSTATE),
        altstack,
        cs: sel as u16,
        ss: (sel >> 48) as u16,
    })
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::guest::kinds::linux::signal::info::{code, sig};

    #[test]
    fn offsets_are_libcs() {
        type Uc = libc::ucontext_t;
        assert_eq!(offset_of!(Uc, uc_flags), 0);
        assert_eq!(offset_of!(Uc, uc_stack), UC_STACK);
        assert_eq!(offset_of!(Uc, uc_stack) + offset_of!(libc::stack_t, ss_flags), UC_STACK + 8);
        assert_eq!(offset_of!(Uc, uc_stack) + offset_of!(libc::stack_t, ss_size), UC_STACK + 16);
        assert_eq!(offset_of!(Uc, uc_mcontext), UC_MCONTEXT);
        assert_eq!(offset_of!(libc::mcontext_t, gregs), 0);
        assert_eq!(offset_of!(libc::mcontext_t, fpregs), 8 * sc::FPSTATE);
        assert_eq!(offset_of!(Uc, uc_sigmask), UC_SIGMASK);
        for (name, i) in [
            ("REG_R8", libc::REG_R8),
            ("REG_RDI", libc::REG_RDI),
            ("REG_RAX", libc::REG_RAX),
            ("REG_RCX", libc::REG_RCX),
            ("REG_RSP", libc::REG_RSP),
            ("REG_RIP", libc::REG_RIP),
            ("REG_EFL", libc::REG_EFL),
            ("REG_CSGSFS", libc::REG_CSGSFS),
            ("REG_ERR", libc::REG_ERR),
            ("REG_TRAPNO", libc::REG_TRAPNO),
            ("REG_OLDMASK", libc::REG_OLDMASK),
            ("REG_CR2", libc::REG_CR2),
        ] {
            let mine = match name {
                "REG_R8" => sc::R8,
                "REG_RDI" => sc::RDI,
                "REG_RAX" => sc::RAX,
                "REG_RCX" => sc::RCX,
                "REG_RSP" => sc::RSP,
                "REG_RIP" => sc::RIP,
                "REG_EFL" => sc::EFLAGS,
                "REG_CSGSFS" => sc::CSGSFS,
                "REG_ERR" => sc::ERR,
                "REG_TRAPNO" => sc::TRAPNO,
                "REG_OLDMASK" => sc::OLDMASK,
                _ => sc::CR2,
            };
            assert_eq!(i as usize, mine, "{name}");
        }
        assert_eq!(FRAME_SIZE, 440);
    }

    fn sample_regs() -> kvm_regs {
        kvm_regs {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rsp: 0x7fff_1238,
            rbp: 8,
            r8: 9,
            r9: 10,
            r10: 11,
            r11: 12,
            r12: 13,
            r13: 14,
            r14: 15,
            r15: 16,
            rip: 0x40_1234,
            rflags: 0x246,
        }
    }

    #[test]
    fn placement_aligns_as_the_abi_wants() {
        for top in [0x7fff_f000u64, 0x7fff_1237 - 128, 0x1000_0008, 0x1000_0fff] {
            let p = place(top).unwrap();
            assert_eq!((p.frame + 8) % 16, 0, "{top:#x}");
            assert_eq!(p.fpstate % 64, 0);
            assert!(p.fpstate + FXSAVE_SIZE as u64 <= top);
            assert!(p.frame + FRAME_SIZE as u64 <= p.fpstate);
            assert!(top - p.frame < (FRAME_SIZE + FXSAVE_SIZE + 64 + 16 + 8) as u64);
        }
        assert_eq!(place(100), None);
    }

    #[test]
    fn a_built_frame_reads_as_libc_reads_it_and_parses_back() {
        let regs = sample_regs();
        let info = SigInfo::fault(sig::SIGSEGV, code::SEGV_MAPERR, 0xdead_0000);
        let mut fx = [0u8; FXSAVE_SIZE];
        fx[24] = 0x80;
        let at = place(regs.rsp - RED_ZONE).unwrap();
        let c = FrameContent {
            restorer: 0x40_9990,
            regs: &regs,
            cs: 0x23,
            ss: 0x1b,
            trap: Trap { err: 6, trapno: 14, cr2: 0xdead_0000 },
            mask: 0x400,
            altstack: AltStack { sp: 0x5000, flags: 2, size: 0x2000 },
            info: &info,
            fx: &fx,
        };
        let b = build(at, &c);
        assert_eq!(get(&b, 0), 0x40_9990);
        let mut uc = [0u8; std::mem::size_of::<libc::ucontext_t>()];
        let n = uc.len().min(b.len() - UC);
        uc[..n].copy_from_slice(&b[UC..UC + n]);
        // SAFETY: ucontext_t is plain data of this many bytes (pointers
        // are only read as numbers below).
        let u: libc::ucontext_t = unsafe { std::ptr::read_unaligned(uc.as_ptr().cast()) };
        let g = &u.uc_mcontext.gregs;
        assert_eq!(g[libc::REG_RIP as usize] as u64, 0x40_1234);
        assert_eq!(g[libc::REG_RSP as usize] as u64, 0x7fff_1238);
        assert_eq!(g[libc::REG_ERR as usize], 6);
        assert_eq!(g[libc::REG_TRAPNO as usize], 14);
        assert_eq!(g[libc::REG_CR2 as usize] as u64, 0xdead_0000);
        assert_eq!(g[libc::REG_CSGSFS as usize] & 0xffff, 0x23);
        assert_eq!(u.uc_mcontext.fpregs as u64, at.fpstate);
        assert_eq!((u.uc_stack.ss_sp as u64, u.uc_stack.ss_flags, u.uc_stack.ss_size), (0x5000, 2, 0x2000));
        assert_eq!(u.uc_flags, UC_FLAGS);
        // uc_sigmask's first word is the mask.
        // SAFETY: sigset_t is plain data starting with the first 64 bits.
        let first: u64 = unsafe { std::ptr::read_unaligned((&raw const u.uc_sigmask).cast()) };
        assert_eq!(first, 0x400);
        // siginfo right after, the FPU image where fpstate says.
        assert_eq!(b[INFO], 11);
        let fx_at = (at.fpstate - at.frame) as usize;
        assert_eq!(b[fx_at + 24], 0x80);
        let r = parse(&b[UC..]).unwrap();
        assert_eq!(r.regs, regs);
        assert_eq!((r.mask, r.fpstate), (0x400, at.fpstate));
        assert_eq!(r.altstack, AltStack { sp: 0x5000, flags: 2, size: 0x2000 });
        assert_eq!((r.cs, r.ss), (0x23, 0x1b));
        assert_eq!(parse(&b[UC..UC + UCONTEXT_SIZE - 1]), None);
    }
}
