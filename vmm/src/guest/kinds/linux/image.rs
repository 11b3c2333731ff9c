//! The image of a static Linux executable: which files are refused (and
//! what the message tells the user to do), where each `PT_LOAD` segment
//! goes (a `-static-pie` program is moved to a randomised base, as Linux's
//! `load_elf_binary` does with `ELF_ET_DYN_BASE`), and what the auxiliary
//! vector says about it (`AT_PHDR`, `AT_ENTRY`, ...).
//!
//! Reading is the VMM's one bounded ELF reader (`crate::elf`); nothing
//! here allocates more than the file's own segments.

use thiserror::Error;

use crate::elf::{Class, Elf, ElfError as ReaderError, EM_386, EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use crate::hosted::program::Segment;
use crate::layout::PAGE_SIZE;

/// `e_type` of a position-independent executable (or shared object).
pub const ET_DYN: u16 = 3;
/// `p_type` of the program header table's own entry.
const PT_PHDR: u32 = 6;
/// Where Linux puts a `-static-pie` program before randomisation: two
/// thirds of the 47-bit user range, page aligned (`ELF_ET_DYN_BASE`).
pub const ET_DYN_BASE: u64 = 0x5555_5555_4000;
/// Pages of randomisation added to [`ET_DYN_BASE`] (Linux uses 28 bits of
/// `mmap_rnd_bits`; 16 keep the image well below the mappings).
const DYN_RANDOM_PAGES: u64 = 1 << 16;
/// The user address range's end as Linux gives it (`TASK_SIZE`).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;

/// Why a file is not run as a Linux program.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    /// Not an ELF file at all.
    #[error("not an ELF file (no \\x7fELF magic): give a static x86-64 Linux executable")]
    NotElf,
    /// A 32-bit program.
    #[error("a 32-bit ELF: only x86-64 programs run (build with gcc -m64 -static)")]
    Elf32,
    /// Another architecture.
    #[error("built for another architecture (e_machine {0}{hint}): build for x86-64", hint = if *.0 == EM_386 { ", i386" } else { "" })]
    Machine(u16),
    /// Dynamically linked.
    #[error("dynamically linked (PT_INTERP {0}): build with -static (or -static-pie)")]
    Dynamic(String),
    /// An object file, core dump or other non-executable.
    #[error("not an executable (e_type {0}): link it into a static executable")]
    NotExecutable(u16),
    /// Nothing to load.
    #[error("no loadable segments")]
    NoSegments,
    /// A segment outside the user address range, or overlapping another.
    #[error("segment at {va:#x} ({len:#x} bytes) is outside the user address range")]
    BadSegment {
        /// Its (biased) virtual address.
        va: u64,
        /// Its size in memory.
        len: u64,
    },
    /// A segment with more file bytes than memory bytes.
    #[error("segment at {va:#x} has more file bytes than memory bytes")]
    FileLargerThanMemory {
        /// Its virtual address.
        va: u64,
    },
    /// The segments together claim more file bytes than the file holds.
    #[error("malformed ELF: segments claim more file bytes than the file holds")]
    Amplified,
    /// The reader refused a header.
    #[error("malformed ELF: {0}")]
    Malformed(#[from] ReaderError),
}

/// A program ready to be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Segments at their final addresses.
    pub segments: Vec<Segment>,
    /// The entry point (`AT_ENTRY`).
    pub entry: u64,
    /// Where the program header table is in memory (`AT_PHDR`; 0 when no
    /// segment holds it).
    pub phdr: u64,
    /// `AT_PHENT`.
    pub phent: u64,
    /// `AT_PHNUM`.
    pub phnum: u64,
    /// The load bias (0 for `ET_EXEC`).
    pub bias: u64,
    /// First page after the highest segment: where the heap starts.
    pub end: u64,
    /// The file-backed part of each segment: `(first page, end of its
    /// file bytes rounded up to a page, file offset of the first page)`,
    /// as `/proc/self/maps` shows them.
    pub file_parts: Vec<(u64, u64, u64)>,
}

