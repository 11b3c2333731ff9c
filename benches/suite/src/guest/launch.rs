//! Item 9: launching the VMM as a user would, what it keeps resident, and
//! the same launch under QEMU.
//!
//! - **Built-in guest**: `vmm run --timeout 60` (1 vCPU, 128 MiB, its two
//!   BAR windows) as a child process, spawn to exit, output discarded; it
//!   must exit 0. The floor beside it is spawning and waiting for `true`.
//! - **Minimal guest, against QEMU**: the smallest guest that does
//!   anything, an ELF whose only instruction writes the exit port
//!   (`vmm run --guest`), beside `qemu-system-x86_64 -M microvm -accel kvm`
//!   booting a 64 KiB firmware image that does the same `out 0xf4`, with
//!   every optional microvm device off, no option ROMs, no defaults, 16 MiB
//!   (QEMU's best case; `-cpu host` aborts on this backend). Both must
//!   exit 1 (the `isa-debug-exit` status of a 0 write). Skipped with a
//!   note when QEMU is not installed (Debian: `qemu-system-x86`).
//! - **Resident memory, whole**: the peak resident set of the minimal
//!   guest's `vmm` process and of QEMU's, guest pages included (what
//!   launching it costs the host): `VmHWM` of `/proc/<pid>/status` read
//!   at the process's exit in a separate, untimed run, traced so that it
//!   stops there before its memory goes ([`super::peak_rss`]): the exact
//!   peak. `ru_maxrss` from `wait4` is not used: it keeps the resident set
//!   of the bench process the child was forked or vforked from. The built-in
//!   guest's memory beyond guest RAM is sampled from `/proc/<pid>/smaps`
//!   ([`super::smaps`]), as before.
//! - **A Solo5 unikernel** (`vmm bench --spt test_hello.spt`): its launch
//!   beside the minimal guest's, and its peak resident set (`VmHWM` at
//!   exit) at `--mem 2048M` beside `--mem 2M`: launching must cost
//!   the same whatever memory the unikernel is given. Beside it, where
//!   Solo5's own tenders lie in `tenders/` next to the unikernel (as in
//!   `../shared/testguests/solo5-spt/`), the same unikernel under
//!   `solo5-spt` (a seccomp-confined process, no VM) and its `.hvt` build
//!   under `solo5-hvt` (Solo5's own KVM monitor): launch wall time, and
//!   `solo5-spt`'s peak resident set at its exit beside ours (target: at
//!   most 2×). Where they are absent the figure says so.
//! - **The bare KVM launch floor** (with `--spt`): the unikernel's CPU
//!   time (user + system of all its threads, [`super::child_cpu`]) beside
//!   `vmm launch-floor`'s ([`super::launch_floor`]: the same binary
//!   creating one VM with one page, one vCPU, run to one `out`); CPU time
//!   rather than wall time, because on a shared host the wall time is
//!   mostly waiting for a CPU.
//! - **Block I/O** (where `test_blk.spt` lies beside the `--spt`
//!   unikernel): its whole run on a 1 MiB disk, CPU time, beside
//!   `solo5-spt` on the same unikernel and disk; `solo5-hvt` on
//!   `test_blk.hvt` once (its first repetition only: it takes seconds per
//!   run on this backend), as a detail.
//! - **Cold and warm**: the first repetition (page cache and binary
//!   possibly cold) is reported as a detail beside the median.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use super::child_cpu;
use super::session::{guest_err, TempFile};
use super::smaps;
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use crate::stats::Stat;
use vmm::config::DEFAULT_MEM;

const ITEM: &str = "9 (launch)";

/// The command line: `vmm run` with a watchdog, so a guest that never
/// finishes cannot hang the bench.
const RUN: [&str; 3] = ["run", "--timeout", "60"];

/// QEMU's best case for a firmware-only microvm.
const QEMU_ARGS: [&str; 13] = [
    "-M",
    "microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=off",
    "-accel",
    "kvm",
    "-m",
    "16M",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
    "-bios",
];

