//! The seam between the runner and the kinds of guest it can run.
//!
//! A [`GuestKind`] says how its guest is loaded, how its vCPUs start, what
//! its system calls mean and how the end of a run becomes a report and an
//! exit status. The runner builds memory, devices and vCPUs, asks the kind
//! at each of those points, and holds no special case for any kind: a new
//! kind is a module under [`crate::guest::kinds`] and one line in
//! [`crate::guest::registry::Registry::standard`].
//!
//! What this module does not do: build the machine (that is
//! [`crate::run::runner`]) or decide which kind runs (that is
//! [`crate::guest::registry`]).

use std::sync::Arc;

use thiserror::Error;

use crate::config::ConfigError;
use crate::config::{BarConfig, VmConfig};
use crate::guest::elf_program::ElfError;
use crate::guest::user_state::{FaultAction, UserState};
use crate::hosted::boot::{KernelImage, PortAccess};
use crate::hosted::exception::ExceptionReport;
use crate::hosted::hypercall::{self, Args, CheckRecord, ConsoleOut, HostedKernel};
use crate::hosted::mapper::{Mapper, PoolRam};
use crate::hosted::program::LoadError;
use crate::memory::{BootFrames, GuestMem, HostWindow};
use crate::run::control::Outcome;
use crate::run::report::RunReport;
use crate::run::vm_exit::{Buses, ExitCounts};
use crate::seccomp::Row;
use crate::vstate::vm::Vm;
use crate::vstate::vm::VmError;

/// The machine a kind runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// The VMM is the guest's kernel: guest-mm builds the page tables,
    /// the kernel stub takes exceptions and NMIs, the program runs in
    /// long mode at CPL 3 and asks the VMM for services with hypercalls
    /// (or Linux system calls, for a personality that serves them).
    Hosted,
    /// A bare PC with no firmware: guest RAM from 0, the interrupt
    /// controllers and PIT in KVM, the 16550, the exit port and whatever
    /// the kind adds; the guest is its own kernel (no page tables, stub or
    /// hypercall ports from the VMM: ports 0xe0..0xe8 go to the buses).
    Pc,
}

impl Platform {
    /// The VM options this platform needs.
    pub fn vm_options(self) -> crate::vstate::vm::VmOptions {
        match self {
            Platform::Hosted => crate::vstate::vm::VmOptions::default(),
            Platform::Pc => crate::vstate::vm::VmOptions::pc(),
        }
    }
}

/// What a hosted kind loads into: the guest's address space, managed by
/// the VMM.
#[derive(Debug)]
pub struct HostedLoad<'a> {
    /// The guest's page tables.
    pub mapper: &'a mut Mapper,
    /// Frames for the program image.
    pub frames: &'a mut BootFrames,
    /// The kernel the VMM installed (stub addresses, descriptor tables).
    pub kernel: &'a KernelImage,
}

/// What [`GuestKind::load`] gets.
#[derive(Debug)]
pub struct LoadCtx<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMem,
    /// The run's configuration.
    pub cfg: &'a VmConfig,
    /// The VMM-managed address space ([`Platform::Hosted`] kinds).
    pub hosted: Option<HostedLoad<'a>>,
}

impl<'a> LoadCtx<'a> {
    /// The hosted address space, or an error for a kind that asked for
    /// another platform and still wants one.
    pub fn hosted(&mut self) -> Result<&mut HostedLoad<'a>, KindError> {
        self.hosted.as_mut().ok_or_else(|| KindError::Setup("this kind needs the hosted platform".into()))
    }
}

/// Where one vCPU of a hosted kind starts, in long mode at CPL 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserEntry {
    /// First instruction.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// Initial `rdi`.
    pub rdi: u64,
    /// Where `syscall` goes (`IA32_LSTAR`); `None` is the kernel stub's
    /// entry, which forwards to [`GuestKind::syscall`].
    pub syscall_entry: Option<u64>,
}

/// How the vCPUs start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Hosted: one entry per vCPU (index order).
    User(Vec<UserEntry>),
    /// PC: the boot processor starts in 32-bit protected mode at CPL 0
    /// with these registers; the others wait for INIT/SIPI.
    Protected32 {
        /// First instruction.
        eip: u32,
        /// EAX (a boot protocol's magic).
        eax: u32,
        /// EBX (a boot protocol's information block).
        ebx: u32,
    },
}

/// What [`GuestKind::add_devices`] gets.
#[derive(Debug)]
pub struct DeviceCtx<'a> {
    /// The run's configuration.
    pub cfg: &'a VmConfig,
    /// Guest RAM.
    pub mem: &'a GuestMem,
    /// The buses every vCPU dispatches to.
    pub buses: &'a mut Buses,
    /// The KVM VM (memory slots, ioeventfds).
    pub vm: &'a mut Vm,
    /// Host windows of passed-through BARs, already registered.
    pub windows: &'a [HostWindow],
    /// The guest console.
    pub console: &'a ConsoleOut,
    /// Where a kind whose machine can sleep puts its [`Sleeper`].
    pub sleeper: &'a mut Option<Arc<dyn Sleeper>>,
}

