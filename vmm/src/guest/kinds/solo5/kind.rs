//! The Solo5 kind itself: loading a unikernel, serving its calls through
//! [`super::syscalls`], and its exit status.

use vm_memory::Bytes;

use super::block::Devices;
use super::clock::{self, ClockPage};
use super::layout::{LayoutError, BOOT_INFO, DEFAULT_MEM};
use super::mac::{check_net, check_net_mac, parse_net, parse_net_mac, Mac};
use super::net::Nets;
use super::note::Notes;
use super::syscalls::{Table, SIGSYS_STATUS};
use super::tap::FD_PREFIX;
use super::{fastcall, layout, memory, note, segments};
use crate::config::{ConfigError, VmConfig};
use crate::guest::elf_program;
use std::path::PathBuf;

use crate::guest::kind::{Entry, GuestKind, KindError, LoadCtx, RunEnd, SharedKind, UserEntry};
use crate::guest::options::KindOption;
use crate::guest::spec::{KindSpec, Launch};
use crate::hosted::boot::PortAccess;
use crate::hosted::hypercall::{self, Args, HostedKernel};
use crate::hosted::mapper::PoolRam;
use crate::hosted::program::Program;
use crate::layout::FREE_PA;
use crate::run::control::Outcome;
use crate::run::report::{self, CheckLine, RunReport, EXIT_CRASHED, EXIT_OUTPUT_CLOSED, EXIT_TIMEOUT};
use crate::seccomp::{ArgIs, Call, Row, ThreadKind};
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

fn kind_err(e: impl std::fmt::Display) -> KindError {
    KindError::Setup(format!("solo5: {e}"))
}

/// Option: a block device (`NAME=FILE`).
pub const BLOCK: &str = "block";

/// Longest name of a Solo5 manifest entry (`MFT_NAME_MAX`).
pub const BLOCK_NAME_MAX: usize = 67;

/// Checks a block device's name as `solo5-spt` does: 1 to 67 ASCII
/// letters and digits.
pub fn check_block_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > BLOCK_NAME_MAX || !name.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("block device name '{name}': it must be 1 to {BLOCK_NAME_MAX} ASCII letters and digits"));
    }
    Ok(())
}

/// Parses `--block NAME=FILE`.
pub fn parse_block(s: &str) -> Result<(String, PathBuf), String> {
    let Some((name, path)) = s.split_once('=') else {
        return Err(format!("'{s}': expected NAME=FILE"));
    };
    check_block_name(name)?;
    if path.is_empty() {
        return Err(format!("'{s}': no file after '='"));
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn check_block(s: &str) -> Result<(), String> {
    parse_block(s).map(|_| ())
}

/// Option: a network device (`NAME=TAP`).
pub const NET: &str = "net";
/// Option: a network device's MAC address (`NAME=MAC`).
pub const NET_MAC: &str = "net-mac";

/// The network devices of `values` (name, tap), each name once and each
/// inherited descriptor (`@FD`) once (one owner each).
fn nets(values: &[String]) -> Result<Vec<(String, String)>, KindError> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(values.len());
    for v in values {
        let (name, tap) = parse_net(v).map_err(KindError::Invalid)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(KindError::Invalid(format!("network device '{name}' is given twice")));
        }
        if tap.starts_with(FD_PREFIX) && out.iter().any(|(_, t)| *t == tap) {
            return Err(KindError::Invalid(format!("descriptor {tap} is given to two network devices")));
        }
        out.push((name, tap));
    }
    Ok(out)
}

/// The MAC addresses of `values`, by device (the last one given for a
/// device counts, as under `solo5-spt`).
fn macs(values: &[String]) -> Result<Vec<(String, Mac)>, KindError> {
    let mut out: Vec<(String, Mac)> = Vec::with_capacity(values.len());
    for v in values {
        let (name, mac) = parse_net_mac(v).map_err(KindError::Invalid)?;
        out.retain(|(m, _)| *m != name);
        out.push((name, mac));
    }
    Ok(out)
}

/// Option: a block device's sector size (`NAME=N`).
pub const BLOCK_SECTOR_SIZE: &str = "block-sector-size";
/// Option: an executable heap (refused).
pub const X_EXEC_HEAP: &str = "x-exec-heap";

