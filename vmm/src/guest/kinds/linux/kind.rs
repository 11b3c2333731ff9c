//! The Linux kind itself: the process (its image, stack, break, limits
//! and signal dispositions), loading it into the hosted address space,
//! serving its calls through [`super::syscalls`], and turning its end
//! into an exit status as a shell reports it (the program's
//! `exit_group` status, or 128 + the signal that killed it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use guest_mm::providers::ZeroProvider;
use guest_mm::{FaultAccess, GuestVirtAddr, MmError, MmapProvider, MmapRequest, VmFlags, VmaDesc};
use vm_memory::{Bytes, GuestAddress};

use super::fs::{Fd, Vfs, VfsConfig};
use super::image::{self, Image, TASK_SIZE};
use super::proc_files::{self, ProcFiles, View};
use super::procfs::{FileId, StatusExtra};
use super::stack::{self, at, StackSpec};
use super::{signal, syscalls};
use crate::config::VmConfig;
use crate::guest::kind::{Entry, GuestKind, KindError, LoadCtx, RunEnd, UserEntry};
use crate::guest::user_state::{FaultAction, UserState};
use crate::hosted::boot::PortAccess;
use crate::hosted::exception::ExceptionReport;
use crate::hosted::hypercall::{self, Args, HostedKernel};
use crate::hosted::mapper::{Access, Mapper};
use crate::hosted::program::{self, Program};
use crate::hosted::trampoline;
use crate::memory::GuestMem;
use crate::run::control::Outcome;
use crate::run::output::Output;
use crate::run::report::{self, CheckLine, RunReport, EXIT_CRASHED, EXIT_OUTPUT_CLOSED, EXIT_TIMEOUT};
use crate::seccomp::{Call, Row, ThreadKind};
use crate::vstate::backend::{self, SyscallEntry};

/// Size of the stack mapping (`RLIMIT_STACK`'s default).
pub const STACK_SIZE: u64 = 8 << 20;
/// Top of the stack (Linux's `STACK_TOP` is `TASK_SIZE`, less a random
/// offset; this leaves a guard gap below `TASK_SIZE`).
pub const STACK_TOP: u64 = TASK_SIZE - (1 << 20);
/// The lowest address a mapping may have (`vm.mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x1_0000;
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

/// The process's own state, behind one lock.
#[derive(Debug)]
pub struct Proc {
    /// `set_tid_address`'s pointer.
    pub clear_child_tid: u64,
    /// `(soft, hard)` limits.
    pub rlimits: [(u64, u64); rlimit::COUNT],
    /// Signal dispositions: the handler address (0 default, 1 ignore),
    /// by signal number.
    pub sigactions: BTreeMap<u32, [u64; 4]>,
    /// The blocked-signal mask.
    pub sigmask: u64,
    /// Signals sent and not yet delivered (one of each).
    pub pending: BTreeMap<u32, super::signal::SigInfo>,
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
    fn new() -> Self {
        let mut rlimits = [(rlimit::INFINITY, rlimit::INFINITY); rlimit::COUNT];
        rlimits[rlimit::STACK] = (STACK_SIZE, rlimit::INFINITY);
        rlimits[rlimit::NOFILE] = (1024, 4096);
        rlimits[rlimit::MEMLOCK] = (8 << 20, 8 << 20);
        rlimits[4] = (0, rlimit::INFINITY); // RLIMIT_CORE
        Proc {
            clear_child_tid: 0,
            rlimits,
            sigactions: BTreeMap::new(),
            sigmask: 0,
            pending: BTreeMap::new(),
            itimer_real: None,
            altstack: (0, 2, 0), // SS_DISABLE
            fs_base: 0,
            umask: 0o022,
            caps: (ALL_CAPS, ALL_CAPS, 0),
        }
    }
}

