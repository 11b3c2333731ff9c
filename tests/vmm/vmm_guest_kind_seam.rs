//! Scenario: a guest kind defined outside the VMM plugs into the runner
//! through the `GuestKind` seam alone. Its program makes a system call
//! the VMM's own ABI does not have; the kind's own table answers it, and
//! the kind's `finish` turns the end of the run into the report. Nothing
//! in the runner knows this kind.

use std::sync::Arc;
use vmm_suite::need_kvm;

use iced_x86::code_asm::*;
use vmm::control::Outcome;
use vmm::guest::kind::{Entry, GuestKind, LoadCtx, RunEnd, UserEntry};
use vmm::hypercall::{self, Args, Hypervisor};
use vmm::program::{Program, Segment};
use vmm::report::RunReport;
use vmm::RunError;

/// A system call number the VMM's ABI answers with `-ENOSYS`.
const PLUS_ONE: u64 = 0x7777;
const CODE_VA: u64 = 0x40_0000;

#[derive(Debug)]
struct PlusOneKind {
    prog: Program,
}

impl GuestKind for PlusOneKind {
    fn name(&self) -> String {
        "plus-one personality".into()
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, RunError> {
        let mem = ctx.mem;
        let h = ctx.hosted()?;
        vmm::program::load(&self.prog, mem, h.frames, h.mapper)?;
        let top = vmm::layout::user_stack_top(0);
        vmm::program::map_stack(top, mem, h.frames, h.mapper)?;
        Ok(Entry::User(vec![UserEntry { rip: CODE_VA, rsp: top, rdi: 0, syscall_entry: None }]))
    }

    fn syscall(&self, hv: &Hypervisor, vcpu: u8, args: &Args) -> hypercall::Outcome {
        if args.nr == PLUS_ONE {
            return hypercall::Outcome { ret: args.a[0] as i64 + 1, effects: Default::default() };
        }
        hv.dispatch(vcpu, args)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        // Exit status 0 only if the guest passed 42 to exit_group.
        let ok = end.outcome == Some(Outcome::Exited { status: 42 });
        let mut r = vmm::report::build(self.name(), end.outcome, end.records, &[], None, end.exits);
        r.exit_code = if ok { 0 } else { 1 };
        r
    }
}

fn program() -> Program {
    let mut a = CodeAssembler::new(64).expect("assembler");
    a.mov(edi, 41u32).expect("asm");
    a.mov(rax, PLUS_ONE).expect("asm");
    a.out(u32::from(vmm::kernel::abi::HCALL_PORT), al).expect("asm");
    // exit_group(rax)
    a.mov(rdi, rax).expect("asm");
    a.mov(rax, vmm::kernel::abi::nr::EXIT_GROUP).expect("asm");
    a.out(u32::from(vmm::kernel::abi::HCALL_PORT), al).expect("asm");
    a.ud2().expect("asm");
    let code = a.assemble(CODE_VA).expect("assemble");
    let len = code.len() as u64;
    Program {
        segments: vec![Segment { va: CODE_VA, bytes: code, mem_len: len, write: false, exec: true }],
        entry: CODE_VA,
    }
}

#[test]
fn a_kind_from_outside_the_vmm_runs_with_its_own_system_calls() {
    need_kvm!();
    let cfg = vmm::VmConfig { timeout_secs: Some(20), ..Default::default() };
    let out = hypercall::ConsoleOut::new(Box::new(std::io::sink()));
    let mut opts = vmm::RunOptions::new(vmm::ConsoleSink::Writer(out));
    opts.stdin = false;
    let report = vmm::run_kind(&cfg, Arc::new(PlusOneKind { prog: program() }), opts).expect("run");
    assert_eq!(report.guest, "plus-one personality");
    assert_eq!(report.outcome, Some(Outcome::Exited { status: 42 }), "{}", report.to_text());
    assert_eq!(report.exit_code, 0);
}

#[test]
fn the_vmm_abi_does_not_know_the_call() {
    // The same program as an ordinary ELF guest with the VMM's ABI: the
    // call is answered -ENOSYS, which the guest passes to exit_group.
    need_kvm!();
    let prog = program();
    let s = &prog.segments[0];
    let img = vmm::guest::elf::build_elf(CODE_VA, &[(CODE_VA, &s.bytes, s.mem_len, 5)]);
    let path = vmm_suite::kvm::temp_path("plus-one.elf");
    std::fs::write(&path, img).expect("write");
    let cfg =
        vmm::VmConfig { guest: vmm::GuestChoice::Elf(path.clone()), timeout_secs: Some(20), ..Default::default() };
    let out = hypercall::ConsoleOut::new(Box::new(std::io::sink()));
    let mut opts = vmm::RunOptions::new(vmm::ConsoleSink::Writer(out));
    opts.stdin = false;
    let report = vmm::run_with(&cfg, opts).expect("run");
    let _ = std::fs::remove_file(&path);
    assert_eq!(report.outcome, Some(Outcome::Exited { status: -38 }), "{}", report.to_text());
}
