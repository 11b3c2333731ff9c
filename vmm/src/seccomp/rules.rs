//! The allow-lists, one per thread kind, and the KVM ioctl numbers they
//! name. Every entry says why the thread needs it; `docs/reliability.md`
//! has the same table. Found with `strace -f` on `vmm run` (built-in
//! guest, ELF guests, 1 and 2 vCPUs, `--timeout`, piped stdin) and
//! `vmm fuzz-guest`, on the static glibc build (no dynamic loader, so no
//! `openat` of libraries after start).

use std::collections::BTreeMap;

use kvm_bindings::{kvm_msrs, kvm_regs, kvm_sregs, kvm_userspace_memory_region, kvm_vcpu_events, kvm_xsave, KVMIO};
use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

use super::SeccompError;

/// The request numbers of the KVM ioctls vCPU threads make.
mod kvm_nr {
    #![allow(missing_docs)]
    use super::*;

    ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
    ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_regs);
    ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
    ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_sregs);
    ioctl_iowr_nr!(KVM_GET_MSRS, KVMIO, 0x88, kvm_msrs);
    ioctl_iow_nr!(KVM_SET_MSRS, KVMIO, 0x89, kvm_msrs);
    ioctl_io_nr!(KVM_NMI, KVMIO, 0x9a);
    ioctl_ior_nr!(KVM_GET_VCPU_EVENTS, KVMIO, 0x9f, kvm_vcpu_events);
    ioctl_ior_nr!(KVM_GET_XSAVE, KVMIO, 0xa4, kvm_xsave);
    ioctl_iow_nr!(KVM_SET_XSAVE, KVMIO, 0xa5, kvm_xsave);
    ioctl_iow_nr!(KVM_SET_USER_MEMORY_REGION, KVMIO, 0x46, kvm_userspace_memory_region);
}
use kvm_nr::*;

/// Syscalls allowed unconditionally: number, name, reason.
pub type Allowed = &'static [(i64, &'static str, &'static str)];

/// What every thread of the running VMM needs.
const COMMON: Allowed = &[
    (libc::SYS_read, "read", "eventfds (exit latch, doorbells, vCPU done), stdin, the watchdog's timerfd"),
    (libc::SYS_write, "write", "guest console on stdout/stderr, the report, eventfd signals, log lines"),
    (libc::SYS_close, "close", "dropping eventfds, KVM and window fds when the run ends"),
    (libc::SYS_futex, "futex", "mutexes and condvars (address space lock, TLB shootdown waits)"),
    (libc::SYS_mmap, "mmap", "the allocator (glibc malloc arenas)"),
    (libc::SYS_munmap, "munmap", "the allocator; unmapping guest memory, kvm_run and windows at the end"),
    (libc::SYS_mremap, "mremap", "the allocator (growing large vectors)"),
    (libc::SYS_madvise, "madvise", "the allocator (glibc trims arenas with MADV_DONTNEED)"),
    (libc::SYS_mprotect, "mprotect", "the allocator (glibc grows a thread arena with mprotect)"),
    (libc::SYS_brk, "brk", "the allocator (main arena)"),
    (libc::SYS_getpid, "getpid", "pthread_kill (kicking a vCPU) and abort"),
    (libc::SYS_gettid, "gettid", "pthread_kill and abort"),
    (libc::SYS_tgkill, "tgkill", "kicking a vCPU out of KVM_RUN (SIGRTMIN), and abort's SIGABRT"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask", "pthread_kill and abort block signals around the kill"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn", "return from the kick signal handler (and any other)"),
    (libc::SYS_exit_group, "exit_group", "the SIGSYS handler ends the process from the offending thread"),
    (libc::SYS_sigaltstack, "sigaltstack", "Rust's thread and process exit tear the signal stack down"),
    (libc::SYS_clock_gettime, "clock_gettime", "Instant::now (shootdown deadlines) when the vDSO is not used"),
    (libc::SYS_sched_yield, "sched_yield", "spin-then-yield in the standard library's locks"),
    (
        libc::SYS_restart_syscall,
        "restart_syscall",
        "a timed wait (futex, nanosleep) resumed after the process was stopped and continued (Ctrl-Z, `fg`)",
    ),
];

