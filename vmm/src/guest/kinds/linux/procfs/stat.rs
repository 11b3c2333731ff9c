//! `/proc/PID/stat` in Linux 6.12's format (`do_task_stat`: 52 fields on
//! one line) and `/proc/PID/cmdline`.
//!
//! Shown from what the kind knows: pid, name, state, parent, group,
//! session, flags (`PF_RANDOMIZE`, and `PF_FORKNOEXEC` for a process made
//! by fork: there is no `execve`), one thread, `vsize` and `rss` from the
//! address space (0 for a zombie, which has no memory), `RLIMIT_RSS`
//! unlimited, the start of the stack, the signal sets in decimal,
//! `exit_signal` `SIGCHLD`, `wchan` 1 while it waits in a call. Not
//! kept, so shown as 0: fault counts, times, the start time, and the
//! code, data, heap, argument and environment addresses; the stack and
//! instruction pointers are 0 as Linux shows them for a live process.

use super::maps::put;
use super::region::ProcView;
use super::status::{size_and_rss, StatusExtra, TaskState};

/// `PF_RANDOMIZE`.
const PF_RANDOMIZE: u32 = 0x0040_0000;
/// `PF_FORKNOEXEC`: forked, never exec'd.
const PF_FORKNOEXEC: u32 = 0x40;
/// `SIGCHLD`, every process's `exit_signal` here.
const SIGCHLD: u32 = 17;

/// What `stat` shows beyond [`StatusExtra`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatExtra {
    /// Made by `fork` (not the first process).
    pub forked: bool,
    /// `mm->start_stack`.
    pub start_stack: u64,
}

/// The name as `proc_task_name(.., escape = false)` prints it: `comm`
/// as it is (15 bytes at most).
fn raw_name(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The contents of `/proc/PID/stat`; `view` is `None` for a zombie.
pub fn stat(view: Option<&ProcView<'_>>, extra: &StatusExtra, more: &StatExtra) -> Vec<u8> {
    let (vsize, rss) = view.map_or((0, 0), size_and_rss);
    let flags = PF_RANDOMIZE | if more.forked { PF_FORKNOEXEC } else { 0 };
    let [pending, _, blocked, ignored, caught] = extra.signals;
    let start_stack = if extra.state == TaskState::Zombie { 0 } else { more.start_stack };
    let mut out = Vec::new();
    let o = &mut out;
    // pid (comm) state ppid pgrp session tty_nr tpgid flags
    put(
        o,
        format_args!(
            "{} ({}) {} {} {} {} 0 -1 {flags} ",
            extra.pid,
            raw_name(&extra.name),
            extra.state.letter(),
            extra.ppid,
            extra.pgid,
            extra.sid
        ),
    );
    // minflt cminflt majflt cmajflt utime stime cutime cstime priority
    // nice num_threads itrealvalue starttime
    put(o, format_args!("0 0 0 0 0 0 0 0 20 0 {} 0 0 ", extra.threads));
    // vsize rss rsslim startcode endcode startstack kstkesp kstkeip
    put(o, format_args!("{vsize} {} {} 0 0 {start_stack} 0 0 ", rss >> 12, u64::MAX));
    // signal blocked sigignore sigcatch: decimal, `& 0x7fffffff` as Linux
    let m = |x: u64| x & 0x7fff_ffff;
    put(o, format_args!("{} {} {} {} ", m(pending), m(blocked), m(ignored), m(caught)));
    // wchan (whether it waits) nswap cnswap exit_signal processor
    // rt_priority policy delayacct_blkio_ticks guest_time cguest_time
    let wchan = u8::from(extra.state == TaskState::Sleeping);
    put(o, format_args!("{wchan} 0 0 {SIGCHLD} 0 0 0 0 0 0 "));
    // start_data end_data start_brk arg_start arg_end env_start env_end
    // exit_code
    put(o, format_args!("0 0 0 0 0 0 0 0\n"));
    out
}

/// The contents of `/proc/PID/cmdline`: each argument followed by a NUL;
/// nothing for a zombie (Linux reads it from the gone mm).
pub fn cmdline(argv: &[Vec<u8>], zombie: bool) -> Vec<u8> {
    if zombie {
        return Vec::new();
    }
    let mut out = Vec::new();
    for a in argv {
        out.extend_from_slice(a);
        out.push(0);
    }
    out
}
