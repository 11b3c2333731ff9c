//! The `SIGSYS` handler installed with the filters: a call a thread's
//! allow-list does not have is trapped (`SECCOMP_RET_TRAP`), and this
//! handler, on the offending thread, writes one line to stderr naming the
//! thread kind, the system call (name and number; for `ioctl` also the
//! request) and a hint, then ends the process with [`EXIT_STATUS`].
//!
//! The handler is async-signal-safe: it allocates nothing and takes no
//! lock; it formats into a buffer on its stack, makes one `write(2)` to
//! fd 2 and `exit_group`. Both calls, and `rt_sigreturn`, are in every
//! thread's allow-list (`rules::COMMON`), so the handler cannot trap
//! itself. It does not flush the console, report or log buffers: they
//! sit behind locks the trapped thread may hold, and the run is over
//! either way. It does not tell the vCPUs apart (the thread kind only).

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

use super::ThreadKind;

/// The exit status of a run a filter stopped: 128 + `SIGSYS`, as a shell
/// shows a process killed by it, now with a message.
pub const EXIT_STATUS: i32 = 128 + libc::SIGSYS;

/// The hint at the end of the message.
const HINT: &str = "a row missing from the allow-list; run with --no-seccomp to debug, and report it";

thread_local! {
    /// The kind of the filter on this thread, for the handler (0: none).
    /// A const-initialised `Cell` without a destructor: reading it is a
    /// plain thread-local load, safe in a signal handler.
    static KIND: Cell<u8> = const { Cell::new(0) };
}

/// Records that the calling thread installs `kind`'s filter.
pub(super) fn set_thread_kind(kind: ThreadKind) {
    KIND.set(match kind {
        ThreadKind::Vcpu => 1,
        ThreadKind::EventLoop => 2,
        ThreadKind::Writer => 3,
    });
}

/// The thread kind's name in the message.
fn kind_name(k: u8) -> &'static str {
    match k {
        1 => "vCPU",
        2 => "event loop",
        3 => "output writer",
        _ => "unfiltered",
    }
}

/// Names of the system calls a thread is likely to try, for the message
/// (others are shown by number only).
const NAMES: &[(i64, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_open, "open"),
    (libc::SYS_close, "close"),
    (libc::SYS_stat, "stat"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_lstat, "lstat"),
    (libc::SYS_poll, "poll"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_mprotect, "mprotect"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_brk, "brk"),
    (libc::SYS_rt_sigaction, "rt_sigaction"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_access, "access"),
    (libc::SYS_pipe, "pipe"),
    (libc::SYS_sched_yield, "sched_yield"),
    (libc::SYS_mremap, "mremap"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_dup, "dup"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_getpid, "getpid"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_fork, "fork"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_exit, "exit"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_kill, "kill"),
    (libc::SYS_uname, "uname"),
    (libc::SYS_fcntl, "fcntl"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_ftruncate, "ftruncate"),
    (libc::SYS_getcwd, "getcwd"),
    (libc::SYS_readlink, "readlink"),
    (libc::SYS_sigaltstack, "sigaltstack"),
    (libc::SYS_sysinfo, "sysinfo"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_prctl, "prctl"),
    (libc::SYS_arch_prctl, "arch_prctl"),
    (libc::SYS_gettid, "gettid"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_sched_getaffinity, "sched_getaffinity"),
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_epoll_wait, "epoll_wait"),
    (libc::SYS_epoll_ctl, "epoll_ctl"),
    (libc::SYS_tgkill, "tgkill"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_ppoll, "ppoll"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_eventfd2, "eventfd2"),
    (libc::SYS_timerfd_create, "timerfd_create"),
    (libc::SYS_timerfd_settime, "timerfd_settime"),
    (libc::SYS_prlimit64, "prlimit64"),
    (libc::SYS_getrandom, "getrandom"),
    (libc::SYS_memfd_create, "memfd_create"),
    (libc::SYS_statx, "statx"),
    (libc::SYS_rseq, "rseq"),
    (libc::SYS_clone3, "clone3"),
];

/// The name of system call `nr`, if [`NAMES`] has it.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    NAMES.iter().find(|&&(n, _)| n == nr).map(|&(_, name)| name)
}

/// A fixed buffer on the stack that text is appended to (truncated when
/// full): formatting without allocation.
struct StackBuf {
    bytes: [u8; 320],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf { bytes: [0; 320], len: 0 }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn text(&mut self, s: &str) -> &mut Self {
        s.bytes().for_each(|b| self.push(b));
        self
    }

