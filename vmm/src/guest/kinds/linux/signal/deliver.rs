//! Delivery: choosing the next signal, its action, building the frame
//! on the user stack and entering the handler; taking a frame back in
//! `rt_sigreturn`; turning an exception into its signal.
//!
//! As Linux: a handler runs with `rdi` = the signal, `rsi` = its
//! `siginfo`, `rdx` = its `ucontext`, `rax` = 0, a fresh FPU state, and
//! the mask `current | sa_mask | sig` (not `sig` with `SA_NODEFER`); the
//! frame goes below the red zone, or to the top of the alternate stack
//! with `SA_ONSTACK` when not already on it; `SA_RESTORER` is required.
//! A frame that cannot be written, or read back in `rt_sigreturn`, kills
//! the process with `SIGSEGV`; a fault's signal that is blocked or
//! ignored kills it too (`force_sig_fault`). `rt_sigreturn` restores the
//! registers, the FPU state and the mask; the runner keeps the
//! privileged RFLAGS bits and the segments whatever the frame says.

use kvm_bindings::kvm_regs;

use super::fpstate::{self, FXSAVE_SIZE};
use super::frame::{self, AltStack, FrameContent, Trap, INFO, RED_ZONE, UC, UCONTEXT_SIZE};
use super::info::{bit, code, default_ignored, sa, sig, SigInfo, UNBLOCKABLE};
use super::timer;
use crate::guest::kinds::linux::process::{Linux, Proc};
use crate::guest::user_state::{FaultAction, UserState};
use crate::hosted::arch::gdt::{USER_CS, USER_DS};
use crate::hosted::exception::ExceptionReport;
use crate::hosted::hypercall::Block;
use crate::hosted::hypercall::{Effects, FaultCause, HostedKernel};
use std::time::Instant;

/// `ss_flags` bits.
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const SS_AUTODISARM: u32 = 1 << 31;
/// RFLAGS a handler starts without (Linux clears them).
const HANDLER_CLEARS: u64 = 0x400 | 0x100 | 0x1_0000;
/// The first address past user space.
const USER_END: u64 = 1 << 47;

/// Why a signal could not be delivered.
#[derive(Debug)]
enum Undeliverable {
    /// The process dies of this signal.
    Kill(u32),
    /// The VMM could not do its part (the run cannot go on).
    Fatal(String),
}

/// Is `sp` on the alternate stack `(sp, flags, size)`?
fn on_stack(alt: (u64, u32, u64), sp: u64) -> bool {
    alt.2 != 0 && sp > alt.0 && sp - alt.0 <= alt.2
}

/// How a signal came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Sent (pending until unblocked; ignored when ignored); the frame
    /// restores the given mask rather than the current one (a
    /// `rt_sigsuspend` waiting with its own).
    Sent(Option<u64>),
    /// Raised by the kernel for what the process did (a fault, a bad
    /// frame): kills when blocked or ignored, as `force_sig_fault`.
    Forced(Trap),
}

