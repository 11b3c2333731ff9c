//! Threads of the Linux kind: `clone` with `CLONE_THREAD` (a new thread
//! sharing the caller's address space, descriptors and dispositions,
//! with its own registers, stack, FS base, mask and tid), a thread's
//! `exit` (`CLONE_CHILD_CLEARTID`: the tid word zeroed and its futex
//! woken), and where a signal goes: to one thread (`tgkill`, `tkill`), or
//! to a process, whose running thread takes it if it does not block it,
//! else the first thread that does not.
//!
//! What this module does not do: the switch between threads
//! (`super::switch`), the end of a whole process (`exit_group`, a fatal
//! signal: `super::switch`), futexes (`super::super::futex`).

use kvm_bindings::kvm_regs;

use super::super::futex::MATCH_ANY;
use super::super::process::Linux;
use super::super::signal::{self, SigInfo};
use super::super::syscalls::{futex_key, Ctx};
use super::status::ExitKind;
use super::switch::{CloneArgs, Saved};
use crate::guest::user_state::UserState;
use crate::hosted::hypercall::{Effects, HostedKernel};

/// `SS_DISABLE`: a new thread has no alternate stack.
const SS_DISABLE: u32 = 2;

impl Linux {
    /// A new thread of the running process (`clone` with `CLONE_THREAD`),
    /// resuming at `resume` with `rax` 0; its tid, or `-errno`.
    pub fn spawn_thread(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        user: &UserState<'_>,
        resume: &kvm_regs,
        c: CloneArgs,
    ) -> i64 {
        let mut proc = self.proc().clone();
        proc.pending.clear();
        proc.altstack = (0, SS_DISABLE, 0);
        proc.clear_child_tid = c.child_cleartid.unwrap_or(0);
        proc.robust_list = 0;
        proc.set_child_tid = c.child_settid.unwrap_or(0);
        if let Some(tls) = c.tls {
            proc.fs_base = tls;
        }
        let mut regs = kvm_regs { rax: 0, ..*resume };
        if c.stack != 0 {
            regs.rsp = c.stack;
        }
        let fpu = user.fpu().ok();
        let tid = match self.tasks().spawn_thread(Box::new(Saved { regs, fpu, proc })) {
            Ok(t) => t,
            Err(e) => return -i64::from(e.errno()),
        };
        if let Some(p) = c.parent_settid {
            let _ = hv.write_user(vcpu, p, &tid.to_le_bytes());
        }
        log::debug!("linux: process {} has a new thread {tid}", self.pid());
        // Two threads now: the one that never makes a call is preempted.
        self.sync_slice_timer(vcpu);
        i64::from(tid)
    }

    /// `exit(status)` of the running thread: its `clear_child_tid` word
    /// zeroed and woken; the last thread's exit is its process's
    /// (`exit_group` effects, with the leader's status when the leader
    /// exited first); otherwise the next thread runs.
    pub fn exit_thread(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>, status: i32) -> Effects {
        let (tid, pid) = (self.tid(), self.pid());
        // As Linux's exit: the robust list first, then the tid word.
        let head = std::mem::take(&mut self.proc().robust_list);
        self.release_robust(hv, vcpu, pid, tid, head);
        self.clear_tid(hv, vcpu);
        let (last, leader) = {
            let t = self.tasks();
            (t.threads(pid) == [tid], t.leader_end(pid))
        };
        if last {
            let status = match leader {
                Some(ExitKind::Exited(s)) if tid != pid => i32::from(s),
                _ => status,
            };
            return Effects { exit_group: Some(status), ..Default::default() };
        }
        log::debug!("linux: thread {tid} of process {pid} exited ({status})");
        self.tasks().thread_exit(tid, ExitKind::Exited((status & 0xff) as u8));
        self.forget_threads(&[tid]);
        self.run_next_after_end(hv, vcpu, user)
    }