/// Parses `--block-sector-size NAME=N` as `solo5-spt` takes it: N a
/// power of two from 512 up that fits its 16-bit field (512 to 32768).
pub fn parse_sector_size(s: &str) -> Result<(String, u16), String> {
    let Some((name, n)) = s.split_once('=') else {
        return Err(format!("'{s}': expected NAME=N"));
    };
    check_block_name(name)?;
    match n.parse::<u16>() {
        Ok(n) if n >= 512 && n.is_power_of_two() => Ok((name.to_owned(), n)),
        _ => Err(format!("'{s}': the sector size must be a power of two from 512 to 32768 bytes")),
    }
}

fn check_sector_size(s: &str) -> Result<(), String> {
    parse_sector_size(s).map(|_| ())
}

/// The sector sizes of `values`, by device (the last one given for a
/// device counts, as under `solo5-spt`).
fn sector_sizes(values: &[String]) -> Result<Vec<(String, u16)>, KindError> {
    let mut out: Vec<(String, u16)> = Vec::with_capacity(values.len());
    for v in values {
        let (name, n) = parse_sector_size(v).map_err(KindError::Invalid)?;
        out.retain(|(m, _)| *m != name);
        out.push((name, n));
    }
    Ok(out)
}

/// The block devices of `values`, each name once.
fn blocks(values: &[String]) -> Result<Vec<(String, PathBuf)>, KindError> {
    let mut out: Vec<(String, PathBuf)> = Vec::with_capacity(values.len());
    for v in values {
        let (name, path) = parse_block(v).map_err(KindError::Invalid)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(KindError::Invalid(format!("block device '{name}' is given twice")));
        }
        out.push((name, path));
    }
    Ok(out)
}

/// A `[[block]]` entry of the configuration file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBlock {
    name: String,
    path: PathBuf,
}

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "solo5"
    }

    fn about(&self) -> &'static str {
        "a Solo5 spt unikernel, unmodified (told by its ABI note)"
    }

    fn options(&self) -> &'static [KindOption] {
        const OPTIONS: &[KindOption] = &[
            KindOption::new(
                BLOCK,
                "NAME=FILE",
                "Attach the host file FILE as the Solo5 unikernel's block device NAME (declared in its manifest), \
                 like `solo5-spt --block:NAME=FILE` (also written so here). Repeatable; replaces the configuration \
                 file's `[[block]]` entries.",
            )
            .repeatable()
            .keyed()
            .checked(check_block),
            KindOption::new(
                BLOCK_SECTOR_SIZE,
                "NAME=N",
                "The block device NAME's sector size: a power of two from 512 (the default) to 32768 bytes; the \
                 file must hold whole sectors. Also written `--block-sector-size:NAME=N`, as for `solo5-spt`.",
            )
            .repeatable()
            .keyed()
            .checked(check_sector_size),
            KindOption::new(
                NET,
                "NAME=TAP",
                "Attach the host tap interface TAP (up, not in use by another process) as the Solo5 unikernel's \
                 network device NAME (declared in its manifest), like `solo5-spt --net:NAME=TAP` (also written so \
                 here). TAP may be `@FD`: a tap descriptor the caller opened and passed in (not close-on-exec). \
                 Repeatable.",
            )
            .repeatable()
            .keyed()
            .checked(check_net),
            KindOption::new(
                NET_MAC,
                "NAME=MAC",
                "The network device NAME's MAC address (`02:00:00:00:00:01`); a random locally administered one \
                 otherwise. Also written `--net-mac:NAME=MAC`, as for `solo5-spt`.",
            )
            .repeatable()
            .keyed()
            .checked(check_net_mac),
            KindOption::new(
                X_EXEC_HEAP,
                "",
                "`solo5-spt`'s executable heap: not supported (the heap is never executable here); refused.",
            )
            .flag(),
        ];
        OPTIONS
    }

    fn config_keys(&self) -> &'static [&'static str] {
        &["block"]
    }

    fn config_entry(&self, key: &str, value: &toml::Value) -> Result<Vec<(&'static str, String)>, String> {
        if key != "block" {
            return Err(format!("solo5: no configuration entry '{key}'"));
        }
        let entries: Vec<FileBlock> = value.clone().try_into().map_err(|e: toml::de::Error| e.to_string())?;
        Ok(entries.into_iter().map(|b| (BLOCK, format!("{}={}", b.name, b.path.display()))).collect())
    }

    fn runs_files(&self) -> bool {
        true
    }

    fn claims(&self, bytes: &[u8]) -> bool {
        note::is_solo5(bytes)
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let Some((path, bytes)) = launch.file else {
            return Err(KindError::Invalid("a Solo5 unikernel needs --guest FILE".into()));
        };
        if launch.args().has(X_EXEC_HEAP) {
            return Err(KindError::Invalid(
                "--x-exec-heap is not supported: this VMM maps a Solo5 unikernel's heap read/write and never \
                 executable (only its text segments are executable)"
                    .into(),
            ));
        }
        let blocks = blocks(launch.args().values(BLOCK))?;
        let sizes = sector_sizes(launch.args().values(BLOCK_SECTOR_SIZE))?;
        let devices = DeviceArgs {
            blocks,
            sizes,
            nets: nets(launch.args().values(NET))?,
            macs: macs(launch.args().values(NET_MAC))?,
        };
        Ok(std::sync::Arc::new(Solo5::new(path.display().to_string(), bytes, launch.cfg, &devices)?))
    }
}