/// Acts on `info` with `saved` the interrupted registers: enters the
/// handler (`Ok(true)`), or discards it (`Ok(false)`).
fn act(
    linux: &Linux,
    hv: &HostedKernel,
    vcpu: u8,
    user: &mut UserState<'_>,
    saved: &kvm_regs,
    info: &SigInfo,
    origin: Origin,
) -> Result<bool, Undeliverable> {
    let s = info.signo;
    let (forced, trap, frame_mask) = match origin {
        Origin::Sent(m) => (false, Trap::default(), m),
        Origin::Forced(t) => (true, t, None),
    };
    let (action, old_mask, alt) = {
        let p = linux.proc();
        (p.sigactions.get(&s).copied().unwrap_or_default(), p.sigmask, p.altstack)
    };
    let [handler, flags, restorer, sa_mask] = action;
    if forced && (old_mask & bit(s) != 0 || handler == 1) {
        return Err(Undeliverable::Kill(s));
    }
    match handler {
        0 if default_ignored(s) => return Ok(false),
        0 => return Err(Undeliverable::Kill(s)),
        1 => return Ok(false),
        _ => {}
    }
    if flags & sa::RESTORER == 0 {
        log::debug!("linux: signal {s}: a handler without SA_RESTORER cannot return: SIGSEGV");
        return Err(Undeliverable::Kill(sig::SIGSEGV));
    }
    let on_alt = on_stack(alt, saved.rsp);
    let use_alt = flags & sa::ONSTACK != 0 && alt.1 & SS_DISABLE == 0 && alt.2 != 0 && !on_alt;
    let top = if use_alt { alt.0.saturating_add(alt.2) } else { saved.rsp.saturating_sub(RED_ZONE) };
    let at = frame::place(top).ok_or(Undeliverable::Kill(sig::SIGSEGV))?;
    if (use_alt || on_alt) && at.frame < alt.0 {
        log::debug!("linux: signal {s}: the frame overflows the alternate stack: SIGSEGV");
        return Err(Undeliverable::Kill(sig::SIGSEGV));
    }
    let fx = user.fpu().map_err(Undeliverable::Fatal)?;
    let content = FrameContent {
        restorer,
        regs: saved,
        cs: USER_CS,
        ss: USER_DS,
        trap,
        mask: frame_mask.unwrap_or(old_mask),
        altstack: AltStack { sp: alt.0, flags: alt.1 | if on_alt { SS_ONSTACK } else { 0 }, size: alt.2 },
        info,
        fx: &fx,
    };
    let bytes = frame::build(at, &content);
    if let Err(e) = hv.write_user(vcpu, at.frame, &bytes) {
        log::debug!("linux: signal {s}: cannot write its frame at {:#x} (errno {e}): SIGSEGV", at.frame);
        return Err(Undeliverable::Kill(sig::SIGSEGV));
    }
    {
        let mut p = linux.proc();
        let defer = if flags & sa::NODEFER != 0 { 0 } else { bit(s) };
        p.sigmask = (old_mask | sa_mask | defer) & !UNBLOCKABLE;
        if flags & sa::RESETHAND != 0 {
            if let Some(a) = p.sigactions.get_mut(&s) {
                a[0] = 0;
            }
        }
        if use_alt && alt.1 & SS_AUTODISARM != 0 {
            p.altstack = (0, SS_DISABLE, 0);
        }
    }
    user.regs = kvm_regs {
        rip: handler,
        rsp: at.frame,
        rdi: u64::from(s),
        rsi: at.frame + INFO as u64,
        rdx: at.frame + UC as u64,
        rax: 0,
        rflags: saved.rflags & !HANDLER_CLEARS,
        ..*saved
    };
    user.set_fpu(fpstate::initial());
    log::debug!("linux: signal {s} delivered to {handler:#x}, frame at {:#x}", at.frame);
    Ok(true)
}

/// Makes `info` pending for the process `p`, unless it is ignored and
/// not blocked (a blocked one stays: its disposition may change before
/// it is unblocked). One instance of each signal is pending at most.
pub fn post(p: &mut Proc, info: SigInfo) {
    let s = info.signo;
    let handler = p.sigactions.get(&s).map_or(0, |w| w[0]);
    let blocked = p.sigmask & bit(s) != 0;
    if !blocked && (handler == 1 || (handler == 0 && default_ignored(s))) {
        return;
    }
    p.pending.entry(s).or_insert(info);
}

/// Whether signal `s` sent to the process `p` ends it at once: its
/// action is the default, which terminates, and it is not blocked (as
/// Linux's `sig_fatal` in `complete_signal`).
pub fn kills_at_once(p: &Proc, s: u32) -> bool {
    let handler = p.sigactions.get(&s).map_or(0, |w| w[0]);
    handler == 0 && !default_ignored(s) && p.sigmask & bit(s) == 0
}

/// Posts `SIGALRM` if the real-time timer expired.
fn fire_timers(p: &mut Proc) {
    if timer::expire(&mut p.itimer_real, Instant::now()) {
        post(p, timer::alarm_info());
    }
}

/// The next signal that may be delivered (the lowest unblocked pending
/// one), taken off the pending set.
fn take_next(linux: &Linux) -> Option<SigInfo> {
    let mut p = linux.proc();
    fire_timers(&mut p);
    let blocked = p.sigmask;
    let s = p.pending.keys().copied().find(|&s| blocked & bit(s) == 0)?;
    p.pending.remove(&s)
}

/// Whether a signal interrupts a waiting call now (the real-time timer
/// expired, or an unblocked signal is pending): `Some(restart)`, with
/// `restart` when the signal's handler asks for `SA_RESTART` (the call
/// is made again after the handler returns, as Linux restarts it).
pub fn interrupting(linux: &Linux) -> Option<bool> {
    let mut p = linux.proc();
    fire_timers(&mut p);
    let blocked = p.sigmask;
    let s = p.pending.keys().copied().find(|&s| blocked & bit(s) == 0)?;
    let [handler, flags, ..] = p.sigactions.get(&s).copied().unwrap_or_default();
    Some(handler > 1 && flags & sa::RESTART != 0)
}