    /// `CLONE_CHILD_CLEARTID`: writes 0 to the running thread's
    /// `clear_child_tid` word and wakes one waiter on it.
    fn clear_tid(&self, hv: &HostedKernel, vcpu: u8) {
        let addr = std::mem::take(&mut self.proc().clear_child_tid);
        if addr == 0 || hv.write_user(vcpu, addr, &0u32.to_le_bytes()).is_err() {
            return;
        }
        let ctx = Ctx { hv, vcpu, linux: self };
        if let Ok(key) = futex_key(&ctx, addr, false) {
            self.futexes().wake(key, 1, MATCH_ANY);
            self.unpark_woken();
        }
    }

    /// Makes `info` pending for thread `tid` (`ESRCH`: no such thread);
    /// a zombie takes nothing. Parked on a futex or asleep in
    /// `nanosleep` (a call made again until its deadline), the thread is
    /// made runnable: it sees the signal and returns `EINTR`.
    pub fn post_to_thread(&self, tid: u32, info: SigInfo) -> Result<(), i32> {
        let (cur, cur_pid, pid) = {
            let t = self.tasks();
            (t.current(), t.current_tgid(), t.tgid(tid).ok_or(libc::ESRCH)?)
        };
        if tid == cur {
            signal::post(&mut self.proc(), info);
            return Ok(());
        }
        // Its process's dispositions decide whether it is ignored.
        let shared =
            if pid == cur_pid { Some(self.proc().clone()) } else { self.aside().get(&pid).map(|s| s.proc.clone()) };
        let signo = info.signo;
        // Running on another vCPU: it takes it at its next system call
        // (with several vCPUs a thread that waits is never on one).
        if let Some(p) = self.cpus().off.get_mut(&tid) {
            // With its process's dispositions as they are now.
            if let Some(sh) = &shared {
                p.inherit_shared(sh);
            }
            signal::post(p, info);
            return Ok(());
        }
        let mut t = self.tasks();
        let mut sleeps = false;
        if let Some(s) = t.saved_mut(tid) {
            if let Some(sh) = &shared {
                s.proc.inherit_shared(sh);
            }
            signal::post(&mut s.proc, info);
            sleeps = s.proc.sleep.is_some() && s.proc.pending.contains_key(&signo);
        }
        if sleeps {
            t.wake(tid);
        }
        // A futex wait ends on a signal: the thread makes its call again.
        t.unpark(tid);
        t.event();
        Ok(())
    }

    /// Whether signal `s` sent to process `pid`, none of whose threads
    /// runs, ends it at once (Linux's `complete_signal`): its action is
    /// the default, which terminates, and some thread does not block it.
    pub fn fatal_at_once(&self, pid: u32, s: u32) -> bool {
        // The dispositions are the process's, kept aside with it.
        let Some(mut p) = self.aside().get(&pid).map(|sh| sh.proc.clone()) else { return false };
        let threads = self.tasks().threads(pid);
        let masks: Vec<u64> = threads.into_iter().filter_map(|tid| self.with_thread_proc(tid, |p| p.sigmask)).collect();
        masks.into_iter().any(|m| {
            p.sigmask = m;
            signal::kills_at_once(&p, s)
        })
    }

    /// A signal to process `pid`: its running thread takes it when it
    /// does not block it, else the first thread that does not, else the
    /// first thread.
    pub fn post_to_process(&self, pid: u32, info: SigInfo) {
        let bit = signal::info::bit(info.signo);
        let (cur, mut threads) = {
            let t = self.tasks();
            (t.current(), t.threads(pid))
        };
        if let Some(i) = threads.iter().position(|&t| t == cur) {
            threads[..=i].rotate_right(1);
        }
        let blocks = |tid: u32| {
            if tid == cur {
                self.proc().sigmask & bit != 0
            } else {
                self.with_thread_proc(tid, |p| p.sigmask & bit != 0).unwrap_or(true)
            }
        };
        let target = threads.iter().copied().find(|&t| !blocks(t)).or(threads.first().copied());
        if let Some(t) = target {
            let _ = self.post_to_thread(t, info);
        }
    }
}
