//! The kind's side of processes: what a thread keeps while another runs
//! ([`Saved`]) and what its process keeps while none of its threads runs
//! ([`Shared`]: address space, descriptors, the process-wide signal
//! state), `fork`/`vfork`/`clone` (served with the caller's registers), a
//! process's end (zombie, `SIGCHLD`, its memory and files released), and
//! the switch to the next thread on the vCPU (its registers and FPU
//! through the [`UserState`]; for a thread of another process, its CR3
//! and FS base through [`HostedKernel::request_switch`]; between threads
//! of one process, the FS base alone: no CR3 load, no TLB flush).
//!
//! Scheduling: all threads share vCPU 0. A thread runs until it blocks
//! (a call that answers `RESTART`, `pause`, a sleep, a futex wait), ends,
//! yields, or makes a system call after [`SLICE`] while another can run.
//! A thread that never makes a system call is preempted too where
//! `syscall` stays in user mode (PVM): while more than one thread lives
//! (of one process or of several), a timer kicks vCPU 0 out of the guest
//! once a slice ([`Linux::preempt`]); the next thread is loaded as at a
//! call (for one of the same process, its FS base alone). Where `syscall`
//! enters the kernel stub it returns with `sysret`, which would lose a
//! preempted thread's `rcx` and `r11`, so there no timer runs and a
//! spinning thread keeps the vCPU. When no thread can run and none
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
use crate::guest::kind::Preempted;
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

/// What a thread keeps while it does not run.
pub struct Saved {
    /// Its user registers (where it resumes).
    pub regs: kvm_regs,
    /// Its FPU/SSE state (`None`: the one the vCPU has).
    pub fpu: Option<FxImage>,
    /// Its signal state, FS base (the process-wide fields are taken from
    /// the process when it runs again).
    pub proc: Proc,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved").field("rip", &self.regs.rip).finish_non_exhaustive()
    }
}

/// What a process keeps while none of its threads runs.
pub struct Shared {
    /// Its address space.
    pub space: AddressSpace<GuestMem>,
    /// Its descriptors.
    pub files: FileContext,
    /// The last thread's state: its process-wide fields are the
    /// process's ([`Proc::inherit_shared`]).
    pub proc: Proc,
}

/// A fork's vfork child now runs on the vCPU (the parent waits): the
/// caller returns at once, its registers already the child's.
#[derive(Debug)]
pub struct RunsChild;

/// How the running process leaves the vCPU.
#[derive(Debug)]
pub enum Leave {
    /// Runnable.
    Ready,
    /// Until another thread does something, or the deadline.
    Blocked(Option<Instant>),
    /// Until then.
    Sleeping(Instant),
    /// Until its vfork child ends.
    Vfork(u32),
    /// It ended (already a zombie in the table; its process may live on).
    Ended,
}

type Table = Tasks<Box<Saved>>;

impl Linux {
    /// The process table, locked.
    pub(crate) fn tasks(&self) -> std::sync::MutexGuard<'_, Table> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running process's pid (its thread group: `getpid`).
    pub fn pid(&self) -> u32 {
        self.tasks().current_tgid()
    }

