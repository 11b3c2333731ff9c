//! The built-in test guest as a kind: generated for the machine it runs
//! on, it checks every mapping kind through the CPU and reports; the VMM
//! adds its own host-side check of the passed-through window.

use super::program::{self as builtin, id, Params};
use crate::config::{default_bars, BarBacking, BarConfig, VmConfig};
use crate::guest::kind::{DeviceCtx, Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind};
use crate::guest::kinds::abi_elf::load::load_vmm_abi_program;
use crate::guest::spec::{KindSpec, Launch};
use crate::hosted::hypercall::CheckRecord;
use crate::hosted::program::Program;
use crate::hosted::stub::abi::window_pattern;
use crate::layout::PAGE_SIZE;
use crate::memory::HostWindow;
use crate::run::control::Outcome;
use crate::run::report::{self, RunReport};

/// The built-in test guest.
#[derive(Debug)]
pub struct Builtin {
    params: Params,
    prog: Program,
    expected: Vec<(u64, String)>,
}

impl Builtin {
    /// Generates the guest for `cfg`'s machine.
    pub fn new(cfg: &VmConfig) -> Result<Self, KindError> {
        let params = params(cfg);
        let prog = builtin::build(&params)
            .map_err(|e| KindError::Assemble { what: "the built-in guest", message: e.to_string() })?;
        Ok(Builtin { expected: builtin::checks(&params), params, prog })
    }
}

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn about(&self) -> &'static str {
        "the built-in test guest: every mapping kind, checked through the CPU"
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        Ok(std::sync::Arc::new(Builtin::new(launch.cfg)?))
    }
}

impl GuestKind for Builtin {
    fn name(&self) -> String {
        "built-in test guest".into()
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        load_vmm_abi_program(ctx, &self.prog)
    }

    fn bars(&self, cfg: &VmConfig) -> Vec<BarConfig> {
        bars(cfg)
    }

    fn add_devices(&self, ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
        // The built-in guest owns its windows: it expects the pattern.
        for w in ctx.windows {
            for off in (0..w.size()).step_by(8) {
                w.write_u64(off, window_pattern(off));
            }
        }
        Ok(())
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        let mut records = end.records.to_vec();
        if self.params.passthrough_bar.is_some() {
            if let Some(w) = end.windows.first() {
                records.push(host_sees_guest_writes(w));
            }
        }
        let clean = Outcome::ExitPort { status: 1 };
        report::build(self.name(), end.outcome, &records, &self.expected, Some(&clean), end.exits)
    }
}

/// The configured windows, or the default pair when none are.
fn bars(cfg: &VmConfig) -> Vec<BarConfig> {
    if cfg.bars.is_empty() {
        default_bars()
    } else {
        cfg.bars.clone()
    }
}

/// What the built-in guest is told about the machine.
fn params(cfg: &VmConfig) -> Params {
    let bars = bars(cfg);
    let find = |trapped: bool| {
        bars.iter()
            .enumerate()
            .find(|(_, b)| (b.backing == BarBacking::Trapped) == trapped)
            .map(|(i, b)| (i as u64, b.size))
    };
    Params { vcpus: cfg.vcpus, mem_size: cfg.mem_size, trapped_bar: find(true), passthrough_bar: find(false) }
}

/// The VMM's own check after a run: the guest's writes to the
/// passed-through window reached the host backing (the guest wrote the
/// complement of the pattern at +0x800 of every page).
fn host_sees_guest_writes(w: &HostWindow) -> CheckRecord {
    let mut bad = None;
    for page in (0..w.size()).step_by(PAGE_SIZE as usize) {
        let off = page + 0x800;
        let want = !window_pattern(off);
        let got = w.read_u64(off).unwrap_or(0);
        if got != want {
            bad = Some((off, got, want));
            break;
        }
    }
    let (got, expected, step) = bad.map_or((0, 0, 0), |(off, got, want)| (got, want, off));
    CheckRecord { vcpu: 0, id: id::HOST_SEES_GUEST_WRITES, passed: bad.is_none(), got, expected, step }
}
