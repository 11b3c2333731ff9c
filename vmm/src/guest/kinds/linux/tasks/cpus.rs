//! Threads on several vCPUs (`--vcpus N`): which thread each vCPU runs,
//! which one's state is live, the idle loop, and taking a process's
//! threads off the other vCPUs before it ends.
//!
//! The kind's state is one process's at a time (its address space in
//! the mapper, its descriptors in the file layer, one thread's signal
//! state in [`Linux::proc`]). With several vCPUs, every exit the kind or
//! the hosted kernel acts on takes one lock over the kind
//! ([`Linux::enter_cpu`], through `GuestKind::enter`) and makes the
//! exiting vCPU's thread the live one first ([`Linux::make_live`]): its
//! process's space and files in, the previously live one's aside, the
//! previous thread's own state kept in [`Cpus::off`] while it runs on its
//! vCPU. Everything else (calls, faults, fork, signals, the single-vCPU
//! scheduler) then works as with one vCPU, one exit at a time; user code
//! runs on all vCPUs at once. Each vCPU loads its own thread's CR3 (a
//! switch it asks for itself) and TLB shootdowns reach every vCPU, so a
//! change to any process's tables is flushed wherever it may be cached.
//!
//! A vCPU with no thread runs the idle loop: a `syscall` of [`IDLE_NR`]
//! in the trampoline page, in the first process's address space (the one
//! that lives as long as the run), which picks the next runnable thread
//! or waits a millisecond. Before a process ends (its `exit_group`, a
//! fatal signal, a kill), its threads running on other vCPUs are taken
//! off them ([`Linux::evict`]): each is told to load the idle loop and
//! the first process's CR3, kicked out of the guest, and waited for, so
//! no guest instruction runs in a space while it is torn down.
//!
//! With one vCPU none of this runs (no lock, no idle loop).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_regs;

use super::super::process::{Linux, Proc};
use super::switch::{Leave, Saved, Shared};
use super::table::State;
use crate::guest::kind::Entered;
use crate::guest::user_state::UserState;
use crate::hosted::hypercall::{Block, Effects, HostedKernel, Switch};
use crate::hosted::trampoline;

/// Most vCPUs a Linux program may have.
pub const MAX_VCPUS: u8 = 8;
/// The call the idle loop makes (no Linux call has this number).
pub const IDLE_NR: u64 = trampoline::IDLE_NR;
/// How long an idle vCPU waits before it looks again.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// How long a vCPU taken off a process may take to leave the guest.
const EVICT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which thread each vCPU runs.
#[derive(Debug)]
pub struct Cpus {
    /// The thread each vCPU runs (`None`: the idle loop).
    pub on_cpu: Vec<Option<u32>>,
    /// The thread whose state is live ([`Linux::proc`]); `None` after
    /// the live one left its vCPU (the state there is then a copy, whose
    /// process-wide fields are still the live process's).
    pub live: Option<u32>,
    /// The process whose address space and files are live.
    pub live_pid: u32,
    /// The state of threads on a vCPU that are not live.
    pub off: BTreeMap<u32, Proc>,
    /// vCPUs whose thread was taken from them: they load the idle loop
    /// at their next exit.
    pub rerouted: Vec<bool>,
    /// When each vCPU's thread got it (preemption).
    pub slice_start: Vec<Instant>,
    /// Threads put on a vCPU to make a blocking call again (a wait, a
    /// sleep): still in that call until it completes, so `/proc` shows
    /// them sleeping, as Linux shows a thread in its wait.
    pub retrying: std::collections::BTreeSet<u32>,
}

impl Cpus {
    /// `n` vCPUs, the first running thread `first`.
    pub fn new(n: u8, first: u32) -> Self {
        let n = usize::from(n.max(1));
        let mut on_cpu = vec![None; n];
        on_cpu[0] = Some(first);
        Cpus {
            on_cpu,
            live: Some(first),
            live_pid: first,
            off: BTreeMap::new(),
            rerouted: vec![false; n],
            slice_start: vec![Instant::now(); n],
            retrying: Default::default(),
        }
    }
}

/// The registers the idle loop starts with.
pub fn idle_regs() -> kvm_regs {
    kvm_regs { rip: trampoline::IDLE_VA, rflags: 0x202, ..Default::default() }
}

impl Linux {
    /// The vCPU table, locked.
    pub(crate) fn cpus(&self) -> std::sync::MutexGuard<'_, Cpus> {
        self.cpus.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many vCPUs the program has.
    pub fn vcpu_count(&self) -> u8 {
        self.vcpus
    }