/// vCPU threads, beyond [`COMMON`].
const VCPU: Allowed = &[(libc::SYS_exit, "exit", "the thread ends")];

/// The event loop (the thread that called `run_with`), beyond [`COMMON`].
const EVENT_LOOP: Allowed = &[
    (libc::SYS_epoll_wait, "epoll_wait", "the event loop"),
    (libc::SYS_epoll_pwait, "epoll_pwait", "the event loop (glibc may use the pwait form)"),
    (libc::SYS_epoll_ctl, "epoll_ctl", "subscribers leave the loop (vCPU done, stdin at EOF)"),
    (libc::SYS_exit, "exit", "a caller's thread that ends after the run"),
];

/// The output writer threads (`vmm/src/run/output.rs`), beyond [`COMMON`].
const WRITER: Allowed = &[(libc::SYS_exit, "exit", "the thread ends when its output shuts down")];

/// ioctls of vCPU threads, by request number, with the reason.
fn vcpu_ioctls() -> Vec<(u64, &'static str, &'static str)> {
    vec![
        (KVM_RUN(), "KVM_RUN", "enter the guest"),
        (KVM_GET_REGS(), "KVM_GET_REGS", "hypercall arguments, exception reports"),
        (KVM_SET_REGS(), "KVM_SET_REGS", "hypercall results, resuming after an expected fault"),
        (KVM_GET_SREGS(), "KVM_GET_SREGS", "exception reports (CR2, CS)"),
        (KVM_GET_MSRS(), "KVM_GET_MSRS", "exception reports"),
        (KVM_NMI(), "KVM_NMI", "TLB-shootdown NMI to its own vCPU"),
        (KVM_GET_VCPU_EVENTS(), "KVM_GET_VCPU_EVENTS", "a slice timer's kick: is a fault on its way in"),
        (
            KVM_SET_USER_MEMORY_REGION(),
            "KVM_SET_USER_MEMORY_REGION",
            "the zap slot: makes KVM drop shadow translations after munmap/mprotect",
        ),
    ]
}

/// What a [`Row`] allows.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// A system call, by number and name.
    Syscall(i64, &'static str),
    /// `ioctl` with this request number (a function: the numbers are
    /// computed) and name; vCPU threads only.
    Ioctl(fn() -> u64, &'static str),
    /// A system call, by number and name, only with arguments that meet
    /// every one of these (a call also allowed unconditionally stays so).
    SyscallIf(i64, &'static str, &'static [ArgIs]),
}

/// One condition on a system call's argument (compared as 64 bits).
#[derive(Clone, Copy, Debug)]
pub enum ArgIs {
    /// Argument `.0` equals `.1`.
    Eq(u8, u64),
    /// Argument `.0` is at most `.1` (unsigned).
    AtMost(u8, u64),
}

impl ArgIs {
    fn condition(self) -> Result<SeccompCondition, SeccompError> {
        let (arg, op, value) = match self {
            ArgIs::Eq(arg, v) => (arg, SeccompCmpOp::Eq, v),
            ArgIs::AtMost(arg, v) => (arg, SeccompCmpOp::Le, v),
        };
        Ok(SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)?)
    }
}

/// One row a kind of guest adds to a thread's allow-list
/// (`GuestKind::seccomp_rows`).
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// Whose allow-list.
    pub thread: ThreadKind,
    /// What it allows.
    pub call: Call,
    /// Why the thread needs it.
    pub why: &'static str,
}

/// The request number of `KVM_SET_MSRS`.
pub fn kvm_set_msrs() -> u64 {
    KVM_SET_MSRS()
}

/// The request number of `KVM_SET_SREGS` (a kind that switches page
/// tables on a vCPU without synced registers adds it).
pub fn kvm_set_sregs() -> u64 {
    KVM_SET_SREGS()
}

