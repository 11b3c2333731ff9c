//! The kinds of guest the VMM runs, and the one place a run's kind is
//! chosen ([`choose`]). Each kind implements [`GuestKind`]; see
//! `crate::guest::kind` for the seam.

pub mod abi_elf;
pub mod builtin;
pub mod fuzz;
pub mod multiboot;
pub mod solo5;

use std::sync::Arc;

pub use self::abi_elf::AbiElf;
pub use self::builtin::Builtin;
pub use self::fuzz::Fuzz;
pub use self::solo5::Solo5;
use super::kind::{Entry, LoadCtx, SharedKind, UserEntry};
use crate::config::{Abi, GuestChoice, VmConfig};
use crate::hosted::program::{self, Program};
use crate::layout::user_stack_top;
use crate::run::runner::RunError;

/// The kind that runs `cfg`'s guest.
pub fn choose(cfg: &VmConfig) -> Result<SharedKind, RunError> {
    let no_blocks = || match cfg.blocks.first() {
        Some((name, _)) => {
            Err(RunError::Kind(format!("block device '{name}': only a Solo5 unikernel takes block devices")))
        }
        None => Ok(()),
    };
    Ok(match &cfg.guest {
        GuestChoice::Builtin => {
            no_blocks()?;
            Arc::new(Builtin::new(cfg)?)
        }
        GuestChoice::Fuzz { seed, calls } => {
            no_blocks()?;
            Arc::new(Fuzz::new(cfg, *seed, *calls)?)
        }
        GuestChoice::Elf(path) => {
            let bytes = crate::guest::elf::read_file(path)?;
            let name = path.display().to_string();
            let solo5 = match cfg.abi {
                Abi::Auto => solo5::is_solo5(&bytes),
                Abi::Vmm => false,
                Abi::Solo5 => true,
            };
            if solo5 {
                Arc::new(Solo5::new(name, &bytes, cfg)?)
            } else {
                no_blocks()?;
                Arc::new(AbiElf::new(name, &bytes)?)
            }
        }
        GuestChoice::Raw(spec) => Arc::new(multiboot::Multiboot::open(spec)?),
    })
}

/// Loads a program with the VMM's ABI into the hosted address space and
/// maps a stack per vCPU; every vCPU starts at the program's entry with
/// its index in `rdi`.
fn load_vmm_abi_program(ctx: &mut LoadCtx<'_>, prog: &Program) -> Result<Entry, RunError> {
    let (mem, vcpus) = (ctx.mem, ctx.cfg.vcpus);
    let hosted = ctx.hosted()?;
    program::load(prog, mem, hosted.frames, hosted.mapper)?;
    let mut entries = Vec::with_capacity(usize::from(vcpus));
    for i in 0..vcpus {
        program::map_stack(user_stack_top(i), mem, hosted.frames, hosted.mapper)?;
        entries.push(UserEntry { rip: prog.entry, rsp: user_stack_top(i), rdi: u64::from(i), syscall_entry: None });
    }
    Ok(Entry::User(entries))
}
