//! The built-in test guest, generated at run time with `iced-x86`.
//!
//! vCPU 0 runs every check in order and reports each one with the
//! `report` hypercall, then writes 0 to the exit port. vCPU 1 (with two or
//! more vCPUs) takes part in the cross-vCPU shootdown check; the others
//! `exit` at once. Each check is a function that emits its code; adding a
//! check is a function and a line in [`plan`].
//!
//! The program is generated for the machine it runs on ([`Params`]): BAR
//! indices and sizes and the memory size are immediates in the code.

use iced_x86::code_asm::*;

use super::checks::{bar as checks_bar, fault_path as checks_fault, lazy as checks_lazy, map as checks_map};
pub use super::params::{id, shared, CheckFn, Data, Params};
use crate::guest::asm::{hcall, serial_print, Arg, AsmResult, Check};
use crate::hosted::program::{Program, Segment};
use crate::hosted::stub::abi::nr;
use crate::layout::{BUILTIN_CODE_VA, BUILTIN_DATA_VA, PAGE_SIZE};

const BANNER: &[u8] = b"guest: hello from CPL 3\n";
const HELLO: &[u8] = b"guest: hello through the write hypercall\n";

/// Check 0: the program runs in user mode and both console paths work.
fn check_boot(a: &mut CodeAssembler, _p: &Params, d: &Data) -> AsmResult {
    let mut c = Check::begin(a, id::BOOT)?;
    let a = c.asm();
    a.mov(eax, cs)?;
    a.and(eax, 3)?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 3)?;
    let a = c.asm();
    a.lea(rsi, ptr(d.hello))?;
    hcall(a, nr::WRITE, &[Arg::Imm(1), Arg::Keep, Arg::Imm(HELLO.len() as u64)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, HELLO.len() as u64)?;
    let a = c.asm();
    hcall(a, nr::VCPU_ID, &[])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 0)?;
    c.end()
}

/// The checks this machine can run, in order: id, name, generator.
pub fn plan(p: &Params) -> Vec<(u64, &'static str, CheckFn)> {
    let mut v: Vec<(u64, &'static str, CheckFn)> = vec![
        (id::BOOT, "boot: CPL 3, serial port, write hypercall", check_boot),
        (id::KERNEL_PAGES, "map-kernel-pages: scattered page array, per-page checksums", checks_map::kernel_pages),
    ];
    if p.trapped_bar.is_some() {
        v.push((id::TRAPPED_BAR, "trapped BAR: I/O remap, offsets and sizes reach the device", checks_bar::trapped));
    }
    if p.passthrough_bar.is_some() {
        v.push((id::PASSTHROUGH_BAR, "passed-through BAR: host-backed, no exits", checks_bar::passthrough));
    }
    if p.trapped_bar.is_some_and(|(_, size)| size >= 4 * PAGE_SIZE) {
        v.push((id::SIMPLE_IOREMAP, "simple_ioremap: sub-page start and pgoff", checks_bar::simple_ioremap));
    }
    v.push((id::HUGE, "remap of a large contiguous range with 2 MiB leaves", checks_map::huge));
    v.push((id::FAULTS, "munmap and mprotect fault at the exact address", checks_fault::faults));
    v.push((id::BAD_REQUESTS, "bad requests: right -errno, nothing mapped", checks_fault::bad_requests));
    v.push((
        id::LAZY_ZERO,
        "lazy anonymous memory: zero page, copy-on-write, DONTNEED refault",
        checks_lazy::lazy_zero,
    ));
    v.push((id::FAULT_AROUND, "lazy page buffer: 16 pages touched, one fault", checks_lazy::fault_around));
    v.push((id::MREMAP, "mremap: grow and move with the data, DONTEXPAND refused", checks_lazy::remap));
    if p.vcpus >= 2 {
        v.push((id::SHOOTDOWN, "no stale translation on another vCPU after munmap", checks_fault::shootdown));
    }
    v
}

/// The checks the report expects for `p` (including the VMM's own).
pub fn checks(p: &Params) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = plan(p).into_iter().map(|(i, n, _)| (i, n.to_string())).collect();
    if p.passthrough_bar.is_some() {
        v.push((id::HOST_SEES_GUEST_WRITES, "passed-through BAR: guest writes visible in the host backing".into()));
    }
    v
}

/// Builds the built-in guest program for `p`.
pub fn build(p: &Params) -> AsmResult<Program> {
    let mut a = CodeAssembler::new(64)?;
    let mut banner = a.create_label();
    let mut hello = a.create_label();
    let mut page_sums = a.create_label();
    let data = Data { hello, page_sums };

    // Entry: rdi = vCPU index.
    a.mov(r15, rdi)?;
    let mut main = a.create_label();
    let mut park = a.create_label();
    a.test(r15, r15)?;
    a.jz(main)?;
    a.cmp(r15, 1)?;
    a.jne(park)?;
    if p.vcpus >= 2 {
        checks_fault::shootdown_reader(&mut a)?;
    }
    a.set_label(&mut park)?;
    hcall(&mut a, nr::EXIT, &[Arg::Imm(0)])?;
    a.ud2()?;

    a.set_label(&mut main)?;
    serial_print(&mut a, banner, BANNER.len() as u32)?;
    for (_, _, f) in plan(p) {
        f(&mut a, p, &data)?;
    }
    // Done: exit port, value 0 (status 1).
    a.mov(edx, u32::from(devices::legacy::EXIT_PORT))?;
    a.xor(eax, eax)?;
    a.out(dx, eax)?;
    a.ud2()?;

    a.set_label(&mut banner)?;
    a.db(BANNER)?;
    a.set_label(&mut hello)?;
    a.db(HELLO)?;
    a.set_label(&mut page_sums)?;
    a.db(&checks_map::page_sums_bytes())?;

    let code = a.assemble(BUILTIN_CODE_VA)?;
    let len = code.len() as u64;
    Ok(Program {
        segments: vec![
            Segment { va: BUILTIN_CODE_VA, bytes: code, mem_len: len, write: false, exec: true },
            Segment { va: BUILTIN_DATA_VA, bytes: Vec::new(), mem_len: PAGE_SIZE, write: true, exec: false },
        ],
        entry: BUILTIN_CODE_VA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_every_machine_shape() {
        for vcpus in [1, 2, 4] {
            for bars in [(None, None), (Some((0, 0x10000)), Some((1, 0x10000))), (Some((0, 0x1000)), None)] {
                let p = Params { vcpus, mem_size: 128 << 20, trapped_bar: bars.0, passthrough_bar: bars.1 };
                let prog = build(&p).unwrap();
                assert_eq!(prog.entry, BUILTIN_CODE_VA);
                assert!(!prog.segments[0].bytes.is_empty());
                let ids: Vec<u64> = checks(&p).iter().map(|c| c.0).collect();
                assert_eq!(ids.contains(&id::SHOOTDOWN), vcpus >= 2);
                assert_eq!(ids.contains(&id::SIMPLE_IOREMAP), bars.0.is_some_and(|b| b.1 >= 0x4000));
            }
        }
    }
}