/// The request number of `KVM_GET_XSAVE` (a kind that saves the FPU
/// state in a signal frame adds it).
pub fn kvm_get_xsave() -> u64 {
    KVM_GET_XSAVE()
}

/// The request number of `KVM_SET_XSAVE`.
pub fn kvm_set_xsave() -> u64 {
    KVM_SET_XSAVE()
}

/// Which thread a filter is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU thread.
    Vcpu,
    /// The event loop (the main thread of `vmm run`).
    EventLoop,
    /// An output writer thread (console, report and log buffers).
    Writer,
}

/// The allow-list of `kind`: unconditional syscalls, and for vCPU
/// threads `ioctl` with one of [`vcpu_ioctls`]'s request numbers; plus
/// the rows of the guest's kind for this thread.
pub fn rules(kind: ThreadKind, rows: &[Row]) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let extra = extra(kind);
    let mine = || rows.iter().filter(move |r| r.thread == kind);
    let mut m: BTreeMap<i64, Vec<SeccompRule>> =
        COMMON.iter().chain(extra).map(|&(nr, _, _)| (nr, Vec::new())).collect();
    for r in mine() {
        if let Call::Syscall(nr, _) = r.call {
            m.insert(nr, Vec::new());
        }
    }
    for r in mine() {
        if let Call::SyscallIf(nr, _, args) = r.call {
            let conditions = args.iter().map(|a| a.condition()).collect::<Result<Vec<_>, _>>()?;
            let rule = SeccompRule::new(conditions)?;
            // An empty list allows the call whatever its arguments: keep it so.
            match m.get_mut(&nr) {
                Some(rules) if rules.is_empty() => {}
                Some(rules) => rules.push(rule),
                None => {
                    m.insert(nr, vec![rule]);
                }
            }
        }
    }
    let kind_ioctls = mine().filter_map(|r| match r.call {
        Call::Ioctl(req, _) => Some(req()),
        Call::Syscall(..) | Call::SyscallIf(..) => None,
    });
    if kind == ThreadKind::Vcpu {
        let mut ioctls = Vec::new();
        for req in vcpu_ioctls().into_iter().map(|(req, _, _)| req).chain(kind_ioctls) {
            let c = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, req)?;
            ioctls.push(SeccompRule::new(vec![c])?);
        }
        m.insert(libc::SYS_ioctl, ioctls);
    }
    Ok(m)
}

/// What `kind` may call beyond [`COMMON`].
fn extra(kind: ThreadKind) -> Allowed {
    match kind {
        ThreadKind::Vcpu => VCPU,
        ThreadKind::EventLoop => EVENT_LOOP,
        ThreadKind::Writer => WRITER,
    }
}

