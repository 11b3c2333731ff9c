//! The Linux kind as the runner sees it: loading the process into the
//! hosted address space, serving its calls through [`super::syscalls`]
//! and its faults through [`super::signal`], and turning its end into an
//! exit status as a shell reports it (the program's `exit_group` status,
//! or 128 + the signal that killed it).

use super::process::{Anon, Linux, Named, MMAP_MIN_ADDR, SIGSEGV, STACK_SIZE, STACK_TOP};
use super::tasks::spawn::{spawn_request, Spawn};
use super::tasks::status::ExitKind;
use super::{signal, syscalls};
use crate::guest::kind::{Entered, Entry, GuestKind, KindError, LoadCtx, Preempted, RunEnd, UserEntry};
use crate::guest::user_state::{FaultAction, UserState};
use crate::hosted::boot::PortAccess;
use crate::hosted::exception::ExceptionReport;
use crate::hosted::hypercall::{self, Args, HostedKernel};
use crate::hosted::mapper::{hugetlb_region, PoolRam};
use crate::hosted::program::{self, Program};
use crate::hosted::trampoline;
use crate::run::control::Outcome;
use crate::run::report::{self, CheckLine, RunReport, EXIT_CRASHED, EXIT_OUTPUT_CLOSED, EXIT_TIMEOUT};
use crate::seccomp::{Call, Row, ThreadKind};
use crate::vstate::backend::SyscallEntry;
use guest_mm::providers::{HugetlbPool, ZeroProvider};
use guest_mm::GuestVirtAddr;
use std::sync::Arc;

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
        call: Call::Syscall(libc::SYS_poll, "poll"),
        why: "a read of the program's standard input waits for it in short slices",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_ppoll, "ppoll"),
        why: "the same, where the C library's poll is ppoll",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_pread64, "pread64"),
        why: "a host file given with --file, read where the program reads it",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_pwrite64, "pwrite64"),
        why: "a host file given with --file GUEST=HOST:rw, written where the program writes",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_fstat, "fstat"),
        why: "the size of a host file given with --file",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_newfstatat, "newfstatat"),
        why: "the same, where the C library's fstat is newfstatat",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_statx, "statx"),
        why: "the same, where the standard library asks statx",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_fcntl, "fcntl"),
        why: "a host file given with --file is duplicated (F_DUPFD_CLOEXEC) for each open of it",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_openat, "openat"),
        why: "a host file given with --file is opened when the program first opens it",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_ftruncate, "ftruncate"),
        why: "a host file given with --file GUEST=HOST:rw, truncated by the program",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_getrandom, "getrandom"),
        why: "the program's getrandom and /dev/urandom take host-random bytes",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_timer_create, "timer_create"),
        why: "with more than one process, vCPU 0 makes the slice timer that kicks it out of a process that never makes a system call",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_timer_settime, "timer_settime"),
        why: "the slice timer is started (once a slice)",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_timer_delete, "timer_delete"),
        why: "the slice timer is deleted when one process is left",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_set_msrs, "KVM_SET_MSRS"),
        why: "arch_prctl(ARCH_SET_FS/ARCH_SET_GS) writes IA32_FS_BASE/IA32_GS_BASE",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_set_sregs, "KVM_SET_SREGS"),
        why: "a process switch loads the next process's CR3 where KVM does not sync registers through kvm_run",
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