/// The `ppoll` the network devices' wait makes (`tap::poll_readable`):
/// at most one descriptor per manifest entry, no signal mask.
const PPOLL_ARGS: &[ArgIs] = &[ArgIs::AtMost(1, note::MAX_ENTRIES as u64), ArgIs::Eq(3, 0)];

/// What a Solo5 unikernel makes the vCPU thread do beyond every run's
/// allow-list.
const SECCOMP_ROWS: &[Row] = &[
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_clock_nanosleep, "clock_nanosleep"),
        why: "a Solo5 guest blocked in epoll_pwait sleeps in slices",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_nanosleep, "nanosleep"),
        why: "the same, where glibc uses the older call",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_pread64, "pread64"),
        why: "a Solo5 unikernel's block device: one block read from its host file",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Syscall(libc::SYS_pwrite64, "pwrite64"),
        why: "a Solo5 unikernel's block device: one block written to its host file",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::SyscallIf(libc::SYS_ppoll, "ppoll", PPOLL_ARGS),
        why: "a Solo5 unikernel's yield waits for a frame on its network devices' taps: at most one descriptor per \
              manifest entry, no signal mask (read and write of a frame are on every thread's list already)",
    },
    Row {
        thread: ThreadKind::Vcpu,
        call: Call::Ioctl(crate::seccomp::rules::kvm_set_msrs, "KVM_SET_MSRS"),
        why: "a Solo5 guest's arch_prctl(ARCH_SET_FS) writes IA32_FS_BASE",
    },
];

/// The devices a run attaches to a unikernel, as its options gave them.
#[derive(Debug, Default)]
pub struct DeviceArgs {
    /// Block devices (name, host file).
    pub blocks: Vec<(String, PathBuf)>,
    /// Sector sizes (name, bytes; 512 for a device not named).
    pub sizes: Vec<(String, u16)>,
    /// Network devices (name, host tap interface).
    pub nets: Vec<(String, String)>,
    /// MAC addresses (name, address; generated for a device not named).
    pub macs: Vec<(String, Mac)>,
}

impl Solo5 {
    /// The unikernel in the ELF image `bytes` (from `name`), with the
    /// run's memory size (Solo5's default unless one was given) and
    /// command line, and its devices `devices`.
    pub fn new(name: String, bytes: &[u8], cfg: &VmConfig, devices: &DeviceArgs) -> Result<Self, KindError> {
        let mut notes = note::read(bytes).map_err(|e| kind_err(format!("{name}: {e}")))?;
        if cfg.vcpus != 1 {
            return Err(kind_err("a Solo5 unikernel runs on exactly one vCPU"));
        }
        let mem = layout::check_mem(if cfg.mem_explicit { cfg.mem_size } else { DEFAULT_MEM }).map_err(kind_err)?;
        segments::check(bytes).map_err(|e| kind_err(format!("{name}: {e}")))?;
        let prog = elf_program::parse(bytes)?;
        // Last, so that nothing is opened for a run refused anyway.
        let blocks = Devices::attach(&mut notes.manifest, &devices.blocks, &devices.sizes)
            .map_err(|e| kind_err(format!("{name}: {e}")))?;
        let nets = Nets::attach(&mut notes.manifest, &devices.nets, &devices.macs)
            .map_err(|e| kind_err(format!("{name}: {e}")))?;
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
        Ok(Solo5 { name, prog, notes, mem, cmdline: cfg.guest_args.join(" "), entry, table: Table::new(blocks, nets) })
    }
}

