//! The process table: thread ids and their thread groups (a process is
//! a thread group; its pid is its leader's tid), parents, process groups
//! and sessions, what each thread is doing (running, ready, blocked, sleeping, waiting for
//! a vfork child, a zombie), which one runs next, and what `wait4`,
//! `waitid` and `kill` find. Generic over what a process keeps while it
//! does not run (`S`): the kind stores its registers, address space and
//! files there; the tests store numbers. Nothing here touches a vCPU or
//! memory.

use std::collections::BTreeMap;
use std::time::Instant;

use super::status::ExitKind;

/// The parent pid the first process reports (the VMM stands for the
/// init of the host).
pub const OUTSIDE_PARENT: u32 = 1;

/// What a process is doing.
#[derive(Debug)]
pub enum State<S> {
    /// On the vCPU: its state is live (no saved copy).
    Running,
    /// Runnable.
    Ready(S),
    /// In a call that cannot finish until another process does something
    /// (an exit, a signal, a pipe write, a futex wake): runnable again once
    /// the event count moves past `gen`, or at `until` when the call has a
    /// deadline; it then makes the call again.
    Blocked {
        /// Its saved state (rewound to the call).
        saved: S,
        /// The event count when it blocked.
        gen: u64,
        /// When it is runnable anyway (a futex wait's timeout).
        until: Option<Instant>,
    },
    /// Runnable again at `until`.
    Sleeping {
        /// Its saved state.
        saved: S,
        /// When.
        until: Instant,
    },
    /// A `vfork` parent: runnable once `child` has exited.
    VforkWait {
        /// Its saved state.
        saved: S,
        /// The child.
        child: u32,
    },
    /// Ended, not yet reaped.
    Zombie(ExitKind),
}

impl<S> State<S> {
    fn saved_mut(&mut self) -> Option<&mut S> {
        match self {
            State::Ready(s)
            | State::Blocked { saved: s, .. }
            | State::Sleeping { saved: s, .. }
            | State::VforkWait { saved: s, .. } => Some(s),
            State::Running | State::Zombie(_) => None,
        }
    }

    fn into_saved(self) -> Option<S> {
        match self {
            State::Ready(s)
            | State::Blocked { saved: s, .. }
            | State::Sleeping { saved: s, .. }
            | State::VforkWait { saved: s, .. } => Some(s),
            State::Running | State::Zombie(_) => None,
        }
    }
}

/// One thread (a process's first thread is its leader: tid = pid).
#[derive(Debug)]
pub struct Task<S> {
    /// Its thread group (the pid `getpid` answers).
    pub tgid: u32,
    /// Its parent process.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its session.
    pub sid: u32,
    /// What it does.
    pub state: State<S>,
}

/// Which children a wait looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Any child (`-1`, `P_ALL`).
    Any,
    /// This child (`> 0`, `P_PID`).
    Pid(u32),
    /// Any child in this group (`0`, `< -1`, `P_PGID`).
    Group(u32),
}

/// What a wait finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// This child ended so (reaped, unless the wait only peeked).
    Ended(u32, ExitKind),
    /// Matching children exist; none has ended.
    NotYet,
    /// No matching child (`ECHILD`).
    NoChild,
}

/// Why a process could not be created or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The process limit is reached (`EAGAIN`).
    #[error("too many processes")]
    TooMany,
    /// No such process (`ESRCH`).
    #[error("no such process")]
    NoSuchProcess,
    /// Not allowed (`EPERM`).
    #[error("not permitted")]
    NotPermitted,
}

impl TaskError {
    /// The errno a guest sees.
    pub fn errno(self) -> i32 {
        match self {
            TaskError::TooMany => libc::EAGAIN,
            TaskError::NoSuchProcess => libc::ESRCH,
            TaskError::NotPermitted => libc::EPERM,
        }
    }
}

/// The table.
#[derive(Debug)]
pub struct Tasks<S> {
    tasks: BTreeMap<u32, Task<S>>,
    current: u32,
    init: u32,
    next_pid: u32,
    gen: u64,
    max: usize,
    /// Threads blocked on a futex: the event count does not wake them,
    /// only [`Tasks::unpark`] (a wake, a signal) or their deadline.
    on_futex: std::collections::BTreeSet<u32>,
}

