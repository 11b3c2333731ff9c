//! The raw multiboot kernel as a guest kind: a bare PC (no firmware, no
//! VMM kernel), the kernel and its modules at their physical addresses,
//! the boot processor in 32-bit protected mode, `fw_cfg` for the CPU count
//! and memory size; the run ends when the guest writes the exit port
//! (`isa-debug-exit`: status `(code << 1) | 1`), which becomes the VMM's
//! exit status.

use std::sync::{Arc, Mutex};

use devices::legacy::{FwCfg, FwCfgInfo, FW_CFG_PORT, FW_CFG_PORT_LEN};

use super::load::{self, read_file, Module};
use super::multiboot::BOOT_MAGIC;
use crate::config::RawKernel;
use crate::guest::kind::{DeviceCtx, Entry, GuestKind, LoadCtx, Platform, RunEnd};
use crate::report::{self, RunReport};
use crate::runner::RunError;

/// A multiboot kernel read into memory with its modules.
#[derive(Debug)]
pub struct Raw {
    spec: RawKernel,
    kernel: Vec<u8>,
    modules: Vec<Module>,
}

impl Raw {
    /// Reads the kernel and module files (each at most
    /// [`load::MAX_FILE`] bytes).
    pub fn open(spec: &RawKernel) -> Result<Self, RunError> {
        let err = |e: super::RawLoadError| RunError::Kind(e.to_string());
        let kernel = read_file(&spec.kernel).map_err(err)?;
        if spec.modules.len() > load::MAX_MODULES {
            return Err(RunError::Kind(format!("more than {} modules", load::MAX_MODULES)));
        }
        let modules = spec
            .modules
            .iter()
            .map(|p| Ok(Module { bytes: read_file(p).map_err(err)?, cmdline: p.display().to_string() }))
            .collect::<Result<_, RunError>>()?;
        Ok(Raw { spec: spec.clone(), kernel, modules })
    }
}

impl GuestKind for Raw {
    fn name(&self) -> String {
        self.spec.kernel.display().to_string()
    }

    fn platform(&self) -> Platform {
        Platform::Pc
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, RunError> {
        let l =
            load::load(&self.spec.kernel, &self.kernel, &self.spec.cmdline, &self.modules, ctx.mem, ctx.cfg.mem_size)
                .map_err(|e| RunError::Kind(e.to_string()))?;
        log::info!("multiboot kernel: entry {:#x}, information block at {:#x}", l.entry, l.info);
        Ok(Entry::Protected32 { eip: l.entry, eax: BOOT_MAGIC, ebx: l.info })
    }

    fn add_devices(&self, ctx: &mut DeviceCtx<'_>) -> Result<(), RunError> {
        let info = FwCfgInfo {
            ram_size: ctx.cfg.mem_size,
            cpus: u16::from(ctx.cfg.vcpus),
            cmdline: self.spec.cmdline.clone(),
        };
        let fw_cfg = Arc::new(Mutex::new(FwCfg::new(&info)));
        ctx.buses
            .pio
            .insert(fw_cfg, u64::from(FW_CFG_PORT), FW_CFG_PORT_LEN)
            .map_err(|e| RunError::Device(e.to_string()))?;
        Ok(())
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        report::build(self.name(), end.outcome, end.records, &[], None, end.exits)
    }
}
