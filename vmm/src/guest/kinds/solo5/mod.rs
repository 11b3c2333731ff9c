//! Solo5 `spt` unikernels, run unmodified: the personality that makes
//! the VMM look like `solo5-spt` to them.
//!
//! - Loader: the `PT_LOAD` segments are mapped through guest-mm with
//!   exactly their rights (text is not writable, data not executable),
//!   the rest of the unikernel's memory `[64 KiB, mem)` read/write and not
//!   executable, page zero unmapped; the boot-info block, manifest and
//!   command line are written where the `spt` ABI puts them
//!   ([`layout`]).
//! - Entry: long mode at CPL 3 at the ELF entry, `rdi` = the boot-info
//!   block, `rsp` = top of memory - 8; `LSTAR` points at the kernel stub
//!   where `syscall` enters CPL 0, or at a user-mode [`trampoline`] where
//!   the backend keeps `syscall` in user mode.
//! - System calls: [`syscalls`], with Linux numbers.
//! - End: `exit_group(n)` gives `n & 0xff`; a fault gives 139 (SIGSEGV);
//!   a call the `spt` seccomp policy refuses gives 159 (SIGSYS).
//!
//! Not supported yet: block and network devices (a manifest that
//! declares one is refused at load, as `solo5-spt` refuses a device that
//! is not attached), and more than one vCPU (Solo5 has one).

mod layout;
pub mod note;
mod syscalls;
mod trampoline;

use guest_mm::{GuestVirtAddr, Pfn};
use vm_memory::{Bytes, GuestAddress};

pub use self::layout::DEFAULT_MEM;
use self::layout::{LayoutError, BOOT_INFO};
use self::note::Notes;
use self::syscalls::{Table, SIGSYS_STATUS};
use crate::config::VmConfig;
use crate::control::Outcome;
use crate::guest::elf;
use crate::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd, UserEntry};
use crate::hypercall::{self, Args, Hypervisor};
use crate::layout::FREE_PA;
use crate::mapper::Access;
use crate::program::Program;
use crate::report::{self, CheckLine, RunReport, EXIT_CRASHED, EXIT_OUTPUT_CLOSED, EXIT_TIMEOUT};
use crate::runner::RunError;
use crate::vstate::backend::{self, SyscallEntry};

/// Exit status of a unikernel killed by a fault (128 + SIGSEGV).
pub const SIGSEGV_STATUS: i32 = 139;

/// A Solo5 `spt` unikernel.
#[derive(Debug)]
pub struct Solo5 {
    name: String,
    prog: Program,
    notes: Notes,
    mem: u64,
    cmdline: String,
    entry: SyscallEntry,
    table: Table,
}

fn kind_err(e: impl std::fmt::Display) -> RunError {
    RunError::Kind(format!("solo5: {e}"))
}

impl Solo5 {
    /// The unikernel in the ELF image `bytes` (from `name`), with the
    /// run's memory size (Solo5's default unless one was given) and
    /// command line.
    pub fn new(name: String, bytes: &[u8], cfg: &VmConfig) -> Result<Self, RunError> {
        let notes = note::read(bytes).map_err(|e| kind_err(format!("{name}: {e}")))?;
        let devices = note::devices(&notes.manifest).map_err(|e| kind_err(format!("{name}: {e}")))?;
        if let Some(d) = devices.first() {
            return Err(kind_err(format!(
                "{name} declares device '{}' (type {}); block and network devices are not supported yet",
                d.name, d.kind
            )));
        }
        if cfg.vcpus != 1 {
            return Err(kind_err("a Solo5 unikernel runs on exactly one vCPU"));
        }
        let mem = layout::check_mem(if cfg.mem_explicit { cfg.mem_size } else { DEFAULT_MEM }).map_err(kind_err)?;
        let prog = elf::parse(bytes)?;
        let entry = backend::syscall_entry();
        log::info!(
            "solo5: {name}: spt ABI {}, {} MiB, syscall {}",
            notes.version,
            mem >> 20,
            match entry {
                SyscallEntry::Kernel => "enters the kernel stub at CPL 0",
                SyscallEntry::User => "stays in user mode on this backend: LSTAR is a user-mode trampoline",
            }
        );
        Ok(Solo5 { name, prog, notes, mem, cmdline: cfg.guest_args.join(" "), entry, table: Table::default() })
    }
}