/// Whether `bytes` looks like a program this kind should be asked about:
/// any ELF file (the refusal, with its reason, comes when it is opened).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Reads the image in `bytes`; `random` picks the base of a
/// position-independent one.
pub fn parse(bytes: &[u8], random: u64) -> Result<Image, ImageError> {
    let elf = Elf::parse(bytes).map_err(|e| match e {
        ReaderError::NotElf => ImageError::NotElf,
        ReaderError::Class(_) | ReaderError::Encoding { class: 1, .. } => ImageError::Elf32,
        ReaderError::Truncated { class: Class::Elf32, .. } => ImageError::Elf32,
        e => ImageError::Malformed(e),
    })?;
    if elf.class() != Class::Elf64 {
        return Err(ImageError::Elf32);
    }
    if elf.machine() != EM_X86_64 {
        return Err(ImageError::Machine(elf.machine()));
    }
    let kind = elf.file_type();
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(ImageError::NotExecutable(kind));
    }
    if let Some(interp) = elf.interpreter()? {
        return Err(ImageError::Dynamic(String::from_utf8_lossy(interp).into_owned()));
    }
    let phoff = bytes.get(32..40).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
    let phent = bytes.get(54..56).and_then(|b| b.try_into().ok()).map_or(0, u16::from_le_bytes);
    let loads: Vec<_> = elf.program_headers()?.filter(|p| p.kind == PT_LOAD && p.memsz > 0).collect();
    let Some(first) = loads.iter().map(|p| p.vaddr.0).min() else { return Err(ImageError::NoSegments) };
    let bias = if kind == ET_DYN {
        let align = loads.iter().map(|p| p.align).filter(|a| a.is_power_of_two()).max().unwrap_or(PAGE_SIZE);
        let align = align.clamp(PAGE_SIZE, 1 << 30);
        let base = ET_DYN_BASE + (random % DYN_RANDOM_PAGES) * PAGE_SIZE;
        (base.div_ceil(align) * align).wrapping_sub(first & !(PAGE_SIZE - 1))
    } else {
        0
    };
    let (mut segments, mut file_bytes, mut end) = (Vec::new(), 0u64, 0u64);
    let mut file_parts = Vec::new();
    for ph in &loads {
        if ph.filesz > ph.memsz {
            return Err(ImageError::FileLargerThanMemory { va: ph.vaddr.0 });
        }
        let va = ph.vaddr.0.wrapping_add(bias);
        let seg_end = va.checked_add(ph.memsz).filter(|&e| e <= TASK_SIZE && va >= PAGE_SIZE);
        let Some(seg_end) = seg_end else { return Err(ImageError::BadSegment { va, len: ph.memsz }) };
        let data = elf.segment_data(ph)?;
        file_bytes += ph.filesz;
        if file_bytes > bytes.len() as u64 {
            return Err(ImageError::Amplified);
        }
        segments.push(Segment {
            va,
            bytes: data.to_vec(),
            mem_len: ph.memsz,
            write: ph.flags & PF_W != 0,
            exec: ph.flags & PF_X != 0,
        });
        end = end.max(seg_end.div_ceil(PAGE_SIZE) * PAGE_SIZE);
        if ph.filesz > 0 {
            let first = va & !(PAGE_SIZE - 1);
            let file_end = (va + ph.filesz).div_ceil(PAGE_SIZE) * PAGE_SIZE;
            file_parts.push((first, file_end, ph.offset & !(PAGE_SIZE - 1)));
        }
    }
    // AT_PHDR: the PT_PHDR entry, else the load segment whose file bytes
    // hold the table (Linux does the same).
    let phdr = elf
        .program_headers()?
        .find(|p| p.kind == PT_PHDR)
        .map(|p| p.vaddr.0.wrapping_add(bias))
        .or_else(|| {
            loads
                .iter()
                .find(|p| p.offset <= phoff && phoff < p.offset.saturating_add(p.filesz))
                .map(|p| p.vaddr.0.wrapping_add(bias) + (phoff - p.offset))
        })
        .unwrap_or(0);
    Ok(Image {
        segments,
        entry: elf.entry().0.wrapping_add(bias),
        phdr,
        phent: u64::from(phent),
        phnum: u64::from(elf.phnum()),
        bias,
        end,
        file_parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::elf_program::build_elf;

    #[test]
    fn an_executable_loads_where_it_says() {
        let img = build_elf(0x40_1000, &[(0x40_1000, &[0x90; 16], 16, PF_X | 4), (0x60_0000, b"d", 0x3000, PF_W | 4)]);
        let i = parse(&img, 12345).unwrap();
        assert_eq!((i.entry, i.bias), (0x40_1000, 0));
        assert_eq!(i.segments[1].va, 0x60_0000);
        assert_eq!(i.end, 0x60_3000);
        assert_eq!((i.phent, i.phnum), (56, 3));
    }

    #[test]
    fn a_pie_moves_to_a_random_page_aligned_base() {
        let mut img = build_elf(0x1000, &[(0x0, &[0x90; 16], 16, PF_X | 4), (0x2000, b"d", 0x1000, PF_W | 4)]);
        img[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        let a = parse(&img, 1).unwrap();
        let b = parse(&img, 2).unwrap();
        assert_ne!(a.bias, b.bias);
        assert!(a.bias >= ET_DYN_BASE && a.bias % PAGE_SIZE == 0);
        assert_eq!(a.entry, a.bias + 0x1000);
        assert_eq!(a.segments[1].va, a.bias + 0x2000);
        // The table is in the first segment's file bytes? It is not here
        // (the first segment starts after it), so AT_PHDR is 0.
        assert_eq!(a.phdr, 0);
    }

    #[test]
    fn refusals_say_why_and_what_to_do() {
        assert_eq!(parse(b"#!/bin/sh\n", 0).unwrap_err(), ImageError::NotElf);
        let mut img = build_elf(0x40_1000, &[(0x40_1000, &[0x90], 1, PF_X)]);
        img[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert!(parse(&img, 0).unwrap_err().to_string().contains("another architecture"));
        let mut img = build_elf(0x40_1000, &[(0x40_1000, &[0x90], 1, PF_X)]);
        img[16..18].copy_from_slice(&1u16.to_le_bytes());
        assert!(matches!(parse(&img, 0), Err(ImageError::NotExecutable(1))));
        assert_eq!(parse(b"\x7fELF\x01\x01\x01", 0).unwrap_err(), ImageError::Elf32);
        // A segment reaching past TASK_SIZE.
        let img = build_elf(0x40_1000, &[(TASK_SIZE - 0x1000, &[0x90], 0x2000, PF_X)]);
        assert!(matches!(parse(&img, 0), Err(ImageError::BadSegment { .. })));
    }

    #[test]
    fn a_dynamic_program_is_refused_with_its_interpreter() {
        // PT_INTERP pointing at a path inside the file.
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        let mut img = build_elf(0x40_1000, &[(0x40_1000, interp, interp.len() as u64, PF_X | 4)]);
        // Turn the note entry (after the one segment) into PT_INTERP over
        // the segment's bytes.
        let h = 64 + 56;
        let off = u64::from_le_bytes(img[64 + 8..64 + 16].try_into().unwrap());
        img[h..h + 4].copy_from_slice(&3u32.to_le_bytes());
        img[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
        img[h + 32..h + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes());
        let e = parse(&img, 0).unwrap_err().to_string();
        assert!(e.contains("dynamically linked (PT_INTERP /lib64/ld-linux-x86-64.so.2)"), "{e}");
        assert!(e.contains("-static"), "{e}");
    }
}