impl GuestKind for Solo5 {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The unikernel's memory was checked against Solo5's range (2 MiB to
    /// 2 GiB, [`layout::check_mem`]) when it was opened; the machine gets
    /// the VMM's own layout below it ([`GuestKind::ram_size`]), so the
    /// layout's 64 MiB minimum does not apply.
    fn check_mem(&self, _cfg: &VmConfig) -> Result<(), ConfigError> {
        Ok(())
    }

    /// `solo5-spt`'s stdout is the unikernel's: `vmm run --guest u.spt >
    /// out` leaves in `out` only what the unikernel wrote.
    fn stdout_is_the_guests(&self) -> bool {
        true
    }

    fn ram_size(&self, _cfg: &VmConfig) -> u64 {
        FREE_PA + self.mem
    }

    /// The free RAM is the unikernel's memory: the pool keeps to its
    /// fixed region.
    fn pool_ram(&self) -> PoolRam {
        PoolRam::FixedOnly
    }

    /// `solo5-spt` runs the unikernel as a seccomp-confined Linux process:
    /// it has no I/O ports, so a port access is a fault (139), as there.
    /// Where `syscall` stays in user mode, the trampoline's hypercall port
    /// stays open (an `out` there is a `syscall`, served by the same
    /// `spt` table).
    fn user_ports(&self) -> PortAccess {
        match self.entry {
            SyscallEntry::Kernel => PortAccess::None,
            SyscallEntry::User => PortAccess::HypercallOnly,
        }
    }

    fn load(&self, ctx: &mut LoadCtx<'_>) -> Result<Entry, KindError> {
        let mem = ctx.mem;
        let pa = memory::phys;
        let segs: Vec<(u64, u64, layout::Rights)> =
            self.prog.segments.iter().map(|s| (s.va, s.mem_len, (s.write, s.exec))).collect();
        let (runs, kernel_end) = layout::runs(&segs, self.mem).map_err(kind_err)?;
        for s in &self.prog.segments {
            mem.write_slice(&s.bytes, pa(s.va)).map_err(|_| kind_err(format!("cannot load segment {:#x}", s.va)))?;
        }
        let block = layout::boot_block(self.mem, kernel_end, &self.notes.manifest, &self.cmdline).map_err(kind_err)?;
        mem.write_slice(&block, pa(BOOT_INFO)).map_err(|_| kind_err("cannot write the boot-info block"))?;

        let hosted = ctx.hosted()?;
        memory::map_runs(hosted.mapper, &runs).map_err(kind_err)?;
        let syscall_entry = match self.entry {
            SyscallEntry::Kernel => None,
            SyscallEntry::User => {
                // The trampoline answers clock_gettime and the yield's
                // timerfd_settime from the clock page (see `fastcall`).
                let first = clock::first_anchor(clock::now());
                let mut page = fastcall::initial_page((kernel_end, self.mem), (layout::HOST_MEM_BASE, self.mem));
                for (off, v) in [
                    (fastcall::field::TSC_BASE, first.tsc_base),
                    (fastcall::field::MONO_BASE, first.mono_base),
                    (fastcall::field::REAL_MINUS_MONO, first.real_minus_mono),
                ] {
                    page[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
                }
                let lstar = fastcall::install(hosted.mapper, hosted.frames, mem, &page).map_err(kind_err)?;
                self.table.use_clock_page(ClockPage::new(first));
                Some(lstar)
            }
        };
        Ok(Entry::User(vec![UserEntry { rip: self.prog.entry, rsp: self.mem - 8, rdi: BOOT_INFO, syscall_entry }]))
    }

    fn syscall(&self, hv: &HostedKernel, vcpu: u8, args: &Args) -> hypercall::Outcome {
        self.table.call(hv, vcpu, args)
    }

    fn seccomp_rows(&self) -> &'static [Row] {
        SECCOMP_ROWS
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

impl From<LayoutError> for KindError {
    fn from(e: LayoutError) -> Self {
        kind_err(e)
    }
}
