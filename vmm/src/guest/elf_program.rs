//! Loading a freestanding x86-64 ELF executable: its `PT_LOAD` segments
//! become a [`Program`] mapped at their virtual addresses, entered at CPL 3.
//!
//! Only what such a program needs is read, through the VMM's one ELF
//! reader ([`crate::elf`]): the ELF header and the program headers, all
//! bounds-checked (a malformed file is an error, never a panic). No
//! relocations, no interpreter, no dynamic linking.

use std::path::Path;

use thiserror::Error;

use crate::elf::{self as reader, Class, Elf, EM_X86_64, ET_EXEC, PF_R, PF_W, PF_X, PT_LOAD};
use crate::hosted::program::{Program, Segment};
use crate::input_file::{read_input, InputError};

/// The largest ELF file read. What it may load is bounded further by the
/// load region (`layout::LOAD_SIZE`); the rest of a file (symbols, debug
/// information) is read but not kept.
pub const ELF_FILE_MAX: u64 = 64 << 20;

/// Errors reading an ELF file.
#[derive(Debug, Error)]
pub enum ElfError {
    /// The file could not be read (or is not a regular file of at most
    /// [`ELF_FILE_MAX`] bytes).
    #[error(transparent)]
    Read(#[from] InputError),
    /// Not an ELF file this VMM runs.
    #[error("not a freestanding x86-64 ELF executable: {0}")]
    Unsupported(&'static str),
    /// The reader refused a header (one pointing outside the file, a
    /// table too large, ...).
    #[error("malformed ELF: {0}")]
    Malformed(#[from] reader::ElfError),
    /// The segments together claim more file bytes than the file holds.
    #[error("malformed ELF: segments claim more file bytes than the file holds ({total:#x} of {len:#x} bytes)")]
    Amplified {
        /// The file bytes claimed by the segments read so far.
        total: u64,
        /// Size of the file.
        len: u64,
    },
}

/// The largest program header table read (Linux refuses larger ones too).
pub const PHDR_TABLE_MAX: u64 = reader::PHDR_TABLE_MAX;

/// Reads `path`: a regular file of at most [`ELF_FILE_MAX`] bytes.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ElfError> {
    Ok(read_input(path, ELF_FILE_MAX)?)
}

/// Reads and parses `path`.
pub fn load_file(path: &Path) -> Result<Program, ElfError> {
    parse(&read_file(path)?)
}

/// Parses an ELF image.
pub fn parse(b: &[u8]) -> Result<Program, ElfError> {
    let elf = Elf::parse(b).map_err(|e| match e {
        reader::ElfError::NotElf => ElfError::Unsupported("bad magic"),
        reader::ElfError::Class(_) | reader::ElfError::Encoding { class: 1, .. } => ElfError::Unsupported("not 64-bit"),
        reader::ElfError::Encoding { .. } => ElfError::Unsupported("not little endian"),
        e => ElfError::Malformed(e),
    })?;
    if elf.class() != Class::Elf64 {
        return Err(ElfError::Unsupported("not 64-bit"));
    }
    if elf.file_type() != ET_EXEC {
        return Err(ElfError::Unsupported("not an executable (ET_EXEC)"));
    }
    if elf.machine() != EM_X86_64 {
        return Err(ElfError::Unsupported("not x86-64"));
    }
    // Cost is bounded by the file, never by what the headers claim: the
    // reader keeps the header table small and inside the file (as Linux's
    // loader requires), and the segments together may not copy more bytes
    // than the file holds.
    let len = b.len() as u64;
    let mut file_bytes = 0u64;
    let mut segments = Vec::new();
    for ph in elf.program_headers()? {
        if ph.kind != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        let bytes = elf.segment_data(&ph)?;
        file_bytes += ph.filesz;
        if file_bytes > len {
            return Err(ElfError::Amplified { total: file_bytes, len });
        }
        segments.push(Segment {
            va: ph.vaddr.0,
            bytes: bytes.to_vec(),
            mem_len: ph.memsz,
            write: ph.flags & PF_W != 0,
            exec: ph.flags & PF_X != 0,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::Unsupported("no loadable segments"));
    }
    Ok(Program { segments, entry: elf.entry().0 })
}

/// Owner name of the note that marks an ELF written for the VMM's own
/// ABI (`docs/guest-abi.md`); every ELF the project generates carries it.
pub const VMM_ABI_NOTE_NAME: &[u8] = b"rust-vmm-mm\0";
/// Type of that note.
pub const VMM_ABI_NOTE_TYPE: u32 = 1;
/// Its descriptor: the ABI version (little-endian u32).
pub const VMM_ABI_VERSION: u32 = 1;

/// Whether the ELF image `b` carries the VMM's ABI note (a malformed file
/// carries none).
pub fn has_vmm_abi_note(b: &[u8]) -> bool {
    let Ok(elf) = Elf::parse(b) else { return false };
    let Ok(notes) = elf.notes() else { return false };
    notes.take_while(Result::is_ok).flatten().any(|n| n.name == VMM_ABI_NOTE_NAME && n.kind == VMM_ABI_NOTE_TYPE)
}

/// Builds a minimal ELF with the given segments and the VMM's ABI note
/// (for tests of this loader and of the VMM, and the guests the project
/// generates). The note's program header comes after the segments'.
pub fn build_elf(entry: u64, segs: &[(u64, &[u8], u64, u32)]) -> Vec<u8> {
    build(entry, segs, true)
}

/// [`build_elf`] without the VMM's ABI note: a static Linux executable
/// (`ET_EXEC`, no interpreter), which `vmm run --guest` runs as a Linux
/// program (the benchmarks' Linux guests are built this way).
pub fn build_linux_elf(entry: u64, segs: &[(u64, &[u8], u64, u32)]) -> Vec<u8> {
    build(entry, segs, false)
}

fn build(entry: u64, segs: &[(u64, &[u8], u64, u32)], abi_note: bool) -> Vec<u8> {
    let phoff = 64u64;
    let phnum = segs.len() as u64 + u64::from(abi_note);
    let data_off = phoff + 56 * phnum;
    let mut out = vec![0u8; data_off as usize];
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut file_off = data_off;
    for (i, &(va, data, memsz, flags)) in segs.iter().enumerate() {
        let h = (phoff + 56 * i as u64) as usize;
        out[h..h + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        out[h + 4..h + 8].copy_from_slice(&flags.to_le_bytes());
        out[h + 8..h + 16].copy_from_slice(&file_off.to_le_bytes());
        out[h + 16..h + 24].copy_from_slice(&va.to_le_bytes());
        out[h + 24..h + 32].copy_from_slice(&va.to_le_bytes());
        out[h + 32..h + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        out[h + 40..h + 48].copy_from_slice(&memsz.to_le_bytes());
        out[h + 48..h + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        file_off += data.len() as u64;
    }
    for &(_, data, _, _) in segs {
        out.extend_from_slice(data);
    }
    if !abi_note {
        return out;
    }
    // The note: namesz, descsz, type, name (padded to 4), descriptor.
    while out.len() % 4 != 0 {
        out.push(0);
    }
    let note_off = out.len() as u64;
    out.extend_from_slice(&(VMM_ABI_NOTE_NAME.len() as u32).to_le_bytes());
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&VMM_ABI_NOTE_TYPE.to_le_bytes());
    out.extend_from_slice(VMM_ABI_NOTE_NAME);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&VMM_ABI_VERSION.to_le_bytes());
    let note_len = out.len() as u64 - note_off;
    let h = (phoff + 56 * segs.len() as u64) as usize;
    out[h..h + 4].copy_from_slice(&crate::elf::PT_NOTE.to_le_bytes());
    out[h + 4..h + 8].copy_from_slice(&PF_R.to_le_bytes());
    out[h + 8..h + 16].copy_from_slice(&note_off.to_le_bytes());
    out[h + 32..h + 40].copy_from_slice(&note_len.to_le_bytes());
    out[h + 48..h + 56].copy_from_slice(&4u64.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let img =
            build_elf(0x40_1000, &[(0x40_1000, &[0x90, 0xf4], 0x10, PF_X | 4), (0x60_0000, b"dd", 0x2000, PF_W | 4)]);
        let p = parse(&img).unwrap();
        assert_eq!(p.entry, 0x40_1000);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[0].bytes, vec![0x90, 0xf4]);
        assert!(p.segments[0].exec && !p.segments[0].write);
        assert_eq!(p.segments[1].mem_len, 0x2000);
        assert!(p.segments[1].write);
    }

    #[test]
    fn a_linux_elf_has_no_abi_note() {
        let segs: &[(u64, &[u8], u64, u32)] = &[(0x40_1000, &[0x90, 0xf4], 2, PF_X | 4)];
        let with = build_elf(0x40_1000, segs);
        let without = build_linux_elf(0x40_1000, segs);
        assert!(has_vmm_abi_note(&with));
        assert!(!has_vmm_abi_note(&without));
        let p = parse(&without).unwrap();
        assert_eq!((p.entry, p.segments.len()), (0x40_1000, 1));
        assert_eq!(p.segments[0].bytes, vec![0x90, 0xf4]);
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(matches!(parse(b"nope"), Err(ElfError::Unsupported(_))));
        let mut img = build_elf(0, &[(0x1000, b"x", 1, PF_X)]);
        // Segment data beyond the end of the file.
        let h = 64 + 32;
        img[h..h + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&img), Err(ElfError::Malformed(_))));
        let img = build_elf(0, &[(0x1000, b"x", 1, PF_X)]);
        for cut in [10, 40, 70, 100] {
            assert!(parse(&img[..cut]).is_err());
        }
        // A program header offset at the end of the address space: an error,
        // not an arithmetic overflow (found by the `elf` fuzz target).
        let mut img = build_elf(0, &[(0x1000, b"x", 1, PF_X)]);
        img[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&img), Err(ElfError::Malformed(_))));
        img[32..40].copy_from_slice(&(u64::MAX - 60).to_le_bytes());
        assert!(matches!(parse(&img), Err(ElfError::Malformed(_))));
        // phnum huge with a tiny file.
        let mut img = build_elf(0, &[(0x1000, b"x", 1, PF_X)]);
        img[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(parse(&img), Err(ElfError::Malformed(reader::ElfError::TableTooLarge { count: 0xffff, .. }))));
        assert!(parse(&img).unwrap_err().to_string().contains("program header table larger than 64 KiB"));
        img[56..58].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(
            parse(&img),
            Err(ElfError::Malformed(reader::ElfError::TableOutside { off: 64, size: 168, .. }))
        ));
        assert!(parse(&img).unwrap_err().to_string().contains("program header table outside the file"));
        // Identification refusals keep their words.
        assert_eq!(
            parse(b"\x7fELF\x01not really").unwrap_err().to_string(),
            "not a freestanding x86-64 ELF executable: not 64-bit"
        );
        assert_eq!(
            parse(b"\x7fELF\x02\x02").unwrap_err().to_string(),
            "not a freestanding x86-64 ELF executable: not little endian"
        );
    }

    #[test]
    fn segments_cannot_copy_more_than_the_file() {
        // Two segments over the same bytes: together they claim more than
        // the file holds, which would let N headers copy the file N times.
        let data = [0x90u8; 200];
        let mut img = build_elf(0x1000, &[(0x1000, &data, 200, PF_X), (0x2000, &[], 0, PF_X)]);
        let (h0, h1) = (64, 64 + 56);
        let whole = img.len() as u64;
        for h in [h0, h1] {
            img[h + 8..h + 16].copy_from_slice(&0u64.to_le_bytes());
            img[h + 32..h + 40].copy_from_slice(&whole.to_le_bytes());
            img[h + 40..h + 48].copy_from_slice(&whole.to_le_bytes());
        }
        assert!(matches!(parse(&img), Err(ElfError::Amplified { len, .. }) if len == whole));
        assert!(parse(&img).unwrap_err().to_string().contains("segments claim more file bytes than the file holds"));
        // One of them alone is fine.
        img[h1 + 32..h1 + 40].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(parse(&img).unwrap().segments[0].bytes.len() as u64, whole);
    }
}