impl GuestKind for Solo5 {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ram_size(&self, _cfg: &VmConfig) -> u64 {
        FREE_PA + self.mem
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, RunError> {
        let mem = ctx.mem;
        // Unikernel address `va` lives at guest-physical `FREE_PA + va`.
        let pa = |va: u64| GuestAddress(FREE_PA + va);
        let segs: Vec<(u64, u64, layout::Rights)> =
            self.prog.segments.iter().map(|s| (s.va, s.mem_len, (s.write, s.exec))).collect();
        let (runs, kernel_end) = layout::runs(&segs, self.mem).map_err(kind_err)?;
        for s in &self.prog.segments {
            mem.write_slice(&s.bytes, pa(s.va)).map_err(|_| kind_err(format!("cannot load segment {:#x}", s.va)))?;
        }
        let block = layout::boot_block(self.mem, kernel_end, &self.notes.manifest, &self.cmdline).map_err(kind_err)?;
        mem.write_slice(&block, pa(BOOT_INFO)).map_err(|_| kind_err("cannot write the boot-info block"))?;

        let hosted = ctx.hosted()?;
        for &(start, end, (write, exec)) in &runs {
            let pfns: Vec<Pfn> = (start..end).step_by(0x1000).map(|va| Pfn(pa(va).0 >> 12)).collect();
            let va = GuestVirtAddr::try_new(start).map_err(|e| kind_err(e.to_string()))?;
            hosted
                .mapper
                .map_user_pages(va, &pfns, Access { write, exec })
                .map_err(|e| kind_err(format!("cannot map [{start:#x}, {end:#x}): {e}")))?;
        }
        let syscall_entry = match self.entry {
            SyscallEntry::Kernel => None,
            SyscallEntry::User => {
                let code = trampoline::code().map_err(|e| RunError::Assemble(e.to_string()))?;
                let frame = hosted.frames.alloc(1).map_err(|e| kind_err(e.to_string()))?;
                mem.write_slice(&code, frame[0].addr()).map_err(|_| kind_err("cannot write the trampoline"))?;
                let va = GuestVirtAddr::try_new(trampoline::TRAMPOLINE_VA).map_err(|e| kind_err(e.to_string()))?;
                hosted.mapper.map_user_pages(va, &frame, Access::RX).map_err(kind_err)?;
                Some(trampoline::TRAMPOLINE_VA)
            }
        };
        Ok(Entry::User(vec![UserEntry { rip: self.prog.entry, rsp: self.mem - 8, rdi: BOOT_INFO, syscall_entry }]))
    }

    fn syscall(&self, hv: &Hypervisor, vcpu: u8, args: &Args) -> hypercall::Outcome {
        self.table.call(hv, vcpu, args)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        let killed = self.table.killed();
        let code = match &end.outcome {
            Some(Outcome::Exited { .. }) if killed.is_some() => SIGSYS_STATUS,
            Some(Outcome::Exited { status } | Outcome::ExitPort { status }) => status & 0xff,
            Some(Outcome::Fault { .. } | Outcome::TripleFault { .. }) => SIGSEGV_STATUS,
            Some(Outcome::Timeout { .. }) => EXIT_TIMEOUT,
            Some(Outcome::OutputClosed) => EXIT_OUTPUT_CLOSED,
            Some(Outcome::VcpuError { .. }) | None => EXIT_CRASHED,
        };
        let mut r = report::build(self.name(), end.outcome, end.records, &[], None, end.exits);
        if let Some(why) = killed {
            r.checks.push(CheckLine { id: None, name: "killed by SIGSYS".into(), passed: false, detail: why });
            r.total += 1;
        }
        r.exit_code = code;
        r
    }
}

/// Whether the ELF image `bytes` is a Solo5 unikernel (of any target).
pub fn is_solo5(bytes: &[u8]) -> bool {
    note::is_solo5(bytes)
}

impl From<LayoutError> for RunError {
    fn from(e: LayoutError) -> Self {
        kind_err(e)
    }
}
