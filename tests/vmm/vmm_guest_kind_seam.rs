//! Scenario: a guest kind defined outside the VMM plugs into the VMM
//! through the seam alone: it registers a `KindSpec` with an option of its
//! own (and a configuration-file entry that sets it), and its program
//! makes a system call the VMM's own ABI does not have; the kind's own
//! table answers it with the option's value, and the kind's `finish` turns
//! the end of the run into the report. Nothing in the VMM knows this kind.

use vmm_suite::need_kvm;

use std::sync::Arc;

use iced_x86::code_asm::*;
use vmm::guest::kind::{Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind, UserEntry};
use vmm::guest::options::KindOption;
use vmm::guest::registry::Registry;
use vmm::guest::spec::{KindSpec, Launch};
use vmm::hosted::hypercall::{self, Args, HostedKernel};
use vmm::hosted::program::{Program, Segment};
use vmm::run::control::Outcome;
use vmm::run::report::RunReport;

/// A system call number the VMM's ABI answers with `-ENOSYS`.
const PLUS_ONE: u64 = 0x7777;
const CODE_VA: u64 = 0x40_0000;

#[derive(Debug)]
struct PlusOneKind {
    prog: Program,
    /// What the kind's call adds (its `--plus-amount` option).
    amount: i64,
}

/// The kind's registry entry: one option, one configuration entry.
struct PlusSpec;

static PLUS: PlusSpec = PlusSpec;

fn check_amount(s: &str) -> Result<(), String> {
    s.parse::<i64>().map(|_| ()).map_err(|e| e.to_string())
}

impl KindSpec for PlusSpec {
    fn name(&self) -> &'static str {
        "plus"
    }
    fn about(&self) -> &'static str {
        "a personality with one extra system call"
    }
    fn options(&self) -> &'static [KindOption] {
        const O: &[KindOption] =
            &[KindOption::new("plus-amount", "N", "what the plus call adds").selects().checked(check_amount)];
        O
    }
    fn config_keys(&self) -> &'static [&'static str] {
        &["plus"]
    }
    fn config_entry(&self, _key: &str, value: &toml::Value) -> Result<Vec<(&'static str, String)>, String> {
        let amount = value.get("amount").and_then(toml::Value::as_integer).ok_or("[plus] needs amount = N")?;
        Ok(vec![("plus-amount", amount.to_string())])
    }
    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let amount = launch
            .args()
            .value("plus-amount")
            .unwrap_or("1")
            .parse()
            .map_err(|_| KindError::Invalid("amount".into()))?;
        Ok(Arc::new(PlusOneKind { prog: program(), amount }))
    }
}

impl GuestKind for PlusOneKind {
    fn name(&self) -> String {
        "plus-one personality".into()
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        let mem = ctx.mem;
        let h = ctx.hosted()?;
        vmm::hosted::program::load(&self.prog, mem, h.frames, h.mapper)?;
        let top = vmm::layout::user_stack_top(0);
        vmm::hosted::program::map_stack(top, mem, h.frames, h.mapper)?;
        Ok(Entry::User(vec![UserEntry { rip: CODE_VA, rsp: top, rdi: 0, syscall_entry: None }]))
    }

    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        if args.nr == PLUS_ONE {
            return hypercall::Outcome { ret: args.a[0] as i64 + self.amount, effects: Default::default() };
        }
        hv.dispatch(vcpu, args)
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        // Exit status 0 only if the guest passed 42 to exit_group.
        let ok = end.outcome == Some(Outcome::Exited { status: 42 });
        let mut r = vmm::run::report::build(self.name(), end.outcome, end.records, &[], None, end.exits);
        r.exit_code = if ok { 0 } else { 1 };
        r
    }
}