fn kill_effects(linux: &Linux, s: u32) -> Effects {
    linux.kill(s as i32).effects
}

/// At the return of a system call that left `fx` and the registers in
/// `user` (`resume`: the registers user mode resumes with, `rip` and
/// `rflags` its own): delivers the next deliverable pending signal.
pub fn at_syscall_return(
    linux: &Linux,
    hv: &HostedKernel,
    vcpu: u8,
    user: &mut UserState<'_>,
    resume: &kvm_regs,
    fx: Effects,
) -> Effects {
    let Some(info) = take_next(linux) else { return fx };
    match act(linux, hv, vcpu, user, resume, &info, Origin::Sent(None)) {
        Ok(_) => fx,
        Err(Undeliverable::Kill(s)) => kill_effects(linux, s),
        Err(Undeliverable::Fatal(m)) => Effects { fatal: Some(m), ..fx },
    }
}

/// Forces `SIGSEGV` (a bad frame in `rt_sigreturn`) with `saved` as the
/// interrupted registers.
fn force_segv(linux: &Linux, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, saved: &kvm_regs) -> Effects {
    let info = SigInfo::fault(sig::SIGSEGV, code::SI_KERNEL, 0);
    match act(linux, hv, vcpu, user, saved, &info, Origin::Forced(Trap::default())) {
        Ok(_) => Effects::default(),
        Err(Undeliverable::Kill(s)) => kill_effects(linux, s),
        Err(Undeliverable::Fatal(m)) => Effects { fatal: Some(m), ..Default::default() },
    }
}

