//! Item 12d: the VMM's memory is flat in `--mem`. The peak resident set
//! of a `vmm run` process beyond the guest pages its Linux program
//! touched, at `--mem 64M` and at `--mem 3584M`, same program.
//!
//! The program maps [`TOUCH`] bytes (4 MiB: at `--mem 64M` the VMM's
//! fixed regions leave about 8 MiB of page pool) of anonymous memory, writes one word
//! per page, prints `R` and then reads its standard input until end of
//! file, and exits 0. The bench launches `vmm run --mem M --guest PROG`
//! as a child with pipes on stdin and stdout, waits for the `R` (every
//! page touched, nothing freed yet), then reads the child's `VmHWM` (peak
//! resident set, guest pages included) and its `smaps`, closes its stdin
//! and requires status 0. The figure is `VmHWM` minus the touched bytes:
//! everything else the process holds resident (the `vmm` binary, heap,
//! stacks, and inside guest RAM the page tables, the image, the stack,
//! the kernel stub) counts against the VMM.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use iced_x86::code_asm::*;

use super::super::session::{guest_err, TempFile};
use super::super::smaps;
use super::program::{self, expect_no_error, expect_rax, sys, RESULTS_VA};
use crate::error::BenchError;
use crate::figure::{Bound, Figure, RatioKind, Unit};
use vmm::guest::asm::AsmResult;
use vmm::layout::PAGE_SIZE;

const ITEM: &str = "12 (Linux VMM memory)";

/// Bytes the program touches.
pub const TOUCH: u64 = 4 << 20;
/// The two memory sizes, MiB.
pub const MEMS: [u64; 2] = [64, 3584];
/// The target, MiB beyond the touched pages.
pub const TARGET_MIB: f64 = 8.0;

/// The program.
pub fn linux_program() -> AsmResult<Vec<u8>> {
    program::assemble(|a| {
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        sys(a, libc::SYS_mmap, &[Ok(0), Ok(TOUCH), Ok(prot), Ok(flags), Ok(u64::MAX), Ok(0)])?;
        expect_no_error(a, 1)?;
        let mut top = a.create_label();
        a.mov(rsi, rax)?;
        a.mov(rcx, TOUCH / PAGE_SIZE)?;
        a.set_label(&mut top)?;
        a.mov(qword_ptr(rsi), rcx)?;
        a.add(rsi, PAGE_SIZE as i32)?;
        a.dec(rcx)?;
        a.jnz(top)?;
        a.mov(rbx, RESULTS_VA)?;
        a.mov(byte_ptr(rbx), b'R' as u32)?;
        sys(a, libc::SYS_write, &[Ok(1), Ok(RESULTS_VA), Ok(1)])?;
        expect_rax(a, 1, 2)?;
        let mut again = a.create_label();
        a.set_label(&mut again)?;
        sys(a, libc::SYS_read, &[Ok(0), Ok(RESULTS_VA + 8), Ok(1)])?;
        expect_no_error(a, 3)?;
        a.test(rax, rax)?;
        a.jnz(again)?;
        program::exit_group(a, 0)
    })
}

/// One launch's readings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    /// `VmHWM`, KiB.
    pub hwm_kib: u64,
    /// `smaps` split at the same moment (when guest RAM was one mapping).
    pub split: Option<smaps::Breakdown>,
}

impl Reading {
    /// MiB beyond the touched pages.
    pub fn beyond_touched_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0 - (TOUCH >> 20) as f64
    }
}

/// One repetition: a reading per size in [`MEMS`].
pub type Sample = [Reading; 2];

/// `VmHWM` in KiB from the text of `/proc/<pid>/status`.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Launches the program.
pub struct Launcher {
    vmm: std::path::PathBuf,
    resolved: String,
    program: TempFile,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io { context: format!("item {ITEM}: {context}"), source }
}

impl Launcher {
    /// Prepares launches of `vmm`.
    pub fn new(vmm: &Path) -> Result<Launcher, BenchError> {
        let resolved = std::fs::canonicalize(vmm).map_err(io("resolving the vmm path"))?.display().to_string();
        let elf = linux_program().map_err(|e| guest_err(ITEM, format!("cannot assemble: {e}")))?;
        let program = TempFile::write(&elf).map_err(io("writing the program"))?;
        Ok(Launcher { vmm: vmm.to_path_buf(), resolved, program })
    }