/// A machine that can sleep (ACPI S3) and wake through its firmware's
/// waking vector. A kind that gives one in [`DeviceCtx::sleeper`] is asked
/// after every device access whether the guest went to sleep; the vCPU
/// that asked then waits for the wake and resumes in real mode.
pub trait Sleeper: Send + Sync + std::fmt::Debug {
    /// Whether the guest asked to enter S3 since the last call (clears it).
    fn take_request(&self) -> bool;
    /// How long from now until a wake source fires (`None`: none is
    /// armed, the machine sleeps until the run ends).
    fn wake_in(&self) -> Option<std::time::Duration>;
    /// The machine wakes: the status a wake leaves is set, and the answer
    /// is the real-mode address (below 1 MiB) to resume at.
    fn wake(&self, mem: &GuestMem) -> Result<u32, String>;
}

/// What [`GuestKind::on_kick`] asks of the vCPU beyond the registers and
/// FPU state it loaded into the [`UserState`] (a new CR3 comes through
/// [`HostedKernel::request_switch`] as after a call).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Preempted {
    /// An FS base to load now: a switch between threads of one process,
    /// which asks for no CR3 load.
    pub fs_base: Option<u64>,
}

/// What [`GuestKind::enter`] gives the vCPU thread for one exit.
#[derive(Debug, Default)]
pub struct Entered<'a> {
    /// Held until the exit is handled (and dropped before the vCPU
    /// sleeps or enters the guest).
    pub guard: Option<std::sync::MutexGuard<'a, ()>>,
    /// The vCPU's program was taken from it.
    pub gone: bool,
    /// The kind's state is broken (the run cannot go on).
    pub fatal: Option<String>,
}

/// How a run ended, for [`GuestKind::finish`].
#[derive(Debug)]
pub struct RunEnd<'a> {
    /// Why the run stopped (`None`: no vCPU said).
    pub outcome: Option<Outcome>,
    /// Checks the guest reported with the `report` hypercall.
    pub records: &'a [CheckRecord],
    /// Exits per vCPU.
    pub exits: Vec<ExitCounts>,
    /// Host windows of passed-through BARs (still mapped).
    pub windows: &'a [HostWindow],
}

/// One kind of guest.
pub trait GuestKind: Send + Sync + std::fmt::Debug {
    /// The name the report shows.
    fn name(&self) -> String;

    /// The machine this kind needs.
    fn platform(&self) -> Platform {
        Platform::Hosted
    }

    /// Checks the configured memory size for this kind (default: the
    /// VMM layout's rule, [`VmConfig::check_mem`]). A kind whose
    /// `mem_size` is its guest's own memory, laid out beside the VMM's
    /// (see [`GuestKind::ram_size`]), checks its own range instead.
    fn check_mem(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        cfg.check_mem()
    }

    /// Whether standard output is the guest's alone (default: no, the
    /// report follows the console on stdout). A kind that stands in for
    /// a program users run directly, whose output they redirect (a Solo5
    /// unikernel under `solo5-spt`), says yes: the report then goes to
    /// standard error.
    fn stdout_is_the_guests(&self) -> bool {
        false
    }

    /// Whether standard input is the guest's own (default: no, it feeds
    /// the serial port). A kind whose program reads its standard input
    /// (a Linux program in a pipeline) says yes: the serial port then
    /// gets none.
    fn stdin_is_the_guests(&self) -> bool {
        false
    }

    /// Bytes of guest RAM the machine gets (default: the configured size).
    fn ram_size(&self, cfg: &VmConfig) -> u64 {
        cfg.mem_size
    }

    /// Which guest RAM the kernel page pool of a hosted machine hands out
    /// (default: all free RAM beyond the guest-RAM window, see
    /// `crate::layout`). A kind whose guest owns the free RAM says
    /// [`PoolRam::FixedOnly`].
    fn pool_ram(&self) -> PoolRam {
        PoolRam::AllFree
    }

    /// The BAR windows the machine gets (default: those configured).
    fn bars(&self, cfg: &VmConfig) -> Vec<BarConfig> {
        cfg.bars.clone()
    }

    /// The I/O ports a hosted guest's user mode may use (default: every
    /// port but the kernel stub's). A kind whose guests see no ports says
    /// [`PortAccess::None`]: an `in` or `out` is then a #GP, and the run
    /// ends as a fault. Not asked for [`Platform::Pc`] kinds (their guest
    /// is its own kernel).
    fn user_ports(&self) -> PortAccess {
        PortAccess::AllButKernel
    }

    /// Writes the guest's image into memory (and, hosted, maps it) and
    /// says where each vCPU starts.
    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError>;

    /// Adds devices only this kind has. Runs after the common devices
    /// (serial, exit port, BAR windows) exist.
    fn add_devices(&self, _ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
        Ok(())
    }

