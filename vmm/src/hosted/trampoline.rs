//! The user-mode `syscall` trampoline (Solo5 and Linux programs), for backends where `syscall`
//! jumps to `LSTAR` without leaving user mode (see
//! `vstate::backend`). It makes the hypercall (the registers already
//! follow the Linux convention), then returns as `sysret` would: flags
//! from `r11`, to `rcx`. It touches the stack only below the red zone.

use iced_x86::code_asm::*;

use crate::hosted::stub::abi::HCALL_PORT;

// Generated (see `crate::hosted::prebuilt`): not formatted.
#[rustfmt::skip]
#[path = "trampoline_code.rs"]
mod prebuilt;

/// Where the trampoline is mapped (the last page of the user half).
pub const TRAMPOLINE_VA: u64 = (1 << 47) - 0x1000;

/// Where the trampoline's hypercall exit leaves RIP: past its first
/// instruction (`out imm8, al`, two bytes). The VMM returns from there
/// straight to rcx with r11's flags, so the rest (for a backend that
/// resumes the trampoline itself) is not reached.
pub const HCALL_RETURN: u64 = TRAMPOLINE_VA + 2;

/// The idle loop of a vCPU that has no program to run (Linux programs
/// on several vCPUs), in the same page: `mov eax, IDLE_NR; syscall; jmp`
/// back, forever; each call lets the kind load a program instead.
pub const IDLE_VA: u64 = TRAMPOLINE_VA + 0x800;

/// The number the idle loop's `syscall` carries (no Linux call has it).
pub const IDLE_NR: u64 = 0x1d1e;

/// The idle loop's bytes, at [`IDLE_VA`].
pub const IDLE_CODE: [u8; 9] = [
    0xb8,
    IDLE_NR as u8,
    (IDLE_NR >> 8) as u8,
    0,
    0, // mov eax, IDLE_NR
    0x0f,
    0x05, // syscall
    0xeb,
    0xf7, // jmp IDLE_VA
];

/// The trampoline's code, linked at [`TRAMPOLINE_VA`]. Launches write the
/// same bytes from `trampoline_code.rs` (see [`crate::hosted::prebuilt`]).
pub fn code() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.out(u32::from(HCALL_PORT), al)?;
    // Restore the flags `syscall` saved in r11 without touching the
    // 128-byte red zone below rsp (lea leaves the flags alone).
    a.lea(rsp, ptr(rsp - 128))?;
    a.push(r11)?;
    a.popfq()?;
    a.lea(rsp, ptr(rsp + 128))?;
    a.jmp(rcx)?;
    a.assemble(TRAMPOLINE_VA)
}

/// Writes the trampoline (and the idle loop) into a frame from `frames`
/// and maps it read/execute at [`TRAMPOLINE_VA`]; returns that address
/// (the `LSTAR` a kind asks for).
pub fn install(
    mapper: &mut crate::hosted::mapper::Mapper,
    frames: &mut crate::memory::BootFrames,
    mem: &crate::memory::GuestMem,
) -> Result<u64, String> {
    let code = &prebuilt::CODE;
    let frame = frames.alloc(1).map_err(|e| e.to_string())?;
    vm_memory::Bytes::write_slice(mem, code, frame[0].addr())
        .map_err(|_| "cannot write the syscall trampoline".to_string())?;
    let idle = vm_memory::GuestAddress(frame[0].addr().0 + (IDLE_VA - TRAMPOLINE_VA));
    vm_memory::Bytes::write_slice(mem, &IDLE_CODE, idle).map_err(|_| "cannot write the idle loop".to_string())?;
    let va = guest_mm::GuestVirtAddr::try_new(TRAMPOLINE_VA).map_err(|e| e.to_string())?;
    mapper.map_user_pages(va, &frame, crate::hosted::mapper::Access::RX).map_err(|e| e.to_string())?;
    Ok(TRAMPOLINE_VA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_trampoline_is_what_the_assembler_makes() {
        let code = code().expect("assembles");
        let body = crate::hosted::prebuilt::bytes_const("CODE", "The trampoline, linked at `TRAMPOLINE_VA`.", &code);
        let what = "The user-mode `syscall` trampoline as `trampoline::code` assembles it.";
        crate::hosted::prebuilt::check_or_bless(
            "src/hosted/trampoline_code.rs",
            &crate::hosted::prebuilt::file(what, &body),
        );
        assert_eq!(prebuilt::CODE.as_slice(), code.as_slice());
    }

    #[test]
    fn the_idle_loop_calls_and_jumps_back() {
        let code = code().expect("assembles");
        assert!(code.len() as u64 <= IDLE_VA - TRAMPOLINE_VA, "the trampoline runs into the idle loop");
        let mut d = iced_x86::Decoder::with_ip(64, &IDLE_CODE, IDLE_VA, iced_x86::DecoderOptions::NONE);
        let insns: Vec<String> = d.iter().map(|i| i.to_string()).collect();
        assert_eq!(insns, ["mov eax,1D1Eh", "syscall", format!("jmp short {IDLE_VA:016X}h").as_str()]);
    }

    #[test]
    fn the_hypercall_returns_past_the_out() {
        let code = code().expect("assembles");
        // `out imm8, al` is E6 ib.
        assert_eq!(code[0], 0xe6);
        assert_eq!(HCALL_RETURN - TRAMPOLINE_VA, 2);
    }
}