/// One repetition's values.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// `vmm run` of the built-in guest, ms.
    pub vmm_ms: f64,
    /// `true`, ms.
    pub true_ms: f64,
    /// The built-in guest's resident split at the largest smaps sample.
    pub rss: smaps::Breakdown,
    /// Peak resident memory of that process (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// Usable smaps samples.
    pub samples: u64,
    /// The minimal guest: wall ms and peak resident KiB.
    pub minimal: Launch,
    /// QEMU on the same guest, when installed.
    pub qemu: Option<Launch>,
    /// The Solo5 unikernel, when given.
    pub spt: Option<Launch>,
    /// The Solo5 unikernel at `--mem 2M` and at `--mem 2048M`.
    pub spt_mem: Option<(Launch, Launch)>,
    /// The same unikernel under `solo5-spt` and its `.hvt` build under
    /// `solo5-hvt`, where both are installed.
    pub tenders: Option<(Times, Times)>,
    /// The same unikernel under `solo5-spt`, wall ms and peak resident KiB
    /// read as ours, where the tenders are installed.
    pub spt_tender: Option<Launch>,
    /// The bare KVM launch (`vmm launch-floor`).
    pub floor: Times,
    /// The Solo5 unikernel's run, timed with its CPU time.
    pub spt_times: Option<Times>,
    /// The minimal guest's run (one exit), timed with its CPU time.
    pub minimal_times: Times,
    /// `test_blk` on a 1 MiB disk under ours and, where installed, under
    /// `solo5-spt`.
    pub blk: Option<(Times, Option<Times>)>,
    /// `test_blk.hvt` under `solo5-hvt`, in the first repetition only
    /// (seconds per run on this backend).
    pub blk_hvt: Option<Times>,
}

/// `test_blk` beside the `--spt` unikernel, and the disk it writes.
struct Blk {
    spt: PathBuf,
    disk: TempFile,
    /// `test_blk.hvt` beside the tenders, when there.
    hvt_image: Option<PathBuf>,
}

/// Size of `test_blk`'s disk: big enough for its checks, small enough
/// that `solo5-hvt` finishes in seconds.
const BLK_DISK: usize = 1 << 20;

/// A process's wall and CPU time, ms.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// Spawn to exit.
    pub wall_ms: f64,
    /// User + system time of its threads.
    pub cpu_ms: f64,
}

/// Runs `cmd` once, timed, requiring exit status `want`.
fn times_expecting(what: &str, cmd: &mut Command, want: i32) -> Result<Times, BenchError> {
    let t = child_cpu::run(cmd).map_err(io("spawning a process"))?;
    if t.status.code() != Some(want) {
        return Err(guest_err(ITEM, format!("{what} exited with {}, not {want}", t.status)));
    }
    Ok(Times { wall_ms: t.wall_ms, cpu_ms: t.cpu_ms })
}

/// Solo5's own tenders beside a unikernel `FILE.spt`: `tenders/solo5-spt`,
/// `tenders/solo5-hvt` and `tenders/FILE.hvt`, if all are there.
#[derive(Clone, Debug)]
pub struct Tenders {
    spt: PathBuf,
    hvt: PathBuf,
    hvt_image: PathBuf,
}

impl Tenders {
    /// The tenders next to `unikernel`, if present.
    pub fn find(unikernel: &Path) -> Option<Tenders> {
        let dir = unikernel.parent()?.join("tenders");
        let stem = unikernel.file_stem()?.to_str()?;
        let t = Tenders {
            spt: dir.join("solo5-spt"),
            hvt: dir.join("solo5-hvt"),
            hvt_image: dir.join(format!("{stem}.hvt")),
        };
        [&t.spt, &t.hvt, &t.hvt_image].iter().all(|p| p.is_file()).then_some(t)
    }
}

/// One child process: wall time, and peak resident set read at its exit.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    /// Spawn to exit, ms.
    pub ms: f64,
    /// `VmHWM` at its exit (a traced run), KiB.
    pub hwm_kib: u64,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { context: format!("item {ITEM}: {context}"), source }
}

/// Spawns `cmd` (no stdio), waits, and returns the wall time in ms and the
/// exit status.
fn timed(cmd: &mut Command) -> Result<(f64, ExitStatus), BenchError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let status = cmd.spawn().and_then(|mut c| c.wait()).map_err(io("spawning a process"))?;
    Ok((t.elapsed().as_secs_f64() * 1e3, status))
}

