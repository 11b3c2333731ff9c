//! seccomp: each thread of a running VMM may make only the system calls
//! it needs, as Firecracker does. One allow-list per thread kind
//! ([`rules`]): vCPU threads (KVM ioctls restricted by request number),
//! the event loop, and the output writer threads. Anything else traps
//! (`SECCOMP_RET_TRAP`): the `SIGSYS` handler installed with the filters
//! ([`sigsys`]) writes which thread made which call, with a hint, and
//! ends the whole process with status 159 ([`sigsys::EXIT_STATUS`], 128 +
//! `SIGSYS`): a VMM that tries a system call it never makes is
//! compromised or broken, and must not go on, but the user learns why.
//!
//! The filters must never be what ends a run a guest can cause. The lists
//! come from the paths the VMM's own code takes; the C library can make
//! calls behind its back. glibc's `malloc` does (it opens a `/proc` file
//! the first time it shrinks a thread arena): [`allocator::tune`] sets it,
//! before any filter, so that it never takes those paths (see that module
//! for why this way and not a musl build or an errno answer to `openat`).
//! Proof: the guests of `tests/vmm/vmm_seccomp_heap_trim.rs` and every
//! integration test run the `vmm` binary with its filters on.
//!
//! The filters are compiled before any vCPU starts and installed, per
//! thread, once the machine is built: each vCPU thread installs its own
//! and then waits at the [`Gate`] until the event loop has installed its
//! filter, so no guest instruction runs unfiltered. The output writer
//! threads exist before that (a filtered thread may not create threads):
//! the run publishes their filter ([`filter_writers`]) before the gate
//! opens, and each writer installs it ([`enter_writer`]) before it hands
//! its next bytes to the sink, so no byte the guest made is written by an
//! unfiltered thread. A filter is permanent
//! for its thread, which is why the library installs them only when
//! asked (`RunOptions::seccomp`); the `vmm` command asks unless
//! `--no-seccomp`.
//!
//! This module does not restrict threads that exist before the run (the
//! caller's others) or the setup phase (opening `/dev/kvm`, creating the
//! VM and memory), which happens before the guest can do anything.

pub mod allocator;
pub mod rules;
pub mod sigsys;

use std::cell::Cell;
use std::io::Write as _;
use std::sync::{Condvar, Mutex, OnceLock};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use thiserror::Error;

pub use rules::{ArgIs, Call, Row, ThreadKind};

/// Errors building or installing a filter.
#[derive(Debug, Error)]
pub enum SeccompError {
    /// A rule or filter could not be built or compiled.
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// The process could not be made ready for the filters (the `SIGSYS`
    /// handler, the allocator settings).
    #[error("cannot prepare the process for seccomp: {0}")]
    Prepare(String),
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter of the {kind:?} thread: {source}")]
    Install {
        /// Whose filter.
        kind: ThreadKind,
        /// The error.
        #[source]
        source: seccompiler::Error,
    },
}

/// The compiled filter of `kind`, with the guest kind's `rows`.
pub fn filter(kind: ThreadKind, rows: &[Row]) -> Result<BpfProgram, SeccompError> {
    let rules = rules::rules(kind, rows)?;
    let f = SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, TargetArch::x86_64)?;
    Ok(f.try_into()?)
}

/// Makes the process ready for filters, before the first is installed:
/// the `SIGSYS` handler ([`sigsys`]) and the allocator settings
/// ([`allocator`]). Process-wide and idempotent.
pub fn prepare_process() -> Result<(), SeccompError> {
    sigsys::install_handler().map_err(|e| SeccompError::Prepare(format!("SIGSYS handler: {e}")))?;
    allocator::tune().map_err(|what| SeccompError::Prepare(format!("glibc refused mallopt({what})")))
}