impl Linux {
    /// Serves the call, then delivers a pending signal (`rt_sigreturn`
    /// and `fork` need the registers, so they are served here).
    fn serve(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> hypercall::Effects {
        let args = Args::from_regs(&user.regs);
        self.restarts_always.store(false, std::sync::atomic::Ordering::Relaxed);
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
        } else if args.nr == libc::SYS_exit as u64 {
            return self.exit_thread(hv, vcpu, user, (args.a[0] & 0xff) as i32);
        } else if let Some(req) = spawn_request(hv, vcpu, &args) {
            let resume = kvm_bindings::kvm_regs { rip: user.regs.rcx, rflags: user.regs.r11, ..user.regs };
            let r = match req {
                Ok((Spawn::Thread, c)) => Ok((
                    self.spawn_thread(hv, vcpu, user, &resume, c.unwrap_or_default()),
                    hypercall::Effects::default(),
                )),
                Ok((Spawn::Fork, c)) => self.fork(hv, vcpu, user, &resume, c, false),
                Ok((Spawn::Vfork, c)) => self.fork(hv, vcpu, user, &resume, c, true),
                Err(e) => Ok((-i64::from(e), hypercall::Effects::default())),
            };
            match r {
                Ok((ret, fx)) => {
                    user.regs.rax = ret as u64;
                    (fx, kvm_bindings::kvm_regs { rax: ret as u64, ..resume })
                }
                // The vCPU now runs the vfork child.
                Err(_) => return hypercall::Effects::default(),
            }
        } else {
            let out = syscalls::dispatch(hv, vcpu, self, &args);
            if out.ret == syscalls::RESTART {
                let always = self.restarts_always.swap(false, std::sync::atomic::Ordering::Relaxed);
                match signal::interrupting(self).map(|restart| restart || always) {
                    None => {
                        // Back to the `syscall` instruction (2 bytes) with
                        // its number: the call is made again after the
                        // handler's sleep (or a short one).
                        user.regs.rip = user.regs.rcx.wrapping_sub(2);
                        user.regs.rax = args.nr;
                        let slice = std::time::Instant::now() + std::time::Duration::from_millis(1);
                        let block = out.effects.block.unwrap_or(hypercall::Block::Until(slice));
                        return hypercall::Effects { block: Some(block), ..out.effects };
                    }
                    Some(true) => {
                        self.proc().sleep = None;
                        // No wait survives a handler (the call, made
                        // again, queues afresh).
                        self.futexes().cancel(self.tid());
                        self.call_done(self.tid());
                        // SA_RESTART: the handler returns to the `syscall`
                        // instruction, which makes the call again.
                        let resume = kvm_bindings::kvm_regs {
                            rip: user.regs.rcx.wrapping_sub(2),
                            rflags: user.regs.r11,
                            rax: args.nr,
                            ..user.regs
                        };
                        let fx = hypercall::Effects { block: None, ..out.effects };
                        return signal::at_syscall_return(self, hv, vcpu, user, &resume, fx);
                    }
                    // A signal is waiting: the call is interrupted.
                    Some(false) => {
                        self.proc().sleep = None;
                        self.futexes().cancel(self.tid());
                        self.call_done(self.tid());
                        user.regs.rax = (-i64::from(libc::EINTR)) as u64;
                    }
                }
            } else {
                user.regs.rax = out.ret as u64;
                self.call_done(self.tid());
                // A call that completed may have changed what another
                // process waits for (a pipe written or closed, a socket
                // read): parked processes try their call again. A call
                // that itself parks (RESTART) changes nothing, so
                // blocked processes never wake each other.
                let mut tasks = self.tasks();
                if tasks.len() > 1 {
                    tasks.event();
                }
            }
            // `syscall` returns to rcx with r11's flags.
            let resume = kvm_bindings::kvm_regs { rip: user.regs.rcx, rflags: user.regs.r11, ..user.regs };
            (out.effects, resume)
        };
        if fx.exit_group.is_some() || fx.exit_vcpu.is_some() || fx.fatal.is_some() {
            return fx;
        }
        signal::at_syscall_return(self, hv, vcpu, user, &resume, fx)
    }

