//! The kind's side of processes: what a process keeps while another runs
//! ([`Saved`]), `fork`/`vfork`/`clone` (served with the caller's
//! registers), a process's end (zombie, `SIGCHLD`, its memory and files
//! released), and the switch to the next process on the vCPU (its
//! registers and FPU through the [`UserState`], its CR3 and FS base
//! through [`HostedKernel::request_switch`]).
//!
//! Scheduling: all processes share vCPU 0. A process runs until it
//! blocks (a call that answers `RESTART`, `pause`, a sleep), ends, or
//! makes a system call after [`SLICE`] while another can run. A process
//! that never makes a system call is preempted too where `syscall` stays
//! in user mode (PVM): while more than one process lives, a timer kicks
//! vCPU 0 out of the guest once a slice ([`Linux::preempt`]). Where
//! `syscall` enters the kernel stub it returns with `sysret`, which would
//! lose a preempted process's `rcx` and `r11`, so there no timer runs and
//! a spinning process keeps the vCPU. When no process can run and none
//! sleeps, the run ends with a deadlock report.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use guest_mm::AddressSpace;
use kvm_bindings::kvm_regs;

use super::super::fs::FileContext;
use super::super::process::{Linux, Proc, PID};
use super::super::signal::info::{Fields, SigInfo};
use super::status::ExitKind;
use super::table::{State, Tasks};
use crate::guest::user_state::{FxImage, UserState};
use crate::hosted::hypercall::{Block, Effects, HostedKernel, Switch};
use crate::memory::GuestMem;
use crate::vstate::backend::SyscallEntry;
use crate::vstate::slice_timer::SliceTimer;

/// Most processes at once, zombies included (a fork past it: `EAGAIN`).
pub const MAX_PROCS: usize = 256;
/// How long a process making system calls runs while another can.
pub const SLICE: Duration = Duration::from_millis(10);
/// `SIGCHLD`.
const SIGCHLD: u32 = 17;
/// `SIGKILL`.
pub const SIGKILL: u32 = 9;
/// `SA_NOCLDWAIT`.
const SA_NOCLDWAIT: u64 = 2;

/// What a process keeps while it does not run.
pub struct Saved {
    /// Its user registers (where it resumes).
    pub regs: kvm_regs,
    /// Its FPU/SSE state (`None`: the one the vCPU has).
    pub fpu: Option<FxImage>,
    /// Its address space.
    pub space: AddressSpace<GuestMem>,
    /// Its signal state, limits, FS base.
    pub proc: Proc,
    /// Its descriptors.
    pub files: FileContext,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved").field("rip", &self.regs.rip).field("cr3", &self.space.cr3()).finish_non_exhaustive()
    }
}

/// A fork's vfork child now runs on the vCPU (the parent waits): the
/// caller returns at once, its registers already the child's.
#[derive(Debug)]
pub struct RunsChild;

/// How the running process leaves the vCPU.
pub enum Leave {
    /// Runnable.
    Ready,
    /// Until another process does something.
    Blocked,
    /// Until then.
    Sleeping(Instant),
    /// Until its vfork child ends.
    Vfork(u32),
    /// It ended (already a zombie in the table).
    Ended,
}

type Table = Tasks<Box<Saved>>;

impl Linux {
    /// The process table, locked.
    pub(crate) fn tasks(&self) -> std::sync::MutexGuard<'_, Table> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running process's pid.
    pub fn pid(&self) -> u32 {
        self.tasks().current()
    }

    /// The running process's parent.
    pub fn ppid(&self) -> u32 {
        let t = self.tasks();
        t.get(t.current()).map_or(super::table::OUTSIDE_PARENT, |x| x.ppid)
    }

    /// Marks the call about to answer `RESTART` as waiting for another
    /// process (it blocks instead of retrying).
    pub fn wait_for_event(&self) {
        self.waits_for_event.store(true, Ordering::Relaxed);
    }

