//! The loop each vCPU thread runs: enter the guest, handle the exit,
//! repeat, until the run stops.
//!
//! Exception reports and shootdown acknowledgements are trusted only when
//! RIP is right after the stub's own `out` (user mode cannot reach those
//! ports anyway: the TSS I/O bitmap denies them). Hypercalls come straight
//! from user mode.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use devices::ExitLatch;
use vmm_sys_util::eventfd::EventFd;

use crate::guest::kind::{SharedKind, Sleeper};
use crate::guest::user_state::{user_rflags, FaultAction, FpuAccess, FxImage, UserState};
use crate::hosted::exception::ExceptionReport;
use crate::hosted::hypercall::{Block, FaultOutcome, HostedKernel};
use crate::hosted::stub::KernelStub;
use crate::hosted::tlb::{self, Shootdown};
use crate::run::control::{Outcome, RunControl};
use crate::run::vm_exit::{handle_exit, Buses, ExitAction, ExitCounters, StopReason};
use crate::vstate::kick;
use crate::vstate::vcpu::Vcpu;

/// What a vCPU thread shares with the rest of the VMM.
#[derive(Debug, Clone)]
pub struct VcpuContext {
    /// Device buses.
    pub buses: Arc<Buses>,
    /// The guest's kernel (hosted guests; `None` for a guest that is its
    /// own kernel).
    pub hv: Option<Arc<HostedKernel>>,
    /// The kind of guest (what its system calls mean).
    pub kind: SharedKind,
    /// Run control.
    pub ctl: Arc<RunControl>,
    /// TLB shootdown state.
    pub tlb: Arc<Shootdown>,
    /// The exit port's latch.
    pub latch: Arc<ExitLatch>,
    /// The machine's sleep and wake (ACPI S3), if it has them.
    pub sleeper: Option<Arc<dyn Sleeper>>,
    /// Stub addresses (hosted guests).
    pub stub: Option<Arc<KernelStub>>,
    /// The guest console (serial and hypercall output), for backpressure.
    pub console: crate::hosted::hypercall::ConsoleOut,
    /// Guest memory (to write flush lists).
    pub mem: crate::memory::GuestMem,
    /// Guest-physical address of each vCPU's scratch page.
    pub scratch_pa: Arc<Vec<u64>>,
    /// The seccomp filter each vCPU thread installs before it first
    /// enters the guest, and the gate it then waits at.
    pub seccomp: Arc<crate::seccomp::Gate>,
}

/// Starts `vcpu` in its own thread. `counters` count its exits; `done` is
/// signalled when the thread ends.
pub fn spawn(
    vcpu: Vcpu,
    ctx: VcpuContext,
    counters: Arc<ExitCounters>,
    done: EventFd,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("vcpu{}", vcpu.index());
    std::thread::Builder::new().name(name).spawn(move || {
        let me = vcpu.index();
        let mut t = VcpuThread { vcpu, ctx, counters, armed: None };
        match t.ctx.seccomp.enter_vcpu() {
            Ok(()) => t.run(),
            Err(e) => {
                t.fail(e.to_string());
            }
        }
        t.ctx.tlb.exited(me);
        if let Err(e) = done.write(1) {
            log::error!("vCPU {me}: cannot signal its exit: {e}");
        }
    })
}

/// Where a vCPU's shootdown lists and NMIs go (step 3 of `tlb`).
struct NmiTarget<'a> {
    vcpu: &'a Vcpu,
    mem: &'a crate::memory::GuestMem,
    scratch: vm_memory::GuestAddress,
}

impl tlb::ShootdownVcpu for NmiTarget<'_> {
    fn write_list(&mut self, bytes: &[u8]) -> Result<(), String> {
        vm_memory::Bytes::write_slice(self.mem, bytes, self.scratch)
            .map_err(|_| format!("cannot write the flush list at {:#x}", self.scratch.0))
    }

    fn inject_nmi(&mut self) -> Result<(), String> {
        self.vcpu.inject_nmi().map_err(|e| format!("cannot inject the TLB-shootdown NMI: {e}"))
    }
}

/// The FPU of the vCPU a [`UserState`] belongs to.
struct VcpuFpu<'a>(&'a Vcpu);