/// An anonymous provider under another name (`[heap]`, `[stack]`): the
/// name shows in `/proc/self/maps`; the pages are the zero provider's.
pub struct Named {
    name: &'static str,
    inner: Arc<ZeroProvider<GuestMem>>,
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
    path: String,
    exe: String,
    exe_ino: u64,
    image: Image,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    entry: SyscallEntry,
    proc: Mutex<Proc>,
    anon: OnceLock<Anon>,
    enosys: Mutex<BTreeMap<u64, u64>>,
    /// A signal that ended the run (the status is 128 + it).
    killed_by: Mutex<Option<i32>>,
    stderr: Option<Output>,
    vfs: Mutex<Vfs>,
    proc_files: ProcFiles,
    memfds: super::memfd::Memfds,
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
        if cfg.vcpus != 1 {
            return Err(KindError::Invalid(format!(
                "{name}: a Linux program runs on one vCPU here (threads are not implemented); drop --vcpus"
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
        let setup = |e: super::fs::Errno| KindError::Setup(format!("{name}: the file tree: errno {}", e.raw()));
        let mut vfs = Vfs::new(&VfsConfig::default());
        vfs.set_exe(exe.as_bytes()).map_err(setup)?;
        let proc_files = ProcFiles::default();
        proc_files.register(&mut vfs).map_err(setup)?;
        let exe_ino = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(path).map_err(|e| KindError::Setup(format!("{name}: {e}")))?,
        );
        Ok(Linux {
            exe_ino,
            vfs: Mutex::new(vfs),
            proc_files,
            memfds: Default::default(),
            exe,
            path: name,
            proc: Mutex::new(Proc::new()),
            image,
            argv,
            envp: env.into_iter().map(String::into_bytes).collect(),
            entry: backend::syscall_entry(),
            anon: OnceLock::new(),
            enosys: Mutex::new(BTreeMap::new()),
            killed_by: Mutex::new(None),
            stderr,
        })
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

    /// The memfds.
    pub fn memfds(&self) -> &super::memfd::Memfds {
        &self.memfds
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
    pub fn before_read(&self, hv: &HostedKernel, fd: Fd) {
        let name = {
            let mut vfs = self.vfs();
            let Ok(st) = vfs.fstat(fd) else { return };
            let ino = u64::from_le_bytes(st[8..16].try_into().unwrap_or_default());
            let Some(name) = self.proc_files.rendered(ino) else { return };
            if vfs.lseek(fd, 0, libc::SEEK_CUR) != Ok(0) {
                return;
            }
            name
        };
        self.refresh_proc(hv, name.as_bytes());
    }

    /// What the `/proc` files show beyond the address space.
    fn view(&self) -> View<'_> {
        let p = self.proc();
        let name = self.path.rsplit('/').next().unwrap_or("").to_string();
        let extra = StatusExtra {
            name,
            umask: p.umask,
            pid: syscalls::PID as u32,
            ppid: 1,
            caps: [p.caps.2, p.caps.1, p.caps.0, super::kind::ALL_CAPS, 0],
            ..StatusExtra::default()
        };
        View {
            exe: &self.exe,
            exe_id: FileId { major: 0xfe, minor: 1, ino: self.exe_ino },
            file_parts: &self.image.file_parts,
            start_stack: STACK_TOP - 8,
            extra,
        }
    }

    /// Reads `len` bytes of a file the kind serves itself (tag `tag`),
    /// at `off` or at the descriptor's offset (which then moves).
    pub fn read_special(
        &self,
        c: &syscalls::Ctx<'_>,
        fd: Fd,
        tag: u32,
        len: usize,
        off: Option<u64>,
    ) -> Result<Vec<u8>, i32> {
        let at = match off {
            Some(o) => o,
            None => self.vfs().special(fd).map_err(|e| e.raw())?.map_or(0, |s| s.offset),
        };
        let bytes = match tag {
            proc_files::PAGEMAP => self.proc_files.pagemap(c.hv, at, len, &self.view())?,
            _ => return Err(libc::EINVAL),
        };
        if off.is_none() {
            self.vfs().set_offset(fd, at + bytes.len() as u64).map_err(|e| e.raw())?;
        }
        Ok(bytes)
    }

    /// Counts a call answered `ENOSYS`.
    pub fn count_enosys(&self, nr: u64) {
        *self.enosys.lock().unwrap_or_else(|e| e.into_inner()).entry(nr).or_default() += 1;
    }

    /// Where the program's standard error goes.
    pub fn stderr(&self) -> Option<&Output> {
        self.stderr.as_ref()
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
    fn load_stack(&self, mapper: &mut Mapper, mem: &GuestMem, anon: &Anon) -> Result<u64, KindError> {
        let err = |e: String| KindError::Setup(format!("{}: {e}", self.path));
        let spec = StackSpec {
            argv: self.argv.clone(),
            envp: self.envp.clone(),
            execfn: self.path.clone().into_bytes(),
            aux: self.aux(),
            random: random_bytes::<16>(),
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

/// `AT_HWCAP`: CPUID leaf 1's EDX, as Linux gives it on x86.
fn hwcap() -> u64 {
    let r = std::arch::x86_64::__cpuid(1);
    u64::from(r.edx)
}

/// What a Linux program makes the VMM's vCPU thread do beyond every run's
/// allow-list.
const SECCOMP_ROWS: &[Row] = &[
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_clock_nanosleep, "clock_nanosleep"),
        why: "nanosleep and clock_nanosleep of the program block its vCPU in slices",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_nanosleep, "nanosleep"),
        why: "the same, where glibc uses the older call",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_getrandom, "getrandom"),
        why: "the program's getrandom and /dev/urandom take host-random bytes",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_set_msrs, "KVM_SET_MSRS"),
        why: "arch_prctl(ARCH_SET_FS/ARCH_SET_GS) writes IA32_FS_BASE/IA32_GS_BASE",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_get_xsave, "KVM_GET_XSAVE"),
        why: "a signal frame saves the interrupted FPU/SSE state",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_set_xsave, "KVM_SET_XSAVE"),
        why: "a handler starts with a fresh FPU state; rt_sigreturn restores the saved one (KVM_SET_FPU cannot set MXCSR)",
    },
];