    /// `fork`, `vfork` and `clone` without `CLONE_VM` (`vfork`: the parent
    /// is suspended until the child ends). `user` holds the caller at its
    /// `syscall`; `resume` where it returns. Returns the effects, and
    /// whether the vCPU now runs the child.
    pub fn fork(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        user: &mut UserState<'_>,
        resume: &kvm_regs,
        clone: Option<CloneArgs>,
        vfork: bool,
    ) -> Result<(i64, Effects), RunsChild> {
        if self.tasks().len() >= MAX_PROCS {
            return Ok((-i64::from(libc::EAGAIN), Effects::default()));
        }
        let space = match hv.fork_space(vcpu) {
            Ok(s) => s,
            Err(crate::hosted::hypercall::SpaceError::Flush(m)) => {
                return Ok((0, Effects { fatal: Some(m), ..Default::default() }))
            }
            Err(e) => return Ok((-i64::from(e.errno()), Effects::default())),
        };
        let mut proc = self.proc().clone();
        proc.pending.clear();
        proc.itimer_real = None;
        let mut regs = kvm_regs { rax: 0, ..*resume };
        if let Some(c) = clone {
            if c.stack != 0 {
                regs.rsp = c.stack;
            }
            if let Some(tls) = c.tls {
                proc.fs_base = tls;
            }
        }
        let files = self.vfs().fork_files();
        let fpu = user.fpu().ok();
        let saved = Box::new(Saved { regs, fpu, space, proc, files });
        let pid = match self.tasks().spawn(saved) {
            Ok(p) => p,
            Err(e) => return Ok((-i64::from(e.errno()), Effects::default())),
        };
        log::debug!("linux: process {} forked {pid}", self.pid());
        self.sync_slice_timer();
        if vfork {
            user.regs = kvm_regs { rax: u64::from(pid), ..*resume };
            self.switch_to(hv, vcpu, user, pid, Leave::Vfork(pid));
            return Err(RunsChild);
        }
        Ok((i64::from(pid), Effects::default()))
    }

    /// Ends the running process as `how` (not the first one: its end is
    /// the run's): a zombie, `SIGCHLD` to its parent (reaped at once when
    /// the parent ignores `SIGCHLD`), then the next process runs.
    pub fn end_current(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, how: ExitKind) -> Effects {
        let pid = self.pid();
        log::debug!("linux: process {pid} ended: {how:?}");
        let parent = self.tasks().exit(pid, how).map(|(p, _)| p);
        if let Some(p) = parent {
            self.notify_parent(p, pid, how);
        }
        self.sync_slice_timer();
        match self.choose(&Leave::Ended) {
            Ok(Some((next, at))) => {
                self.switch_to(hv, vcpu, user, next, Leave::Ended);
                Effects { block: at.map(Block::Until), ..Default::default() }
            }
            // Unreachable: the first process never ends here.
            Ok(None) => {
                Effects { fatal: Some(format!("process {pid} ended with nothing to run")), ..Default::default() }
            }
            Err(report) => Effects { fatal: Some(report), ..Default::default() },
        }
    }

    /// Ends process `pid`, which is not running, killed by `sig`.
    pub fn kill_other(&self, hv: &HostedKernel, vcpu: u8, pid: u32, sig: u32) -> Option<String> {
        let how = ExitKind::Signaled { sig: sig as u8, core: false };
        let (parent, saved) = self.tasks().exit(pid, how)?;
        self.notify_parent(parent, pid, how);
        self.sync_slice_timer();
        saved.and_then(|s| self.tear_down(hv, vcpu, *s))
    }

    /// The first process ended: every other one is killed and its memory
    /// returned (the run ends with the first one's status).
    pub fn end_all_others(&self, hv: &HostedKernel, vcpu: u8) -> Option<String> {
        let others = self.tasks().others();
        let mut fatal = None;
        for p in others {
            let saved = self.tasks().exit(p, ExitKind::Signaled { sig: SIGKILL as u8, core: false });
            if let Some((_, Some(s))) = saved {
                fatal = fatal.or(self.tear_down(hv, vcpu, *s));
            }
        }
        self.sync_slice_timer();
        fatal
    }

