//! What the Linux benchmark programs have in common: tiny static x86-64
//! Linux executables assembled with `iced-x86` (no C toolchain), which
//! make real Linux system calls with the `syscall` instruction, time
//! themselves with `rdtsc` and hand their raw words to the host on
//! standard output.
//!
//! A program keeps its **results** in a one-page `.bss` at
//! [`RESULTS_VA`] (`r15` points at it from [`prologue`] on): slot 0 the
//! magic [`MAGIC`], slots 1 and 2 its first and last TSC readings, then
//! its own words. [`finish`] writes the whole page to fd 1 and calls
//! `exit_group(0)`; a failed check calls `exit_group(FAIL + code)`
//! instead, so the host sees which step failed. The host reads the words
//! from the captured standard output ([`Results::parse`]).
//!
//! Register use: `r15` the results; `syscall` clobbers `rax`, `rcx` and
//! `r11`; [`tsc`] clobbers `rax` and `rdx`. This module runs nothing.

use iced_x86::code_asm::*;

use vmm::guest::asm::AsmResult;
use vmm::guest::elf_program::build_linux_elf;

/// Where the code is linked (and entered).
pub const CODE_VA: u64 = 0x40_1000;
/// The results page (`.bss`).
pub const RESULTS_VA: u64 = 0x60_0000;
/// u64 words in the results page.
pub const WORDS: usize = 512;
/// Slot 0 of a finished program.
pub const MAGIC: u64 = 0x5855_4e49_4c48_4342; // "BCHLINUX"
/// Slot of the first TSC reading.
pub const SLOT_TSC_START: usize = 1;
/// Slot of the last TSC reading.
pub const SLOT_TSC_END: usize = 2;
/// First slot a program may use.
pub const SLOT_FIRST_FREE: usize = 4;
/// Exit status of a failed step `code` is `FAIL + code`.
pub const FAIL: u32 = 64;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Assembles `body` at [`CODE_VA`] into a static Linux ELF with the
/// results page as its `.bss`.
pub fn assemble(body: impl FnOnce(&mut CodeAssembler) -> AsmResult) -> AsmResult<Vec<u8>> {
    let mut a = CodeAssembler::new(64)?;
    body(&mut a)?;
    let code = a.assemble(CODE_VA)?;
    Ok(build_linux_elf(
        CODE_VA,
        &[(CODE_VA, &code, code.len() as u64, PF_R | PF_X), (RESULTS_VA, &[], WORDS as u64 * 8, PF_R | PF_W)],
    ))
}

/// The address of result slot `slot`.
pub fn slot(slot: usize) -> AsmMemoryOperand {
    qword_ptr(r15 + (slot as i32 * 8))
}

/// `dst = TSC` (`lfence; rdtsc`). Clobbers `rax` and `rdx`.
pub fn tsc(a: &mut CodeAssembler, dst: AsmRegister64) -> AsmResult {
    a.lfence()?;
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)?;
    a.mov(dst, rax)
}

/// Stores `TSC - start` into `at`. Clobbers `rax` and `rdx`.
pub fn store_elapsed(a: &mut CodeAssembler, start: AsmRegister64, at: usize) -> AsmResult {
    tsc(a, rax)?;
    a.sub(rax, start)?;
    a.mov(slot(at), rax)
}

/// A Linux system call: arguments into `rdi, rsi, rdx, r10, r8, r9`
/// (registers given as `Err` are left as they are), then `syscall`.
pub fn sys(a: &mut CodeAssembler, nr: i64, args: &[Result<u64, AsmRegister64>]) -> AsmResult {
    const REGS: [AsmRegister64; 6] = [rdi, rsi, rdx, r10, r8, r9];
    for (r, arg) in REGS.iter().zip(args) {
        match *arg {
            Ok(v) => a.mov(*r, v)?,
            Err(src) if src != *r => a.mov(*r, src)?,
            Err(_) => {}
        }
    }
    a.mov(rax, nr as u64)?;
    a.syscall()
}

/// `exit_group(status)`.
pub fn exit_group(a: &mut CodeAssembler, status: u32) -> AsmResult {
    sys(a, libc::SYS_exit_group, &[Ok(u64::from(status))])?;
    a.ud2()
}