    /// The running process ended with `status` (128 + a signal when
    /// `killed_by` says so): the first process ends the run (every other
    /// is killed first), and so does the end a process's `kill` of the
    /// first one asked for; another becomes a zombie and the next runs.
    fn process_end(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        user: &mut UserState<'_>,
        status: i32,
        fx: hypercall::Effects,
    ) -> hypercall::Effects {
        if self.take_first_killed() || self.pid() == self.tasks().init() {
            if let Some(m) = self.end_all_others(hv, vcpu) {
                return hypercall::Effects { fatal: Some(m), ..fx };
            }
            return fx;
        }
        let killed = self.killed_by.lock().unwrap_or_else(|e| e.into_inner()).take();
        let how = match killed {
            Some(sig) => ExitKind::Signaled { sig: sig as u8, core: false },
            None => ExitKind::Exited((status & 0xff) as u8),
        };
        self.end_current(hv, vcpu, user, how)
    }
}

impl GuestKind for Linux {
    fn name(&self) -> String {
        self.path.clone()
    }

    /// `./prog > out` leaves in `out` only what the program wrote.
    fn stdout_is_the_guests(&self) -> bool {
        true
    }

    /// `prog < in`: the program reads the VMM's standard input.
    fn stdin_is_the_guests(&self) -> bool {
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

    /// All free RAM, but the top `--hugepages` 2 MiB pages, which the
    /// hugetlb pool takes.
    fn pool_ram(&self) -> PoolRam {
        PoolRam::AllFreeButHuge { pages: self.hugepages() }
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        let mem = ctx.mem;
        let ram = ctx.cfg.mem_size;
        let hosted = ctx.hosted()?;
        let wanted = self.hugepages();
        let region = hugetlb_region(mem, self.pool_ram());
        if wanted > 0 && region.is_none() {
            return Err(KindError::Invalid(format!(
                "--hugepages {wanted}: {} MiB of huge pages do not fit in guest RAM above the VMM's own",
                wanted.saturating_mul(2)
            )));
        }
        let frames = hosted.mapper.space().frames().clone();
        let pool = HugetlbPool::new(frames, mem.clone(), region.as_slice())
            .map_err(|e| KindError::Setup(format!("{}: the hugetlb pool: {e}", self.path)))?;
        let _ = self.hugetlb.set(pool);
        // Pipe and socket bytes live in the VMM: a share of what the
        // guest has, as Linux takes them from its RAM.
        self.ipc.set_ram(ram);
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
        let rnd = self.layout_random() % (1 << 18);
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
        // Transparent huge pages for anonymous memory: `madvise`, as the
        // Linux the selftests' results come from runs, unless `--thp` chose
        // another; the program may change it through sysfs (every process
        // shares it).
        hosted.mapper.space().thp_policy().set_mode(self.thp_mode());
        let heap = GuestVirtAddr::try_new(self.image.end).map_err(|e| KindError::Setup(e.to_string()))?;
        hosted
            .mapper
            .space_mut()
            .set_heap(heap, anon.heap.clone())
            .map_err(|e| KindError::Setup(format!("{}: the heap: {e}", self.path)))?;
        // From here on, new /tmp and /dev/shm files keep their bytes in
        // guest RAM, where programs can map them.
        {
            let mut vfs = self.vfs();
            let quota = vfs.tmpfs_quota();
            let factory =
                super::file_pages::factory(anon.frames.clone(), anon.mem.clone(), quota, self.file_zaps.clone());
            vfs.set_store_factory(factory);
        }
        let _ = self.anon.set(anon);
        // The trampoline page (with the idle loop other vCPUs start in).
        let page = match (self.entry, self.smp()) {
            (SyscallEntry::Kernel, false) => None,
            _ => Some(trampoline::install(hosted.mapper, hosted.frames, mem).map_err(KindError::Setup)?),
        };
        let syscall_entry = match self.entry {
            SyscallEntry::Kernel => None,
            SyscallEntry::User => page,
        };
        let _ = self.idle_cr3.set(hosted.mapper.cr3());
        log::info!(
            "linux: {}: entry {:#x}, {} segment(s), break at {:#x}, stack top {STACK_TOP:#x}",
            self.path,
            self.image.entry,
            self.image.segments.len(),
            self.image.end
        );
        let mut entries = vec![UserEntry { rip: self.image.entry, rsp: sp, rdi: 0, syscall_entry }];
        let idle = super::tasks::cpus::idle_regs();
        entries.extend((1..self.vcpus).map(|_| UserEntry { rip: idle.rip, rsp: 0, rdi: 0, syscall_entry }));
        Ok(Entry::User(entries))
    }

    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        syscalls::dispatch(hv, vcpu, self, args)
    }