/// A timed run of `cmd()`, and a run traced to its exit for its peak
/// resident memory ([`super::peak_rss`]), each required to exit `want`.
fn launch_expecting(what: &str, cmd: &dyn Fn() -> Command, want: i32) -> Result<Launch, BenchError> {
    let (ms, status) = timed(&mut cmd())?;
    if status.code() != Some(want) {
        return Err(guest_err(ITEM, format!("{what} exited with {status}, not {want}")));
    }
    let (hwm_kib, status) = super::peak_rss::run(&mut cmd()).map_err(io("running a process traced to its exit"))?;
    if status.code() != Some(want) {
        return Err(guest_err(ITEM, format!("{what} (traced run) exited with {status}, not {want}")));
    }
    if hwm_kib == 0 {
        return Err(guest_err(ITEM, format!("{what}: its peak resident memory could not be read at its exit")));
    }
    Ok(Launch { ms, hwm_kib })
}

/// `VmHWM` of `/proc/<pid>/status`, KiB.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Samples one `vmm run` from spawn to exit; returns the largest
/// breakdown seen, `VmHWM`, and the number of usable samples.
fn resident(vmm: &Path, binary: &str) -> Result<(smaps::Breakdown, u64, u64), BenchError> {
    let mut child = Command::new(vmm)
        .args(RUN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("spawning vmm run"))?;
    let pid = child.id();
    let mut best: Option<smaps::Breakdown> = None;
    let (mut hwm, mut samples) = (0u64, 0u64);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for vmm run"))? {
            break status;
        }
        // Either read fails once the process is gone; the loop then ends
        // at `try_wait`.
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        let b = smaps::breakdown(&smaps::parse(&text), DEFAULT_MEM, binary);
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(b) = b {
            samples += 1;
            if best.is_none_or(|x| b.beyond_guest_kib() > x.beyond_guest_kib()) {
                best = Some(b);
            }
            hwm = hwm.max(vm_hwm_kib(&proc_status).unwrap_or(0));
        }
    };
    if status.code() != Some(0) {
        return Err(guest_err(ITEM, format!("the sampled `vmm run` exited with {status}, not 0")));
    }
    let b = best.ok_or_else(|| guest_err(ITEM, "no smaps sample showed the guest-RAM mapping"))?;
    Ok((b, hwm, samples))
}

/// The minimal guest as an ELF with the VMM's ABI: `out 0xf4` of 0.
fn minimal_elf() -> Result<Vec<u8>, BenchError> {
    use iced_x86::code_asm::*;
    vmm::guest::kinds::abi_elf::example::assemble_elf(|a| {
        a.mov(al, 0)?;
        a.out(0xf4, al)?;
        a.ud2()
    })
    .map_err(|e| guest_err(ITEM, format!("cannot assemble the minimal guest: {e}")))
}

/// The same guest as a 64 KiB firmware image: at the reset vector (real
/// mode, top of the image) `mov al, 0; out 0xf4, al; hlt; jmp $-1`.
pub fn minimal_firmware() -> Vec<u8> {
    let mut img = vec![0u8; 0x1_0000];
    img[0xfff0..0xfff7].copy_from_slice(&[0xb0, 0x00, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]);
    img
}

/// `qemu-system-x86_64` on `PATH`, if any.
fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("qemu-system-x86_64")).find(|p| p.is_file())
}

/// Launches the `vmm` executable and its peers.
pub struct Launcher {
    vmm: PathBuf,
    /// Its path as `/proc/<pid>/smaps` names it.
    resolved: String,
    minimal: TempFile,
    qemu: Option<(PathBuf, TempFile)>,
    spt: Option<PathBuf>,
    tenders: Option<Tenders>,
    blk: Option<Blk>,
    /// Whether `solo5-hvt` ran `test_blk.hvt` already.
    blk_hvt_done: std::cell::Cell<bool>,
}

impl Launcher {
    /// Prepares the launches of `vmm` (and of QEMU when installed, and of
    /// the Solo5 unikernel `spt` when given).
    pub fn new(vmm: &Path, spt: Option<&Path>) -> Result<Launcher, BenchError> {
        let resolved = std::fs::canonicalize(vmm).map_err(io("resolving the vmm path"))?;
        let minimal = TempFile::write(&minimal_elf()?).map_err(io("writing the minimal guest"))?;
        let qemu = match find_qemu() {
            Some(q) => Some((q, TempFile::write(&minimal_firmware()).map_err(io("writing the firmware image"))?)),
            None => None,
        };
        let tenders = spt.and_then(Tenders::find);
        let blk = match spt.and_then(Path::parent).map(|d| d.join("test_blk.spt")).filter(|p| p.is_file()) {
            Some(p) => Some(Blk {
                spt: p,
                disk: TempFile::write_as(&vec![0u8; BLK_DISK], "img").map_err(io("writing test_blk's disk"))?,
                hvt_image: tenders.as_ref().map(|t| t.hvt_image.with_file_name("test_blk.hvt")).filter(|p| p.is_file()),
            }),
            None => None,
        };
        Ok(Launcher {
            vmm: vmm.to_path_buf(),
            resolved: resolved.display().to_string(),
            minimal,
            qemu,
            spt: spt.map(Path::to_path_buf),
            tenders,
            blk,
            blk_hvt_done: std::cell::Cell::new(false),
        })
    }

