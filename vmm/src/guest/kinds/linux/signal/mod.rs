//! Signals of the Linux kind: what a signal is and carries ([`info`]),
//! the x86-64 `rt_sigframe` Linux builds on the user stack ([`frame`],
//! with the FPU/SSE state in `fxsave` form, [`fpstate`]), and delivery:
//! a fault the VMM did not resolve becomes a signal, a signal the process
//! sent itself is delivered when the system call returns, a handler
//! returns through `rt_sigreturn` ([`deliver`]).
//!
//! What this module does not do: keep dispositions and the mask (the
//! process does, `Proc`; `rt_sigaction`, `rt_sigprocmask` and
//! `sigaltstack` are in `syscalls::process`), queue real-time signals
//! (one pending instance per signal, as for standard signals), stop or
//! continue the process (`SIGSTOP`-like defaults are ignored). A call
//! that waits (a pipe or socket read or write, standard input) is
//! interrupted with `EINTR`, or made again after the handler with
//! `SA_RESTART` ([`interrupting`]). The real-time timer
//! (`alarm`, `setitimer`) is [`timer`].

pub mod deliver;
pub mod fpstate;
pub mod frame;
pub mod info;
pub mod timer;

pub use self::deliver::{at_syscall_return, interrupting, kills_at_once, on_fault, post, sigreturn, suspend};
pub use self::info::SigInfo;