impl<S> Tasks<S> {
    /// A table with the first process `init` running (its own group and
    /// session), allowing at most `max` processes, zombies included.
    pub fn new(init: u32, max: usize) -> Self {
        let mut tasks = BTreeMap::new();
        tasks.insert(init, Task { tgid: init, ppid: OUTSIDE_PARENT, pgid: init, sid: init, state: State::Running });
        Tasks { tasks, current: init, init, next_pid: init + 1, gen: 0, max, on_futex: Default::default() }
    }

    /// The running thread.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Makes `tid` the live thread (another vCPU's thread became live:
    /// `super::cpus`).
    pub fn set_current(&mut self, tid: u32) {
        self.current = tid;
    }

    /// The running thread's process (thread group).
    pub fn current_tgid(&self) -> u32 {
        self.tgid(self.current).unwrap_or(self.current)
    }

    /// The thread group of thread `tid`.
    pub fn tgid(&self, tid: u32) -> Option<u32> {
        self.tasks.get(&tid).map(|t| t.tgid)
    }

    /// The live (not zombie) threads of process `tgid`, by tid.
    pub fn threads(&self, tgid: u32) -> Vec<u32> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.tgid == tgid && !matches!(t.state, State::Zombie(_)))
            .map(|(&p, _)| p)
            .collect()
    }

    /// The first process.
    pub fn init(&self) -> u32 {
        self.init
    }

    /// How many processes there are (zombies included).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the table is empty (never: the first process stays
    /// until the run ends).
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// How many processes have not ended.
    pub fn live(&self) -> usize {
        self.tasks.values().filter(|t| !matches!(t.state, State::Zombie(_))).count()
    }

    /// Whether the running process is the only one.
    pub fn alone(&self) -> bool {
        self.tasks.len() <= 1
    }

    /// Process `pid`.
    pub fn get(&self, pid: u32) -> Option<&Task<S>> {
        self.tasks.get(&pid)
    }

    /// The saved state of `pid`, if it is not running and not a zombie.
    pub fn saved_mut(&mut self, pid: u32) -> Option<&mut S> {
        self.tasks.get_mut(&pid)?.state.saved_mut()
    }

    /// The event count (moves on each [`Tasks::event`]).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Something happened that may unblock a blocked process.
    pub fn event(&mut self) {
        self.gen = self.gen.wrapping_add(1);
    }

    /// Thread `tid` blocks on a futex: other threads' calls (the event
    /// count) leave it parked until [`Tasks::unpark`] or its deadline
    /// (until it runs again).
    pub fn park_on_futex(&mut self, tid: u32) {
        self.on_futex.insert(tid);
    }

    /// Makes thread `tid` runnable if it is blocked (a futex wake, a
    /// signal); it then makes its call again.
    pub fn unpark(&mut self, tid: u32) {
        self.on_futex.remove(&tid);
        if let Some(t) = self.tasks.get_mut(&tid) {
            if matches!(t.state, State::Blocked { .. }) {
                let s = std::mem::replace(&mut t.state, State::Running);
                if let Some(saved) = s.into_saved() {
                    t.state = State::Ready(saved);
                }
            }
        }
    }

    /// A child of the running process, ready with `saved`, in its group
    /// and session; its pid.
    pub fn spawn(&mut self, saved: S) -> Result<u32, TaskError> {
        let pid = self.free_id()?;
        let parent = self.tasks.get(&self.current).ok_or(TaskError::NoSuchProcess)?;
        let (pgid, sid, ppid) = (parent.pgid, parent.sid, parent.tgid);
        self.tasks.insert(pid, Task { tgid: pid, ppid, pgid, sid, state: State::Ready(saved) });
        Ok(pid)
    }

    /// A new thread of the running process, ready with `saved`; its tid.
    pub fn spawn_thread(&mut self, saved: S) -> Result<u32, TaskError> {
        let tid = self.free_id()?;
        let me = self.tasks.get(&self.current).ok_or(TaskError::NoSuchProcess)?;
        let (tgid, ppid, pgid, sid) = (me.tgid, me.ppid, me.pgid, me.sid);
        self.tasks.insert(tid, Task { tgid, ppid, pgid, sid, state: State::Ready(saved) });
        Ok(tid)
    }

    /// Removes thread `tid` (not a group leader: threads are reaped by
    /// nobody); its saved state, if it was not running.
    pub fn remove_thread(&mut self, tid: u32) -> Option<S> {
        let t = self.tasks.get(&tid)?;
        if t.tgid == tid {
            return None;
        }
        self.event();
        self.tasks.remove(&tid)?.state.into_saved()
    }

    /// A tid not in use (`EAGAIN` past the limit).
    fn free_id(&mut self) -> Result<u32, TaskError> {
        if self.tasks.len() >= self.max {
            return Err(TaskError::TooMany);
        }
        let mut pid = self.next_pid;
        while self.tasks.contains_key(&pid) {
            pid = pid.checked_add(1).filter(|&p| p < 1 << 22).unwrap_or(self.init + 1);
        }
        self.next_pid = pid.checked_add(1).filter(|&p| p < 1 << 22).unwrap_or(self.init + 1);
        self.on_futex.remove(&pid);
        Ok(pid)
    }

    /// Puts the running process aside in `state` (not `Running` or
    /// `Zombie`); [`Tasks::resume`] must follow.
    pub fn park(&mut self, state: State<S>) {
        if let Some(t) = self.tasks.get_mut(&self.current) {
            t.state = state;
        }
    }

    /// Sets the state of `pid` (a process put aside after a switch).
    pub fn set_state(&mut self, pid: u32, state: State<S>) {
        if let Some(t) = self.tasks.get_mut(&pid) {
            t.state = state;
        }
    }

    /// Makes `pid` the running process; its saved state.
    pub fn resume(&mut self, pid: u32) -> Option<S> {
        let t = self.tasks.get_mut(&pid)?;
        // A zombie or the running one stays as it is.
        t.state.saved_mut()?;
        let saved = std::mem::replace(&mut t.state, State::Running).into_saved();
        self.current = pid;
        self.on_futex.remove(&pid);
        saved
    }

    /// Ends process `pid` (running or not) as `how`: a zombie; its
    /// children go to the first process; a vfork parent waiting for it
    /// is ready. Returns its parent and its saved state (to tear down).
    pub fn exit(&mut self, pid: u32, how: ExitKind) -> Option<(u32, Option<S>)> {
        let t = self.tasks.get_mut(&pid)?;
        if matches!(t.state, State::Zombie(_)) {
            return None;
        }
        let saved = std::mem::replace(&mut t.state, State::Zombie(how)).into_saved();
        let ppid = t.ppid;
        self.release(pid, ppid);
        Some((ppid, saved))
    }

    /// Process `pid` (child of `ppid`) ended: its children go to the
    /// first process, a vfork parent waiting for it is ready.
    fn release(&mut self, pid: u32, ppid: u32) {
        let init = self.init;
        for c in self.tasks.values_mut() {
            if c.ppid == pid {
                c.ppid = init;
            }
        }
        for p in self.tasks.values_mut().filter(|p| p.tgid == ppid) {
            if matches!(p.state, State::VforkWait { child, .. } if child == pid) {
                let s = std::mem::replace(&mut p.state, State::Running);
                if let Some(saved) = s.into_saved() {
                    p.state = State::Ready(saved);
                }
            }
        }
        self.event();
    }

    /// One thread of a process that lives on ended (`exit`): a zombie
    /// (a leader stays one until its process ends; another thread is
    /// removed once it is off the vCPU, [`Tasks::remove_thread`]).
    pub fn thread_exit(&mut self, tid: u32, how: ExitKind) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.state = State::Zombie(how);
        }
        self.event();
    }

    /// How the leader of `pid` ended, if it did.
    pub fn leader_end(&self, pid: u32) -> Option<ExitKind> {
        match self.tasks.get(&pid)?.state {
            State::Zombie(how) => Some(how),
            _ => None,
        }
    }

    /// Ends process `pid`, every thread of it, as `how` (`exit_group`, a
    /// fatal signal): its threads are removed (`running`, the thread on
    /// the vCPU, becomes a zombie until it is off it), its leader is a
    /// zombie with `how` whatever it ended with before. Returns its
    /// parent (`None`: no thread of it lived) and the tids that ended.
    pub fn end_group(&mut self, pid: u32, running: Option<u32>, how: ExitKind) -> (Option<u32>, Vec<u32>) {
        if self.threads(pid).is_empty() {
            return (None, Vec::new());
        }
        let members: Vec<u32> = self.tasks.iter().filter(|(_, t)| t.tgid == pid).map(|(&p, _)| p).collect();
        for &tid in &members {
            if tid == pid {
                continue;
            }
            if Some(tid) == running {
                self.thread_exit(tid, how);
            } else {
                self.tasks.remove(&tid);
            }
        }
        let Some(leader) = self.tasks.get_mut(&pid) else { return (None, members) };
        leader.state = State::Zombie(how);
        let ppid = leader.ppid;
        self.release(pid, ppid);
        (Some(ppid), members)
    }

    /// A sleeping `pid` is ready at once (a signal came); whether it
    /// was asleep.
    pub fn wake(&mut self, pid: u32) -> bool {
        let Some(t) = self.tasks.get_mut(&pid) else { return false };
        if !matches!(t.state, State::Sleeping { .. }) {
            return false;
        }
        let s = std::mem::replace(&mut t.state, State::Running);
        if let Some(saved) = s.into_saved() {
            t.state = State::Ready(saved);
        }
        true
    }

    /// Removes zombie `pid` (reaped).
    pub fn reap(&mut self, pid: u32) -> Option<ExitKind> {
        match self.tasks.get(&pid)?.state {
            State::Zombie(how) => {
                self.tasks.remove(&pid);
                Some(how)
            }
            _ => None,
        }
    }

    /// What a wait of `parent` for `which` finds; reaps the child found
    /// when `reap`.
    pub fn wait(&mut self, parent: u32, which: Which, reap: bool) -> Waited {
        let matches = |pid: u32, t: &Task<S>| {
            t.tgid == pid
                && t.ppid == parent
                && match which {
                    Which::Any => true,
                    Which::Pid(p) => p == pid,
                    Which::Group(g) => t.pgid == g,
                }
        };
        let mut any = false;
        let mut found = None;
        for (&pid, t) in &self.tasks {
            if pid == parent || !matches(pid, t) {
                continue;
            }
            any = true;
            // A leader that exited before its threads ends with the last.
            let group_left = self.tasks.iter().any(|(&o, x)| o != pid && x.tgid == pid);
            if let (State::Zombie(how), false) = (&t.state, group_left) {
                found = Some((pid, *how));
                break;
            }
        }
        match (found, any) {
            (Some((pid, how)), _) => {
                if reap {
                    self.tasks.remove(&pid);
                }
                Waited::Ended(pid, how)
            }
            (None, true) => Waited::NotYet,
            (None, false) => Waited::NoChild,
        }
    }

    /// Whether `parent` has a child `which` names that has not ended
    /// (what a wait for stopped or continued children only looks at).
    pub fn has_live_child(&self, parent: u32, which: Which) -> bool {
        self.tasks.iter().any(|(&pid, t)| {
            pid != parent
                && t.ppid == parent
                && !matches!(t.state, State::Zombie(_))
                && match which {
                    Which::Any => true,
                    Which::Pid(p) => p == pid,
                    Which::Group(g) => t.pgid == g,
                }
        })
    }

    /// The next process to run after the running one, round robin by
    /// pid: ready, blocked with the event count moved, sleeping past
    /// `now`; the running one itself last, if it was parked; `None` when
    /// none can run.
    pub fn pick_next(&self, now: Instant) -> Option<u32> {
        let runnable = |p: u32, t: &Task<S>| match &t.state {
            State::Ready(_) => true,
            State::Blocked { gen, until, .. } => {
                (*gen != self.gen && !self.on_futex.contains(&p)) || until.is_some_and(|u| u <= now)
            }
            State::Sleeping { until, .. } => *until <= now,
            _ => false,
        };
        let after = self.tasks.range(self.current + 1..).chain(self.tasks.range(..=self.current));
        after.filter(|(&p, t)| runnable(p, t)).map(|(&p, _)| p).next()
    }

    /// The sleeping process that wakes first, and when.
    pub fn next_wake(&self) -> Option<(u32, Instant)> {
        self.tasks
            .iter()
            .filter_map(|(&p, t)| match t.state {
                State::Sleeping { until, .. } | State::Blocked { until: Some(until), .. } => Some((p, until)),
                _ => None,
            })
            .min_by_key(|&(_, u)| u)
    }

    /// Every process that is neither running nor a zombie: what a blocked
    /// run reports.
    pub fn waiting(&self) -> Vec<(u32, &'static str)> {
        self.tasks
            .iter()
            .filter_map(|(&p, t)| {
                let what = match t.state {
                    State::Ready(_) => "ready",
                    State::Blocked { .. } => "blocked",
                    State::Sleeping { .. } => "sleeping",
                    State::VforkWait { .. } => "waiting for its vfork child",
                    _ => return None,
                };
                Some((p, what))
            })
            .collect()
    }

    /// Every live process but the running one (the first process's end
    /// kills them).
    pub fn others(&self) -> Vec<u32> {
        self.tasks
            .iter()
            .filter(|(&p, t)| p != self.current && !matches!(t.state, State::Zombie(_)))
            .map(|(&p, _)| p)
            .collect()
    }

    /// The processes (their pids) `kill(pid, ...)` from the running
    /// process reaches (zombies included: a signal to one succeeds and
    /// does nothing).
    pub fn kill_targets(&self, pid: i64) -> Result<Vec<u32>, TaskError> {
        let me = self.current_tgid();
        let leaders = || self.tasks.iter().filter(|(&p, t)| t.tgid == p);
        let group = |g: u32| -> Vec<u32> { leaders().filter(|(_, t)| t.pgid == g).map(|(&p, _)| p).collect() };
        let v = match pid {
            // Any thread's id names its process.
            p if p > 0 => u32::try_from(p).ok().and_then(|p| self.tgid(p)).into_iter().collect(),
            0 => group(self.tasks.get(&me).map_or(0, |t| t.pgid)),
            -1 => leaders().map(|(&p, _)| p).filter(|&p| p != me && p != self.init).collect(),
            p => u32::try_from(p.unsigned_abs()).map(group).unwrap_or_default(),
        };
        if v.is_empty() {
            return Err(TaskError::NoSuchProcess);
        }
        Ok(v)
    }

    /// `setpgid(pid, pgid)` from the running process (0s meaning itself).
    pub fn setpgid(&mut self, pid: u32, pgid: u32) -> Result<(), TaskError> {
        let me = self.current_tgid();
        let pid = if pid == 0 { me } else { pid };
        let pgid = if pgid == 0 { pid } else { pgid };
        let my_sid = self.tasks.get(&me).map_or(0, |t| t.sid);
        let t = self.tasks.get(&pid).ok_or(TaskError::NoSuchProcess)?;
        if pid != me && t.ppid != me {
            return Err(TaskError::NoSuchProcess);
        }
        // A session leader cannot move; nor can a process of another
        // session; the group must exist in the caller's session.
        if t.sid == pid || t.sid != my_sid {
            return Err(TaskError::NotPermitted);
        }
        if pgid != pid && !self.tasks.values().any(|o| o.pgid == pgid && o.sid == my_sid) {
            return Err(TaskError::NotPermitted);
        }
        for t in self.tasks.values_mut().filter(|t| t.tgid == pid) {
            t.pgid = pgid;
        }
        Ok(())
    }

    /// `setsid()` of the running process: a new session and group, its
    /// pid (`EPERM` for a group leader).
    pub fn setsid(&mut self) -> Result<u32, TaskError> {
        let me = self.current_tgid();
        if self.tasks.values().any(|t| t.pgid == me) {
            return Err(TaskError::NotPermitted);
        }
        for t in self.tasks.values_mut().filter(|t| t.tgid == me) {
            t.pgid = me;
            t.sid = me;
        }
        Ok(me)
    }
}