/// The allow-list of `kind` as (syscall name or ioctl, reason) lines,
/// for documentation and `--help`.
pub fn describe(kind: ThreadKind) -> Vec<(String, &'static str)> {
    let extra = extra(kind);
    let mut v: Vec<(String, &'static str)> =
        COMMON.iter().chain(extra).map(|&(_, n, why)| (n.to_string(), why)).collect();
    if kind == ThreadKind::Vcpu {
        v.extend(vcpu_ioctls().into_iter().map(|(req, n, why)| (format!("ioctl {n} ({req:#x})"), why)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernel_abi() {
        // From <linux/kvm.h> on x86-64.
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_GET_REGS(), 0x8090_ae81);
        assert_eq!(KVM_SET_REGS(), 0x4090_ae82);
        assert_eq!(KVM_GET_SREGS(), 0x8138_ae83);
        assert_eq!(KVM_GET_MSRS(), 0xc008_ae88);
        assert_eq!(KVM_SET_MSRS(), 0x4008_ae89);
        assert_eq!(KVM_NMI(), 0xae9a);
        assert_eq!(KVM_GET_VCPU_EVENTS(), 0x8040_ae9f);
        assert_eq!(KVM_GET_XSAVE(), 0x9000_aea4);
        assert_eq!(KVM_SET_XSAVE(), 0x5000_aea5);
        assert_eq!(KVM_SET_USER_MEMORY_REGION(), 0x4020_ae46);
    }

    #[test]
    fn lists_compile_and_differ() {
        let v = rules(ThreadKind::Vcpu, &[]).unwrap();
        let e = rules(ThreadKind::EventLoop, &[]).unwrap();
        let w = rules(ThreadKind::Writer, &[]).unwrap();
        assert!(v.contains_key(&libc::SYS_ioctl) && !e.contains_key(&libc::SYS_ioctl));
        assert!(e.contains_key(&libc::SYS_epoll_wait) && !v.contains_key(&libc::SYS_epoll_wait));
        // A writer neither enters the guest nor polls: no ioctl, no epoll.
        assert!(!w.contains_key(&libc::SYS_ioctl) && !w.contains_key(&libc::SYS_epoll_wait));
        // The SIGSYS handler's own calls are on every list.
        for call in [libc::SYS_write, libc::SYS_exit_group, libc::SYS_rt_sigreturn] {
            for (kind, list) in [("vcpu", &v), ("event loop", &e), ("writer", &w)] {
                assert!(list.contains_key(&call), "{kind}: {call}");
            }
        }
        for forbidden in [libc::SYS_socket, libc::SYS_openat, libc::SYS_execve, libc::SYS_clone3, libc::SYS_ptrace] {
            for (kind, list) in [("vcpu", &v), ("event loop", &e), ("writer", &w)] {
                assert!(!list.contains_key(&forbidden), "{kind}: {forbidden}");
            }
        }
        assert_eq!(describe(ThreadKind::Vcpu).len(), v.len() - 1 + vcpu_ioctls().len());
    }

    #[test]
    fn a_kinds_rows_reach_only_their_thread() {
        let rows = [
            Row { thread: ThreadKind::Vcpu, call: Call::Syscall(libc::SYS_pread64, "pread64"), why: "test" },
            Row { thread: ThreadKind::Vcpu, call: Call::Ioctl(kvm_set_msrs, "KVM_SET_MSRS"), why: "test" },
            Row { thread: ThreadKind::Writer, call: Call::Syscall(libc::SYS_fsync, "fsync"), why: "test" },
        ];
        let v = rules(ThreadKind::Vcpu, &rows).unwrap();
        let e = rules(ThreadKind::EventLoop, &rows).unwrap();
        let w = rules(ThreadKind::Writer, &rows).unwrap();
        assert!(v.contains_key(&libc::SYS_pread64) && !e.contains_key(&libc::SYS_pread64));
        assert!(!w.contains_key(&libc::SYS_pread64) && w.contains_key(&libc::SYS_fsync));
        assert!(!v.contains_key(&libc::SYS_fsync));
        let base = rules(ThreadKind::Vcpu, &[]).unwrap();
        assert_eq!(v[&libc::SYS_ioctl].len(), base[&libc::SYS_ioctl].len() + 1);
        assert!(!base.contains_key(&libc::SYS_pread64));
    }

    #[test]
    fn a_conditional_row_allows_only_those_arguments_unless_allowed_anyway() {
        const PPOLL: &[ArgIs] = &[ArgIs::AtMost(1, 64), ArgIs::Eq(3, 0)];
        let rows = [
            Row { thread: ThreadKind::Vcpu, call: Call::SyscallIf(libc::SYS_ppoll, "ppoll", PPOLL), why: "test" },
            Row { thread: ThreadKind::Vcpu, call: Call::SyscallIf(libc::SYS_read, "read", PPOLL), why: "test" },
        ];
        let v = rules(ThreadKind::Vcpu, &rows).unwrap();
        assert_eq!(v[&libc::SYS_ppoll].len(), 1, "one rule: both conditions");
        // `read` is on every list already: still allowed whatever its arguments.
        assert!(v[&libc::SYS_read].is_empty());
        assert!(!rules(ThreadKind::EventLoop, &rows).unwrap().contains_key(&libc::SYS_ppoll));
        // The filter compiles, the conditional rule with it.
        assert!(crate::seccomp::filter(ThreadKind::Vcpu, &rows).is_ok());
    }
}
