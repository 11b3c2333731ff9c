//! The Solo5 kind itself: loading a unikernel, serving its calls through
//! [`super::syscalls`], and its exit status.

use guest_mm::{GuestVirtAddr, Pfn};
use vm_memory::{Bytes, GuestAddress};

use super::block::Devices;
use super::layout::{LayoutError, BOOT_INFO, DEFAULT_MEM};
use super::note::Notes;
use super::syscalls::{Table, SIGSYS_STATUS};
use super::{layout, note, trampoline};
use crate::config::VmConfig;
use crate::guest::elf;
use crate::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd, UserEntry};
use crate::hosted::hypercall::{self, Args, HostedKernel};
use crate::hosted::mapper::Access;
use crate::hosted::program::Program;
use crate::layout::FREE_PA;
use crate::run::control::Outcome;
use crate::run::report::{self, CheckLine, RunReport, EXIT_CRASHED, EXIT_OUTPUT_CLOSED, EXIT_TIMEOUT};
use crate::run::runner::RunError;
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
        let mut notes = note::read(bytes).map_err(|e| kind_err(format!("{name}: {e}")))?;
        if cfg.vcpus != 1 {
            return Err(kind_err("a Solo5 unikernel runs on exactly one vCPU"));
        }
        let mem = layout::check_mem(if cfg.mem_explicit { cfg.mem_size } else { DEFAULT_MEM }).map_err(kind_err)?;
        let prog = elf::parse(bytes)?;
        // Last, so that nothing is opened for a run refused anyway.
        let blocks = Devices::attach(&mut notes.manifest, &cfg.blocks).map_err(|e| kind_err(format!("{name}: {e}")))?;
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
        Ok(Solo5 { name, prog, notes, mem, cmdline: cfg.guest_args.join(" "), entry, table: Table::new(blocks) })
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

    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
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