    /// Whether the program has more than one vCPU.
    pub fn smp(&self) -> bool {
        self.vcpus > 1
    }

    /// `GuestKind::enter`: with several vCPUs, the kind's lock, and
    /// `vcpu`'s thread made live.
    pub(crate) fn enter_cpu(&self, hv: &HostedKernel, vcpu: u8) -> Entered<'_> {
        if !self.smp() {
            return Entered::default();
        }
        let guard = self.big_lock.lock().unwrap_or_else(|e| e.into_inner());
        let gone = self.cpus().rerouted.get(usize::from(vcpu)).copied().unwrap_or(false);
        let fatal = if gone { None } else { self.make_live(hv, vcpu).err() };
        self.sync_slice_timer(vcpu);
        // A thread whose state could not be made live: nothing of this
        // exit may touch the space that is live instead.
        Entered { guard: Some(guard), gone: gone || fatal.is_some(), fatal }
    }

    /// Makes the thread `vcpu` runs the live one (nothing for an idle
    /// vCPU or when it already is).
    fn make_live(&self, hv: &HostedKernel, vcpu: u8) -> Result<(), String> {
        let (want, live) = {
            let c = self.cpus();
            (c.on_cpu.get(usize::from(vcpu)).copied().flatten(), c.live)
        };
        let Some(want) = want else { return Ok(()) };
        if live == Some(want) {
            return Ok(());
        }
        let want_pid = self.tasks().tgid(want);
        let live_pid = self.cpus().live_pid;
        let Some(want_pid) = want_pid else {
            return Err(format!("vCPU {vcpu}: thread {want} is not in the process table"));
        };
        if want_pid != live_pid && !self.aside().contains_key(&want_pid) {
            return Err(format!("vCPU {vcpu}: thread {want} of process {want_pid}: its address space is lost"));
        }
        let Some(incoming) = self.cpus().off.remove(&want) else {
            return Err(format!("vCPU {vcpu}: the state of thread {want} is lost"));
        };
        self.swap_in(hv, want, want_pid, live_pid, live, incoming);
        Ok(())
    }

    /// Makes thread `next` (of process `next_pid`, with state `incoming`)
    /// the live one in place of `live` (of the live process `live_pid`),
    /// which runs on another vCPU (its state is kept off-CPU) or left.
    fn swap_in(&self, hv: &HostedKernel, next: u32, next_pid: u32, live_pid: u32, live: Option<u32>, incoming: Proc) {
        let old = std::mem::replace(&mut *self.proc(), incoming);
        if let Some(l) = live {
            self.cpus().off.insert(l, old.clone());
        }
        if next_pid == live_pid {
            self.proc().inherit_shared(&old);
        } else {
            let Some(sh) = self.aside().remove(&next_pid) else {
                self.note_fatal(format!("thread {next} of process {next_pid}: its address space is lost"));
                return;
            };
            let old_space = hv.replace_space(sh.space);
            let old_files = self.vfs().swap_files(sh.files);
            self.proc().inherit_shared(&sh.proc);
            self.aside().insert(live_pid, Shared { space: old_space, files: old_files, proc: old });
        }
        self.tasks().set_current(next);
        let mut c = self.cpus();
        c.live = Some(next);
        c.live_pid = next_pid;
    }

    /// The calling thread's call completed (it is no longer in a wait it
    /// makes again).
    pub(crate) fn call_done(&self, tid: u32) {
        if self.smp() {
            self.cpus().retrying.remove(&tid);
        }
    }

    /// Whether thread `tid` runs only to make a blocking call again.
    pub(crate) fn retrying(&self, tid: u32) -> bool {
        self.smp() && self.cpus().retrying.contains(&tid)
    }

    /// Records that `vcpu` now runs `tid`, the live thread.
    pub(crate) fn note_on_cpu(&self, vcpu: u8, tid: u32) {
        let pid = self.tasks().tgid(tid);
        let mut c = self.cpus();
        if let Some(p) = pid {
            c.live_pid = p;
        }
        if let Some(slot) = c.on_cpu.get_mut(usize::from(vcpu)) {
            *slot = Some(tid);
        }
        c.live = Some(tid);
    }

    /// Whether a thread runs on a vCPU other than `vcpu`.
    pub(crate) fn others_on_cpu(&self, vcpu: u8) -> bool {
        self.cpus().on_cpu.iter().enumerate().any(|(i, t)| i != usize::from(vcpu) && t.is_some())
    }

    /// Runs `f` on the signal state of thread `tid` wherever it is: live,
    /// on another vCPU, or saved. `None` for a thread with no state
    /// (a zombie, or none).
    pub(crate) fn with_thread_proc<R>(&self, tid: u32, f: impl FnOnce(&mut Proc) -> R) -> Option<R> {
        if self.cpus().live == Some(tid) {
            return Some(f(&mut self.proc()));
        }
        if let Some(p) = self.cpus().off.get_mut(&tid) {
            return Some(f(p));
        }
        self.tasks().saved_mut(tid).map(|s| f(&mut s.proc))
    }

    /// The idle loop's call on `vcpu` (or the first exit of a vCPU whose
    /// thread was taken from it): the next runnable thread is loaded into
    /// `user`, or the vCPU waits a millisecond and looks again. A run
    /// with no thread on any vCPU, none runnable and none to wake is a
    /// deadlock.
    pub(crate) fn idle_call(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Effects {
        let v = usize::from(vcpu);
        let was_rerouted = std::mem::take(&mut self.cpus().rerouted[v]);
        if was_rerouted {
            // Whatever the exit was, it was the taken thread's.
            user.regs = idle_regs();
            return Effects::default();
        }
        let next = self.tasks().pick_next(Instant::now());
        let Some(next) = next else {
            let nobody = self.cpus().on_cpu.iter().all(Option::is_none);
            if nobody && self.tasks().next_wake().is_none() {
                let list: Vec<String> =
                    self.tasks().waiting().iter().map(|(p, w)| format!("process {p} {w}")).collect();
                return Effects {
                    fatal: Some(format!(
                        "deadlock: no process can run and none can wake another ({})",
                        list.join(", ")
                    )),
                    ..Default::default()
                };
            }
            return Effects { block: Some(Block::Until(Instant::now() + IDLE_POLL)), ..Default::default() };
        };
        self.run_from_idle(hv, vcpu, user, next)
    }

    /// Loads thread `next` (runnable, not on a vCPU) onto idle `vcpu`.
    fn run_from_idle(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, next: u32) -> Effects {
        let next_pid = self.tasks().tgid(next);
        let live_pid = self.cpus().live_pid;
        let Some(next_pid) = next_pid else { return Effects::default() };
        if next_pid != live_pid && !self.aside().contains_key(&next_pid) {
            return Effects {
                fatal: Some(format!("thread {next} of process {next_pid}: its address space is lost")),
                ..Default::default()
            };
        }
        let live = self.cpus().live;
        let waited =
            self.tasks().get(next).is_some_and(|t| matches!(t.state, State::Blocked { .. } | State::Sleeping { .. }));
        let Some(saved) = self.tasks().resume(next) else { return Effects::default() };
        if waited {
            self.cpus().retrying.insert(next);
        }
        let Saved { regs, fpu, proc } = *saved;
        self.swap_in(hv, next, next_pid, live_pid, live, proc);
        user.regs = regs;
        if let Some(f) = fpu {
            user.set_fpu(f);
        }
        let settid = std::mem::take(&mut self.proc().set_child_tid);
        if settid != 0 {
            let _ = hv.write_user(vcpu, settid, &next.to_le_bytes());
        }
        self.note_on_cpu(vcpu, next);
        self.cpus().slice_start[usize::from(vcpu)] = Instant::now();
        let fs_base = self.proc().fs_base;
        hv.request_switch(vcpu, Switch { cr3: hv.mapper().cr3(), fs_base });
        log::trace!("linux: vCPU {vcpu} leaves the idle loop for thread {next}");
        Effects::default()
    }

    /// The live thread (on `vcpu`, `user` holding where it resumes) leaves
    /// its vCPU as `leave` with nothing to run after it: `vcpu` runs the
    /// idle loop. A thread that ended whose process has no thread left
    /// takes its process with it (the first process's space is made live
    /// first: the kind always has one).
    pub(crate) fn go_idle(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, leave: Leave) -> Effects {
        let (cur, cur_pid) = {
            let t = self.tasks();
            (t.current(), t.current_tgid())
        };
        let saved = Box::new(Saved { regs: user.regs, fpu: user.fpu().ok(), proc: self.proc().clone() });
        let gen = self.tasks().generation();
        let mut fatal = None;
        match leave {
            Leave::Ready => self.tasks().set_state(cur, State::Ready(saved)),
            Leave::Blocked(until) => self.tasks().set_state(cur, State::Blocked { saved, gen, until }),
            Leave::Sleeping(until) => self.tasks().set_state(cur, State::Sleeping { saved, until }),
            Leave::Vfork(child) => self.tasks().set_state(cur, State::VforkWait { saved, child }),
            Leave::Ended => {
                let left = {
                    let mut t = self.tasks();
                    t.remove_thread(cur);
                    let left = t.threads(cur_pid);
                    // The live thread is gone: one of its process stands
                    // for it (its leader, a zombie or not, while it is in
                    // the table).
                    let anchor = if t.tgid(cur_pid).is_some() { Some(cur_pid) } else { left.first().copied() };
                    if let Some(a) = anchor {
                        t.set_current(a);
                    }
                    left
                };
                if left.is_empty() {
                    fatal = self.retire_live_process(hv, vcpu, cur_pid);
                }
            }
        }
        {
            let mut c = self.cpus();
            c.on_cpu[usize::from(vcpu)] = None;
            c.live = None;
        }
        user.regs = idle_regs();
        hv.request_switch(vcpu, Switch { cr3: self.idle_cr3(), fs_base: 0 });
        log::trace!("linux: vCPU {vcpu} idles after thread {cur}");
        Effects { fatal, ..Default::default() }
    }

    /// The live process `pid` has no thread left: the first process's
    /// space becomes live and `pid`'s is torn down.
    fn retire_live_process(&self, hv: &HostedKernel, vcpu: u8, pid: u32) -> Option<String> {
        let init = self.tasks().init();
        if pid == init {
            return None;
        }
        let Some(sh) = self.aside().remove(&init) else {
            return Some(format!("process {init}: its address space is lost"));
        };
        let old_space = hv.replace_space(sh.space);
        let old_files = self.vfs().swap_files(sh.files);
        let old_proc = std::mem::replace(&mut *self.proc(), sh.proc);
        self.tasks().set_current(init);
        self.cpus().live_pid = init;
        self.tear_down(hv, vcpu, Shared { space: old_space, files: old_files, proc: old_proc })
    }

    /// The CR3 the idle loop runs with: the first process's.
    pub(crate) fn idle_cr3(&self) -> vm_memory::GuestAddress {
        self.idle_cr3.get().copied().unwrap_or(vm_memory::GuestAddress(0))
    }

    /// Takes every thread for which `which` holds off the vCPUs other
    /// than `vcpu` (each is then runnable, with no registers worth
    /// resuming: its process is about to end), and waits until those
    /// vCPUs are out of the guest. `Err`: a vCPU did not leave (the run
    /// cannot go on).
    pub(crate) fn evict(&self, hv: &HostedKernel, vcpu: u8, which: impl Fn(u32) -> bool) -> Result<(), String> {
        if !self.smp() {
            return Ok(());
        }
        let mut taken = Vec::new();
        {
            let mut c = self.cpus();
            for (u, slot) in c.on_cpu.iter_mut().enumerate() {
                if u == usize::from(vcpu) {
                    continue;
                }
                if let Some(t) = *slot {
                    if which(t) {
                        *slot = None;
                        taken.push((u as u8, t));
                    }
                }
            }
            for &(_, t) in &taken {
                if c.live == Some(t) {
                    c.live = None;
                }
            }
        }
        // Kicked first: from here until it takes the kind's lock, the vCPU
        // runs no guest instruction (a kick makes its next entry leave at
        // once), so the switch asked for below cannot return it to the
        // taken thread's user code in the idle space.
        let vcpus: Vec<u8> = taken.iter().map(|&(u, _)| u).collect();
        hv.kick_vcpus(&vcpus);
        for &(u, t) in &taken {
            let proc = self.cpus().off.remove(&t).unwrap_or_else(|| self.proc().clone());
            let saved = Box::new(Saved { regs: idle_regs(), fpu: None, proc });
            self.tasks().set_state(t, State::Ready(saved));
            hv.request_switch(u, Switch { cr3: self.idle_cr3(), fs_base: 0 });
            log::trace!("linux: thread {t} taken off vCPU {u}");
        }
        {
            let mut c = self.cpus();
            for &(u, _) in &taken {
                c.rerouted[usize::from(u)] = true;
            }
        }
        for &(u, _) in &taken {
            hv.take_out_of_guest(u, EVICT_TIMEOUT)?;
        }
        Ok(())
    }

    /// Takes process `pid`'s threads off the other vCPUs (see
    /// [`Linux::evict`]).
    pub(crate) fn evict_process(&self, hv: &HostedKernel, vcpu: u8, pid: u32) -> Result<(), String> {
        if !self.smp() {
            return Ok(());
        }
        let threads = self.tasks().threads(pid);
        self.evict(hv, vcpu, |t| threads.contains(&t))
    }
}
