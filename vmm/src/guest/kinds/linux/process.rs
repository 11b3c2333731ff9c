//! The Linux process: its image, stack, break, limits, capabilities,
//! signal dispositions, files and memfds, and how it is set up in the
//! hosted address space. The system calls (`super::syscalls`) and
//! signals (`super::signal`) work on it; the `GuestKind` seam
//! (`super::kind`) runs it. Nothing here serves a call itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use guest_mm::providers::{HugetlbPool, ZeroProvider};
use guest_mm::{FaultAccess, GuestVirtAddr, MmError, MmapProvider, MmapRequest, VmFlags, VmaDesc};
use vm_memory::{Bytes, GuestAddress};

use super::fs::{Fd, Vfs, VfsConfig};
use super::image::{self, Image, TASK_SIZE};
use super::proc_files::{self, ProcFiles, View};
use super::procfs::{FileId, StatExtra, StatusExtra, TaskState};
use super::stack::{self, at, StackSpec};
use crate::config::VmConfig;
use crate::guest::kind::KindError;
use crate::hosted::hypercall::{self, HostedKernel};
use crate::hosted::mapper::Mapper;
use crate::memory::GuestMem;
use crate::run::output::Output;
use crate::vstate::backend::{self, SyscallEntry};

/// Size of the stack mapping (`RLIMIT_STACK`'s default).
pub const STACK_SIZE: u64 = 8 << 20;
/// Top of the stack (Linux's `STACK_TOP` is `TASK_SIZE`, less a random
/// offset; this leaves a guard gap below `TASK_SIZE`).
pub const STACK_TOP: u64 = TASK_SIZE - (1 << 20);
/// The lowest address a mapping may have (`vm.mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x1_0000;
/// The process id (and thread id) the program sees.
pub const PID: u64 = 100;
/// The signal number of `SIGSEGV`.
pub const SIGSEGV: i32 = 11;

/// Resource limits (`RLIMIT_*` numbers index [`Proc::rlimits`]).
pub mod rlimit {
    /// Stack size.
    pub const STACK: usize = 3;
    /// Open files.
    pub const NOFILE: usize = 7;
    /// Locked memory.
    pub const MEMLOCK: usize = 8;
    /// How many there are.
    pub const COUNT: usize = 16;
    /// No limit.
    pub const INFINITY: u64 = u64::MAX;
}

/// The running thread's state, behind one lock: its own (mask, pending
/// signals, alternate stack, FS base, tid pointers, name) and its
/// process's (limits, dispositions, timer, umask, credentials), which
/// every thread of the process shares ([`Proc::inherit_shared`]).
#[derive(Debug, Clone)]
pub struct Proc {
    /// `set_tid_address`'s pointer (`CLONE_CHILD_CLEARTID`): zeroed and
    /// woken when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list`'s head (0: none): walked when the thread ends
    /// (`super::robust`); a new thread or process starts without one.
    pub robust_list: u64,
    /// `CLONE_CHILD_SETTID`'s pointer: the thread's tid is written there
    /// before it first runs (then 0).
    pub set_child_tid: u64,
    /// `(soft, hard)` limits.
    pub rlimits: [(u64, u64); rlimit::COUNT],
    /// Signal dispositions: the handler address (0 default, 1 ignore),
    /// by signal number.
    pub sigactions: BTreeMap<u32, [u64; 4]>,
    /// The blocked-signal mask.
    pub sigmask: u64,
    /// Signals sent and not yet delivered (one of each).
    pub pending: BTreeMap<u32, super::signal::info::SigInfo>,
    /// `ITIMER_REAL` (`alarm`, `setitimer`), when armed.
    pub itimer_real: Option<super::signal::timer::RealTimer>,
    /// `sigaltstack`: (sp, flags, size).
    pub altstack: (u64, u32, u64),
    /// The FS base the program set.
    pub fs_base: u64,
    /// The file-mode creation mask.
    pub umask: u32,
    /// Capabilities: (effective, permitted, inheritable).
    pub caps: (u64, u64, u64),
    /// The user (and group) id.
    pub uid: u32,
    /// The command name (`comm`: `PR_SET_NAME`, `/proc/self/comm`), at
    /// most 15 bytes.
    pub comm: Vec<u8>,
    /// `PR_SET_DUMPABLE`'s value (1 at start).
    pub dumpable: u64,
    /// `PR_SET_MDWE`'s bits (`PR_MDWE_REFUSE_EXEC_GAIN`,
    /// `PR_MDWE_NO_INHERIT`); once set they stay.
    pub mdwe: u64,
    /// `set_mempolicy`'s policy (`None`: the default).
    pub mempolicy: Option<guest_mm::mempolicy::MemPolicy>,
    /// A `nanosleep` in progress: its request pointer and deadline (the
    /// call is made again until then; a signal ends it with `EINTR`).
    pub sleep: Option<(u64, std::time::Instant)>,
}

