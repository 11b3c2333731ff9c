//! The built-in test guest, generated at run time with `iced-x86`.
//!
//! vCPU 0 runs every check in order and reports each one with the
//! `report` hypercall, then writes 0 to the exit port. Other vCPUs park in
//! `exit`. Each check is one function below that emits its code; adding a
//! check is adding a function and a line to [`CHECKS`].

use iced_x86::code_asm::*;

use super::asm::{hcall, serial_print, Arg, AsmResult, Check};
use crate::kernel::abi::nr;
use crate::layout::BUILTIN_CODE_VA;
use crate::program::{Program, Segment};

/// The checks, by id, with the name the report prints.
pub const CHECKS: &[(u64, &str)] = &[(0, "boot: CPL 3, serial port, hypercalls")];

/// A check generator.
type CheckFn = fn(&mut CodeAssembler, &Labels) -> AsmResult;

/// Labels of shared data.
pub struct Labels {
    /// A message for the `write` hypercall.
    pub hello: CodeLabel,
}

const BANNER: &[u8] = b"guest: hello from CPL 3\n";
const HELLO: &[u8] = b"guest: hello through the write hypercall\n";

/// Check 0: the program runs in user mode and both console paths work.
fn check_boot(a: &mut CodeAssembler, l: &Labels) -> AsmResult {
    let mut c = Check::begin(a, 0)?;
    let a = c.asm();
    a.mov(eax, cs)?;
    a.and(eax, 3)?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, 3)?;
    let a = c.asm();
    a.lea(rsi, ptr(l.hello))?;
    hcall(a, nr::WRITE, &[Arg::Imm(1), Arg::Keep, Arg::Imm(HELLO.len() as u64)])?;
    a.mov(r14, rax)?;
    c.expect_eq(r14, HELLO.len() as u64)?;
    c.end()
}

const CHECK_FNS: &[CheckFn] = &[check_boot];

/// Builds the built-in guest program.
pub fn build() -> AsmResult<Program> {
    let mut a = CodeAssembler::new(64)?;
    let mut banner = a.create_label();
    let mut hello = a.create_label();
    let labels = Labels { hello };

    // Entry: rdi = vCPU index. Only vCPU 0 runs the checks.
    a.mov(r15, rdi)?;
    let mut main = a.create_label();
    a.test(r15, r15)?;
    a.jz(main)?;
    hcall(&mut a, nr::EXIT, &[Arg::Imm(0)])?;
    a.ud2()?;

    a.set_label(&mut main)?;
    serial_print(&mut a, banner, BANNER.len() as u32)?;
    for f in CHECK_FNS {
        f(&mut a, &labels)?;
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

    let code = a.assemble(BUILTIN_CODE_VA)?;
    let len = code.len() as u64;
    Ok(Program {
        segments: vec![Segment { va: BUILTIN_CODE_VA, bytes: code, mem_len: len, write: false, exec: true }],
        entry: BUILTIN_CODE_VA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_lists_every_check() {
        let p = build().unwrap();
        assert_eq!(p.entry, BUILTIN_CODE_VA);
        assert!(!p.segments[0].bytes.is_empty());
        assert_eq!(CHECKS.len(), CHECK_FNS.len());
    }
}