    /// Serves the call ([`Linux::serve`]), then ends the process or
    /// gives the vCPU to another one where it must.
    fn syscall_in(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> hypercall::Effects {
        if self.smp() && self.cpus().on_cpu.get(usize::from(vcpu)).is_none_or(Option::is_none) {
            return self.idle_call(hv, vcpu, user);
        }
        let fx = self.serve(hv, vcpu, user);
        match fx.exit_group {
            Some(status) => self.process_end(hv, vcpu, user, status, fx),
            None => self.schedule(hv, vcpu, user, fx),
        }
    }

    fn on_user_fault(
        &self,
        hv: &HostedKernel,
        vcpu: u8,
        report: &ExceptionReport,
        user: &mut UserState<'_>,
    ) -> FaultAction {
        // Its thread was taken from it, or it runs none (the idle loop
        // cannot fault; nothing here is any thread's): the idle loop.
        if self.smp() {
            let mut c = self.cpus();
            let v = usize::from(vcpu);
            let idle = c.on_cpu.get(v).is_none_or(Option::is_none);
            if std::mem::take(&mut c.rerouted[v]) || idle {
                user.regs = super::tasks::cpus::idle_regs();
                return FaultAction::Resume;
            }
        }
        match signal::on_fault(self, hv, vcpu, report, user) {
            FaultAction::Exit(status) if self.pid() != self.tasks().init() => {
                let fx = self.process_end(hv, vcpu, user, status, hypercall::Effects::default());
                if let Some(m) = fx.fatal {
                    log::error!("linux: {m}");
                    return FaultAction::Exit(crate::run::report::EXIT_CRASHED);
                }
                FaultAction::Resume
            }
            other => other,
        }
    }

    fn seccomp_rows(&self) -> &'static [Row] {
        SECCOMP_ROWS
    }

    fn enter(&self, hv: &HostedKernel, vcpu: u8) -> Entered<'_> {
        self.enter_cpu(hv, vcpu)
    }

    fn take_reroute(&self, vcpu: u8) -> Option<kvm_bindings::kvm_regs> {
        if !self.smp() {
            return None;
        }
        let taken = std::mem::take(self.cpus().rerouted.get_mut(usize::from(vcpu))?);
        taken.then(super::tasks::cpus::idle_regs)
    }

    fn wants_kick(&self, vcpu: u8) -> bool {
        let c = self.cpus();
        let v = usize::from(vcpu);
        let (rerouted, runs) =
            (c.rerouted.get(v).copied().unwrap_or(false), c.on_cpu.get(v).is_some_and(Option::is_some));
        drop(c);
        rerouted || (runs && self.slice_over(vcpu))
    }

    /// A slice timer's kick: the running thread may be preempted
    /// ([`Linux::preempt`]).
    fn on_kick(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> Option<Preempted> {
        if self.smp() && std::mem::take(&mut self.cpus().rerouted[usize::from(vcpu)]) {
            user.regs = super::tasks::cpus::idle_regs();
            return Some(Preempted { fs_base: None });
        }
        self.preempt(hv, vcpu, user)
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
        if let Some(why) = self.blocked_reason() {
            r.checks.push(CheckLine {
                id: None,
                name: why,
                passed: false,
                detail: "exit status 137, as if killed by SIGKILL".into(),
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
