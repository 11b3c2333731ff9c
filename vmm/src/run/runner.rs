//! Builds the machine from a [`VmConfig`] and runs it to the end:
//! memory, kernel, program, devices, KVM, vCPU threads, and the event
//! loop on the calling thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use devices::{BarWindow, DoorbellHandler, SerialInputHandler};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::EventFd;

use super::devices::devices;
use super::error::io;
pub use super::error::RunError;
use crate::config::VmConfig;
use crate::guest::kind::{DeviceCtx, Entry, HostedLoad, LoadCtx, Platform, RunEnd, SharedKind};
use crate::guest::registry::Registry;
use crate::hosted::boot::install_kernel_with;
use crate::hosted::hypercall::{ConsoleOut, HostedKernel, ReportLog};
use crate::hosted::mapper::Mapper;
use crate::hosted::providers::Providers;
use crate::hosted::tlb::{KvmFlusher, Shootdown};
use crate::layout::{percpu, percpu_pa, LOAD_PA, LOAD_SIZE};
use crate::memory::{create_guest_memory, BootFrames};
use crate::run::control::{Outcome, RunControl};
use crate::run::event_loop::{GuestExitHandler, VcpuExitHandler, Watchdog};
use crate::run::report::RunReport;
use crate::run::vcpu_thread::{self, VcpuContext};
use crate::run::vm_exit::ExitCounters;
use crate::seccomp::{Gate, ThreadKind};
use crate::vstate::kick;
use crate::vstate::vcpu::{Vcpu, VcpuSetup};
use crate::vstate::vm::Vm;

/// Where guest console output goes.
#[derive(Clone, Debug)]
pub enum ConsoleSink {
    /// The VMM's stdout.
    Stdout,
    /// The VMM's stderr (keeps stdout clean for `--json`).
    Stderr,
    /// A writer of the caller's (tests capture output this way).
    Writer(ConsoleOut),
}

/// A hook run with guest memory once the machine is built, before any vCPU
/// runs (a test seam: e.g. to break the IDT and provoke a triple fault).
pub type BeforeStart = Box<dyn FnOnce(&crate::memory::GuestMem) + Send>;

/// How to run, beyond the configuration.
pub struct RunOptions {
    /// Guest console output.
    pub console: ConsoleSink,
    /// Feed the VMM's stdin to the serial port.
    pub stdin: bool,
    /// See [`BeforeStart`].
    pub before_start: Option<BeforeStart>,
    /// Once the guest has ended, audit the address space
    /// (`AddressSpace::check_invariants`); a violation fails the run.
    pub check_invariants: bool,
    /// Install the seccomp filters (see [`crate::seccomp`]) on the vCPU
    /// threads and on the calling thread, which runs the event loop. A
    /// filter is permanent for its thread: off by default in the library,
    /// on in the `vmm` command.
    pub seccomp: bool,
    /// Test hook: this thread makes a forbidden system call once its
    /// filter is installed (`vmm run --seccomp-selftest`).
    pub seccomp_selftest: Option<crate::seccomp::ThreadKind>,
    /// Outputs besides the console (e.g. the log's) whose writer threads
    /// must be started before the filters go on (no filtered thread may
    /// create one).
    pub outputs: Vec<ConsoleOut>,
    /// The fault-around window in pages (`None`: guest-mm's default).
    pub fault_around: Option<u64>,
}