    /// Serves one system call of a hosted guest. The default is the
    /// VMM's own hypercall ABI (`docs/guest-abi.md`); a personality
    /// (e.g. Linux system-call numbers) answers with its own table.
    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        hv.dispatch(vcpu, args)
    }

    /// Serves one system call with the calling vCPU's user state at hand:
    /// a kind may replace any register (and the FPU state) before the
    /// vCPU resumes, to return from a signal handler or enter one. The
    /// state is the registers at the exit, with `rip` and `rflags` as
    /// user mode will see them: at a `syscall` that entered the kernel
    /// stub, `rip` is `rcx` and `rflags` is `r11` (what `sysret` restores;
    /// there `rcx` and `r11` cannot be given other values). The default
    /// calls [`GuestKind::syscall`] and puts its value in `rax`.
    fn syscall_in(&self, hv: &HostedKernel, vcpu: u8, user: &mut UserState<'_>) -> hypercall::Effects {
        let out = self.syscall(hv, vcpu, &Args::from_regs(&user.regs));
        user.regs.rax = out.ret as u64;
        out.effects
    }

    /// A user-mode exception the VMM did not resolve (a page fault
    /// guest-mm refused, `#GP`, `#UD`, `#DE`, ...), with the faulting
    /// registers in `user` (`rip`, `rsp`, `rflags` the faulting code's).
    /// The kind may resume user mode with `user` as it leaves it, end the
    /// run, or leave it to the runner ([`FaultAction::Default`], what
    /// every kind does unless it says otherwise).
    fn on_user_fault(
        &self,
        _hv: &HostedKernel,
        _vcpu: u8,
        _report: &ExceptionReport,
        _user: &mut UserState<'_>,
    ) -> FaultAction {
        FaultAction::Default
    }

    /// vCPU `vcpu` left the guest for an exit the kind or the hosted
    /// kernel will act on (a system call, an exception, a kick): a kind
    /// whose vCPUs run programs with different address spaces makes the
    /// one `vcpu` runs current here and keeps every other vCPU out of its
    /// state until the returned guard drops (a lock over the kind). The
    /// guard's `gone` says the vCPU's program was taken from it meanwhile
    /// (its process ended on another vCPU): nothing of the exit may touch
    /// the current address space, and the kind loads something else at
    /// its next call ([`GuestKind::syscall_in`],
    /// [`GuestKind::on_user_fault`], [`GuestKind::on_kick`]). Default: no
    /// lock.
    fn enter(&self, _hv: &HostedKernel, _vcpu: u8) -> Entered<'_> {
        Entered::default()
    }

    /// vCPU `vcpu`'s program was taken from it ([`GuestKind::enter`]'s
    /// `gone`) and the vCPU stands in the kernel stub on its way back to
    /// user mode: the registers that way must lead to instead (the kind's
    /// idle loop), taken once. Default: none.
    fn take_reroute(&self, _vcpu: u8) -> Option<kvm_bindings::kvm_regs> {
        None
    }

    /// Whether a kick of vCPU `vcpu` out of the guest may now make
    /// [`GuestKind::on_kick`] switch what it runs (asked before the
    /// registers are read, so it must be cheap). Default: never.
    fn wants_kick(&self, _vcpu: u8) -> bool {
        false
    }

    /// vCPU `vcpu` was kicked out of the guest while in user mode (a
    /// time slice ended), with the interrupted registers in `user`; the
    /// kind may put the running program aside and load another into
    /// `user`. `Some` when it changed `user`, with what else the vCPU
    /// must load. Default: nothing.
    fn on_kick(&self, _hv: &HostedKernel, _vcpu: u8, _user: &mut UserState<'_>) -> Option<Preempted> {
        None
    }

    /// Turns the end of the run into the report and its exit status.
    fn finish(&self, end: RunEnd<'_>) -> RunReport;

    /// System calls this kind's guests make the VMM's threads do, beyond
    /// the allow-lists every run has (`crate::seccomp`): each row names
    /// the thread, the call and why.
    fn seccomp_rows(&self) -> &'static [Row] {
        &[]
    }
}

/// What a kind reports when it cannot be opened, loaded or given its
/// devices; the run reports it as it is (`RunError::Kind`).
#[derive(Debug, Error)]
pub enum KindError {
    /// The kind's options, configuration or file are not usable.
    #[error("{0}")]
    Invalid(String),
    /// Setting the guest up failed.
    #[error("{0}")]
    Setup(String),
    /// A generated program did not assemble.
    #[error("cannot assemble {what}: {message}")]
    Assemble {
        /// Which program.
        what: &'static str,
        /// The assembler's message.
        message: String,
    },
    /// A bad value in the run's configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ELF file.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// Loading a program into the hosted address space.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A KVM VM operation (memory slots, irqfds, interrupt controllers).
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A device could not be added.
    #[error("device setup: {0}")]
    Device(String),
}

/// A kind shared by the runner and every vCPU thread.
pub type SharedKind = Arc<dyn GuestKind>;
