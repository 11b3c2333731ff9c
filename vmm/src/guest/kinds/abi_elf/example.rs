//! The example user guest: a freestanding x86-64 ELF assembled here with
//! `iced-x86` (no checked-in binary), written out by `vmm example-elf` and
//! built by the tests. It shows the whole guest ABI from a user program's
//! side: the serial port and the exit port by direct port I/O, and
//! hypercalls through the hypercall port.
//!
//! [`assemble_elf`] turns any code generator into such an ELF, for tests
//! that need a guest doing one particular thing.

use iced_x86::code_asm::*;

use crate::guest::asm::{hcall, mmap, serial_print, Arg, AsmResult};
use crate::guest::elf_program::build_elf;
use crate::hosted::stub::abi::{map, nr, prot};

/// Where example ELFs are linked.
pub const EXAMPLE_CODE_VA: u64 = 0x40_1000;
/// Their writable data page.
pub const EXAMPLE_DATA_VA: u64 = 0x60_0000;
/// The check id the example guest reports.
pub const EXAMPLE_CHECK: u64 = 100;
/// The value the example guest writes to the exit port (status 0x21).
pub const EXAMPLE_EXIT_VALUE: u32 = 0x10;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Assembles `body` at [`EXAMPLE_CODE_VA`] (the entry point) into an ELF
/// with a read/execute code segment and a one-page read/write data
/// segment at [`EXAMPLE_DATA_VA`].
pub fn assemble_elf(body: impl FnOnce(&mut CodeAssembler) -> AsmResult) -> AsmResult<Vec<u8>> {
    let mut a = CodeAssembler::new(64)?;
    body(&mut a)?;
    let code = a.assemble(EXAMPLE_CODE_VA)?;
    Ok(build_elf(
        EXAMPLE_CODE_VA,
        &[(EXAMPLE_CODE_VA, &code, code.len() as u64, PF_R | PF_X), (EXAMPLE_DATA_VA, &[], 0x1000, PF_R | PF_W)],
    ))
}

/// What the example guest prints.
pub const HELLO: &[u8] = b"example guest: hello from a user ELF\n";

/// The example guest: prints a line on the serial port, maps a page of
/// zeroes with `mmap`, checks it reads back what it wrote, reports that as
/// check [`EXAMPLE_CHECK`], and writes [`EXAMPLE_EXIT_VALUE`] to the exit
/// port.
pub fn hello_elf() -> AsmResult<Vec<u8>> {
    assemble_elf(|a| {
        let mut msg = a.create_label();
        serial_print(a, msg, HELLO.len() as u32)?;
        mmap(a, Arg::Imm(0), 0x1000, prot::READ | prot::WRITE, map::PRIVATE | map::ANONYMOUS, 0, 0)?;
        a.mov(rbx, rax)?;
        a.mov(rax, 0x1234_5678_9abc_def0u64)?;
        a.mov(qword_ptr(rbx + 0x80), rax)?;
        a.mov(rdx, qword_ptr(rbx + 0x80))?;
        a.cmp(rdx, rax)?;
        a.sete(sil)?;
        a.movzx(esi, sil)?;
        hcall(a, nr::REPORT, &[Arg::Imm(EXAMPLE_CHECK), Arg::Keep, Arg::Keep, Arg::Reg(rax), Arg::Imm(0)])?;
        a.mov(edx, u32::from(devices::legacy::EXIT_PORT))?;
        a.mov(eax, EXAMPLE_EXIT_VALUE)?;
        a.out(dx, eax)?;
        a.ud2()?;
        a.set_label(&mut msg)?;
        a.db(HELLO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::elf_program::parse;

    #[test]
    fn example_is_a_loadable_elf() {
        let img = hello_elf().unwrap();
        let p = parse(&img).unwrap();
        assert_eq!(p.entry, EXAMPLE_CODE_VA);
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[0].exec && !p.segments[0].write);
        assert!(p.segments[1].write && p.segments[1].bytes.is_empty());
    }
}