/// Ends the program with `FAIL + code` unless `rax == want`. Clobbers
/// `rdx`.
pub fn expect_rax(a: &mut CodeAssembler, want: u64, code: u32) -> AsmResult {
    let mut ok = a.create_label();
    a.mov(rdx, want)?;
    a.cmp(rax, rdx)?;
    a.je(ok)?;
    exit_group(a, FAIL + code)?;
    a.set_label(&mut ok)?;
    a.nop()
}

/// Ends the program with `FAIL + code` if `rax` is an error (`-4095..0`).
pub fn expect_no_error(a: &mut CodeAssembler, code: u32) -> AsmResult {
    let mut ok = a.create_label();
    a.cmp(rax, -4095i32)?;
    a.jb(ok)?;
    exit_group(a, FAIL + code)?;
    a.set_label(&mut ok)?;
    a.nop()
}

/// Points `r15` at the results and stores the magic and the first TSC.
pub fn prologue(a: &mut CodeAssembler) -> AsmResult {
    a.mov(r15, RESULTS_VA)?;
    a.mov(rax, MAGIC)?;
    a.mov(slot(0), rax)?;
    tsc(a, rax)?;
    a.mov(slot(SLOT_TSC_START), rax)
}

/// Stores the last TSC, writes the results page to fd 1 (checking that
/// all of it went) and exits with status 0.
pub fn finish(a: &mut CodeAssembler) -> AsmResult {
    tsc(a, rax)?;
    a.mov(slot(SLOT_TSC_END), rax)?;
    let len = WORDS as u64 * 8;
    sys(a, libc::SYS_write, &[Ok(1), Ok(RESULTS_VA), Ok(len)])?;
    expect_rax(a, len, 63)?;
    exit_group(a, 0)
}

/// Emits `count` iterations of `body` with `counter` counting down.
pub fn repeat(
    a: &mut CodeAssembler,
    counter: AsmRegister64,
    count: u64,
    body: impl FnOnce(&mut CodeAssembler) -> AsmResult,
) -> AsmResult {
    let mut top = a.create_label();
    a.mov(counter, count)?;
    a.set_label(&mut top)?;
    body(a)?;
    a.dec(counter)?;
    a.jnz(top)
}

/// The words a finished program wrote to standard output.
#[derive(Clone, Debug)]
pub struct Results(Vec<u64>);

impl Results {
    /// Parses standard output: exactly one results page starting with
    /// [`MAGIC`].
    pub fn parse(stdout: &[u8]) -> Result<Results, String> {
        if stdout.len() != WORDS * 8 {
            return Err(format!("{} bytes on stdout, not the {}-byte results page", stdout.len(), WORDS * 8));
        }
        let words: Vec<u64> =
            stdout.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        if words[0] != MAGIC {
            return Err(format!("results start with {:#x}, not the magic {MAGIC:#x}", words[0]));
        }
        Ok(Results(words))
    }

    /// The word in `slot`.
    pub fn word(&self, slot: usize) -> Result<u64, String> {
        self.0.get(slot).copied().ok_or_else(|| format!("no result slot {slot}"))
    }

    /// The program's first and last TSC readings.
    pub fn tsc_span(&self) -> Result<(u64, u64), String> {
        Ok((self.word(SLOT_TSC_START)?, self.word(SLOT_TSC_END)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_a_linux_elf() {
        let elf = assemble(|a| {
            prologue(a)?;
            finish(a)
        })
        .unwrap();
        assert!(!vmm::guest::elf_program::has_vmm_abi_note(&elf));
        let img = vmm::guest::kinds::linux::image::parse(&elf, 0).unwrap();
        assert_eq!(img.entry, CODE_VA);
    }

    #[test]
    fn results_must_be_one_page_with_the_magic() {
        let mut page = vec![0u8; WORDS * 8];
        assert!(Results::parse(&page).is_err(), "no magic");
        page[..8].copy_from_slice(&MAGIC.to_le_bytes());
        page[8..16].copy_from_slice(&5u64.to_le_bytes());
        page[16..24].copy_from_slice(&9u64.to_le_bytes());
        let r = Results::parse(&page).unwrap();
        assert_eq!(r.tsc_span().unwrap(), (5, 9));
        assert!(r.word(WORDS).is_err());
        assert!(Results::parse(&page[..8]).is_err(), "short");
        let mut long = page.clone();
        long.push(0);
        assert!(Results::parse(&long).is_err(), "trailing bytes");
    }
}