/// `CAP_IPC_LOCK`: lock any amount of memory.
pub const CAP_IPC_LOCK: u32 = 14;
/// Every capability Linux 6.12 has (0 to 40).
pub const ALL_CAPS: u64 = (1 << 41) - 1;

impl Proc {
    /// Whether capability `cap` is in the effective set.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.caps.0 & (1 << cap) != 0
    }
}

impl Proc {
    /// Takes the process-wide fields from `from`, another thread of the
    /// same process: limits, dispositions, the real-time timer, umask,
    /// capabilities, uid, dumpable, MDWE.
    pub fn inherit_shared(&mut self, from: &Proc) {
        self.rlimits = from.rlimits;
        self.sigactions.clone_from(&from.sigactions);
        self.itimer_real = from.itimer_real;
        self.umask = from.umask;
        self.caps = from.caps;
        self.uid = from.uid;
        self.dumpable = from.dumpable;
        self.mdwe = from.mdwe;
    }

    fn new() -> Self {
        let mut rlimits = [(rlimit::INFINITY, rlimit::INFINITY); rlimit::COUNT];
        rlimits[rlimit::STACK] = (STACK_SIZE, rlimit::INFINITY);
        rlimits[rlimit::NOFILE] = (1024, 4096);
        rlimits[rlimit::MEMLOCK] = (8 << 20, 8 << 20);
        rlimits[4] = (0, rlimit::INFINITY); // RLIMIT_CORE
        Proc {
            clear_child_tid: 0,
            robust_list: 0,
            set_child_tid: 0,
            rlimits,
            sigactions: BTreeMap::new(),
            sigmask: 0,
            pending: BTreeMap::new(),
            itimer_real: None,
            altstack: (0, 2, 0), // SS_DISABLE
            fs_base: 0,
            umask: 0o022,
            caps: (ALL_CAPS, ALL_CAPS, 0),
            uid: 0,
            comm: Vec::new(),
            dumpable: 1,
            mdwe: 0,
            mempolicy: None,
            sleep: None,
        }
    }
}

/// An anonymous provider under another name (`[heap]`, `[stack]`): the
/// name shows in `/proc/self/maps`; the pages are the zero provider's.
pub struct Named {
    pub(super) name: &'static str,
    pub(super) inner: Arc<ZeroProvider<GuestMem>>,
}

impl MmapProvider for Named {
    fn name(&self) -> &str {
        self.name
    }

    fn mmap_prepare(&self, desc: &mut VmaDesc) -> Result<(), MmError> {
        self.inner.mmap_prepare(desc)
    }
}

/// The providers of the process's anonymous memory, made at load.
pub struct Anon {
    /// Anonymous mappings (`MAP_ANONYMOUS`, `/dev/zero`).
    pub zero: Arc<ZeroProvider<GuestMem>>,
    /// The heap (`brk`).
    pub heap: Arc<Named>,
    /// The stack.
    pub stack: Named,
    /// The frame state new shared-memory objects take pages from.
    pub frames: guest_mm::Frames,
    /// Guest memory (to zero and copy those pages).
    pub mem: GuestMem,
}