impl FpuAccess for VcpuFpu<'_> {
    fn read_fpu(&self) -> Result<FxImage, String> {
        self.0.fx_state().map_err(|e| format!("cannot read the FPU state: {e}"))
    }

    fn write_fpu(&self, fpu: &FxImage) -> Result<(), String> {
        self.0.set_fx_state(fpu).map_err(|e| format!("cannot set the FPU state: {e}"))
    }
}

/// The first non-canonical user address.
const USER_END: u64 = 1 << 47;

struct VcpuThread {
    vcpu: Vcpu,
    ctx: VcpuContext,
    counters: Arc<ExitCounters>,
    /// Resume RIP for the next exception (`expect_fault`).
    armed: Option<u64>,
}

/// What the loop does after handling an action.
enum Next {
    Run,
    Stop,
}

impl VcpuThread {
    fn me(&self) -> u8 {
        self.vcpu.index()
    }

    fn fail(&self, message: String) -> Next {
        self.ctx.ctl.stop(Outcome::VcpuError { vcpu: self.me(), message });
        Next::Stop
    }

    fn run(&mut self) {
        kick::set_thread_kvm_run(self.vcpu.kvm_run_ptr());
        loop {
            if self.ctx.ctl.is_stopping() {
                break;
            }
            // A process switch: the next process's page tables and FS
            // base, before anything of it runs.
            if let Some(sw) = self.ctx.hv.as_ref().and_then(|hv| hv.take_switch(self.me())) {
                // Nothing of the next process runs on a copy's old entry
                // (no guest instruction ran since: a Dirty bit proves
                // nothing here).
                if let Some(message) = self.ctx.hv.as_ref().and_then(|hv| hv.settle_cow(self.me(), false)) {
                    self.fail(message);
                    break;
                }
                if let Err(message) = self.switch_process(sw) {
                    self.fail(message);
                    break;
                }
            }
            // In the guest from here on (for shootdowns), then look for a
            // due flush: in this order, a shootdown cannot miss this vCPU.
            let me = self.me();
            let scratch = vm_memory::GuestAddress(self.ctx.scratch_pa[me as usize]);
            let mut target = NmiTarget { vcpu: &self.vcpu, mem: &self.ctx.mem, scratch };
            if let Err(message) = tlb::before_entry(&self.ctx.tlb, me, &mut target) {
                self.fail(message);
                break;
            }
            let run = self.vcpu.run();
            self.ctx.tlb.left(me);
            // A copy-on-write flush left to the retry is settled before
            // the VMM acts on this exit, whatever it is; after a kick
            // (EINTR), KVM may have left in the middle of the retry's
            // fault, so its Dirty bit is not trusted.
            let trust_dirty = run.is_ok();
            if let Some(message) = self.ctx.hv.as_ref().and_then(|hv| hv.settle_cow(me, trust_dirty)) {
                self.fail(message);
                break;
            }
            let action = match run {
                Ok(exit) => handle_exit(exit, &self.ctx.buses, &self.counters),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.vcpu.clear_immediate_exit();
                    if let Err(message) = self.on_kick() {
                        self.fail(message);
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    self.fail(format!("KVM_RUN failed: {e}"));
                    break;
                }
            };
            let next = match action {
                ExitAction::Continue => match self.ctx.latch.is_set().then(|| self.ctx.latch.status()).flatten() {
                    Some(status) => {
                        self.ctx.ctl.stop(Outcome::ExitPort { status });
                        Next::Stop
                    }
                    None => self.sleep_if_asked(),
                },
                ExitAction::Exception => self.on_exception(),
                ExitAction::Hypercall => self.on_hypercall(),
                ExitAction::FlushAck => self.on_flush_ack(),
                ExitAction::Stop(reason) => {
                    let outcome = match reason {
                        StopReason::TripleFault => Outcome::TripleFault { vcpu: self.me() },
                        StopReason::Halted => Outcome::VcpuError { vcpu: self.me(), message: "halted".into() },
                        StopReason::FailEntry { reason } => Outcome::VcpuError {
                            vcpu: self.me(),
                            message: format!("KVM could not enter the guest (hardware reason {reason:#x})"),
                        },
                        StopReason::InternalError => {
                            Outcome::VcpuError { vcpu: self.me(), message: self.internal_error_message() }
                        }
                        StopReason::Unhandled(what) => {
                            Outcome::VcpuError { vcpu: self.me(), message: format!("unhandled exit {what}") }
                        }
                    };
                    self.ctx.ctl.stop(outcome);
                    Next::Stop
                }
            };
            if let Next::Stop = next {
                break;
            }
            // Console backpressure: while the output is full, wait here,
            // outside every lock, until it drains or the run stops.
            self.ctx.console.throttle(&|| self.ctx.ctl.is_stopping());
        }
        kick::set_thread_kvm_run(std::ptr::null_mut());
    }

