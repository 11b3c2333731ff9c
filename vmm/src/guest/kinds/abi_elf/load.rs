//! Loading a program written for the VMM's own ABI into the hosted
//! address space: its segments through guest-mm, a stack per vCPU, every
//! vCPU at the entry with its index in `rdi`. The built-in guest and the
//! fuzzer are such programs too.

use crate::guest::kind::{Entry, KindError, LoadCtx, UserEntry};
use crate::hosted::program::{self, Program};
use crate::layout::user_stack_top;

/// Loads a program with the VMM's ABI into the hosted address space and
/// maps a stack per vCPU; every vCPU starts at the program's entry with
/// its index in `rdi`.
pub fn load_vmm_abi_program(ctx: &mut LoadCtx<'_>, prog: &Program) -> Result<Entry, KindError> {
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