    /// One launch at `--mem {mem_mib}M`.
    pub fn launch(&self, mem_mib: u64) -> Result<Reading, BenchError> {
        let mut child = Command::new(&self.vmm)
            .args(["run", "--timeout", "60", "--mem", &format!("{mem_mib}M"), "--guest"])
            .arg(self.program.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("spawning vmm run"))?;
        let pid = child.id();
        let mut ready = [0u8; 1];
        let got = child.stdout.as_mut().map(|o| o.read(&mut ready));
        let reading = match got {
            Some(Ok(1)) if ready[0] == b'R' => {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let maps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
                vm_hwm_kib(&status).map(|hwm_kib| Reading {
                    hwm_kib,
                    split: smaps::breakdown(&smaps::parse(&maps), mem_mib << 20, &self.resolved),
                })
            }
            _ => None,
        };
        // End of file on its stdin ends the program.
        if let Some(mut i) = child.stdin.take() {
            let _ = i.flush();
        }
        let status = child.wait().map_err(io("waiting for vmm run"))?;
        if status.code() != Some(0) {
            return Err(guest_err(ITEM, format!("vmm run --mem {mem_mib}M exited with {status}, not 0")));
        }
        reading.ok_or_else(|| guest_err(ITEM, format!("--mem {mem_mib}M: the program never said it was ready")))
    }

    /// One repetition.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        Ok([self.launch(MEMS[0])?, self.launch(MEMS[1])?])
    }
}

/// The figures, one per size; the larger is compared with the smaller.
pub fn figures(s: &[Sample]) -> Result<Vec<Figure>, BenchError> {
    let mut out = Vec::new();
    let small: Vec<f64> = s.iter().map(|x| x[0].beyond_touched_mib()).collect();
    for (i, mem) in MEMS.into_iter().enumerate() {
        let last = s.last().map(|x| x[i]).unwrap_or_default();
        let mut f = Figure::new(
            12,
            &format!("linux.rss_beyond_touched_{mem}m"),
            &format!(
                "`vmm run --mem {mem}M` of a Linux program touching {} MiB: peak RSS (VmHWM) minus the touched pages",
                TOUCH >> 20
            ),
            Unit::Mib,
            s.iter().map(|x| x[i].beyond_touched_mib()).collect(),
        )?
        .detail("touched_mib", (TOUCH >> 20) as f64)
        .detail("vm_hwm_mib", last.hwm_kib as f64 / 1024.0);
        if let Some(b) = last.split {
            f = f
                .detail("guest_ram_rss_mib", b.guest_ram_kib as f64 / 1024.0)
                .detail("beyond_guest_ram_mib", b.beyond_guest_kib() as f64 / 1024.0)
                .detail("vmm_binary_rss_mib", b.binary_kib as f64 / 1024.0);
        }
        if i > 0 {
            f = f.vs(&format!("the same program at --mem {}M", MEMS[0]), small.clone(), RatioKind::Times)?;
        }
        out.push(f.target_ours(Bound::AtMost(TARGET_MIB), "at most 8 MiB beyond the touched pages").note(
            "read at the program's signal that every page is touched (it then waits on stdin); \
                 guest RAM's own overhead (page tables, image, stack, kernel stub) counts against the VMM \
                 (details: last repetition)",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_assembles_and_status_is_read() {
        assert!(linux_program().is_ok());
        assert_eq!(vm_hwm_kib("Name:\tvmm\nVmHWM:\t   40960 kB\n"), Some(40960));
        assert_eq!(vm_hwm_kib("Name:\tvmm\n"), None);
        let r = Reading { hwm_kib: ((TOUCH >> 20) + 8) * 1024, split: None };
        assert_eq!(r.beyond_touched_mib(), 8.0);
    }

    #[test]
    fn the_target_fails_above_8_mib() {
        let at = |mib: u64| Reading { hwm_kib: ((TOUCH >> 20) + mib) * 1024, split: None };
        let f = figures(&[[at(5), at(5)], [at(5), at(6)]]).unwrap();
        assert!(f.iter().all(|f| f.all_met()));
        let f = figures(&[[at(5), at(9)]]).unwrap();
        assert!(f[0].all_met() && !f[1].all_met());
        assert_eq!(f[1].ratio.unwrap().value.median, 9.0 / 5.0);
    }
}
