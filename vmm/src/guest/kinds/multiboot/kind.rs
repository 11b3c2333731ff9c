//! The raw multiboot kernel as a guest kind: a bare PC (no firmware, no
//! VMM kernel), the kernel and its modules at their physical addresses,
//! the boot processor in 32-bit protected mode, `fw_cfg` for the CPU count
//! and memory size; the run ends when the guest writes the exit port
//! (`isa-debug-exit`: status `(code << 1) | 1`), which becomes the VMM's
//! exit status.

use std::sync::{Arc, Mutex};

use devices::legacy::{
    AcpiPm, FwCfg, FwCfgInfo, Rtc, SleepLatch, TestdevIomem, TestdevIrqs, TestdevPorts, FW_CFG_PORT, FW_CFG_PORT_LEN,
    PM_BASE, PM_LEN, RTC_PORT, RTC_PORT_LEN, TESTDEV_IOMEM, TESTDEV_IOMEM_LEN, TESTDEV_IRQ_LINES, TESTDEV_IRQ_PORT,
    TESTDEV_PORT, TESTDEV_PORT_LEN,
};

use super::acpi;
use super::header::BOOT_MAGIC;
use super::load::{self, read_file_for};
use super::module::Module;
use super::sleep::PcSleep;
use crate::guest::kind::{DeviceCtx, Entry, GuestKind, KindError, LoadCtx, Platform, RunEnd, SharedKind};
use crate::guest::options::KindOption;
use crate::guest::spec::{KindSpec, Launch};
use crate::run::report::{self, RunReport};
use crate::seccomp::{Call, Row, ThreadKind};
use crate::vstate::cpu_model::{CpuModelError, CpuSpec};
use std::path::PathBuf;

/// A multiboot kernel and what its boot loader passes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawKernel {
    /// The kernel file.
    pub kernel: PathBuf,
    /// Its command line (`--append`); the kernel sees `"<file> <append>"`.
    pub cmdline: String,
    /// Module files (`--initrd`, `--module`), in order.
    pub modules: Vec<PathBuf>,
    /// The CPU model (`--cpu`, QEMU's `-cpu` syntax); `None`: the CPUID
    /// KVM supports, unchanged.
    pub cpu: Option<String>,
}

/// Option: the kernel file (chooses this kind).
pub const KERNEL: &str = "kernel";
/// Option: the kernel's command line.
pub const APPEND: &str = "append";
/// Option: the first module.
pub const INITRD: &str = "initrd";
/// Option: further modules.
pub const MODULE: &str = "module";
/// Option: the CPU model.
pub const CPU: &str = "cpu";

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "multiboot"
    }

    fn about(&self) -> &'static str {
        "a multiboot v1 kernel (e.g. a kvm-unit-test .flat) on a bare PC with no firmware"
    }

    fn options(&self) -> &'static [KindOption] {
        const OPTIONS: &[KindOption] = &[
            KindOption::new(
                KERNEL,
                "FILE",
                "A multiboot v1 kernel (ELF32/ELF64, e.g. a kvm-unit-test `.flat`) to boot on a bare PC with no \
                 firmware, as `qemu -kernel` does.",
            )
            .selects(),
            KindOption::new(APPEND, "ARGS", "The kernel's command line (it sees `\"<FILE> <ARGS>\"`).").hyphen_values(),
            KindOption::new(
                INITRD,
                "FILE",
                "A file the kernel gets as its first multiboot module (kvm-unit-tests read their environment from it).",
            ),
            KindOption::new(MODULE, "FILE", "Further multiboot modules, after `--initrd`.").repeatable(),
            KindOption::new(
                CPU,
                "MODEL[,+FEAT|-FEAT|vendor=V...]",
                "The guest's CPUID, in QEMU's `-cpu` syntax: `host`, `max` or a named model (qemu64, kvm64, \
                 Opteron_G1, IvyBridge, Skylake-Server...), features on (`+x2apic`) or off (`-pcid`), `vendor=`. \
                 Anything KVM cannot give, or that is not followed, is an error.",
            )
            .hyphen_values(),
        ];
        OPTIONS
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let args = launch.args();
        let Some(kernel) = args.value(KERNEL) else {
            return Err(KindError::Invalid("a multiboot guest needs --kernel FILE".into()));
        };
        let modules = args.values(INITRD).iter().chain(args.values(MODULE)).map(PathBuf::from).collect();
        let spec = RawKernel {
            kernel: kernel.into(),
            cmdline: args.value(APPEND).unwrap_or_default().into(),
            modules,
            cpu: args.value(CPU).map(String::from),
        };
        Ok(std::sync::Arc::new(Multiboot::open(&spec, launch.cfg.mem_size)?))
    }
}

/// A multiboot kernel read into memory, with its modules opened (not
/// read: they are copied into guest memory at load).
#[derive(Debug)]
pub struct Multiboot {
    spec: RawKernel,
    kernel: Vec<u8>,
    modules: Vec<Module>,
    cpu: Option<CpuSpec>,
}

