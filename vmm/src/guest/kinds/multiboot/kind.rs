//! The raw multiboot kernel as a guest kind: a bare PC (no firmware, no
//! VMM kernel), the kernel and its modules at their physical addresses,
//! the boot processor in 32-bit protected mode, `fw_cfg` for the CPU count
//! and memory size; the run ends when the guest writes the exit port
//! (`isa-debug-exit`: status `(code << 1) | 1`), which becomes the VMM's
//! exit status.

use std::sync::{Arc, Mutex};

use devices::legacy::{
    FwCfg, FwCfgInfo, TestdevIomem, TestdevIrqs, TestdevPorts, FW_CFG_PORT, FW_CFG_PORT_LEN, TESTDEV_IOMEM,
    TESTDEV_IOMEM_LEN, TESTDEV_IRQ_LINES, TESTDEV_IRQ_PORT, TESTDEV_PORT, TESTDEV_PORT_LEN,
};

use super::header::BOOT_MAGIC;
use super::load::{self, read_file, Module};
use crate::config::RawKernel;
use crate::guest::kind::{DeviceCtx, Entry, GuestKind, LoadCtx, Platform, RunEnd};
use crate::run::report::{self, RunReport};
use crate::run::runner::RunError;

/// A multiboot kernel read into memory with its modules.
#[derive(Debug)]
pub struct Multiboot {
    spec: RawKernel,
    kernel: Vec<u8>,
    modules: Vec<Module>,
}

impl Multiboot {
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
        Ok(Multiboot { spec: spec.clone(), kernel, modules })
    }
}

impl GuestKind for Multiboot {
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
        add_testdev(ctx)?;
        // What SeaBIOS leaves: the PICs initialized at vectors 0x08/0x70.
        // IRQ 0 stays masked (the PIT's reset one-shot would reach a
        // vector nobody installed); the rest are the test device's lines.
        ctx.vm.pic_bios_handoff(0xfffe)?;
        Ok(())
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        report::build(self.name(), end.outcome, end.records, &[], None, end.exits)
    }
}

/// The `pc-testdev` ports, interrupt lines (each an irqfd) and memory.
fn add_testdev(ctx: &mut DeviceCtx<'_>) -> Result<(), RunError> {
    let dev = |e: devices::BusError| RunError::Device(e.to_string());
    let irqs = TestdevIrqs::new().map_err(|e| RunError::Device(format!("pc-testdev lines: {e}")))?;
    for (gsi, line) in irqs.lines().iter().enumerate() {
        ctx.vm.register_irqfd(line.eventfd(), gsi as u32)?;
    }
    let b = &mut ctx.buses;
    b.pio
        .insert(Arc::new(Mutex::new(TestdevPorts::default())), u64::from(TESTDEV_PORT), TESTDEV_PORT_LEN)
        .map_err(dev)?;
    b.pio.insert(Arc::new(Mutex::new(irqs)), u64::from(TESTDEV_IRQ_PORT), TESTDEV_IRQ_LINES).map_err(dev)?;
    b.mmio.insert(Arc::new(Mutex::new(TestdevIomem::default())), TESTDEV_IOMEM, TESTDEV_IOMEM_LEN).map_err(dev)?;
    Ok(())
}