    /// ACPI S3: when the guest asked for it, completes the access that
    /// asked, waits (parked, a slice at a time, so that a stopping run is
    /// seen) until the wake source fires, then restarts this vCPU in real
    /// mode at the waking vector, as firmware does on resume. Other vCPUs
    /// are not stopped (a guest offlines them before it sleeps).
    fn sleep_if_asked(&mut self) -> Next {
        const SLICE: Duration = Duration::from_millis(10);
        let Some(sleeper) = self.ctx.sleeper.clone() else { return Next::Run };
        if !sleeper.take_request() {
            return Next::Run;
        }
        if let Err(e) = self.vcpu.complete_pending_io() {
            return self.fail(format!("cannot complete the access that entered S3: {e}"));
        }
        let deadline = sleeper.wake_in().map(|d| Instant::now() + d);
        log::info!("vCPU {}: S3 until {:?} from now", self.me(), sleeper.wake_in());
        loop {
            if self.ctx.ctl.is_stopping() {
                return Next::Stop;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                break;
            }
            std::thread::park_timeout(left.map_or(SLICE, |l| l.min(SLICE)));
        }
        let resumed = sleeper.wake(&self.ctx.mem).and_then(|vector| {
            self.vcpu.reset_real_mode(vector).map_err(|e| format!("cannot restart in real mode: {e}"))
        });
        match resumed {
            Ok(()) => Next::Run,
            Err(e) => self.fail(format!("S3 resume: {e}")),
        }
    }

    /// A kick took the vCPU out of the guest: when it was in user mode
    /// and the kind wants it, the kind may switch what runs (a time
    /// slice ended); its new registers, FPU state and (for a thread of the
    /// same process) FS base are loaded here, a new CR3 with its FS base
    /// at the top of the loop. A kick in the kernel stub (CPL 0), or
    /// while an exception of the running thread is on its way in, changes
    /// nothing: the next one comes a period later.
    fn on_kick(&mut self) -> Result<(), String> {
        let me = self.me();
        let Some(hv) = self.ctx.hv.clone() else { return Ok(()) };
        if self.ctx.ctl.is_stopping() {
            return Ok(());
        }
        let kind = self.ctx.kind.clone();
        let entered = kind.enter(&hv, me);
        if let Some(m) = entered.fatal {
            return Err(m);
        }
        if !kind.wants_kick(me) {
            return Ok(());
        }
        let sregs = self.vcpu.sregs().map_err(|e| format!("cannot read the segment registers: {e}"))?;
        if sregs.cs.selector & 3 != 3 {
            // In the stub: a vCPU whose program was taken from it leaves
            // for the kind's idle loop where the stub returns to user mode.
            if entered.gone {
                self.reroute_in_stub(&kind)?;
            }
            return Ok(());
        }
        // A fault of the running thread still on its way in: switching now
        // would deliver it to the next thread (its registers, its CR3).
        if self.vcpu.exception_in_flight().map_err(|e| format!("cannot read the vCPU's events: {e}"))? {
            return Ok(());
        }
        let regs = self.vcpu.regs().map_err(|e| format!("cannot read registers: {e}"))?;
        let fpu = VcpuFpu(&self.vcpu);
        let mut user = UserState::new(regs, &fpu);
        let Some(switched) = self.ctx.kind.on_kick(&hv, me, &mut user) else { return Ok(()) };
        let new = user.regs;
        if let Some(f) = user.take_new_fpu() {
            fpu.write_fpu(&f)?;
        }
        // A thread of the same process: its FS base, with no CR3 load.
        if let Some(base) = switched.fs_base {
            self.vcpu.set_fs_base(base).map_err(|e| format!("cannot set the FS base: {e}"))?;
        }
        let out = kvm_bindings::kvm_regs { rflags: user_rflags(regs.rflags, new.rflags), ..new };
        self.vcpu.set_regs(&out).map_err(|e| format!("cannot set registers: {e}"))
    }

