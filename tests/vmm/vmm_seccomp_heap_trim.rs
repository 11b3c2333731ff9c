//! Scenario (issue 20, item 1): a guest that makes the VMM's allocator
//! give memory back must not make glibc touch files under the production
//! seccomp filters. glibc shrinks a thread's malloc arena through
//! `shrink_heap`, which on first use opens `/proc/sys/vm/overcommit_memory`;
//! no allow-list has `openat`, so such a guest used to end the VMM with
//! `SIGSYS` (status 159, no report). Both guests here run the `vmm`
//! binary with its filters on and must end with the report.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use iced_x86::code_asm::*;
use vmm::guest::asm::{hcall, Arg};
use vmm::hosted::stub::abi::{madv, map, mremap, nr, prot};
use vmm_suite::kvm::{vmm_bin, write_guest, VmmRun};
use vmm_suite::need_kvm;

/// Runs `elf` under the filters and checks that it ended with its report
/// and status 0, not with a filter's kill.
fn run_filtered(name: &str, elf: &std::path::Path) -> VmmRun {
    let out = Command::new(vmm_bin())
        .args(["run", "--json", "--timeout", "120", "--guest", elf.to_str().expect("utf-8 path")])
        .stdin(Stdio::null())
        .output()
        .expect("run vmm");
    let _ = std::fs::remove_file(elf);
    let r = VmmRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(out.status.signal(), None, "{name}: the VMM was killed by a signal:\n{}", r.stderr);
    assert!(!r.stderr.contains("seccomp"), "{name}: a seccomp filter stopped the VMM:\n{}", r.stderr);
    assert_eq!(r.code, 0, "{name}:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// Reports `reg` as check `id` (value detail).
fn report(a: &mut CodeAssembler, id: u64, reg: AsmRegister64) -> Result<(), IcedError> {
    hcall(a, nr::REPORT, &[Arg::Imm(id), Arg::Imm(1), Arg::Reg(reg), Arg::Imm(0), Arg::Imm(0)])
}

/// The value of check `id` in a `--json` report.
fn value(r: &VmmRun, id: u64) -> u64 {
    let j = r.json();
    let c = j["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).cloned();
    let c = c.unwrap_or_else(|| panic!("check {id} missing: {j}"));
    let hex = c["detail"].as_str().and_then(|d| d.strip_prefix("value 0x")).unwrap_or_else(|| panic!("{c}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{c}: {e}"))
}

const GIB: u64 = 1 << 30;

#[test]
fn a_64_gib_willneed_and_unmap_runs_under_the_filters() {
    need_kvm!();
    // mmap 64 GiB private read-only anonymous, madvise(WILLNEED) it (the
    // VMM builds the page tables of it), munmap it (and frees them).
    let elf = write_guest("heap-trim-64g", |a| {
        hcall(
            a,
            nr::MMAP,
            &[
                Arg::Imm(0),
                Arg::Imm(64 * GIB),
                Arg::Imm(prot::READ),
                Arg::Imm(map::PRIVATE | map::ANONYMOUS),
                Arg::Imm(0),
                Arg::Imm(0),
            ],
        )?;
        a.mov(r12, rax)?;
        hcall(a, nr::MADVISE, &[Arg::Reg(r12), Arg::Imm(64 * GIB), Arg::Imm(madv::WILLNEED)])?;
        a.mov(r13, rax)?;
        hcall(a, nr::MUNMAP, &[Arg::Reg(r12), Arg::Imm(64 * GIB)])?;
        a.mov(r14, rax)?;
        report(a, 1, r13)?;
        report(a, 2, r14)?;
        hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
        a.ud2()
    });
    let r = run_filtered("64 GiB", &elf);
    // Whatever the VMM answered to madvise (0, or an errno it chose), the
    // unmap of the whole range succeeded.
    assert_eq!(value(&r, 2), 0, "munmap\n{}", r.stdout);
}

#[test]
fn six_thousand_page_by_page_mremaps_run_under_the_filters() {
    need_kvm!();
    // One page, then mremap(MAYMOVE) it one page larger, 6,000 times, then
    // unmap it: the VMM's bookkeeping grows and shrinks on the vCPU thread.
    const STEPS: u64 = 6_000;
    let elf = write_guest("heap-trim-mremap", |a| {
        hcall(
            a,
            nr::MMAP,
            &[
                Arg::Imm(0),
                Arg::Imm(4096),
                Arg::Imm(prot::READ),
                Arg::Imm(map::PRIVATE | map::ANONYMOUS),
                Arg::Imm(0),
                Arg::Imm(0),
            ],
        )?;
        a.mov(r12, rax)?; // the mapping
        a.mov(r13d, 4096u32)?; // its size
        a.xor(r14d, r14d)?; // mremaps that succeeded
        let mut again = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut again)?;
        a.lea(r15, qword_ptr(r13 + 4096))?;
        hcall(a, nr::MREMAP, &[Arg::Reg(r12), Arg::Reg(r13), Arg::Reg(r15), Arg::Imm(mremap::MAYMOVE), Arg::Imm(0)])?;
        a.cmp(rax, -4095)?;
        a.jae(done)?;
        a.mov(r12, rax)?;
        a.mov(r13, r15)?;
        a.inc(r14)?;
        a.cmp(r14, STEPS as i32)?;
        a.jb(again)?;
        a.set_label(&mut done)?;
        hcall(a, nr::MUNMAP, &[Arg::Reg(r12), Arg::Reg(r13)])?;
        a.mov(rbx, rax)?;
        report(a, 1, r14)?;
        report(a, 2, rbx)?;
        hcall(a, nr::EXIT_GROUP, &[Arg::Imm(0)])?;
        a.ud2()
    });
    let r = run_filtered("mremap", &elf);
    assert_eq!(value(&r, 1), STEPS, "mremaps\n{}", r.stdout);
    assert_eq!(value(&r, 2), 0, "munmap\n{}", r.stdout);
}