/// An unmodified static x86-64 Linux program.
pub struct Linux {
    pub(super) path: String,
    pub(super) exe: String,
    pub(super) exe_ino: u64,
    pub(super) image: Image,
    pub(super) argv: Vec<Vec<u8>>,
    pub(super) envp: Vec<Vec<u8>>,
    pub(super) entry: SyscallEntry,
    pub(super) proc: Mutex<Proc>,
    pub(super) anon: OnceLock<Anon>,
    pub(super) enosys: Mutex<BTreeMap<u64, u64>>,
    /// A signal that ended the run (the status is 128 + it).
    pub(super) killed_by: Mutex<Option<i32>>,
    /// The first process was killed by the running one: its end (the
    /// `exit_group` effect of that `kill`) ends the run.
    first_killed: std::sync::atomic::AtomicBool,
    pub(super) stderr: Option<Output>,
    pub(super) vfs: Mutex<Vfs>,
    pub(super) proc_files: ProcFiles,
    pub(super) memfds: super::memfd::Memfds,
    /// Ranges of shrunk files still to clear from their mappings.
    pub(super) file_zaps: super::file_pages::Zaps,
    /// The SysV shared-memory segments.
    pub(super) shm: super::sysv_shm::SharedTable,
    /// Pipes and socket pairs.
    pub(super) ipc: super::ipc::Ipc,
    /// A wait nothing could end, which ended the run (what it was).
    pub(super) blocked_forever: Mutex<Option<String>>,
    pub(super) uffds: super::userfaultfd::Uffds,
    /// The THP settings only sysfs keeps (`thp_sysfs.rs`).
    pub(super) thp_knobs: Mutex<super::thp_sysfs::ThpKnobs>,
    /// The THP mode the program starts with (`--thp`; `madvise` unless set).
    thp_mode: OnceLock<guest_mm::ThpMode>,
    /// 2 MiB pages `--hugepages` asks for (`vm.nr_hugepages`).
    pub(super) hugepages: std::sync::atomic::AtomicU64,
    /// The hugetlb pool (made at load, empty without `--hugepages`).
    pub(super) hugetlb: OnceLock<HugetlbPool<GuestMem>>,
    /// Stands for host randomness in the layout ([`Linux::detached`]).
    layout_seed: Option<u64>,
    /// A shootdown that failed inside a call (the run cannot go on);
    /// the dispatcher ends the run with it.
    fatal: Mutex<Option<String>>,
    /// The processes (the running one's state is live: in the address
    /// space, [`Linux::proc`] and the file layer).
    pub(super) tasks: Mutex<super::tasks::table::Tasks<Box<super::tasks::switch::Saved>>>,
    /// Set by a call that answers `RESTART` until another process does
    /// something (`wait4`): the process blocks rather than retrying.
    pub(super) waits_for_event: std::sync::atomic::AtomicBool,
    /// The deadline of the wait [`Linux::wait_for_event_until`] asked for.
    pub(super) wait_deadline: Mutex<Option<std::time::Instant>>,
    /// Set by a call that answers `RESTART` for a signal's handler and
    /// must be made again after it whatever the handler's `SA_RESTART`
    /// (Linux's `-ERESTARTNOINTR`: `FUTEX_LOCK_PI`).
    pub(super) restarts_always: std::sync::atomic::AtomicBool,
    /// Set by `sched_yield`: another thread runs now if one can.
    pub(super) yields: std::sync::atomic::AtomicBool,
    /// Set by a futex wait that parks: only a wake, a signal or a
    /// deadline makes the thread runnable again.
    pub(super) parks_on_futex: std::sync::atomic::AtomicBool,
    /// What each process keeps while none of its threads runs.
    pub(super) aside: Mutex<BTreeMap<u32, super::tasks::switch::Shared>>,
    /// Threads waiting on futexes.
    pub(super) futexes: Mutex<super::futex::Futexes>,
    /// Kicks each vCPU once a slice while more than one thread lives,
    /// so one that never makes a system call is preempted too (each made
    /// by, and kicking, its own vCPU's thread).
    pub(super) slice_timer: Mutex<Vec<Option<crate::vstate::slice_timer::SliceTimer>>>,
    /// How many vCPUs the program has (`--vcpus`).
    pub(super) vcpus: u8,
    /// With several vCPUs: one exit at a time in the kind
    /// (`tasks::cpus`).
    pub(super) big_lock: Mutex<()>,
    /// Which thread each vCPU runs.
    pub(super) cpus: Mutex<super::tasks::cpus::Cpus>,
    /// The first process's root table: the idle loop runs in its space.
    pub(super) idle_cr3: OnceLock<vm_memory::GuestAddress>,
}

/// What [`Linux::new`] and [`Linux::detached`] find out before the
/// process is put together.
struct Parts {
    name: String,
    exe: String,
    exe_ino: u64,
    image: Image,
    argv: Vec<Vec<u8>>,
    envp: Vec<String>,
    entry: SyscallEntry,
    stderr: Option<Output>,
    vcpus: u8,
}