    /// The running thread's id (`gettid`).
    pub fn tid(&self) -> u32 {
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

    /// As [`Linux::wait_for_event`], runnable again at `until` anyway
    /// (a futex wait's timeout).
    pub fn wait_for_event_until(&self, until: Option<Instant>) {
        *self.wait_deadline.lock().unwrap_or_else(|e| e.into_inner()) = until;
        self.wait_for_event();
    }

    /// The call about to answer `RESTART` for a signal is made again
    /// after the handler even without `SA_RESTART`.
    pub fn restart_always(&self) {
        self.restarts_always.store(true, Ordering::Relaxed);
    }

    /// `sched_yield`: another thread runs after this call, if one can.
    pub fn yield_now(&self) {
        self.yields.store(true, Ordering::Relaxed);
    }

    /// What processes keep while none of their threads runs, locked.
    pub(crate) fn aside(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u32, Shared>> {
        self.aside.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The futex waiters, locked.
    pub(crate) fn futexes(&self) -> std::sync::MutexGuard<'_, super::super::futex::Futexes> {
        self.futexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running thread blocks on a futex until `until` (its timeout)
    /// if given: the event count no longer wakes it, only a wake, a
    /// signal, its timeout or its process's real-time timer.
    pub fn wait_on_futex(&self, until: Option<Instant>) {
        let timer = self.proc().itimer_real.map(|t| t.deadline);
        let wake = match (until, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.parks_on_futex.store(true, Ordering::Relaxed);
        self.wait_for_event_until(wake);
    }

    /// Makes the threads futex wakes woke since the last time runnable.
    pub fn unpark_woken(&self) {
        let woken = self.futexes().take_woken();
        if woken.is_empty() {
            return;
        }
        let mut t = self.tasks();
        for tid in woken {
            t.unpark(tid);
        }
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
        proc.clear_child_tid = 0;
        proc.robust_list = 0;
        let mut regs = kvm_regs { rax: 0, ..*resume };
        if let Some(c) = clone {
            if c.stack != 0 {
                regs.rsp = c.stack;
            }
            if let Some(tls) = c.tls {
                proc.fs_base = tls;
            }
            proc.set_child_tid = c.child_settid.unwrap_or(0);
            proc.clear_child_tid = c.child_cleartid.unwrap_or(0);
        }
        let files = self.vfs().fork_files();
        let fpu = user.fpu().ok();
        let shared = Shared { space, files, proc: proc.clone() };
        let saved = Box::new(Saved { regs, fpu, proc });
        let pid = match self.tasks().spawn(saved) {
            Ok(p) => p,
            Err(e) => {
                // The copy goes back at once.
                if let Some(m) = self.tear_down(hv, vcpu, shared) {
                    return Ok((0, Effects { fatal: Some(m), ..Default::default() }));
                }
                return Ok((-i64::from(e.errno()), Effects::default()));
            }
        };
        self.aside().insert(pid, shared);
        // CLONE_PARENT_SETTID: the parent's word (not the child's copy).
        if let Some(ptid) = clone.and_then(|c| c.parent_settid) {
            let _ = hv.write_user(vcpu, ptid, &pid.to_le_bytes());
        }
        log::debug!("linux: process {} forked {pid}", self.pid());
        self.sync_slice_timer(vcpu);
        if vfork {
            user.regs = kvm_regs { rax: u64::from(pid), ..*resume };
            // Another process: CR3 and FS base come with the switch.
            let _ = self.switch_to(hv, vcpu, user, pid, Leave::Vfork(pid));
            return Err(RunsChild);
        }
        Ok((i64::from(pid), Effects::default()))
    }

    /// Ends the running process (every thread of it) as `how` (not the
    /// first one: its end is the run's): a zombie, `SIGCHLD` to its
    /// parent (reaped at once when the parent ignores `SIGCHLD`), then the
    /// next thread runs.
    pub fn end_current(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, how: ExitKind) -> Effects {
        let (pid, tid) = (self.pid(), self.tid());
        log::debug!("linux: process {pid} ended: {how:?}");
        // Its threads on other vCPUs leave them first.
        if let Err(m) = self.evict_process(hv, vcpu, pid) {
            return Effects { fatal: Some(m), ..Default::default() };
        }
        // Every thread's robust list, in the process's own (live) space.
        let mine = std::mem::take(&mut self.proc().robust_list);
        self.release_robust(hv, vcpu, pid, tid, mine);
        for (t, head) in self.robust_heads(pid) {
            self.release_robust(hv, vcpu, pid, t, head);
        }
        let (parent, gone) = self.tasks().end_group(pid, Some(tid), how);
        self.forget_threads(&gone);
        self.futexes().forget_process(pid);
        if let Some(p) = parent {
            self.notify_parent(p, pid, how);
        }
        self.run_next_after_end(hv, vcpu, user)
    }

    /// The robust-list heads of process `pid`'s threads that do not run
    /// (each taken: a list is walked once).
    fn robust_heads(&self, pid: u32) -> Vec<(u32, u64)> {
        let mut t = self.tasks();
        let mut out = Vec::new();
        for tid in t.threads(pid) {
            if let Some(s) = t.saved_mut(tid) {
                let head = std::mem::take(&mut s.proc.robust_list);
                if head != 0 {
                    out.push((tid, head));
                }
            }
        }
        out
    }

    /// Forgets what the ended threads `tids` waited on, and hands the PI
    /// words they owned to their waiters.
    pub(crate) fn forget_threads(&self, tids: &[u32]) {
        {
            let mut f = self.futexes();
            for &t in tids {
                f.cancel(t);
                f.pi_owner_died(t);
            }
        }
        {
            let mut c = self.cpus();
            for t in tids {
                c.retrying.remove(t);
            }
        }
        self.unpark_woken();
    }

    /// The running thread ended (a zombie in the table): the next one
    /// runs (and the slice timer stops if it is the last but one).
    pub(crate) fn run_next_after_end(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Effects {
        let pid = self.tid();
        self.sync_slice_timer(vcpu);
        let next = self.choose(&Leave::Ended);
        // Nothing to run here now (another vCPU's thread may wake one):
        // this one idles.
        if self.smp() && !matches!(next, Ok(Some((_, None)))) {
            return self.go_idle(hv, vcpu, user, Leave::Ended);
        }
        match next {
            Ok(Some((next, at))) => {
                let fs_base = self.switch_to(hv, vcpu, user, next, Leave::Ended);
                Effects { block: at.map(Block::Until), fs_base, ..Default::default() }
            }
            // Unreachable: the first process never ends here.
            Ok(None) => {
                Effects { fatal: Some(format!("process {pid} ended with nothing to run")), ..Default::default() }
            }
            Err(report) => Effects { fatal: Some(report), ..Default::default() },
        }
    }

    /// Ends process `pid`, none of whose threads runs, killed by `sig`.
    pub fn kill_other(&self, hv: &HostedKernel, vcpu: u8, pid: u32, sig: u32) -> Option<String> {
        let how = ExitKind::Signaled { sig: sig as u8, core: false };
        // Its threads on other vCPUs leave them first.
        if let Err(m) = self.evict_process(hv, vcpu, pid) {
            return Some(m);
        }
        // Its threads' robust lists, walked in its space, made live for
        // the walk (the vCPU keeps the running process's CR3).
        let heads = self.robust_heads(pid);
        if !heads.is_empty() {
            let shared = self.aside().remove(&pid);
            if let Some(sh) = shared {
                let running = hv.replace_space(sh.space);
                for (t, head) in heads {
                    self.release_robust(hv, vcpu, pid, t, head);
                }
                let space = hv.replace_space(running);
                self.aside().insert(pid, Shared { space, ..sh });
            }
        }
        let (parent, gone) = self.tasks().end_group(pid, None, how);
        self.forget_threads(&gone);
        self.futexes().forget_process(pid);
        self.sync_slice_timer(vcpu);
        self.notify_parent(parent?, pid, how);
        let shared = self.aside().remove(&pid)?;
        self.tear_down(hv, vcpu, shared)
    }

    /// The first process ended: every other one is killed and its memory
    /// returned (the run ends with the first one's status).
    pub fn end_all_others(&self, hv: &HostedKernel, vcpu: u8) -> Option<String> {
        // Every other vCPU leaves its thread before any space goes.
        if let Err(m) = self.evict(hv, vcpu, |_| true) {
            return Some(m);
        }
        let others = self.tasks().others();
        for p in others {
            self.tasks().exit(p, ExitKind::Signaled { sig: SIGKILL as u8, core: false });
        }
        let aside = std::mem::take(&mut *self.aside());
        let mut fatal = None;
        for (_, s) in aside {
            fatal = fatal.or(self.tear_down(hv, vcpu, s));
        }
        self.sync_slice_timer(vcpu);
        fatal
    }

    pub(crate) fn tear_down(&self, hv: &HostedKernel, vcpu: u8, s: Shared) -> Option<String> {
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
            if parent == tasks.current_tgid() {
                f(&mut self.proc())
            } else {
                // The parent's first live thread takes it, with the
                // process's dispositions (and makes its call again if
                // it waits on a futex).
                let first = tasks.threads(parent).first().copied();
                if let Some(t) = first {
                    tasks.unpark(t);
                }
                let shared = self.aside().get(&parent).map(|s| s.proc.clone());
                let saved = first.and_then(|t| tasks.saved_mut(t)).map(|s| {
                    if let Some(sh) = &shared {
                        s.proc.inherit_shared(sh);
                    }
                    f(&mut s.proc)
                });
                // A parent thread running on another vCPU takes it there.
                match (saved, first) {
                    (Some(r), _) => r,
                    (None, Some(t)) => {
                        drop(tasks);
                        let r = self.cpus().off.get_mut(&t).is_some_and(|p| {
                            if let Some(sh) = &shared {
                                p.inherit_shared(sh);
                            }
                            f(p)
                        });
                        tasks = self.tasks();
                        r
                    }
                    (None, None) => false,
                }
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
            Leave::Sleeping(u) | Leave::Blocked(Some(u)) => Some(*u),
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
                drop(t);
                Err(format!("deadlock: no process can run and none can wake another ({})", list.join(", ")))
            }
        }
    }

    /// Leaves the running thread (`user` holding where it resumes) as
    /// `leave`, and makes `next` the running one: its registers and FPU
    /// into `user`, its signal state live; for a thread of another
    /// process, that process's space and files live and its CR3 and FS
    /// base asked of the vCPU. Returns the FS base to load when `next` is
    /// of the same process (nothing else changes: no CR3 load, no flush).
    pub fn switch_to(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        user: &mut UserState<'_>,
        next: u32,
        leave: Leave,
    ) -> Option<u64> {
        let (cur, cur_pid, next_pid) = {
            let t = self.tasks();
            (t.current(), t.current_tgid(), t.tgid(next))
        };
        if next == cur {
            let _ = self.tasks().resume(cur);
            return None;
        }
        let next_pid = next_pid?;
        let same = next_pid == cur_pid;
        let incoming = if same { None } else { Some(self.aside().remove(&next_pid)) };
        if incoming.as_ref().is_some_and(Option::is_none) {
            self.note_fatal(format!("thread {next} of process {next_pid}: its address space is lost"));
            return None;
        }
        let resumed = self.tasks().resume(next);
        let Some(nx) = resumed else {
            // Not runnable after all: its process's state goes back aside.
            if let Some(Some(sh)) = incoming {
                self.aside().insert(next_pid, sh);
            }
            return None;
        };
        let nx = *nx;
        let old_proc = std::mem::replace(&mut *self.proc(), nx.proc);
        let old_fpu = user.fpu().ok();
        if let Some(f) = nx.fpu {
            user.set_fpu(f);
        }
        let old_regs = std::mem::replace(&mut user.regs, nx.regs);
        let mut fs_effect = None;
        let mut outgoing = None;
        match incoming.flatten() {
            None => {
                self.proc().inherit_shared(&old_proc);
                fs_effect = Some(self.proc().fs_base);
            }
            Some(sh) => {
                let old_space = hv.replace_space(sh.space);
                let old_files = self.vfs().swap_files(sh.files);
                self.proc().inherit_shared(&sh.proc);
                let fs_base = self.proc().fs_base;
                hv.request_switch(vcpu, Switch { cr3: hv.mapper().cr3(), fs_base });
                outgoing = Some(Shared { space: old_space, files: old_files, proc: old_proc.clone() });
            }
        }
        // CLONE_CHILD_SETTID: the new thread's tid, before it runs.
        let settid = std::mem::take(&mut self.proc().set_child_tid);
        if settid != 0 {
            let _ = hv.write_user(vcpu, settid, &next.to_le_bytes());
        }
        log::trace!("linux: switch {cur} -> {next}");
        self.note_on_cpu(vcpu, next);
        let saved = Box::new(Saved { regs: old_regs, fpu: old_fpu, proc: old_proc });
        let gen = self.tasks().generation();
        let state = match leave {
            Leave::Ready => State::Ready(saved),
            Leave::Blocked(until) => State::Blocked { saved, gen, until },
            Leave::Sleeping(until) => State::Sleeping { saved, until },
            Leave::Vfork(child) => State::VforkWait { saved, child },
            Leave::Ended => {
                let live = {
                    let mut t = self.tasks();
                    // A thread is reaped by nobody; a leader stays a zombie.
                    t.remove_thread(cur);
                    !t.threads(cur_pid).is_empty()
                };
                if let Some(sh) = outgoing {
                    if live {
                        self.aside().insert(cur_pid, sh);
                    } else if let Some(m) = self.tear_down(hv, vcpu, sh) {
                        self.note_fatal(m);
                    }
                }
                return fs_effect;
            }
        };
        if let Some(sh) = outgoing {
            self.aside().insert(cur_pid, sh);
        }
        self.tasks().set_state(cur, state);
        fs_effect
    }

    /// Runs `vcpu`'s slice timer while more than one thread lives (of
    /// one process or of several; and `syscall` stays in user mode: see
    /// the module docs); stops it otherwise. Called on `vcpu`'s own
    /// thread, the one its timer kicks.
    pub(crate) fn sync_slice_timer(&self, vcpu: u8) {
        let want = self.entry == SyscallEntry::User && self.tasks().live() > 1;
        let mut timers = self.slice_timer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(timer) = timers.get_mut(usize::from(vcpu)) else { return };
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

    /// Whether the slice of `vcpu`'s thread is over while another lives
    /// (what makes a kick worth looking at).
    pub fn slice_over(&self, vcpu: u8) -> bool {
        !self.tasks().alone() && self.cpus().slice_start.get(usize::from(vcpu)).is_some_and(|s| s.elapsed() >= SLICE)
    }

    /// A new slice for `vcpu`'s thread.
    fn new_slice(&self, vcpu: u8) {
        if let Some(s) = self.cpus().slice_start.get_mut(usize::from(vcpu)) {
            *s = Instant::now();
        }
    }

    /// The slice timer kicked vCPU 0 out of the running thread's user
    /// code (`user` holds where it was): when its slice is over and
    /// another thread (of its process or another) can run, it is put
    /// aside ready and that one is loaded into `user`. `Some` when it
    /// switched, with the FS base to load for a thread of the same
    /// process (another process's CR3 and FS base come through
    /// [`HostedKernel::request_switch`]).
    pub fn preempt(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Option<Preempted> {
        if !self.slice_over(vcpu) {
            return None;
        }
        let cur = self.tid();
        let next = self.tasks().pick_next(Instant::now())?;
        if next == cur {
            return None;
        }
        log::trace!("linux: slice over: thread {cur} preempted for {next}");
        self.new_slice(vcpu);
        let fs_base = self.switch_to(hv, vcpu, user, next, Leave::Ready);
        Some(Preempted { fs_base })
    }

    /// After a call of the running process (`fx` its effects, `user`
    /// where it resumes): blocks it and runs another, or preempts it
    /// after its slice; a lone process is left alone.
    pub fn schedule(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, fx: Effects) -> Effects {
        let waits = self.waits_for_event.swap(false, Ordering::Relaxed);
        let until = self.wait_deadline.lock().unwrap_or_else(|e| e.into_inner()).take();
        let yields = self.yields.swap(false, Ordering::Relaxed);
        let on_futex = self.parks_on_futex.swap(false, Ordering::Relaxed);
        if self.tasks().alone() || fx.fatal.is_some() {
            return fx;
        }
        let leave = match fx.block {
            Some(_) if waits => Leave::Blocked(until),
            Some(Block::UntilStopped) => Leave::Blocked(None),
            Some(Block::Until(t)) => Leave::Sleeping(t),
            None => {
                let within = self.cpus().slice_start.get(usize::from(vcpu)).is_some_and(|s| s.elapsed() < SLICE);
                if (!yields && within) || self.tasks().pick_next(Instant::now()).is_none() {
                    return fx;
                }
                self.new_slice(vcpu);
                Leave::Ready
            }
        };
        let chosen = self.choose(&leave);
        // With several vCPUs a thread that waits never keeps its vCPU:
        // unless another can run now, this vCPU idles (and picks up
        // whatever becomes runnable, the waiting thread's wake included).
        let idle = if self.smp() {
            !matches!(leave, Leave::Ready) && !matches!(chosen, Ok(Some((_, None))))
        } else {
            chosen.is_err() && self.others_on_cpu(vcpu)
        };
        if idle {
            if on_futex {
                let mut t = self.tasks();
                let me = t.current();
                t.park_on_futex(me);
            }
            let idle = self.go_idle(hv, vcpu, user, leave);
            return Effects { fatal: idle.fatal, block: None, fs_base: None, ..fx };
        }
        match chosen {
            Ok(Some((next, at))) => {
                self.new_slice(vcpu);
                if on_futex && matches!(leave, Leave::Blocked(_)) {
                    let mut t = self.tasks();
                    let me = t.current();
                    if next != me {
                        t.park_on_futex(me);
                    }
                }
                let fs_base = self.switch_to(hv, vcpu, user, next, leave).or(fx.fs_base);
                Effects { block: at.map(Block::Until), fs_base, ..fx }
            }
            Ok(None) => fx,
            Err(report) => Effects { fatal: Some(report), block: None, ..fx },
        }
    }
}

/// What `clone` and `clone3` ask beyond `fork`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneArgs {
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    /// The child's FS base (`CLONE_SETTLS`).
    pub tls: Option<u64>,
    /// `CLONE_PARENT_SETTID`: where the parent gets the child's id.
    pub parent_settid: Option<u64>,
    /// `CLONE_CHILD_SETTID`: where the child gets its id.
    pub child_settid: Option<u64>,
    /// `CLONE_CHILD_CLEARTID`: the child's `clear_child_tid`.
    pub child_cleartid: Option<u64>,
}

/// The pid the kind starts with.
pub const FIRST_PID: u32 = PID as u32;