    /// Loads a process switch's CR3 and FS base.
    fn switch_process(&mut self, sw: crate::hosted::hypercall::Switch) -> Result<(), String> {
        self.vcpu.set_cr3(sw.cr3.0).map_err(|e| format!("cannot load CR3 {:#x}: {e}", sw.cr3.0))?;
        self.vcpu.set_fs_base(sw.fs_base).map_err(|e| format!("cannot set the FS base: {e}"))
    }

    /// Names what the backend could not do after `KVM_EXIT_INTERNAL_ERROR`.
    /// Without bytes from KVM, the instruction is read at CS:RIP through
    /// the guest's own page tables ([`page_walk`]), never with
    /// `KVM_TRANSLATE`: the vCPU allow-list does not have it, and the
    /// report must not need a call the filter refuses.
    fn internal_error_message(&mut self) -> String {
        use crate::vstate::internal_error as ie;
        use crate::vstate::page_walk::{self, PagingRegs};
        let (sub, data) = self.vcpu.internal_error();
        let (rip, bits, linear, paging) = match (self.vcpu.regs(), self.vcpu.sregs()) {
            (Ok(r), Ok(s)) => {
                let bits = ie::bitness(s.cs.l, s.cs.db);
                // In 64-bit mode the CS base is ignored.
                let base = if bits == 64 { 0 } else { s.cs.base };
                (r.rip, bits, base.wrapping_add(r.rip), Some(PagingRegs::from_sregs(&s)))
            }
            _ => (0, 64, 0, None),
        };
        let fetched = ie::reported_bytes(sub, &data).or_else(|| {
            let mut b = [0u8; 15];
            // A fetch near the end of RAM or of the mapped pages may be
            // short; take what reads.
            let n = page_walk::read_linear(paging?, linear, &mut b, &self.ctx.mem);
            (n > 0).then(|| b[..n].to_vec())
        });
        ie::describe(sub, &data, fetched.as_deref(), bits, rip)
    }

    fn regs_from_stub(&self, expected_rip: u64, what: &str) -> Result<kvm_bindings::kvm_regs, Next> {
        let regs = self.vcpu.regs().map_err(|e| self.fail(format!("cannot read registers: {e}")))?;
        if regs.rip != expected_rip {
            return Err(self.fail(format!("{what} port written from rip {:#x}, not from the kernel stub", regs.rip)));
        }
        Ok(regs)
    }

    fn on_exception(&mut self) -> Next {
        let Some(stub) = self.ctx.stub.clone() else {
            return self.fail("exception port used without a kernel stub".into());
        };
        let mut regs = match self.regs_from_stub(stub.exc_report_rip, "exception") {
            Ok(r) => r,
            Err(n) => return n,
        };
        let report = match self.exception_report(&regs) {
            Ok(r) => r,
            Err(message) => return self.fail(message),
        };
        let kind = self.ctx.kind.clone();
        let entered = self.ctx.hv.as_ref().map(|hv| kind.enter(hv, self.me()));
        if let Some(m) = entered.as_ref().and_then(|e| e.fatal.clone()) {
            return self.fail(m);
        }
        // The program that faulted was taken from this vCPU: its fault
        // is nobody's (the kind loads another program).
        let gone = entered.as_ref().is_some_and(|e| e.gone);
        // A lazy page or a copy-on-write write: resolved, the instruction
        // runs again with every register as it was.
        if let (true, Some(hv)) = (report.is_page_fault() && report.cpl() == 3 && !gone, self.ctx.hv.clone()) {
            match hv.page_fault_retried(self.me(), report.cr2, report.error_code) {
                FaultOutcome::Resolved => {
                    regs.rip = stub.exc_retry;
                    return match self.vcpu.set_regs(&regs) {
                        Ok(()) => Next::Run,
                        Err(e) => self.fail(format!("cannot set registers: {e}")),
                    };
                }
                FaultOutcome::Fatal(message) => return self.fail(message),
                FaultOutcome::Unresolved => {}
            }
        }
        // A fault in the kernel itself, or a double fault, is never
        // something the guest program can expect.
        let resumable = report.cpl() == 3 && report.vector != 8;
        if let (true, Some(hv)) = (resumable, self.ctx.hv.clone()) {
            match self.ask_kind(&hv, &stub, &report, regs) {
                Ok(Some(next)) => return next,
                Ok(None) => {}
                Err(message) => return self.fail(message),
            }
        }
        match self.armed.take() {
            Some(resume) if resumable => {
                log::debug!("expected exception: {report}; resuming at {resume:#x}");
                // The stub returns to rcx with the report in registers.
                report.load_into(&mut regs);
                regs.rcx = resume;
                match self.vcpu.set_regs(&regs) {
                    Ok(()) => Next::Run,
                    Err(e) => self.fail(format!("cannot set registers: {e}")),
                }
            }
            _ => {
                if report.rip == stub.syscall_entry && report.cpl() == 3 {
                    log::error!(
                        "`syscall` reached its entry point still in user mode: this KVM backend does not \
                         implement syscall; write the hypercall port instead (see docs/guest-abi.md)"
                    );
                }
                log::error!("unexpected exception: {report}");
                let rip = guest_mm::GuestVirtAddr::try_new(report.rip).ok();
                if let Some(insn) = rip.and_then(|r| self.ctx.hv.as_ref().and_then(|hv| hv.disassemble_at(r))) {
                    log::error!("faulting instruction: {insn}");
                }
                if log::log_enabled!(log::Level::Debug) {
                    if let Ok(s) = self.vcpu.sregs() {
                        log::debug!(
                            "vCPU {}: cs {:#x}/dpl {} ss {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}",
                            self.me(),
                            s.cs.selector,
                            s.cs.dpl,
                            s.ss.selector,
                            s.cr0,
                            s.cr3,
                            s.cr4,
                            s.efer
                        );
                    }
                    use crate::hosted::arch::regs::msr;
                    log::debug!(
                        "vCPU {}: MSRs {:x?}",
                        self.me(),
                        self.vcpu.msrs(&[msr::STAR, msr::LSTAR, msr::SFMASK, msr::KERNEL_GS_BASE, msr::PAT])
                    );
                }
                self.ctx.ctl.stop(Outcome::Fault { report });
                Next::Stop
            }
        }
    }