impl Multiboot {
    /// Reads the kernel file (at most [`super::MAX_FILE`] bytes, and no
    /// more than the RAM below 4 GiB) and
    /// opens the module files, then checks that kernel, modules and
    /// information block fit in `ram` bytes of guest RAM (the machine's:
    /// the kind does not change it) before a byte of a module is read.
    /// Every file is opened without blocking: a FIFO or a device is an
    /// error at once.
    pub fn open(spec: &RawKernel, ram: u64) -> Result<Self, KindError> {
        let err = |e: super::RawLoadError| KindError::Invalid(e.to_string());
        if spec.modules.len() > load::MAX_MODULES {
            return Err(KindError::Invalid(format!("more than {} modules", load::MAX_MODULES)));
        }
        let kernel = read_file_for(&spec.kernel, ram).map_err(err)?;
        let modules = spec
            .modules
            .iter()
            .map(|p| Module::open(p).map_err(|e| err(e.into())))
            .collect::<Result<Vec<_>, KindError>>()?;
        load::plan(&spec.kernel, &kernel, &spec.cmdline, &modules, ram).map_err(err)?;
        let cpu = spec.cpu.as_deref().map(|c| CpuSpec::parse(c).map_err(|e| cpu_error(c, e))).transpose()?;
        Ok(Multiboot { spec: spec.clone(), kernel, modules, cpu })
    }
}

impl GuestKind for Multiboot {
    fn name(&self) -> String {
        self.spec.kernel.display().to_string()
    }

    fn platform(&self) -> Platform {
        Platform::Pc
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        // First, so that a kernel placed over them wins.
        acpi::write(ctx.mem).map_err(KindError::Setup)?;
        let l =
            load::load(&self.spec.kernel, &self.kernel, &self.spec.cmdline, &self.modules, ctx.mem, ctx.cfg.mem_size)
                .map_err(|e| KindError::Invalid(e.to_string()))?;
        log::info!("multiboot kernel: entry {:#x}, information block at {:#x}", l.entry, l.info);
        Ok(Entry::Protected32 { eip: l.entry, eax: BOOT_MAGIC, ebx: l.info })
    }

    fn add_devices(&self, ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
        if let (Some(cpu), Some(text)) = (&self.cpu, &self.spec.cpu) {
            cpu.apply(ctx.vm.cpuid_mut().as_mut_slice()).map_err(|e| cpu_error(text, e))?;
        }
        let info = FwCfgInfo {
            ram_size: ctx.cfg.mem_size,
            cpus: u16::from(ctx.cfg.vcpus),
            cmdline: self.spec.cmdline.clone(),
        };
        let fw_cfg = Arc::new(Mutex::new(FwCfg::new(&info)));
        ctx.buses
            .pio
            .insert(fw_cfg, u64::from(FW_CFG_PORT), FW_CFG_PORT_LEN)
            .map_err(|e| KindError::Device(e.to_string()))?;
        add_testdev(ctx)?;
        add_acpi_devices(ctx)?;
        // What SeaBIOS leaves: the PICs initialized at vectors 0x08/0x70.
        // IRQ 0 stays masked (the PIT's reset one-shot would reach a
        // vector nobody installed); the rest are the test device's lines.
        ctx.vm.pic_bios_handoff(0xfffe)?;
        Ok(())
    }

    fn seccomp_rows(&self) -> &'static [Row] {
        SECCOMP_ROWS
    }

    fn finish(&self, end: RunEnd<'_>) -> RunReport {
        report::build(self.name(), end.outcome, end.records, &[], None, end.exits)
    }
}

/// The error for a `--cpu` value that cannot be followed; it starts with
/// [`CPU_NOT_FOLLOWED`].
fn cpu_error(text: &str, e: CpuModelError) -> KindError {
    KindError::Invalid(format!("{CPU_NOT_FOLLOWED} {text}: {e}"))
}

/// How the error of a `--cpu` value that cannot be followed starts (a
/// runner that passes QEMU's `-cpu` turns it into a skip).
pub const CPU_NOT_FOLLOWED: &str = "cannot follow -cpu";

/// What a raw kernel's vCPU threads call beyond every run's allow-list.
const SECCOMP_ROWS: &[Row] = &[Row {
    thread: ThreadKind::Vcpu,
    call: Call::Ioctl(crate::seccomp::rules::kvm_set_sregs, "KVM_SET_SREGS"),
    why: "S3 resume restarts the vCPU in real mode at the FACS waking vector",
}];

/// The RTC and the ACPI PM registers, and the sleep and wake they make.
fn add_acpi_devices(ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
    let dev = |e: devices::BusError| KindError::Device(e.to_string());
    let latch = Arc::new(SleepLatch::default());
    let pm = Arc::new(Mutex::new(AcpiPm::new(latch.clone())));
    let rtc = Arc::new(Mutex::new(Rtc::default()));
    ctx.buses.pio.insert(rtc.clone(), u64::from(RTC_PORT), RTC_PORT_LEN).map_err(dev)?;
    ctx.buses.pio.insert(pm.clone(), u64::from(PM_BASE), PM_LEN).map_err(dev)?;
    *ctx.sleeper = Some(Arc::new(PcSleep { latch, pm, rtc }));
    Ok(())
}

/// The `pc-testdev` ports, interrupt lines (each an irqfd) and memory.
fn add_testdev(ctx: &mut DeviceCtx<'_>) -> Result<(), KindError> {
    let dev = |e: devices::BusError| KindError::Device(e.to_string());
    let irqs = TestdevIrqs::new().map_err(|e| KindError::Device(format!("pc-testdev lines: {e}")))?;
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
