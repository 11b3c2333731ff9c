//! `/proc/PID/{status,stat,maps,cmdline,comm}` of any process in the
//! run, the caller's own included (`/proc/PID/` of the caller is its
//! `/proc/self/`).
//!
//! At `open` of `/proc/N/FILE` naming another process, the file is
//! rendered from that process's saved state (its address space, signal
//! state, name) and the table's (parent, group, session, what it is
//! doing), and registered in the file layer the first time
//! (`ProcFiles::store`); a read from offset 0 renders it again. A pid
//! the table does not hold is `ENOENT` at open, as Linux's lookup in
//! `/proc`; a read after the process was reaped is `ESRCH`, as Linux's
//! `proc_single_show`. The texts of gone processes are dropped at the
//! next such open; their names stay registered (reading empty). A zombie shows `State: Z (zombie)` and no memory
//! (empty `maps` and `cmdline`, no memory lines in `status`, `vsize` and
//! `rss` 0), with the program's own name (a name set with `PR_SET_NAME`
//! goes with the process's state).
//!
//! Not done: other files under `/proc/N/` (they are `ENOENT` unless the
//! kind registered them), listing `/proc` or `/proc/N/`, and opens
//! relative to a descriptor of `/proc/N`.

use super::proc_files::{render, View};
use super::process::{comm_of, Linux};
use super::procfs::{StatusExtra, TaskState};
use super::tasks::table::State;
use crate::hosted::hypercall::HostedKernel;

/// The files every process has here.
pub const FILES: [&str; 5] = ["status", "stat", "maps", "cmdline", "comm"];

/// `/proc/N/FILE` as `(N, FILE)` (`N` a decimal pid without a leading
/// zero); `None` for any other path.
pub fn split(path: &[u8]) -> Option<(u32, &str)> {
    let rest = path.strip_prefix(b"/proc/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (num, file) = (&rest[..slash], &rest[slash + 1..]);
    if num.is_empty() || !num.iter().all(u8::is_ascii_digit) || (num.len() > 1 && num[0] == b'0') {
        return None;
    }
    let pid = std::str::from_utf8(num).ok()?.parse::<u32>().ok()?;
    Some((pid, std::str::from_utf8(file).ok()?))
}

impl Linux {
    /// The path `open` opens for `path`, with the `/proc` file it names
    /// rendered: the caller's `/proc/PID/F` is its `/proc/self/F`;
    /// another process's [`FILES`] are rendered and registered under
    /// their own path (`ENOENT` for a pid no process has).
    pub fn proc_open(&self, hv: &HostedKernel, path: Vec<u8>) -> Result<Vec<u8>, i32> {
        let Some((pid, file)) = split(&path) else {
            self.refresh_proc(hv, &path);
            return Ok(path);
        };
        if pid == self.pid() {
            let own = format!("/proc/self/{file}").into_bytes();
            if FILES.contains(&file) {
                self.refresh_proc(hv, &own);
                return Ok(own);
            }
            return Ok(path);
        }
        if !FILES.contains(&file) {
            return Ok(path);
        }
        let name = String::from_utf8_lossy(&path).into_owned();
        self.forget_gone();
        let text = self.render_pid(hv, pid, file).map_err(|_| libc::ENOENT)?;
        self.proc_files.store(&mut self.vfs(), &name, text).map_err(|e| e.raw())?;
        Ok(path)
    }

    /// Renders the generated file `path` (a `/proc/N/F` one) again before
    /// a read from its start; `ESRCH` once process `N` is gone.
    pub fn refresh_pid_file(&self, hv: &HostedKernel, path: &str) -> Result<(), i32> {
        let Some((pid, file)) = split(path.as_bytes()) else { return Ok(()) };
        let text = self.render_pid(hv, pid, file)?;
        self.proc_files.store(&mut self.vfs(), path, text).map_err(|e| e.raw())
    }

    /// Lets go of the texts kept for processes that are gone (so a run
    /// that forks and reads `/proc/N/` over and over keeps only the live
    /// ones' texts; the registered names stay).
    fn forget_gone(&self) {
        let stored = self.proc_files.stored();
        let gone: Vec<String> = {
            let tasks = self.tasks();
            stored.into_iter().filter(|p| split(p.as_bytes()).is_some_and(|(n, _)| tasks.get(n).is_none())).collect()
        };
        self.proc_files.forget(&gone);
    }

    /// The contents of `/proc/pid/file`: `ESRCH` if no such process.
    fn render_pid(&self, hv: &HostedKernel, pid: u32, file: &str) -> Result<Vec<u8>, i32> {
        let own = format!("/proc/self/{file}");
        if pid == self.pid() {
            return Ok(render(&own, Some(hv.mapper().space()), &self.view()));
        }
        // What the view takes from other locks, before the table's.
        let base = self.view();
        let mut tasks = self.tasks();
        let task = tasks.get(pid).ok_or(libc::ESRCH)?;
        let ids = (task.ppid, task.pgid, task.sid);
        let state = match task.state {
            State::Zombie(_) => TaskState::Zombie,
            State::Blocked { .. } | State::Sleeping { .. } | State::VforkWait { .. } => TaskState::Sleeping,
            // On a vCPU only to make its wait again: still in it.
            State::Running if self.retrying(pid) => TaskState::Sleeping,
            State::Ready(_) | State::Running => TaskState::Running,
        };
        let forked = pid != tasks.init();
        let threads = tasks.threads(pid).len().max(1) as u32;
        if state == TaskState::Zombie {
            let mut extra = base.extra.clone();
            extra.name = String::from_utf8_lossy(&comm_of(&self.exe)).into_owned();
            extra.signals = [0; 5];
            extra.threads = threads;
            let view = View { extra: self.extra_for(pid, ids, state, extra), ..base };
            let view = View { stat: super::procfs::StatExtra { forked, ..view.stat }, ..view };
            return Ok(render(&own, None, &view));
        }
        // Its address space and dispositions are its process's, kept
        // aside while none of its threads runs; its mask and pending set
        // the leader's (as Linux's /proc/PID/status).
        let saved = tasks.saved_mut(pid).map(|s| s.proc.clone());
        drop(tasks);
        let aside = self.aside();
        let shared = aside.get(&pid).ok_or(libc::ESRCH)?;
        // A leader running on another vCPU keeps its state there.
        let mut proc = match saved {
            Some(p) => p,
            None => self.cpus().off.get(&pid).cloned().ok_or(libc::ESRCH)?,
        };
        proc.inherit_shared(&shared.proc);
        let extra = self.proc_extra(&proc, StatusExtra { threads, ..base.extra.clone() });
        let view = View {
            extra: self.extra_for(pid, ids, state, extra),
            stat: super::procfs::StatExtra { forked, ..base.stat },
            ..base
        };
        Ok(render(&own, Some(&shared.space), &view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proc_pid_file_paths_split() {
        assert_eq!(split(b"/proc/12/status"), Some((12, "status")));
        assert_eq!(split(b"/proc/1/maps"), Some((1, "maps")));
        assert_eq!(split(b"/proc/12/task/12/stat"), Some((12, "task/12/stat")));
        for p in [&b"/proc/self/status"[..], b"/proc/012/stat", b"/proc//stat", b"/proc/12", b"/proc/1x/stat"] {
            assert_eq!(split(p), None, "{}", String::from_utf8_lossy(p));
        }
        assert_eq!(split(b"/proc/99999999999/stat"), None, "past u32");
    }
}