    fn tear_down(&self, hv: &HostedKernel, vcpu: u8, s: Saved) -> Option<String> {
        {
            let mut vfs = self.vfs();
            vfs.drop_files(s.files);
            // Pipe ends and memfds only the ended process named go now
            // (a reader then sees EOF, a writer EPIPE).
            self.memfds().release_unused(&vfs);
            self.ipc().release_unused(&vfs);
        }
        hv.exit_space(vcpu, s.space)
    }

    /// `SIGCHLD` to `parent` for `child`'s end; reaps it at once when the
    /// parent ignores `SIGCHLD` or set `SA_NOCLDWAIT`.
    fn notify_parent(&self, parent: u32, child: u32, how: ExitKind) {
        let (code, status) = how.siginfo_code_status();
        let info = SigInfo { signo: SIGCHLD, code, fields: Fields::Sender { pid: child, uid: status as u32 } };
        let mut tasks = self.tasks();
        let auto_reap = {
            let f = |p: &mut Proc| {
                let act = p.sigactions.get(&SIGCHLD).copied().unwrap_or_default();
                super::super::signal::post(p, info);
                act[0] == 1 || act[1] & SA_NOCLDWAIT != 0
            };
            if parent == tasks.current() {
                f(&mut self.proc())
            } else {
                tasks.saved_mut(parent).map(|s| f(&mut s.proc)).unwrap_or(false)
            }
        };
        if auto_reap {
            tasks.reap(child);
        }
        tasks.event();
    }

    /// The process to run next, with the time to wait before it runs
    /// (a sleeper), when the running one leaves as `leave`: `Ok(None)`
    /// keeps the running one (it sleeps first); `Err` is the deadlock
    /// report.
    fn choose(&self, leave: &Leave) -> Result<Option<(u32, Option<Instant>)>, String> {
        let t = self.tasks();
        let now = Instant::now();
        if let Some(p) = t.pick_next(now) {
            return Ok(Some((p, None)));
        }
        let mine = match leave {
            Leave::Sleeping(u) => Some(*u),
            Leave::Ready => Some(now),
            _ => None,
        };
        match (t.next_wake(), mine) {
            (Some((p, at)), Some(m)) if at < m => Ok(Some((p, Some(at)))),
            (_, Some(_)) => Ok(None),
            (Some((p, at)), None) => Ok(Some((p, Some(at)))),
            (None, None) => {
                let mut list: Vec<String> = t.waiting().iter().map(|(p, w)| format!("process {p} {w}")).collect();
                list.push(format!("process {} blocked", t.current()));
                Err(format!("deadlock: no process can run and none can wake another ({})", list.join(", ")))
            }
        }
    }

    /// Leaves the running process (`user` holding where it resumes) as
    /// `leave`, and makes `next` the running one: its registers and FPU
    /// into `user`, its space, signal state and files live, its CR3 and
    /// FS base asked of the vCPU.
    pub fn switch_to(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, next: u32, leave: Leave) {
        let cur = self.pid();
        if next == cur {
            let _ = self.tasks().resume(cur);
            return;
        }
        let Some(nx) = self.tasks().resume(next) else { return };
        let nx = *nx;
        let old_space = hv.replace_space(nx.space);
        let old_proc = std::mem::replace(&mut *self.proc(), nx.proc);
        let old_files = self.vfs().swap_files(nx.files);
        let old_fpu = user.fpu().ok();
        if let Some(f) = nx.fpu {
            user.set_fpu(f);
        }
        let old_regs = std::mem::replace(&mut user.regs, nx.regs);
        let fs_base = self.proc().fs_base;
        hv.request_switch(vcpu, Switch { cr3: hv.mapper().cr3(), fs_base });
        log::trace!("linux: switch {cur} -> {next}");
        let saved =
            Box::new(Saved { regs: old_regs, fpu: old_fpu, space: old_space, proc: old_proc, files: old_files });
        let gen = self.tasks().generation();
        let state = match leave {
            Leave::Ready => State::Ready(saved),
            Leave::Blocked => State::Blocked { saved, gen },
            Leave::Sleeping(until) => State::Sleeping { saved, until },
            Leave::Vfork(child) => State::VforkWait { saved, child },
            Leave::Ended => {
                if let Some(m) = self.tear_down(hv, vcpu, *saved) {
                    self.note_fatal(m);
                }
                return;
            }
        };
        self.tasks().set_state(cur, state);
    }