impl GuestKind for Linux {
    fn name(&self) -> String {
        self.path.clone()
    }

    /// `./prog > out` leaves in `out` only what the program wrote.
    fn stdout_is_the_guests(&self) -> bool {
        true
    }

    /// A Linux process has no I/O ports; where `syscall` stays in user
    /// mode, the trampoline's hypercall port is the one way in.
    fn user_ports(&self) -> PortAccess {
        match self.entry {
            SyscallEntry::Kernel => PortAccess::None,
            SyscallEntry::User => PortAccess::HypercallOnly,
        }
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        let mem = ctx.mem;
        let hosted = ctx.hosted()?;
        let prog = Program { segments: self.image.segments.clone(), entry: self.image.entry };
        program::load(&prog, mem, hosted.frames, hosted.mapper)?;
        let zero = Arc::new(ZeroProvider::new(hosted.mapper.space().frames().clone(), mem.clone()));
        let anon = Anon {
            heap: Arc::new(Named { name: "[heap]", inner: zero.clone() }),
            stack: Named { name: "[stack]", inner: zero.clone() },
            zero,
            frames: hosted.mapper.space().frames().clone(),
            mem: mem.clone(),
        };
        let sp = self.load_stack(hosted.mapper, mem, &anon)?;
        // Linux's layout: mappings go top-down from `mmap_base` (a gap of
        // 128 MiB and a random offset below the stack) to `mmap_min_addr`.
        let rnd = u64::from_le_bytes(random_bytes::<8>()) % (1 << 18);
        let mmap_base = STACK_TOP - STACK_SIZE - (128 << 20) - rnd * 0x1000;
        hosted
            .mapper
            .space_mut()
            .set_mmap_window(MMAP_MIN_ADDR, mmap_base)
            .map_err(|e| KindError::Setup(format!("{}: the mmap window: {e}", self.path)))?;
        // Linux maps one page per anonymous fault (no fault-around for
        // anonymous memory): residency (mincore, smaps, lock-on-fault)
        // is then what the program touched, as the mm tests check.
        hosted.mapper.space_mut().set_fault_around(1).map_err(|e| KindError::Setup(e.to_string()))?;
        let heap = GuestVirtAddr::try_new(self.image.end).map_err(|e| KindError::Setup(e.to_string()))?;
        hosted
            .mapper
            .space_mut()
            .set_heap(heap, anon.heap.clone())
            .map_err(|e| KindError::Setup(format!("{}: the heap: {e}", self.path)))?;
        let _ = self.anon.set(anon);
        let syscall_entry = match self.entry {
            SyscallEntry::Kernel => None,
            SyscallEntry::User => {
                let code = trampoline::code().map_err(|e| KindError::Assemble {
                    what: "the Linux syscall trampoline",
                    message: e.to_string(),
                })?;
                let frame = hosted.frames.alloc(1).map_err(|e| KindError::Setup(e.to_string()))?;
                mem.write_slice(&code, frame[0].addr())
                    .map_err(|_| KindError::Setup("cannot write the syscall trampoline".into()))?;
                let va =
                    GuestVirtAddr::try_new(trampoline::TRAMPOLINE_VA).map_err(|e| KindError::Setup(e.to_string()))?;
                hosted.mapper.map_user_pages(va, &frame, Access::RX).map_err(|e| KindError::Setup(e.to_string()))?;
                Some(trampoline::TRAMPOLINE_VA)
            }
        };
        log::info!(
            "linux: {}: entry {:#x}, {} segment(s), break at {:#x}, stack top {STACK_TOP:#x}",
            self.path,
            self.image.entry,
            self.image.segments.len(),
            self.image.end
        );
        Ok(Entry::User(vec![UserEntry { rip: self.image.entry, rsp: sp, rdi: 0, syscall_entry }]))
    }

    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        syscalls::dispatch(hv, vcpu, self, args)
    }

    /// Serves the call, then delivers a pending signal (`rt_sigreturn`
    /// needs the registers, so it is served here).
    fn syscall_in(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> hypercall::Effects {
        let args = Args::from_regs(&user.regs);
        let (fx, resume) = if args.nr == libc::SYS_rt_sigreturn as u64 {
            let fx = signal::sigreturn(self, hv, vcpu, user);
            (fx, user.regs)
        } else if args.nr == libc::SYS_pause as u64 {
            return signal::suspend(self, hv, vcpu, user, None);
        } else if args.nr == libc::SYS_rt_sigsuspend as u64 {
            let mask = match (args.a[1], hv.read_user(vcpu, args.a[0], 8)) {
                (8, Ok(b)) => b.try_into().map(u64::from_le_bytes).map_err(|_| libc::EFAULT),
                (8, Err(e)) => Err(e),
                _ => Err(libc::EINVAL),
            };
            match mask {
                Ok(m) => return signal::suspend(self, hv, vcpu, user, Some(m)),
                Err(e) => {
                    user.regs.rax = (-i64::from(e)) as u64;
                    return hypercall::Effects::default();
                }
            }
        } else {
            let out = syscalls::dispatch(hv, vcpu, self, &args);
            user.regs.rax = out.ret as u64;
            // `syscall` returns to rcx with r11's flags.
            let resume = kvm_bindings::kvm_regs { rip: user.regs.rcx, rflags: user.regs.r11, ..user.regs };
            (out.effects, resume)
        };
        if fx.exit_group.is_some() || fx.exit_vcpu.is_some() || fx.fatal.is_some() {
            return fx;
        }
        signal::at_syscall_return(self, hv, vcpu, user, &resume, fx)
    }

    fn on_user_fault(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        report: &ExceptionReport,
        user: &mut UserState<'_>,
    ) -> FaultAction {
        signal::on_fault(self, hv, vcpu, report, user)
    }

    fn seccomp_rows(&self) -> &'static [Row] {
        SECCOMP_ROWS
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        let killed = *self.killed_by.lock().unwrap_or_else(|e| e.into_inner());
        let code = match &end.outcome {
            Some(Outcome::Exited { status }) => status & 0xff,
            Some(Outcome::ExitPort { status }) => status & 0xff,
            Some(Outcome::Fault { .. } | Outcome::TripleFault { .. }) => 128 + SIGSEGV,
            Some(Outcome::Timeout { .. }) => EXIT_TIMEOUT,
            Some(Outcome::OutputClosed) => EXIT_OUTPUT_CLOSED,
            Some(Outcome::VcpuError { .. }) | None => EXIT_CRASHED,
        };
        if let Some(o) = &self.stderr {
            let _ = o.flush(Some(std::time::Instant::now() + std::time::Duration::from_secs(2)));
        }
        let mut r = report::build(self.name(), end.outcome, end.records, &[], None, end.exits);
        if let Some(sig) = killed {
            r.checks.push(CheckLine {
                id: None,
                name: format!("killed by signal {sig}"),
                passed: false,
                detail: format!("exit status {}", 128 + sig),
            });
            r.total += 1;
        }
        let enosys = self.enosys.lock().unwrap_or_else(|e| e.into_inner());
        if !enosys.is_empty() {
            let list: Vec<String> =
                enosys.iter().map(|(nr, n)| format!("{} ({nr}) x{n}", syscalls::name_of(*nr))).collect();
            log::info!("linux: calls answered ENOSYS: {}", list.join(", "));
        }
        r.exit_code = code;
        r
    }
}
