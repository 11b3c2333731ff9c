//! Multiboot v1 kernels for the tests that boot raw kernels: an ELF32
//! image or an a.out-kludge image around code the test supplies, loaded
//! at [`LOAD`] (1 MiB), as kvm-unit-tests' `.flat` files are.

use iced_x86::code_asm::CodeAssembler;
use iced_x86::IcedError;

/// Where the kernels load.
pub const LOAD: u32 = 0x10_0000;
/// The entry of [`elf32`] kernels: right after the 12-byte multiboot
/// header at the start of the segment.
pub const ELF32_ENTRY: u32 = LOAD + 12;
/// The entry of [`aout`] kernels: right after the 32-byte header with the
/// a.out-kludge addresses.
pub const AOUT_ENTRY: u32 = LOAD + 0x20;

const MAGIC: u32 = 0x1bad_b002;

/// A multiboot ELF32 kernel: one `PT_LOAD` segment at [`LOAD`] holding the
/// multiboot header and then `code`, entered at [`ELF32_ENTRY`].
pub fn elf32(code: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 0x100];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 1; // ELF32
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    f[24..28].copy_from_slice(&ELF32_ENTRY.to_le_bytes());
    f[28..32].copy_from_slice(&52u32.to_le_bytes());
    f[42..44].copy_from_slice(&32u16.to_le_bytes());
    f[44..46].copy_from_slice(&1u16.to_le_bytes());
    let len = 12 + u32::try_from(code.len()).expect("small code");
    for (i, v) in [1u32, 0x100, LOAD, LOAD, len, len, 5, 0x1000].iter().enumerate() {
        f[52 + 4 * i..56 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    for v in [MAGIC, 0, 0u32.wrapping_sub(MAGIC)] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

/// A multiboot kernel with a.out-kludge addresses (no ELF): the 32-byte
/// header at [`LOAD`], then `code`, entered at [`AOUT_ENTRY`].
pub fn aout(code: &[u8]) -> Vec<u8> {
    let flags = 1u32 << 16;
    let mut f = Vec::new();
    for v in [MAGIC, flags, 0u32.wrapping_sub(MAGIC.wrapping_add(flags)), LOAD, LOAD, 0, 0, AOUT_ENTRY] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

/// 32-bit code that `body` emits, assembled to run at `at`.
pub fn code32(at: u32, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).expect("assembler");
    body(&mut a).expect("asm");
    a.assemble(u64::from(at)).expect("assemble")
}

/// `mov al, 0; out 0xf4, al; hlt`: the run ends with exit-port value 0,
/// kvm-unit-tests' PASS.
pub const PASS: [u8; 5] = [0xb0, 0x00, 0xe6, 0xf4, 0xf4];