    /// The guest-physical address of the stub's exception frame.
    fn exception_frame_pa(regs: &kvm_bindings::kvm_regs) -> Result<u64, String> {
        let pa = regs.rsp.wrapping_sub(crate::layout::KERNEL_VA);
        if pa.checked_add(48).is_none_or(|end| end > crate::layout::KERNEL_REGION_SIZE) {
            return Err(format!("exception stack pointer {:#x} is outside the kernel region", regs.rsp));
        }
        Ok(pa)
    }

    /// The stub's frame: `[vector, error code, RIP, CS, RFLAGS, RSP]`.
    fn exception_frame(&self, regs: &kvm_bindings::kvm_regs) -> Result<[u64; 6], String> {
        let pa = Self::exception_frame_pa(regs)?;
        let mut bytes = [0u8; 48];
        vm_memory::Bytes::read_slice(&self.ctx.mem, &mut bytes, vm_memory::GuestAddress(pa))
            .map_err(|e| format!("cannot read the exception frame at {pa:#x}: {e}"))?;
        let mut frame = [0u64; 6];
        for (w, b) in frame.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().unwrap_or_default());
        }
        Ok(frame)
    }

    /// The report of the exception the stub is reporting: the frame on
    /// its stack (a kernel-region address, read through guest memory) and
    /// CR2 from the vCPU.
    fn exception_report(&self, regs: &kvm_bindings::kvm_regs) -> Result<ExceptionReport, String> {
        let frame = self.exception_frame(regs)?;
        let cr2 = self.vcpu.sregs().map_err(|e| format!("cannot read CR2: {e}"))?.cr2;
        Ok(ExceptionReport::from_frame(self.me(), &frame, cr2))
    }

    /// Asks the kind about a user-mode exception nobody resolved; `None`:
    /// the kind left it to the runner. Resuming rewrites the stub's
    /// `iretq` frame (RIP, RFLAGS as user mode may have them, RSP; CS and
    /// SS stay the user's) and the general registers, and leaves through
    /// `exc_retry`.
    fn ask_kind(
        &mut self,
        hv: &HostedKernel,
        stub: &KernelStub,
        report: &ExceptionReport,
        regs: kvm_bindings::kvm_regs,
    ) -> Result<Option<Next>, String> {
        let mut frame = self.exception_frame(&regs)?;
        let mut view = regs;
        view.rip = frame[2];
        view.rflags = frame[4];
        view.rsp = frame[5];
        let fpu = VcpuFpu(&self.vcpu);
        let mut user = UserState::new(view, &fpu);
        match self.ctx.kind.on_user_fault(hv, self.me(), report, &mut user) {
            FaultAction::Default => Ok(None),
            FaultAction::Exit(status) => {
                log::debug!("exception ends the program (status {status}): {report}");
                self.ctx.ctl.stop(Outcome::Exited { status });
                Ok(Some(Next::Stop))
            }
            FaultAction::Resume => {
                if let Some(f) = user.take_new_fpu() {
                    user.write_fpu(&f)?;
                }
                let new = user.regs;
                frame[2] = new.rip;
                frame[4] = user_rflags(frame[4], new.rflags);
                frame[5] = new.rsp;
                let bytes: Vec<u8> = frame[2..].iter().flat_map(|w| w.to_le_bytes()).collect();
                let pa = Self::exception_frame_pa(&regs)? + 16;
                vm_memory::Bytes::write_slice(&self.ctx.mem, &bytes, vm_memory::GuestAddress(pa))
                    .map_err(|e| format!("cannot write the exception frame at {pa:#x}: {e}"))?;
                let out = kvm_bindings::kvm_regs { rip: stub.exc_retry, rsp: regs.rsp, rflags: regs.rflags, ..new };
                self.vcpu.set_regs(&out).map_err(|e| format!("cannot set registers: {e}"))?;
                Ok(Some(Next::Run))
            }
        }
    }

    fn on_hypercall(&mut self) -> Next {
        let mut regs = match self.vcpu.regs() {
            Ok(r) => r,
            Err(e) => return self.fail(format!("cannot read registers: {e}")),
        };
        let me = self.me();
        let Some(hv) = self.ctx.hv.clone() else { return self.fail("hypercall without a hosted kernel".into()) };
        // From the stub's `syscall` entry, `sysret` returns to rcx with
        // r11's flags: that is where user mode resumes.
        let via_sysret = self.ctx.stub.as_ref().is_some_and(|s| regs.rip == s.syscall_return);
        // From the user-mode trampoline's `out` (PVM: `syscall` stays in
        // user mode): the call returns as `sysret` would, to rcx with
        // r11's flags, set here rather than by the trampoline's tail,
        // which pushes on the user stack: a call that unmapped that stack
        // (musl's detached thread unmapping its own before `exit`) would
        // fault there.
        let via_trampoline = !via_sysret && regs.rip == crate::hosted::trampoline::HCALL_RETURN;
        let mut view = regs;
        if via_sysret || via_trampoline {
            view.rip = regs.rcx;
            view.rflags = regs.r11;
        }
        let fpu = VcpuFpu(&self.vcpu);
        let mut user = UserState::new(view, &fpu);
        let kind = self.ctx.kind.clone();
        let entered = kind.enter(&hv, me);
        if let Some(m) = entered.fatal.clone() {
            return self.fail(m);
        }
        // A call through `int 0x80` (or a port write) of a program taken
        // from this vCPU: no way back to user mode to rewrite, so the
        // vCPU leaves the stub for the idle loop directly.
        if entered.gone && !via_sysret && !via_trampoline {
            return match self.reroute_in_stub(&kind) {
                Ok(_) => Next::Run,
                Err(m) => self.fail(m),
            };
        }
        let fx = kind.syscall_in(&hv, me, &mut user);
        let new_fpu = user.take_new_fpu();
        let new = user.regs;
        if let Some(status) = fx.exit_group {
            self.ctx.ctl.stop(Outcome::Exited { status });
            return Next::Stop;
        }
        if let Some(status) = fx.exit_vcpu {
            self.ctx.ctl.note_exit_status(status);
            return Next::Stop;
        }
        if let Some(rip) = fx.arm_fault {
            // 0 disarms.
            self.armed = (rip != 0).then_some(rip);
        }
        if via_sysret {
            if new.rip >= USER_END {
                return self.fail(format!("cannot return to user mode at {:#x} with sysret", new.rip));
            }
            let (rip, rflags) = (regs.rip, regs.rflags);
            regs =
                kvm_bindings::kvm_regs { rip, rflags, rcx: new.rip, r11: user_rflags(view.rflags, new.rflags), ..new };
        } else {
            regs = kvm_bindings::kvm_regs { rflags: user_rflags(view.rflags, new.rflags), ..new };
        }
        if let Some(message) = fx.fatal {
            return self.fail(message);
        }
        if let Some(f) = new_fpu {
            if let Err(e) = fpu.write_fpu(&f) {
                return self.fail(e);
            }
        }
        if let Some(base) = fx.fs_base {
            if let Err(e) = self.vcpu.set_fs_base(base) {
                return self.fail(format!("cannot set the FS base: {e}"));
            }
        }
        if let Err(e) = self.vcpu.set_regs(&regs) {
            return self.fail(format!("cannot set registers: {e}"));
        }
        // Other vCPUs go on while this one waits.
        drop(entered);
        if let Some(block) = fx.block {
            self.wait(block);
        }
        Next::Run
    }

    /// Keeps this vCPU out of the guest until `block` ends or the run
    /// stops, checking for a stop every few milliseconds.
    fn wait(&self, block: Block) {
        const SLICE: Duration = Duration::from_millis(10);
        while !self.ctx.ctl.is_stopping() {
            let left = match block {
                Block::Until(t) => t.saturating_duration_since(Instant::now()),
                Block::UntilStopped => SLICE,
            };
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }

    /// A vCPU whose program the kind took from it ([`GuestKind::take_reroute`])
    /// and that stands in the kernel stub (or at an exit the program
    /// made): it leaves for the kind's idle registers in user mode. In
    /// the shootdown handler it waits for the handler's acknowledgement
    /// (the handler's `swapgs` and NMI masking are undone by its own
    /// `iretq`), whose frame then returns to the idle loop at CPL 3
    /// whatever it interrupted; anywhere else in the stub the work in
    /// progress was the taken program's and is dropped
    /// ([`Vcpu::enter_user_mode`]). Whether it rerouted.
    fn reroute_in_stub(&mut self, kind: &crate::guest::kind::SharedKind) -> Result<bool, String> {
        let Some(stub) = self.ctx.stub.clone() else { return Ok(false) };
        let regs = self.vcpu.regs().map_err(|e| format!("cannot read registers: {e}"))?;
        if regs.rip >= stub.nmi_entry && regs.rip < stub.flush_ack_rip {
            return Ok(false);
        }
        let Some(idle) = kind.take_reroute(self.me()) else { return Ok(false) };
        if regs.rip != stub.flush_ack_rip {
            let r = kvm_bindings::kvm_regs { rflags: user_rflags(regs.rflags, idle.rflags), ..idle };
            self.vcpu.enter_user_mode(&r).map_err(|e| format!("cannot leave the stub for user mode: {e}"))?;
            return Ok(true);
        }
        // [RIP, CS, RFLAGS, RSP, SS] at the frame (a kernel-region address).
        let pa = regs.rsp.wrapping_sub(crate::layout::KERNEL_VA);
        if pa.checked_add(40).is_none_or(|end| end > crate::layout::KERNEL_REGION_SIZE) {
            return Err(format!("iret frame {:#x} is outside the kernel region", regs.rsp));
        }
        let mut bytes = [0u8; 40];
        vm_memory::Bytes::read_slice(&self.ctx.mem, &mut bytes, vm_memory::GuestAddress(pa))
            .map_err(|e| format!("cannot read the iret frame at {pa:#x}: {e}"))?;
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let frame = [
            idle.rip,
            u64::from(crate::hosted::arch::gdt::USER_CS),
            user_rflags(word(2), idle.rflags),
            idle.rsp,
            u64::from(crate::hosted::arch::gdt::USER_DS),
        ];
        let out: Vec<u8> = frame.iter().flat_map(|w| w.to_le_bytes()).collect();
        vm_memory::Bytes::write_slice(&self.ctx.mem, &out, vm_memory::GuestAddress(pa))
            .map_err(|e| format!("cannot write the iret frame at {pa:#x}: {e}"))?;
        Ok(true)
    }

    fn on_flush_ack(&mut self) -> Next {
        let Some(stub) = self.ctx.stub.clone() else {
            return self.fail("flush port used without a kernel stub".into());
        };
        match self.regs_from_stub(stub.flush_ack_rip, "flush acknowledgement") {
            Ok(_) => {
                log::debug!("vCPU {}: TLB flushed", self.me());
                self.ctx.tlb.acked(self.me());
                // The flush interrupted a program taken from this vCPU:
                // its `iretq` leads to the kind's idle loop instead.
                let kind = self.ctx.kind.clone();
                match self.reroute_in_stub(&kind) {
                    Ok(_) => Next::Run,
                    Err(m) => self.fail(m),
                }
            }
            Err(n) => n,
        }
    }
}