    /// Runs the slice timer while more than one process lives (and
    /// `syscall` stays in user mode: see the module docs); stops it
    /// otherwise. Called on vCPU 0, the thread it kicks.
    fn sync_slice_timer(&self) {
        let want = self.entry == SyscallEntry::User && self.tasks().live() > 1;
        let mut timer = self.slice_timer.lock().unwrap_or_else(|e| e.into_inner());
        match (want, timer.is_some()) {
            (true, false) => match SliceTimer::start(SLICE) {
                Ok(t) => *timer = Some(t),
                // Processes still switch at system calls.
                Err(e) => log::warn!("linux: no slice timer ({e}): a process that makes no system call keeps the vCPU"),
            },
            (false, true) => *timer = None,
            _ => {}
        }
    }

    /// Whether the running process's slice is over while another lives
    /// (what makes a kick worth looking at).
    pub fn slice_over(&self) -> bool {
        !self.tasks().alone() && self.slice_start.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= SLICE
    }

    /// The slice timer kicked vCPU 0 out of the running process's user
    /// code (`user` holds where it was): when its slice is over and
    /// another process can run, it is put aside ready and that one is
    /// loaded into `user`. Whether it switched.
    pub fn preempt(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> bool {
        if !self.slice_over() {
            return false;
        }
        let Some(next) = self.tasks().pick_next(Instant::now()) else { return false };
        if next == self.pid() {
            return false;
        }
        log::trace!("linux: slice over: {} preempted for {next}", self.pid());
        *self.slice_start.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.switch_to(hv, vcpu, user, next, Leave::Ready);
        true
    }

    /// After a call of the running process (`fx` its effects, `user`
    /// where it resumes): blocks it and runs another, or preempts it
    /// after its slice; a lone process is left alone.
    pub fn schedule(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, fx: Effects) -> Effects {
        let waits = self.waits_for_event.swap(false, Ordering::Relaxed);
        if self.tasks().alone() || fx.fatal.is_some() {
            return fx;
        }
        let leave = match fx.block {
            Some(_) if waits => Leave::Blocked,
            Some(Block::UntilStopped) => Leave::Blocked,
            Some(Block::Until(t)) => Leave::Sleeping(t),
            None => {
                let mut slice = self.slice_start.lock().unwrap_or_else(|e| e.into_inner());
                if slice.elapsed() < SLICE || self.tasks().pick_next(Instant::now()).is_none() {
                    return fx;
                }
                *slice = Instant::now();
                Leave::Ready
            }
        };
        match self.choose(&leave) {
            Ok(Some((next, at))) => {
                *self.slice_start.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                self.switch_to(hv, vcpu, user, next, leave);
                Effects { block: at.map(Block::Until), ..fx }
            }
            Ok(None) => fx,
            Err(report) => Effects { fatal: Some(report), block: None, ..fx },
        }
    }
}

/// What `clone` asks beyond `fork`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    /// The child's FS base (`CLONE_SETTLS`).
    pub tls: Option<u64>,
}

/// The pid the kind starts with.
pub const FIRST_PID: u32 = PID as u32;