/// `rt_sigreturn()`: the handler returned to its restorer, which made
/// this call with `rsp` at the frame's `ucontext`. Restores registers,
/// FPU state, mask and alternate stack; a frame that cannot be read
/// (or returns outside user space) is `SIGSEGV`.
pub fn sigreturn(linux: &Linux, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Effects {
    let at_call = user.regs;
    let uc = at_call.rsp;
    let Some(r) = hv.read_user(vcpu, uc, UCONTEXT_SIZE as u64).ok().and_then(|b| frame::parse(&b)) else {
        log::debug!("linux: rt_sigreturn: no frame at {uc:#x}: SIGSEGV");
        return force_segv(linux, hv, vcpu, user, &at_call);
    };
    // Linux returns with the saved selectors (RPL 3); any but the user
    // code and stack selectors cannot be returned to (`iretq` faults).
    if r.cs | 3 != USER_CS || r.ss | 3 != USER_DS {
        log::debug!("linux: rt_sigreturn with cs {:#x}, ss {:#x}: SIGSEGV", r.cs, r.ss);
        let regs = kvm_regs { rflags: crate::guest::user_state::user_rflags(at_call.rflags, r.regs.rflags), ..r.regs };
        return force_segv(linux, hv, vcpu, user, &regs);
    }
    let fpu = if r.fpstate == 0 {
        Some(fpstate::initial())
    } else if r.fpstate % 16 != 0 {
        None
    } else {
        hv.read_user(vcpu, r.fpstate, FXSAVE_SIZE as u64).ok().and_then(|b| {
            let img: [u8; FXSAVE_SIZE] = b.as_slice().try_into().ok()?;
            Some(fpstate::sanitized(img))
        })
    };
    let Some(fpu) = fpu else {
        log::debug!("linux: rt_sigreturn: bad FPU image at {:#x}: SIGSEGV", r.fpstate);
        return force_segv(linux, hv, vcpu, user, &at_call);
    };
    let regs = kvm_regs { rflags: crate::guest::user_state::user_rflags(at_call.rflags, r.regs.rflags), ..r.regs };
    {
        let mut p = linux.proc();
        p.sigmask = r.mask & !UNBLOCKABLE;
        // restore_altstack: refused (and ignored) while on the current one.
        let a = r.altstack;
        let valid = a.flags & !(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK) == 0;
        if valid && !on_stack(p.altstack, regs.rsp) {
            p.altstack =
                if a.flags & SS_DISABLE != 0 { (0, SS_DISABLE, 0) } else { (a.sp, a.flags & !SS_ONSTACK, a.size) };
        }
    }
    user.regs = regs;
    user.set_fpu(fpu);
    if regs.rip >= USER_END {
        // Linux returns there and the CPU faults at once.
        log::debug!("linux: rt_sigreturn to {:#x}, outside user space: SIGSEGV", regs.rip);
        return force_segv(linux, hv, vcpu, user, &regs);
    }
    Effects::default()
}

/// The signal an exception raises: (info, trap details), or `None` for
/// an exception that is no signal's (the runner's default).
fn signal_of(hv: &HostedKernel, report: &ExceptionReport) -> Option<(SigInfo, Trap)> {
    let trap = Trap { err: report.error_code, trapno: report.vector, cr2: 0 };
    let info = match report.vector {
        0 => SigInfo::fault(sig::SIGFPE, code::FPE_INTDIV, report.rip),
        1 | 3 => SigInfo::fault(sig::SIGTRAP, code::SI_KERNEL, 0),
        4 | 5 | 10 | 13 => SigInfo::fault(sig::SIGSEGV, code::SI_KERNEL, 0),
        6 => SigInfo::fault(sig::SIGILL, code::ILL_ILLOPN, report.rip),
        11 | 12 => SigInfo::fault(sig::SIGBUS, code::SI_KERNEL, 0),
        14 => {
            let info = match hv.fault_cause(report.cr2, report.error_code) {
                FaultCause::NoMapping => SigInfo::fault(sig::SIGSEGV, code::SEGV_MAPERR, report.cr2),
                FaultCause::Access => SigInfo::fault(sig::SIGSEGV, code::SEGV_ACCERR, report.cr2),
                FaultCause::Bus => SigInfo::fault(sig::SIGBUS, code::BUS_ADRERR, report.cr2),
            };
            return Some((info, Trap { cr2: report.cr2, ..trap }));
        }
        16 | 19 => SigInfo::fault(sig::SIGFPE, code::FPE_FLTINV, report.rip),
        17 => SigInfo::fault(sig::SIGBUS, code::BUS_ADRALN, report.cr2),
        _ => return None,
    };
    Some((info, trap))
}

/// A user-mode exception the VMM did not resolve: its signal, delivered
/// to the handler or killing the process.
pub fn on_fault(
    linux: &Linux,
    hv: &HostedKernel,
    vcpu: u8,
    report: &ExceptionReport,
    user: &mut UserState<'_>,
) -> FaultAction {
    let Some((info, trap)) = signal_of(hv, report) else { return FaultAction::Default };
    let saved = user.regs;
    log::debug!("linux: {report}: signal {} (code {})", info.signo, info.code);
    match act(linux, hv, vcpu, user, &saved, &info, Origin::Forced(trap)) {
        Ok(_) => FaultAction::Resume,
        Err(Undeliverable::Kill(s)) => {
            let status = kill_effects(linux, s).exit_group.unwrap_or(128 + s as i32);
            FaultAction::Exit(status)
        }
        Err(Undeliverable::Fatal(m)) => {
            log::error!("linux: cannot deliver signal {}: {m}", info.signo);
            FaultAction::Default
        }
    }
}

/// `pause()` (`mask` `None`) and `rt_sigsuspend` (`mask` the one to wait
/// with): a signal that may be delivered is, and the call returns
/// `EINTR` into its handler (whose frame keeps the mask before the call);
/// otherwise the vCPU sleeps until the real-time timer expires (or the
/// run stops) and makes the call again, as Linux restarts it.
pub fn suspend(linux: &Linux, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, mask: Option<u64>) -> Effects {
    let nr = user.regs.rax;
    let eintr = (-i64::from(libc::EINTR)) as u64;
    let resume = kvm_regs { rip: user.regs.rcx, rflags: user.regs.r11, rax: eintr, ..user.regs };
    let old = {
        let mut p = linux.proc();
        let old = p.sigmask;
        if let Some(m) = mask {
            p.sigmask = m & !UNBLOCKABLE;
        }
        old
    };
    if let Some(info) = take_next(linux) {
        match act(linux, hv, vcpu, user, &resume, &info, Origin::Sent(Some(old))) {
            Ok(true) => return Effects::default(),
            // Discarded (ignored by now): keep waiting.
            Ok(false) => {}
            Err(Undeliverable::Kill(s)) => return kill_effects(linux, s),
            Err(Undeliverable::Fatal(m)) => return Effects { fatal: Some(m), ..Default::default() },
        }
    }
    let deadline = {
        let mut p = linux.proc();
        p.sigmask = old;
        p.itimer_real.map(|t| t.deadline)
    };
    // Back to the `syscall` instruction (2 bytes), with its number.
    user.regs = kvm_regs { rip: resume.rip.wrapping_sub(2), rax: nr, ..resume };
    let block = deadline.map_or(Block::UntilStopped, Block::Until);
    Effects { block: Some(block), ..Default::default() }
}