impl RunOptions {
    /// Console to `console`, stdin attached, no hook.
    pub fn new(console: ConsoleSink) -> Self {
        RunOptions {
            console,
            stdin: true,
            before_start: None,
            check_invariants: false,
            seccomp: false,
            seccomp_selftest: None,
            outputs: Vec::new(),
            fault_around: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("console", &self.console)
            .field("stdin", &self.stdin)
            .field("check_invariants", &self.check_invariants)
            .field("seccomp", &self.seccomp)
            .finish_non_exhaustive()
    }
}

/// Runs the configured guest to the end and reports.
pub fn run(cfg: &VmConfig, sink: ConsoleSink) -> Result<RunReport, RunError> {
    run_with(cfg, RunOptions::new(sink))
}

/// [`run`] with every option.
pub fn run_with(cfg: &VmConfig, opts: RunOptions) -> Result<RunReport, RunError> {
    run_with_registry(cfg, &Registry::standard(), opts)
}

/// [`run_with`], choosing the guest's kind from `registry` (the standard
/// kinds and any a caller added).
pub fn run_with_registry(cfg: &VmConfig, registry: &Registry, opts: RunOptions) -> Result<RunReport, RunError> {
    // The memory rule is the kind's: checked in `run_kind`.
    cfg.validate_machine()?;
    run_kind(cfg, registry.open(cfg)?, opts)
}

/// The VMM-as-kernel parts of a hosted machine.
struct HostedParts {
    mapper: Mapper,
    kernel: crate::hosted::boot::KernelImage,
    frames: BootFrames,
}

/// Runs a guest of kind `kind` (chosen by the caller instead of from
/// `cfg.guest`) on the machine `cfg` describes.
pub fn run_kind(cfg: &VmConfig, kind: SharedKind, opts: RunOptions) -> Result<RunReport, RunError> {
    cfg.validate_machine()?;
    kind.check_mem(cfg)?;
    let platform = kind.platform();
    let mem = create_guest_memory(kind.ram_size(cfg))?;
    let mut hosted = match platform {
        Platform::Hosted => {
            let mut mapper =
                Mapper::with_options(mem.clone(), cfg.max_map_count, kind.pool_ram()).map_err(RunError::PageTables)?;
            if let Some(n) = opts.fault_around {
                mapper.space_mut().set_fault_around(n).map_err(RunError::PageTables)?;
            }
            let kernel = install_kernel_with(&mem, &mut mapper, cfg.vcpus, kind.user_ports())?;
            let frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
            Some(HostedParts { mapper, kernel, frames })
        }
        Platform::Pc => None,
    };
    let entry = {
        let view =
            hosted.as_mut().map(|h| HostedLoad { mapper: &mut h.mapper, frames: &mut h.frames, kernel: &h.kernel });
        kind.load(&mut LoadCtx { mem: &mem, cfg, hosted: view })?
    };
    if let Entry::User(entries) = &entry {
        if entries.len() != usize::from(cfg.vcpus) {
            return Err(RunError::Contract(format!(
                "{} gave {} vCPU entries for {} vCPUs",
                kind.name(),
                entries.len(),
                cfg.vcpus
            )));
        }
    }

    let console = match opts.console {
        ConsoleSink::Stdout => ConsoleOut::stdout().map_err(io("stdout"))?,
        ConsoleSink::Stderr => ConsoleOut::stderr().map_err(io("stderr"))?,
        ConsoleSink::Writer(w) => w,
    };
    let mut vm = Vm::with_options(platform.vm_options())?;
    vm.register_memory(&mem)?;
    vm.add_zap_slot()?;
    let bar_cfg = kind.bars(cfg);
    let mut devs = devices(&bar_cfg, &mut vm, &console)?;
    devs.buses.kernel_ports = platform == Platform::Hosted;
    let mut sleeper = None;
    kind.add_devices(&mut DeviceCtx {
        cfg,
        mem: &mem,
        buses: &mut devs.buses,
        vm: &mut vm,
        windows: &devs.windows.0,
        console: &console,
        sleeper: &mut sleeper,
    })?;

    // vCPUs: configure all before starting any.
    let mut vcpus = Vec::new();
    for i in 0..cfg.vcpus {
        let v = Vcpu::new(&vm, i)?;
        match (&entry, &hosted) {
            (Entry::User(entries), Some(h)) => {
                let e = &entries[usize::from(i)];
                v.configure(
                    &vm,
                    &VcpuSetup {
                        cr3: h.mapper.cr3().0,
                        entry: e.rip,
                        stack_top: e.rsp,
                        arg: e.rdi,
                        gdt: h.kernel.gdt,
                        idt: h.kernel.idt,
                        tss: h.kernel.tss[i as usize],
                        lstar: e.syscall_entry.unwrap_or(h.kernel.stub.syscall_entry),
                        kernel_gs_base: h.kernel.kernel_gs[i as usize],
                        pat: guest_mm::PAT_MSR_VALUE,
                    },
                )?;
            }
            (Entry::Protected32 { eip, eax, ebx }, None) => {
                if i == 0 {
                    v.configure_protected32(&vm, *eip, *eax, *ebx)?;
                    v.lapic_bios_handoff()?;
                } else {
                    // Application processors: KVM holds them until INIT/SIPI.
                    v.set_cpuid(&vm)?;
                }
            }
            _ => return Err(RunError::Contract(format!("{}: its entry does not match its platform", kind.name()))),
        }
        vcpus.push(v);
    }

    let stub = hosted.as_ref().map(|h| Arc::new(h.kernel.stub.clone()));
    let counters: Vec<Arc<ExitCounters>> = (0..cfg.vcpus).map(|_| Arc::new(ExitCounters::default())).collect();
    let report_log = ReportLog::default();
    let vm = Arc::new(vm);
    let ctl = Arc::new(RunControl::new());
    let tlb = Arc::new(Shootdown::new(cfg.vcpus));
    let flusher = Arc::new(KvmFlusher { vm: vm.clone(), tlb: tlb.clone(), ctl: ctl.clone() });
    let hv = match hosted {
        Some(h) => {
            let bar_windows: Vec<BarWindow> = bar_cfg
                .iter()
                .map(|b| BarWindow { base: GuestAddress(b.base), size: b.size, cache: b.cache.mode() })
                .collect();
            let providers = Providers::new(&h.mapper, &mem, &bar_windows).map_err(RunError::PageTables)?;
            Some(Arc::new(HostedKernel::new(
                mem.clone(),
                h.mapper,
                providers,
                flusher,
                console.clone(),
                report_log.clone(),
                counters.clone(),
            )))
        }
        None => None,
    };
    // Compiled before any thread starts; installed per thread in run_vcpus.
    // The SIGSYS handler and the allocator settings come first (before any
    // thread of the run allocates); writer threads start now: a filtered
    // thread cannot create them.
    if opts.seccomp {
        crate::seccomp::prepare_process()?;
        console.start_writer();
        opts.outputs.iter().for_each(ConsoleOut::start_writer);
    }
    let vcpu_filter =
        opts.seccomp.then(|| crate::seccomp::filter(ThreadKind::Vcpu, kind.seccomp_rows())).transpose()?;
    let loop_filter =
        opts.seccomp.then(|| crate::seccomp::filter(ThreadKind::EventLoop, kind.seccomp_rows())).transpose()?;
    if opts.seccomp {
        let writer = crate::seccomp::filter(ThreadKind::Writer, kind.seccomp_rows())?;
        crate::seccomp::filter_writers(writer, opts.seccomp_selftest == Some(ThreadKind::Writer));
    }
    let ctx = VcpuContext {
        seccomp: Arc::new(Gate::new(vcpu_filter, opts.seccomp_selftest)),
        buses: Arc::new(devs.buses),
        hv: hv.clone(),
        kind: kind.clone(),
        ctl: ctl.clone(),
        tlb,
        latch: devs.latch.clone(),
        sleeper,
        stub,
        console: console.clone(),
        mem: mem.clone(),
        scratch_pa: Arc::new((0..cfg.vcpus).map(|i| percpu_pa(i) + percpu::SCRATCH).collect()),
    };
    if let Some(hook) = opts.before_start {
        hook(&mem);
    }

    let mut em = EventManager::<Box<dyn MutEventSubscriber>>::new()
        .map_err(|e| RunError::Io { what: "event manager", source: std::io::Error::other(e.to_string()) })?;
    em.add_subscriber(Box::new(GuestExitHandler::new(devs.latch.clone(), ctl.clone())));
    if let Some(secs) = cfg.timeout_secs {
        // No flush of any output may keep the VMM past the timeout and
        // its grace: unread output is given up in time for the exit.
        if let Some(at) =
            crate::run::output::give_up_at(std::time::Instant::now(), std::time::Duration::from_secs(secs))
        {
            std::iter::once(&console).chain(&opts.outputs).for_each(|o| o.give_up_by(at));
        }
        em.add_subscriber(Box::new(Watchdog::new(secs, ctl.clone()).map_err(io("watchdog"))?));
    }
    for dev in &devs.bars {
        em.add_subscriber(Box::new(DoorbellHandler::new(dev.clone()).map_err(io("doorbell"))?));
    }
    if opts.stdin && !kind.stdin_is_the_guests() {
        if let Ok(stdin) = std::io::stdin().lock().as_fd_clone() {
            em.add_subscriber(Box::new(SerialInputHandler::new(stdin, devs.serial.clone())));
        }
    }
    let stopper = ctl.clone();
    console.on_broken_pipe(Some(Box::new(move || stopper.stop(Outcome::OutputClosed))));
    let ran = run_vcpus(vcpus, ctx, &counters, &mut em, loop_filter.as_ref());
    console.on_broken_pipe(None);
    ran?;
    finish_console(&console, cfg);

    let mut outcome = ctl.outcome();
    if outcome.is_none() {
        outcome = ctl.exit_status().map(|status| Outcome::Exited { status });
    }
    let exits = counters.iter().map(|c| c.snapshot()).collect();
    let mut report = kind.finish(RunEnd { outcome, records: &report_log.records(), exits, windows: &devs.windows.0 });
    report.to_stderr = kind.stdout_is_the_guests();
    if opts.check_invariants {
        match &hv {
            Some(hv) => {
                let (audit, violations) = hv.check_invariants();
                report.add_invariants(&audit, &violations);
            }
            // A guest on the PC platform manages its own page tables.
            None => log::warn!("--check-invariants: this guest has no VMM-managed address space to audit"),
        }
    }
    Ok(report)
}

/// Waits for the console output to be written; after a run with a
/// watchdog, only for [`crate::run::output::GRACE`] and never past the
/// run's cap (`give_up_at`): an unread pipe must not keep a stopped run
/// alive.
fn finish_console(console: &ConsoleOut, cfg: &VmConfig) {
    let deadline = cfg.timeout_secs.map(|_| std::time::Instant::now() + crate::run::output::GRACE);
    if let Err(crate::run::output::FlushError::TimedOut { waited, pending }) = console.flush(deadline) {
        log::warn!("console output not read for {waited:.1?} after the run ended: {pending} bytes dropped");
    }
}

/// Starts a thread per vCPU and runs the event loop until every one of
/// them has ended.
fn run_vcpus(
    vcpus: Vec<Vcpu>,
    ctx: VcpuContext,
    counters: &[Arc<ExitCounters>],
    em: &mut EventManager<Box<dyn MutEventSubscriber>>,
    loop_filter: Option<&seccompiler::BpfProgram>,
) -> Result<(), RunError> {
    kick::install_handler().map_err(|e| RunError::Io { what: "kick signal handler", source: e.into() })?;
    let ctl = ctx.ctl.clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut done_evts = Vec::new();
    let mut handles = Vec::new();
    let mut started = Ok(());
    for v in vcpus {
        let i = v.index() as usize;
        let spawned = EventFd::new(0).and_then(|done| {
            let h = vcpu_thread::spawn(v, ctx.clone(), counters[i].clone(), done.try_clone()?)?;
            Ok((done, h))
        });
        match spawned {
            Ok((done, h)) => {
                use std::os::unix::thread::JoinHandleExt;
                ctl.add_thread(h.as_pthread_t());
                done_evts.push(done);
                handles.push(h);
            }
            Err(e) => {
                started = Err(RunError::Io { what: "vCPU thread", source: e });
                break;
            }
        }
    }
    // The vCPU threads wait at the gate until this thread is filtered too.
    let gate = ctx.seccomp.clone();
    if let (Some(f), true) = (loop_filter, started.is_ok()) {
        if let Err(e) = crate::seccomp::install(ThreadKind::EventLoop, f) {
            started = Err(e.into());
        }
    }
    if started.is_ok() && gate.selftest_event_loop() {
        crate::seccomp::forbidden_syscall(ThreadKind::EventLoop);
    }
    if started.is_err() {
        // Stop the vCPUs that did start before reporting the error.
        ctl.stop(Outcome::VcpuError { vcpu: 0, message: "not every vCPU could be started".into() });
        gate.open();
        for h in handles {
            let _ = h.join();
        }
        return started;
    }
    gate.open();
    em.add_subscriber(Box::new(VcpuExitHandler::new(done_evts, finished.clone())));
    while finished.load(Ordering::Acquire) < handles.len() {
        if let Err(e) = em.run() {
            log::error!("event loop: {e}");
            ctl.stop(Outcome::VcpuError { vcpu: 0, message: format!("event loop failed: {e}") });
            break;
        }
    }
    for h in handles {
        if h.join().is_err() {
            log::error!("a vCPU thread panicked");
        }
    }
    Ok(())
}

/// A duplicate of stdin as a `File`, for the serial input handler.
trait AsFdClone {
    fn as_fd_clone(&self) -> std::io::Result<std::fs::File>;
}

impl AsFdClone for std::io::StdinLock<'_> {
    fn as_fd_clone(&self) -> std::io::Result<std::fs::File> {
        use std::os::fd::AsFd;
        Ok(std::fs::File::from(self.as_fd().try_clone_to_owned()?))
    }
}
