//! Small Solo5 `spt` unikernels for the Solo5 tests (`tests/guests/`),
//! generated with `iced-x86` in a hand-built ELF carrying Solo5's ABI
//! and manifest notes, and running them.

use iced_x86::code_asm::*;

use super::{run_vmm, temp_path, VmmRun};

/// Where the text is loaded.
pub const TEXT_VA: u64 = 0x10_0000;
/// Where the data page is loaded.
pub const DATA_VA: u64 = 0x10_1000;

/// A minimal `spt` unikernel: text (RX) and a data page (RW) with
/// `data` at its start, the Solo5 ABI note (spt, version 2) and a
/// manifest declaring `devices` (name, type) after the reserved entry.
pub fn spt_elf(code: &[u8], data: &[u8], devices: &[(&str, u32)]) -> Vec<u8> {
    let note = |ty: u32, desc: &[u8]| {
        let mut n = Vec::new();
        n.extend_from_slice(&6u32.to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(b"Solo5\0\0\0");
        n.extend_from_slice(desc);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    };
    let mut abi = Vec::new();
    for v in [2u32, 2, 0, 0] {
        abi.extend_from_slice(&v.to_le_bytes());
    }
    let mut mft = vec![0u8; 4];
    mft.extend_from_slice(&1u32.to_le_bytes());
    mft.extend_from_slice(&(devices.len() as u32 + 1).to_le_bytes());
    let mut entry = vec![0u8; 104];
    entry[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
    mft.extend_from_slice(&entry);
    for (name, kind) in devices {
        let mut entry = vec![0u8; 104];
        entry[..name.len()].copy_from_slice(name.as_bytes());
        entry[68..72].copy_from_slice(&kind.to_le_bytes());
        mft.extend_from_slice(&entry);
    }
    let mut notes = note(0x3149_4241, &abi);
    notes.extend(note(0x3154_464d, &mft));

    let (notes_off, text_off, data_off) = (0x100u64, 0x1000u64, 0x2000u64);
    let mut out = vec![0u8; 0x2000];
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&TEXT_VA.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&3u16.to_le_bytes());
    let phdrs = [
        (1u32, 5u32, text_off, TEXT_VA, code.len() as u64),
        (1, 6, data_off, DATA_VA, data.len() as u64),
        (4, 4, notes_off, 0, notes.len() as u64),
    ];
    for (i, &(ty, flags, off, va, len)) in phdrs.iter().enumerate() {
        let h = 64 + 56 * i;
        out[h..h + 4].copy_from_slice(&ty.to_le_bytes());
        out[h + 4..h + 8].copy_from_slice(&flags.to_le_bytes());
        out[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        out[h + 16..h + 24].copy_from_slice(&va.to_le_bytes());
        out[h + 24..h + 32].copy_from_slice(&va.to_le_bytes());
        out[h + 32..h + 40].copy_from_slice(&len.to_le_bytes());
        out[h + 40..h + 48].copy_from_slice(&len.max(1).to_le_bytes());
        out[h + 48..h + 56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    out[notes_off as usize..notes_off as usize + notes.len()].copy_from_slice(&notes);
    out[text_off as usize..text_off as usize + code.len()].copy_from_slice(code);
    out.extend_from_slice(data);
    out
}

/// Runs a unikernel whose text `body` emits (at [`TEXT_VA`]), with `data`
/// at [`DATA_VA`].
pub fn run_spt(name: &str, data: &[u8], body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> VmmRun {
    run_spt_with(name, data, &[], &[], body)
}

/// [`run_spt`] with a manifest declaring `devices` and more `vmm run`
/// options `extra`.
pub fn run_spt_with(
    name: &str,
    data: &[u8],
    devices: &[(&str, u32)],
    extra: &[&str],
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> VmmRun {
    let mut a = CodeAssembler::new(64).expect("assembler");
    body(&mut a).expect("emit");
    let code = a.assemble(TEXT_VA).expect("assemble");
    let path = temp_path(&format!("{name}.spt"));
    std::fs::write(&path, spt_elf(&code, data, devices)).expect("write");
    let mut args = vec!["run", "--timeout", "20", "--mem", "64M"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--guest", path.to_str().expect("utf-8")]);
    let r = run_vmm(&args);
    let _ = std::fs::remove_file(&path);
    r
}

/// Emits a Solo5 `spt` system call `nr` (arguments already in place).
pub fn syscall(a: &mut CodeAssembler, nr: u64) -> Result<(), IcedError> {
    a.mov(rax, nr)?;
    a.syscall()
}

/// Emits `exit_group(status)`.
pub fn exit_group(a: &mut CodeAssembler, status: u32) -> Result<(), IcedError> {
    a.mov(edi, status)?;
    syscall(a, 231)
}