/// Installs `prog` on the calling thread (with `no_new_privs`), after
/// noting the thread's kind for the `SIGSYS` handler.
pub fn install(kind: ThreadKind, prog: &BpfProgram) -> Result<(), SeccompError> {
    sigsys::set_thread_kind(kind);
    seccompiler::apply_filter(prog).map_err(|source| SeccompError::Install { kind, source })
}

/// Makes the calling thread try a system call no allow-list has
/// (`socket(AF_INET, SOCK_STREAM)`): the self-test of `--seccomp-selftest`.
/// Under a filter the `SIGSYS` handler ends the process here; without one the
/// socket is closed again and the run goes on.
pub fn forbidden_syscall(kind: ThreadKind) {
    // Written synchronously, not through the log: the log is drained by a
    // writer thread, and under a filter the process dies on the next line.
    let _ = writeln!(std::io::stderr(), "seccomp self-test: the {kind:?} thread calls socket()");
    // SAFETY: socket() takes no pointers; the returned fd (if any) is
    // owned here and closed at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by socket() and nothing else
        // holds it.
        unsafe { libc::close(fd) };
    }
    let _ = writeln!(std::io::stderr(), "seccomp self-test: socket() returned {fd}: no filter on the {kind:?} thread");
}

/// The writer threads' filter, once a run has turned seccomp on, and
/// whether they make the forbidden call once filtered (test hook).
static WRITER_FILTER: OnceLock<(BpfProgram, bool)> = OnceLock::new();

thread_local! {
    /// Has this thread installed [`WRITER_FILTER`]?
    static WRITER_FILTERED: Cell<bool> = const { Cell::new(false) };
}

/// Publishes the writer threads' filter: every output writer thread
/// installs it before its next write ([`enter_writer`]). Once per
/// process; a later call keeps the first filter (the filter is permanent
/// for the threads that installed it anyway).
pub fn filter_writers(prog: BpfProgram, selftest: bool) {
    let _ = WRITER_FILTER.set((prog, selftest));
}

/// Called by an output writer thread before each write: installs the
/// writer filter on the calling thread if one was published and this
/// thread has not installed it yet.
pub fn enter_writer() -> Result<(), SeccompError> {
    if WRITER_FILTERED.get() {
        return Ok(());
    }
    let Some((prog, selftest)) = WRITER_FILTER.get() else { return Ok(()) };
    WRITER_FILTERED.set(true);
    install(ThreadKind::Writer, prog)?;
    if *selftest {
        forbidden_syscall(ThreadKind::Writer);
    }
    Ok(())
}

/// What the vCPU threads need from the seccomp setup of a run.
#[derive(Debug)]
pub struct Gate {
    /// The vCPU filter, `None` when seccomp is off.
    vcpu: Option<BpfProgram>,
    /// Which thread makes a forbidden call once filtered (test hook).
    selftest: Option<ThreadKind>,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    /// A gate for a run; `vcpu` is the vCPU filter (`None`: seccomp off,
    /// and the gate never waits).
    pub fn new(vcpu: Option<BpfProgram>, selftest: Option<ThreadKind>) -> Self {
        let open = vcpu.is_none();
        Gate { vcpu, selftest, open: Mutex::new(open), cv: Condvar::new() }
    }

    /// Called by each vCPU thread before it first enters the guest:
    /// installs the vCPU filter, then waits until [`Gate::open`].
    pub fn enter_vcpu(&self) -> Result<(), SeccompError> {
        let installed = match &self.vcpu {
            Some(p) => install(ThreadKind::Vcpu, p),
            None => Ok(()),
        };
        if installed.is_ok() && self.selftest == Some(ThreadKind::Vcpu) {
            forbidden_syscall(ThreadKind::Vcpu);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.cv.wait(open).unwrap_or_else(|e| e.into_inner());
        }
        installed
    }

    /// Lets the vCPU threads run (after the event loop's filter is on, or
    /// when the run is being abandoned).
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Should the event loop make the forbidden call (test hook)?
    pub fn selftest_event_loop(&self) -> bool {
        self.selftest == Some(ThreadKind::EventLoop)
    }
}