    fn digits(&mut self, mut v: u64, radix: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v % radix) as usize];
            v /= radix;
            if v == 0 || i == 0 {
                break;
            }
        }
        d[i..].iter().for_each(|&b| self.push(b));
        self
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The message for a trapped call `nr` (with `ioctl`'s `request`) on a
/// thread of kind `kind`.
fn message(kind: u8, nr: i64, request: u64) -> StackBuf {
    let mut m = StackBuf::new();
    m.text("vmm: seccomp: the ").text(kind_name(kind)).text(" thread made system call ");
    m.text(syscall_name(nr).unwrap_or("number")).text(" (").digits(nr as u64, 10).text(")");
    if nr == libc::SYS_ioctl {
        m.text(" with request 0x").digits(request, 16);
    }
    m.text(", which its filter refuses: ").text(HINT).text(" (exit status ");
    m.digits(EXIT_STATUS as u64, 10).text(")\n");
    m
}

/// The `SIGSYS` fields of `siginfo_t` on x86-64 (`_sigsys` in the union
/// at offset 16): the trapped call's address, number and audit arch.
#[repr(C)]
struct SigsysInfo {
    si_signo: libc::c_int,
    si_errno: libc::c_int,
    si_code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// The handler: report and end the process. Never returns.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO
    // handler; for SIGSYS from seccomp its union holds `_sigsys`, whose
    // layout on x86-64 is `SigsysInfo` (a prefix of the 128-byte struct).
    let nr = unsafe { info.cast::<SigsysInfo>().as_ref() }.map_or(-1, |i| i64::from(i.syscall));
    // SAFETY: `ctx` is the ucontext_t the kernel built for this handler;
    // RSI holds the trapped call's second argument (ioctl's request).
    let request = unsafe { ctx.cast::<libc::ucontext_t>().as_ref() }
        .map_or(0, |u| u.uc_mcontext.gregs[libc::REG_RSI as usize] as u64);
    let m = message(KIND.get(), nr, request);
    let b = m.as_bytes();
    // SAFETY: write(2) and exit_group(2) are async-signal-safe; `b` is a
    // live buffer of `b.len()` bytes on this stack.
    unsafe {
        libc::write(2, b.as_ptr().cast(), b.len());
        libc::syscall(libc::SYS_exit_group, EXIT_STATUS);
    }
}

/// Installs [`on_sigsys`] for the process (once; later calls return the
/// first result).
pub fn install_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    static ERRNO: AtomicI32 = AtomicI32::new(0);
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler has the
        // SA_SIGINFO signature; sigaction only reads `sa`.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut())
        };
        let errno = if rc == 0 { 0 } else { std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL) };
        ERRNO.store(errno, Ordering::Relaxed);
    });
    // call_once has completed (and synchronises with the store).
    match ERRNO.load(Ordering::Relaxed) {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &StackBuf) -> String {
        String::from_utf8(m.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn message_names_thread_call_number_and_hint() {
        let m = text(&message(1, libc::SYS_socket, 0));
        assert!(m.starts_with("vmm: seccomp: the vCPU thread made system call socket (41)"), "{m}");
        assert!(m.contains(HINT) && m.ends_with("(exit status 159)\n"), "{m}");
        let m = text(&message(2, libc::SYS_ioctl, 0xc008_ae88));
        assert!(m.contains("the event loop thread made system call ioctl (16) with request 0xc008ae88"), "{m}");
        let m = text(&message(3, 999, 0));
        assert!(m.contains("output writer thread made system call number (999)"), "{m}");
        assert!(text(&message(0, 0, 0)).contains("unfiltered thread made system call read (0)"));
    }

    #[test]
    fn long_text_is_truncated_not_overflowed() {
        let mut b = StackBuf::new();
        for _ in 0..100 {
            b.text("0123456789");
        }
        assert_eq!(b.as_bytes().len(), 320);
        let mut b = StackBuf::new();
        b.digits(u64::MAX, 10).text(" ").digits(u64::MAX, 16).text(" ").digits(0, 10);
        assert_eq!(text(&b), format!("{} {:x} 0", u64::MAX, u64::MAX));
    }

    #[test]
    fn names_match_their_numbers() {
        assert_eq!(syscall_name(libc::SYS_openat), Some("openat"));
        assert_eq!(syscall_name(libc::SYS_ioctl), Some("ioctl"));
        assert_eq!(syscall_name(100_000), None);
        let mut seen = std::collections::BTreeSet::new();
        assert!(NAMES.iter().all(|&(nr, _)| seen.insert(nr)), "a number twice");
    }
}