fn program() -> Program {
    let mut a = CodeAssembler::new(64).expect("assembler");
    a.mov(edi, 41u32).expect("asm");
    a.mov(rax, PLUS_ONE).expect("asm");
    a.out(u32::from(vmm::hosted::stub::abi::HCALL_PORT), al).expect("asm");
    // exit_group(rax)
    a.mov(rdi, rax).expect("asm");
    a.mov(rax, vmm::hosted::stub::abi::nr::EXIT_GROUP).expect("asm");
    a.out(u32::from(vmm::hosted::stub::abi::HCALL_PORT), al).expect("asm");
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
    // In this process, without seccomp: a filter is permanent for its
    // thread and this test process runs others; the kind is defined in
    // this test, which the `vmm` binary cannot load.
    let report = vmm::run_kind(&cfg, Arc::new(PlusOneKind { prog: program(), amount: 1 }), opts).expect("run");
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
    let img = vmm::guest::elf_program::build_elf(CODE_VA, &[(CODE_VA, &s.bytes, s.mem_len, 5)]);
    let path = vmm_suite::kvm::temp_path("plus-one.elf");
    std::fs::write(&path, img).expect("write");
    let cfg =
        vmm::VmConfig { guest: vmm::GuestChoice::Elf(path.clone()), timeout_secs: Some(20), ..Default::default() };
    let out = hypercall::ConsoleOut::new(Box::new(std::io::sink()));
    let mut opts = vmm::RunOptions::new(vmm::ConsoleSink::Writer(out));
    opts.stdin = false;
    // In this process, without seccomp: a filter is permanent for its
    // thread and this test process runs others; this test compares
    // with `run_kind` above on the same footing.
    let report = vmm::run_with(&cfg, opts).expect("run");
    let _ = std::fs::remove_file(&path);
    assert_eq!(report.outcome, Some(Outcome::Exited { status: -38 }), "{}", report.to_text());
}

fn run_registered(cfg: &vmm::VmConfig, registry: &Registry) -> Result<RunReport, vmm::RunError> {
    let out = hypercall::ConsoleOut::new(Box::new(std::io::sink()));
    let mut opts = vmm::RunOptions::new(vmm::ConsoleSink::Writer(out));
    opts.stdin = false;
    // In this process, without seccomp: a filter is permanent for its
    // thread and this test process runs others; `run_with_registry`
    // takes a registry built here, which the `vmm` binary cannot load.
    vmm::run_with_registry(cfg, registry, opts)
}

#[test]
fn a_registered_kind_is_chosen_and_configured_by_its_own_option() {
    need_kvm!();
    let registry = Registry::standard().with(&PLUS).expect("register");
    // The option chooses the kind and sets what its call adds: 41 + 1.
    let mut cfg = vmm::VmConfig { timeout_secs: Some(20), ..Default::default() };
    cfg.kind_args.push("plus-amount", "1");
    let report = run_registered(&cfg, &registry).expect("run");
    assert_eq!(report.guest, "plus-one personality");
    assert_eq!(report.outcome, Some(Outcome::Exited { status: 42 }), "{}", report.to_text());
    // The same option from the configuration file: 41 + 5 is not 42.
    let cfg = vmm::VmConfig::from_toml("timeout_secs = 20\n[plus]\namount = 5\n", &registry).expect("config");
    assert_eq!(cfg.kind_args.value("plus-amount"), Some("5"));
    let report = run_registered(&cfg, &registry).expect("run");
    assert_eq!(report.outcome, Some(Outcome::Exited { status: 46 }), "{}", report.to_text());
    assert_eq!(report.exit_code, 1);
}

#[test]
fn without_its_registration_the_option_and_entry_are_refused() {
    let mut cfg = vmm::VmConfig::default();
    cfg.kind_args.push("plus-amount", "1");
    let e = run_registered(&cfg, &Registry::standard()).unwrap_err().to_string();
    assert!(e.contains("no kind has an option --plus-amount"), "{e}");
    let e = vmm::VmConfig::from_toml("[plus]\namount = 5\n", &Registry::standard()).unwrap_err().to_string();
    assert!(e.contains("unknown field `plus`") && e.contains("`block`"), "{e}");
    let registry = Registry::standard().with(&PLUS).expect("register");
    cfg.kind_args.set("plus-amount", vec!["many".into()]);
    assert!(run_registered(&cfg, &registry).unwrap_err().to_string().contains("--plus-amount"));
}