impl std::fmt::Debug for Linux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linux").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Host-random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut done = 0;
    while done < N {
        // SAFETY: the pointer and length describe the unfilled tail of
        // `b`, which getrandom only writes.
        let n = unsafe { libc::getrandom(b[done..].as_mut_ptr().cast(), N - done, 0) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
    b
}

impl Linux {
    /// The program in `bytes` (from `path`), with the run's arguments and
    /// the environment `env`.
    pub fn new(path: &Path, bytes: &[u8], cfg: &VmConfig, env: Vec<String>) -> Result<Self, KindError> {
        let name = path.display().to_string();
        let max = super::tasks::cpus::MAX_VCPUS;
        if cfg.vcpus == 0 || cfg.vcpus > max {
            return Err(KindError::Invalid(format!(
                "{name}: --vcpus {}: a Linux program runs on 1 to {max} vCPUs",
                cfg.vcpus
            )));
        }
        let image = image::parse(bytes, u64::from_le_bytes(random_bytes::<8>()))
            .map_err(|e| KindError::Invalid(format!("{name}: {e}")))?;
        let mut argv = vec![name.clone().into_bytes()];
        argv.extend(cfg.guest_args.iter().map(|a| a.clone().into_bytes()));
        let stderr = Output::stderr().ok();
        if let Some(o) = &stderr {
            o.start_writer();
        }
        let exe = std::fs::canonicalize(path).map_or_else(|_| name.clone(), |p| p.display().to_string());
        let exe_ino = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(path).map_err(|e| KindError::Setup(format!("{name}: {e}")))?,
        );
        let parts = Parts {
            name,
            exe,
            exe_ino,
            image,
            argv,
            envp: env,
            entry: backend::syscall_entry(),
            stderr,
            vcpus: cfg.vcpus,
        };
        Self::assemble(parts, None)
    }

    /// The program in `bytes`, named `name`, with no file behind it and
    /// nothing random in its layout: for running its system calls without
    /// KVM (the fuzz targets, tests). `seed` stands for every random
    /// choice (the base of a `-static-pie` image, where mappings start);
    /// `/proc/self/exe` names `name` (inode 0); standard error goes to the
    /// console, as standard output does; `syscall` enters the kernel stub
    /// (no trampoline page).
    pub fn detached(name: &str, bytes: &[u8], seed: u64) -> Result<Self, KindError> {
        let image = image::parse(bytes, seed).map_err(|e| KindError::Invalid(format!("{name}: {e}")))?;
        let parts = Parts {
            name: name.to_string(),
            exe: name.to_string(),
            exe_ino: 0,
            image,
            argv: vec![name.as_bytes().to_vec()],
            envp: Vec::new(),
            entry: SyscallEntry::Kernel,
            stderr: None,
            vcpus: 1,
        };
        Self::assemble(parts, Some(seed))
    }

    /// The process from its parts; `layout_seed` replaces host-random
    /// layout choices at load when given.
    fn assemble(p: Parts, layout_seed: Option<u64>) -> Result<Self, KindError> {
        let setup = |e: super::fs::Errno| KindError::Setup(format!("{}: the file tree: errno {}", p.name, e.raw()));
        let mut vfs = Vfs::new(&VfsConfig::default());
        vfs.set_exe(p.exe.as_bytes()).map_err(setup)?;
        let proc_files = ProcFiles::default();
        proc_files.register(&mut vfs).map_err(setup)?;
        super::sysv_shm::procfs::register(&mut vfs).map_err(setup)?;
        super::thp_sysfs::register(&mut vfs).map_err(setup)?;
        // The program starts in the writable /tmp (as a test run from a
        // scratch directory does); `/` itself is read-only.
        vfs.chdir(b"/tmp").map_err(setup)?;
        let comm = comm_of(&p.name);
        Ok(Linux {
            exe_ino: p.exe_ino,
            vfs: Mutex::new(vfs),
            proc_files,
            memfds: Default::default(),
            file_zaps: Default::default(),
            shm: Default::default(),
            ipc: Default::default(),
            blocked_forever: Mutex::new(None),
            uffds: Default::default(),
            hugepages: Default::default(),
            thp_knobs: Default::default(),
            thp_mode: OnceLock::new(),
            hugetlb: OnceLock::new(),
            exe: p.exe,
            path: p.name,
            proc: Mutex::new(Proc { comm, ..Proc::new() }),
            image: p.image,
            argv: p.argv,
            envp: p.envp.into_iter().map(String::into_bytes).collect(),
            entry: p.entry,
            anon: OnceLock::new(),
            enosys: Mutex::new(BTreeMap::new()),
            killed_by: Mutex::new(None),
            first_killed: Default::default(),
            stderr: p.stderr,
            layout_seed,
            fatal: Mutex::new(None),
            tasks: Mutex::new(super::tasks::table::Tasks::new(PID as u32, super::tasks::switch::MAX_PROCS)),
            waits_for_event: Default::default(),
            wait_deadline: Mutex::new(None),
            restarts_always: Default::default(),
            yields: Default::default(),
            parks_on_futex: Default::default(),
            aside: Mutex::new(BTreeMap::new()),
            futexes: Default::default(),
            slice_timer: Mutex::new((0..p.vcpus.max(1)).map(|_| None).collect()),
            vcpus: p.vcpus.max(1),
            big_lock: Mutex::new(()),
            cpus: Mutex::new(super::tasks::cpus::Cpus::new(p.vcpus, PID as u32)),
            idle_cr3: OnceLock::new(),
        })
    }

    /// A number for a random layout choice: host-random, or the seed of
    /// a [`Linux::detached`] process.
    pub(super) fn layout_random(&self) -> u64 {
        self.layout_seed.unwrap_or_else(|| u64::from_le_bytes(random_bytes::<8>()))
    }

    /// The process state, locked.
    pub fn proc(&self) -> MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The anonymous providers (made when the program was loaded).
    pub fn anon(&self) -> Option<&Anon> {
        self.anon.get()
    }

    /// The program's path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The program's absolute path (`/proc/self/exe`, as Linux gives it).
    pub fn exe(&self) -> &str {
        &self.exe
    }

    /// Runs the program as user (and group) `uid`: root keeps every
    /// capability, any other user has none.
    pub fn set_uid(&self, uid: u32) {
        let mut p = self.proc();
        p.uid = uid;
        p.caps = if uid == 0 { (ALL_CAPS, ALL_CAPS, 0) } else { (0, 0, 0) };
    }

    /// Makes the host file `host` reachable as `guest` (read-only unless
    /// `writable`).
    pub fn add_host_file(&self, guest: &str, host: std::path::PathBuf, writable: bool) -> Result<(), KindError> {
        self.vfs()
            .add_host_file(guest, host, writable)
            .map_err(|e| KindError::Invalid(format!("--file {guest}: cannot place it (errno {})", e.raw())))
    }

    /// Sets aside `pages` 2 MiB pages of guest RAM for `MAP_HUGETLB`
    /// (before the run starts; `vm.nr_hugepages`).
    pub fn set_hugepages(&self, pages: u64) {
        self.hugepages.store(pages, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the THP mode the program starts with (`--thp`); only the
    /// first call counts.
    pub fn set_thp_mode(&self, mode: guest_mm::ThpMode) {
        let _ = self.thp_mode.set(mode);
    }

    /// The THP mode the program starts with: `madvise` (what the Linux
    /// 6.18 the selftests' results come from runs with) unless `--thp`
    /// chose another.
    pub fn thp_mode(&self) -> guest_mm::ThpMode {
        self.thp_mode.get().copied().unwrap_or(guest_mm::ThpMode::Madvise)
    }

    /// The 2 MiB pages asked for.
    pub fn hugepages(&self) -> u64 {
        self.hugepages.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The hugetlb pool (made when the program was loaded).
    pub fn hugetlb(&self) -> Option<&HugetlbPool<GuestMem>> {
        self.hugetlb.get()
    }

    /// The memfds.
    pub fn memfds(&self) -> &super::memfd::Memfds {
        &self.memfds
    }

    /// Ranges of shrunk files still to clear from their mappings.
    pub fn file_zaps(&self) -> &super::file_pages::Zaps {
        &self.file_zaps
    }

    /// The SysV shared-memory table (never held across an address-space
    /// operation: its VMAs' hooks lock it).
    pub fn shm(&self) -> &super::sysv_shm::SharedTable {
        &self.shm
    }

    /// The SysV shared-memory table, locked.
    pub fn shm_table(&self) -> MutexGuard<'_, super::sysv_shm::ShmTable<super::sysv_shm::Backing>> {
        self.shm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pipes and socket pairs.
    pub fn ipc(&self) -> &super::ipc::Ipc {
        &self.ipc
    }

    /// Ends the run: the process waits for `what`, which only another
    /// process could bring, and there is none. Linux would wait forever;
    /// the run ends with the status of a process killed by `SIGKILL`
    /// (137) and the report says why.
    pub fn blocked_forever(&self, what: &str) -> hypercall::Outcome {
        let msg = format!("blocked forever: {what} with no other process");
        log::warn!("linux: {}: {msg}", self.path);
        self.blocked_forever.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(msg);
        let status = 128 + super::signal::info::sig::SIGKILL as i32;
        hypercall::Outcome { ret: 0, effects: hypercall::Effects { exit_group: Some(status), ..Default::default() } }
    }

    /// Why the run ended blocked forever, if it did.
    pub fn blocked_reason(&self) -> Option<String> {
        self.blocked_forever.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The userfaultfd contexts.
    pub fn uffds(&self) -> &super::userfaultfd::Uffds {
        &self.uffds
    }

    /// The file layer, locked.
    pub fn vfs(&self) -> MutexGuard<'_, Vfs> {
        self.vfs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renders the `/proc` file `path` names (if it is a generated one)
    /// before it is opened.
    pub fn refresh_proc(&self, hv: &HostedKernel, path: &[u8]) {
        self.proc_files.refresh(hv, path, &self.view());
    }

    /// Before a read of `fd`: a generated `/proc` file read from its
    /// start is rendered again (the file layer then takes the new text).
    /// `ESRCH` when it is another process's `/proc/N/` file and that
    /// process was reaped.
    pub fn before_read(&self, hv: &HostedKernel, fd: Fd) -> Result<(), i32> {
        let name = {
            let mut vfs = self.vfs();
            let Ok(st) = vfs.fstat(fd) else { return Ok(()) };
            let ino = u64::from_le_bytes(st[8..16].try_into().unwrap_or_default());
            let Some(name) = self.proc_files.rendered(ino) else { return Ok(()) };
            if vfs.lseek(fd, 0, libc::SEEK_CUR) != Ok(0) {
                return Ok(());
            }
            name
        };
        if super::proc_pid::split(name.as_bytes()).is_some() {
            return self.refresh_pid_file(hv, &name);
        }
        self.refresh_proc(hv, name.as_bytes());
        Ok(())
    }

    /// What the `/proc` files show beyond the address space, for the
    /// running process.
    pub(super) fn view(&self) -> View<'_> {
        let (pid, ppid) = (self.pid(), self.ppid());
        let (pgid, sid, forked, threads) = {
            let t = self.tasks();
            let task = t.get(pid);
            let threads = t.threads(pid).len().max(1) as u32;
            (task.map_or(pid, |x| x.pgid), task.map_or(pid, |x| x.sid), pid != t.init(), threads)
        };
        let extra = self.proc_extra(&self.proc(), StatusExtra { threads, ..StatusExtra::default() });
        let extra = self.extra_for(pid, (ppid, pgid, sid), TaskState::Running, extra);
        let mut view = View {
            exe: &self.exe,
            exe_id: FileId { major: 0xfe, minor: 1, ino: self.exe_ino },
            file_parts: &self.image.file_parts,
            start_stack: STACK_TOP - 8,
            extra,
            huge: self.hugetlb().map(|h| h.counts()).unwrap_or_default(),
            shmem: 0,
            argv: &self.argv,
            stat: StatExtra { forked, start_stack: STACK_TOP - 8 },
        };
        // SysV segments' 4 KiB pages are shmem (hugetlb ones are not).
        view.shmem = self.shm_table().segments().filter(|s| !s.huge).map(|s| s.backing.resident_bytes()).sum();
        view
    }

    /// `extra` with what process state `p` says: name, umask, ids,
    /// capabilities, signal sets.
    pub(super) fn proc_extra(&self, p: &Proc, extra: StatusExtra) -> StatusExtra {
        use super::signal::info::bit;
        let pending = p.pending.keys().fold(0, |m, &s| m | bit(s));
        let handled =
            |f: fn(u64) -> bool| p.sigactions.iter().filter(|(_, a)| f(a[0])).fold(0, |m, (&s, _)| m | bit(s));
        StatusExtra {
            name: String::from_utf8_lossy(&p.comm).into_owned(),
            umask: p.umask,
            caps: [p.caps.2, p.caps.1, p.caps.0, ALL_CAPS, 0],
            uid: [p.uid; 4],
            gid: [p.uid; 4],
            // SIG_IGN is 1; a handler any other address.
            signals: [pending, 0, p.sigmask, handled(|h| h == 1), handled(|h| h > 1)],
            ..extra
        }
    }

    /// `extra` for process `pid` with parent, group and session `ids`,
    /// doing `state`.
    pub(super) fn extra_for(
        &self,
        pid: u32,
        ids: (u32, u32, u32),
        state: TaskState,
        extra: StatusExtra,
    ) -> StatusExtra {
        let (ppid, pgid, sid) = ids;
        StatusExtra { pid, ppid, pgid, sid, state, ..extra }
    }

    /// Reads `len` bytes of a file the kind serves itself (tag `tag`),
    /// at `off` or at the descriptor's offset (which then moves).
    pub fn read_special(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        fd: Fd,
        tag: u32,
        len: usize,
        off: Option<u64>,
    ) -> Result<Vec<u8>, i32> {
        let file = self.vfs().special(fd).map_err(|e| e.raw())?;
        let at = match off {
            Some(o) => o,
            None => file.map_or(0, |s| s.offset),
        };
        let bytes = match tag {
            proc_files::PAGEMAP => self.proc_files.pagemap(hv, at, len, &self.view())?,
            super::proc_mem::MEM => {
                super::proc_mem::check_mode(&file.ok_or(libc::EBADF)?, false)?;
                super::proc_mem::read(self, hv, vcpu, at, len)?
            }
            t if super::sysv_shm::procfs::is_ours(t) => super::sysv_shm::procfs::read(t, &self.shm_table(), at, len)?,
            t if super::thp_sysfs::is_ours(t) => {
                let knobs = self.thp_knobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
                super::thp_sysfs::read(t, hv.mapper().space().thp_policy(), &knobs, at, len)?
            }
            // A userfaultfd has no events to read (none is ever queued).
            t if super::userfaultfd::tag_of(super::fs::Special::Tag(t)).is_some() => return Err(libc::EAGAIN),
            _ => return Err(libc::EINVAL),
        };
        if off.is_none() {
            self.vfs().set_offset(fd, at.wrapping_add(bytes.len() as u64)).map_err(|e| e.raw())?;
        }
        Ok(bytes)
    }

    /// Records that a call left the run unable to go on (`msg` says why).
    pub fn note_fatal(&self, msg: String) {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(msg);
    }

    /// The failure [`Linux::note_fatal`] recorded, once.
    pub fn take_fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Writes `data` to a SysV sysctl the kind serves itself (tag `tag`)
    /// at the descriptor's offset (root only, `EPERM`).
    pub fn write_sysctl(&self, fd: Fd, tag: u32, data: &[u8]) -> Result<u64, i32> {
        if !super::sysv_shm::procfs::is_ours(tag) || tag == super::sysv_shm::procfs::SYSVIPC_SHM {
            return Err(libc::EINVAL);
        }
        if self.proc().uid != 0 {
            return Err(libc::EPERM);
        }
        let at = self.vfs().special(fd).map_err(|e| e.raw())?.map_or(0, |s| s.offset);
        let mut t = self.shm_table();
        let l = super::sysv_shm::procfs::write(tag, t.limits(), at, data)?;
        t.set_limits(l);
        drop(t);
        self.vfs().set_offset(fd, at + data.len() as u64).map_err(|e| e.raw())?;
        Ok(data.len() as u64)
    }

    /// Counts a call answered `ENOSYS`.
    pub fn count_enosys(&self, nr: u64) {
        *self.enosys.lock().unwrap_or_else(|e| e.into_inner()).entry(nr).or_default() += 1;
    }

    /// Where the program's standard error goes.
    pub fn stderr(&self) -> Option<&Output> {
        self.stderr.as_ref()
    }

    /// Records that signal `sig`, sent by the running process, killed
    /// the first one: the running process's end then ends the run
    /// ([`Linux::first_killed`]) with status 128 + `sig`.
    pub fn kill_first(&self, sig: i32) -> hypercall::Outcome {
        self.first_killed.store(true, std::sync::atomic::Ordering::Relaxed);
        self.kill(sig)
    }

    /// Whether the first process was killed by another ([`Linux::kill_first`]);
    /// asking clears it.
    pub fn take_first_killed(&self) -> bool {
        self.first_killed.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that signal `sig` ends the run.
    pub fn kill(&self, sig: i32) -> hypercall::Outcome {
        self.killed_by.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(sig);
        hypercall::Outcome { ret: 0, effects: hypercall::Effects { exit_group: Some(128 + sig), ..Default::default() } }
    }

    fn aux(&self) -> Vec<(u64, u64)> {
        let i = &self.image;
        vec![
            (at::PHDR, i.phdr),
            (at::PHENT, i.phent),
            (at::PHNUM, i.phnum),
            (at::PAGESZ, 4096),
            (at::BASE, 0),
            (at::FLAGS, 0),
            (at::ENTRY, i.entry),
            (at::UID, 0),
            (at::EUID, 0),
            (at::GID, 0),
            (at::EGID, 0),
            (at::SECURE, 0),
            (at::HWCAP, hwcap()),
            (at::HWCAP2, 0),
            (at::CLKTCK, 100),
            (at::MINSIGSTKSZ, 2048),
        ]
    }

    /// Maps the stack and writes the initial one (arguments, environment,
    /// auxiliary vector); returns the initial `rsp`.
    pub(super) fn load_stack(&self, mapper: &mut Mapper, mem: &GuestMem, anon: &Anon) -> Result<u64, KindError> {
        let err = |e: String| KindError::Setup(format!("{}: {e}", self.path));
        let spec = StackSpec {
            argv: self.argv.clone(),
            envp: self.envp.clone(),
            execfn: self.path.clone().into_bytes(),
            aux: self.aux(),
            random: match self.layout_seed {
                Some(seed) => [seed.to_le_bytes(), (!seed).to_le_bytes()].concat().try_into().unwrap_or_default(),
                None => random_bytes::<16>(),
            },
        };
        let (bytes, sp) = stack::build(&spec, STACK_TOP)
            .ok_or_else(|| err(format!("arguments and environment are over {} bytes", stack::ARG_MAX)))?;
        let base = GuestVirtAddr::try_new(STACK_TOP - STACK_SIZE).map_err(|e| err(e.to_string()))?;
        let req = MmapRequest::private(STACK_SIZE, VmFlags::READ | VmFlags::WRITE)
            .fixed_noreplace(base)
            .pgoff(base.raw() >> 12);
        mapper
            .space_mut()
            .mmap(&anon.stack, &req)
            .map_err(|e| err(format!("cannot map the stack: {e}")))?
            .flush
            .ignore();
        let mut page = sp & !0xfff;
        while page < STACK_TOP {
            let va = GuestVirtAddr::try_new(page).map_err(|e| err(e.to_string()))?;
            let f = mapper
                .space_mut()
                .fault(va, FaultAccess { write: true, exec: false })
                .map_err(|e| err(format!("cannot fill the stack: {e}")))?;
            f.flush.ignore();
            let t = mapper.page_tables().translate(va).ok_or_else(|| err("stack page not mapped".into()))?;
            let lo = page.max(sp);
            let hi = (page + 0x1000).min(STACK_TOP);
            let chunk = &bytes[(lo - sp) as usize..(hi - sp) as usize];
            mem.write_slice(chunk, GuestAddress(t.phys.0 + (lo - page)))
                .map_err(|e| err(format!("cannot write the stack: {e}")))?;
            page += 0x1000;
        }
        Ok(sp)
    }
}

/// The command name Linux gives a program started from `path`: the
/// last component, cut to 15 bytes (`TASK_COMM_LEN` less the NUL).
pub fn comm_of(path: &str) -> Vec<u8> {
    let mut n = path.rsplit('/').next().unwrap_or("").as_bytes().to_vec();
    n.truncate(15);
    n
}

/// `AT_HWCAP`: CPUID leaf 1's EDX, as Linux gives it on x86.
fn hwcap() -> u64 {
    let r = std::arch::x86_64::__cpuid(1);
    u64::from(r.edx)
}