    /// Whether QEMU is there to compare with.
    pub fn has_qemu(&self) -> bool {
        self.qemu.is_some()
    }

    /// One repetition: the built-in guest, `true`, the minimal guest,
    /// QEMU, the unikernel, then the sampled built-in run.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let (vmm_ms, status) = timed(Command::new(&self.vmm).args(RUN))?;
        if status.code() != Some(0) {
            return Err(guest_err(ITEM, format!("`vmm run` (built-in guest) exited with {status}, not 0")));
        }
        let (true_ms, status) = timed(&mut Command::new("true"))?;
        if !status.success() {
            return Err(guest_err(ITEM, format!("`true` exited with {status}")));
        }
        let minimal = launch_expecting(
            "`vmm run --guest` (minimal guest)",
            &|| {
                let mut c = Command::new(&self.vmm);
                c.args(RUN).arg("--guest").arg(self.minimal.path());
                c
            },
            1,
        )?;
        let qemu = match &self.qemu {
            Some((q, fw)) => Some(launch_expecting(
                "QEMU (minimal guest)",
                &|| {
                    let mut c = Command::new(q);
                    c.args(QEMU_ARGS).arg(fw.path());
                    c
                },
                1,
            )?),
            None => None,
        };
        let spt_run = |p: &Path, mem: Option<&str>| {
            launch_expecting(
                "`vmm run --guest` (Solo5 unikernel)",
                &|| {
                    let mut c = Command::new(&self.vmm);
                    c.args(RUN).arg("--guest").arg(p);
                    if let Some(m) = mem {
                        c.args(["--mem", m]);
                    }
                    c.args(["--", "Hello_Solo5"]);
                    c
                },
                0,
            )
        };
        let (spt, spt_mem) = match &self.spt {
            Some(p) => (Some(spt_run(p, None)?), Some((spt_run(p, Some("2M"))?, spt_run(p, Some("2048M"))?))),
            None => (None, None),
        };
        let tenders = match (&self.spt, &self.tenders) {
            (Some(p), Some(t)) => {
                let tender = |what: &str, bin: &Path, image: &Path| {
                    times_expecting(what, Command::new(bin).arg(image).arg("Hello_Solo5"), 0)
                };
                Some((tender("solo5-spt", &t.spt, p)?, tender("solo5-hvt", &t.hvt, &t.hvt_image)?))
            }
            _ => None,
        };
        let spt_tender = match (&self.spt, &self.tenders) {
            (Some(p), Some(t)) => Some(launch_expecting(
                "solo5-spt (Solo5 unikernel)",
                &|| {
                    let mut c = Command::new(&t.spt);
                    c.arg(p).arg("Hello_Solo5");
                    c
                },
                0,
            )?),
            _ => None,
        };
        let floor = times_expecting("`vmm launch-floor`", Command::new(&self.vmm).arg("launch-floor"), 0)?;
        let minimal_times = times_expecting(
            "`vmm run --guest` (minimal guest)",
            Command::new(&self.vmm).args(RUN).arg("--guest").arg(self.minimal.path()),
            1,
        )?;
        let spt_times = match &self.spt {
            Some(p) => Some(times_expecting(
                "`vmm run --guest` (Solo5 unikernel)",
                Command::new(&self.vmm).args(RUN).arg("--guest").arg(p).args(["--", "Hello_Solo5"]),
                0,
            )?),
            None => None,
        };
        let (blk, blk_hvt) = match &self.blk {
            Some(b) => {
                let block = format!("--block:storage={}", b.disk.path().display());
                let ours = times_expecting(
                    "`vmm run --guest test_blk.spt`",
                    Command::new(&self.vmm).args(RUN).arg("--guest").arg(&b.spt).arg(&block),
                    0,
                )?;
                let spt = match &self.tenders {
                    Some(t) => Some(times_expecting(
                        "solo5-spt test_blk.spt",
                        Command::new(&t.spt).arg(&block).arg(&b.spt),
                        0,
                    )?),
                    None => None,
                };
                let hvt = match (&self.tenders, &b.hvt_image) {
                    (Some(t), Some(image)) if !self.blk_hvt_done.replace(true) => {
                        Some(times_expecting("solo5-hvt test_blk.hvt", Command::new(&t.hvt).arg(&block).arg(image), 0)?)
                    }
                    _ => None,
                };
                (Some((ours, spt)), hvt)
            }
            None => (None, None),
        };
        let (rss, hwm_kib, samples) = resident(&self.vmm, &self.resolved)?;
        Ok(Sample {
            vmm_ms,
            true_ms,
            rss,
            hwm_kib,
            samples,
            minimal,
            qemu,
            spt,
            spt_mem,
            tenders,
            spt_tender,
            floor,
            spt_times,
            minimal_times,
            blk,
            blk_hvt,
        })
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures of item 9.
pub fn figures(s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let col = |f: &dyn Fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<f64>>();
    let first = s.first().ok_or_else(|| BenchError::NoSamples("launch".into()))?;
    let last = s.last().ok_or_else(|| BenchError::NoSamples("launch".into()))?;
    let wall = Figure::new(
        9,
        "launch.wall_time",
        "`vmm run --timeout 60` of the built-in guest to completion: whole process, spawn to exit (code 0)",
        Unit::Ms,
        col(&|x| x.vmm_ms),
    )?
    .vs("spawning and waiting for `true`", col(&|x| x.true_ms), RatioKind::Times)?
    .detail("cold_first_run_ms", first.vmm_ms)
    .target_ours(Bound::AtMost(100.0), "the built-in guest's whole run well under 100 ms");
    let rss = Figure::new(
        9,
        "launch.rss_beyond_guest",
        "VMM resident memory beyond guest memory during `vmm run` (built-in guest), peak of continuous sampling",
        Unit::Mib,
        col(&|x| mib(x.rss.beyond_guest_kib())),
    )?
    .detail("total_rss_mib", mib(last.rss.total_kib))
    .detail("guest_ram_rss_mib", mib(last.rss.guest_ram_kib))
    .detail("bar_window_rss_mib", mib(last.rss.windows_kib))
    .detail("vmm_binary_rss_mib", mib(last.rss.binary_kib))
    .detail("shared_library_rss_mib", mib(last.rss.libraries_kib))
    .detail("peak_rss_with_guest_mib", mib(last.hwm_kib))
    .detail("smaps_samples", last.samples as f64)
    .target_ours(Bound::AtMost(5.0), "VMM overhead under 5 MiB resident (Firecracker's published bound)")
    .note(
        "method: /proc/<pid>/smaps read continuously from spawn to exit; per sample, total Rss minus the guest-RAM \
         mapping (pages the VMM wrote for the guest, such as page tables and the image, are guest RAM) and \
         passed-through BAR windows; the largest sample (details: last repetition)",
    );

    let title = "minimal exit-port guest, spawn to exit (code 1): `vmm run --guest`";
    let mut minimal = Figure::new(9, "launch.minimal_vs_qemu", title, Unit::Ms, col(&|x| x.minimal.ms))?
        .detail("cold_first_run_ms", first.minimal.ms);
    minimal = match s.iter().map(|x| x.qemu).collect::<Option<Vec<Launch>>>() {
        Some(q) => minimal
            .vs(
                "qemu-system-x86_64 -M microvm (options off) -accel kvm -bios: the same `out 0xf4`",
                q.iter().map(|l| l.ms).collect(),
                RatioKind::Speedup,
            )?
            .detail("qemu_cold_first_run_ms", q[0].ms)
            .target_ratio(Bound::AtLeast(3.0), "launch at least 3× faster than QEMU microvm"),
        None => minimal.note("QEMU not installed (Debian package qemu-system-x86): peer and target skipped"),
    };
    let mut whole = Figure::new(
        9,
        "launch.minimal_rss_whole",
        "minimal guest: peak resident memory of the whole `vmm` process, guest pages included (VmHWM at exit)",
        Unit::Mib,
        col(&|x| mib(x.minimal.hwm_kib)),
    )?
    .target_ours(Bound::AtMost(6.0), "the minimal guest at most 6 MiB resident, whole");
    if let Some(q) = s.iter().map(|x| x.qemu).collect::<Option<Vec<Launch>>>() {
        whole = whole.vs(
            "QEMU microvm, same guest (VmHWM at exit)",
            q.iter().map(|l| mib(l.hwm_kib)).collect(),
            RatioKind::Times,
        )?;
    }
    let mut out = vec![wall, rss, minimal, whole];
    if let Some(u) = s.iter().map(|x| x.spt).collect::<Option<Vec<Launch>>>() {
        out.push(
            Figure::new(
                9,
                "launch.solo5_hello",
                "Solo5 unikernel (`--spt`), spawn to exit (code 0): `vmm run --guest test_hello.spt -- Hello_Solo5`",
                Unit::Ms,
                u.iter().map(|l| l.ms).collect(),
            )?
            .vs("the minimal ELF guest", col(&|x| x.minimal.ms), RatioKind::Times)?
            .detail("rss_whole_mib", mib(u[u.len() - 1].hwm_kib))
            .detail("cold_first_run_ms", u[0].ms),
        );
    }
    if let Some(m) = s.iter().map(|x| x.spt_mem).collect::<Option<Vec<(Launch, Launch)>>>() {
        out.push(
            Figure::new(
                9,
                "launch.solo5_rss_2048m",
                "Solo5 unikernel (`--spt`) at `--mem 2048M`: peak resident memory of the whole `vmm` process \
                 (VmHWM at exit)",
                Unit::Mib,
                m.iter().map(|(_, large)| mib(large.hwm_kib)).collect(),
            )?
            .vs("the same at `--mem 2M`", m.iter().map(|(small, _)| mib(small.hwm_kib)).collect(), RatioKind::Times)?
            .target_ratio(Bound::AtMost(1.1), "resident memory flat in --mem (2 MiB to 2 GiB within 10%)"),
        );
    }
    let rss_pairs = s.iter().map(|x| x.spt.zip(x.spt_tender)).collect::<Option<Vec<(Launch, Launch)>>>();
    if let Some(pairs) = rss_pairs {
        out.push(
            Figure::new(
                9,
                "launch.solo5_rss_vs_spt",
                "Solo5 unikernel (`--spt`), default memory: peak resident memory of the whole `vmm` process \
                 (VmHWM at exit)",
                Unit::Mib,
                pairs.iter().map(|(ours, _)| mib(ours.hwm_kib)).collect(),
            )?
            .vs(
                "solo5-spt on the same unikernel (VmHWM at its exit, read the same way)",
                pairs.iter().map(|(_, spt)| mib(spt.hwm_kib)).collect(),
                RatioKind::Times,
            )?
            .target_ratio(Bound::AtMost(2.0), "peak resident memory at most 2× solo5-spt's"),
        );
    }
    if let Some(u) = s.iter().map(|x| x.spt).collect::<Option<Vec<Launch>>>() {
        let ours_ms: Vec<f64> = u.iter().map(|l| l.ms).collect();
        let note = "Solo5's tenders not found in tenders/ beside the unikernel (solo5-spt, solo5-hvt, NAME.hvt): \
                    peers skipped";
        match s.iter().map(|x| x.tenders).collect::<Option<Vec<(Times, Times)>>>() {
            Some(t) => {
                let median = |v: Vec<f64>| Stat::of(&v).map_or(f64::NAN, |st| st.median);
                let title = "Solo5 unikernel (`--spt`), spawn to exit (code 0), as in launch.solo5_hello";
                out.push(
                    Figure::new(9, "launch.solo5_vs_hvt", title, Unit::Ms, ours_ms.clone())?
                        .vs(
                            "solo5-hvt (Solo5's own KVM monitor) on the .hvt build of the same test",
                            t.iter().map(|(_, h)| h.wall_ms).collect(),
                            RatioKind::Speedup,
                        )?
                        .target_ratio(Bound::AtLeast(1.0), "launch faster than solo5-hvt")
                        .detail("hvt_cpu_ms", median(t.iter().map(|(_, h)| h.cpu_ms).collect())),
                );
                out.push(
                    Figure::new(9, "launch.solo5_vs_spt", title, Unit::Ms, ours_ms)?
                        .vs(
                            "solo5-spt (a seccomp-confined process, no VM) on the same unikernel",
                            t.iter().map(|(p, _)| p.wall_ms).collect(),
                            RatioKind::Times,
                        )?
                        .detail("spt_cpu_ms", median(t.iter().map(|(p, _)| p.cpu_ms).collect())),
                );
            }
            None => out.push(
                Figure::new(9, "launch.solo5_vs_hvt", "Solo5 unikernel (`--spt`)", Unit::Ms, ours_ms)?.note(note),
            ),
        }
    }
    if let Some(b) = s.iter().map(|x| x.blk).collect::<Option<Vec<(Times, Option<Times>)>>>() {
        let med = |v: Vec<f64>| Stat::of(&v).map_or(f64::NAN, |st| st.median);
        let title = "`test_blk.spt` on a 1 MiB disk (`--block:storage=`), spawn to exit: CPU time of the process \
                     (user + system, all threads)";
        let ours: Vec<f64> = b.iter().map(|(o, _)| o.cpu_ms).collect();
        let mut f = match b.iter().map(|(_, p)| *p).collect::<Option<Vec<Times>>>() {
            Some(peer) => Figure::new(9, "launch.solo5_blk_vs_spt", title, Unit::Ms, ours)?.vs(
                "solo5-spt (a seccomp-confined process, no VM) on the same unikernel and disk",
                peer.iter().map(|t| t.cpu_ms).collect(),
                RatioKind::Times,
            )?,
            None => Figure::new(9, "launch.solo5_blk_vs_spt", title, Unit::Ms, ours)?
                .note("solo5-spt not found in tenders/ beside the unikernel: peer skipped"),
        };
        f = f.detail("wall_ms", med(b.iter().map(|(o, _)| o.wall_ms).collect()));
        if let Some(h) = s.iter().find_map(|x| x.blk_hvt) {
            f = f.detail("hvt_one_run_cpu_ms", h.cpu_ms).detail("hvt_one_run_wall_ms", h.wall_ms);
        }
        out.push(f);
    }
    {
        let floor: Vec<f64> = s.iter().map(|x| x.floor.cpu_ms).collect();
        out.push(
            Figure::new(
                9,
                "launch.minimal_vs_floor",
                "minimal guest (one `out`, one exit), spawn to exit: CPU time of the `vmm` process (user + system, \
                 all threads, from wait4): the VMM's own launch work",
                Unit::Ms,
                s.iter().map(|x| x.minimal_times.cpu_ms).collect(),
            )?
            .vs("bare KVM launch (`vmm launch-floor`)", floor, RatioKind::Times)?,
        );
    }
    if let Some(u) = s.iter().map(|x| x.spt_times).collect::<Option<Vec<Times>>>() {
        let wall =
            |v: &[Times]| Stat::of(&v.iter().map(|t| t.wall_ms).collect::<Vec<_>>()).map_or(f64::NAN, |st| st.median);
        let floor: Vec<Times> = s.iter().map(|x| x.floor).collect();
        out.push(
            Figure::new(
                9,
                "launch.solo5_vs_floor",
                "Solo5 unikernel (`--spt`), spawn to exit: CPU time of the `vmm` process (user + system, all \
                 threads, from wait4)",
                Unit::Ms,
                u.iter().map(|t| t.cpu_ms).collect(),
            )?
            .vs(
                "bare KVM launch (`vmm launch-floor`: the same binary; one VM, one 4 KiB slot, one vCPU in real \
                 mode, run to one `out`)",
                floor.iter().map(|t| t.cpu_ms).collect(),
                RatioKind::Times,
            )?
            .target_ratio(Bound::AtMost(1.5), "launch within 1.5x the bare KVM launch (CPU time)")
            .detail("wall_ms", wall(&u))
            .detail("floor_wall_ms", wall(&floor)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_status() {
        let status = "Name:\tvmm\nVmPeak:\t  200000 kB\nVmHWM:\t   22016 kB\nVmRSS:\t   21000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(22016));
        assert_eq!(vm_hwm_kib("Name:\tvmm\n"), None);
    }

    #[test]
    fn firmware_starts_with_the_exit_port_write_at_the_reset_vector() {
        let img = minimal_firmware();
        assert_eq!(img.len(), 0x1_0000);
        // mov al, 0; out 0xf4, al at 0xffff_fff0.
        assert_eq!(&img[0xfff0..0xfff4], &[0xb0, 0x00, 0xe6, 0xf4]);
    }
}
