//! Multiboot v1 kernels: the header, and the image's segments at their
//! physical addresses (ELF32, ELF64, or the header's a.out-kludge
//! addresses).
//!
//! The ELF structures are read by the VMM's one ELF reader
//! ([`crate::elf`]); the multiboot header and the a.out kludge, which are
//! not ELF, are read here.
//!
//! This module only *parses*: it turns the file into a list of
//! [`Segment`]s and an entry point, each checked against the file's size.
//! Checking them against guest memory and copying them is [`super::load`]'s
//! job; the information block is [`super::info`]'s.

use std::ops::Range;

use thiserror::Error;

use crate::elf::fields::u32_at;
use crate::elf::{Class, Elf, EM_386, EM_X86_64, PT_LOAD};

/// The magic a multiboot v1 header starts with.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// What the boot loader leaves in EAX.
pub const BOOT_MAGIC: u32 = 0x2bad_b002;
/// The header must lie entirely in the file's first 8 KiB.
pub const SEARCH_LEN: usize = 8192;

/// Header flag: modules page aligned.
pub const FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: memory information wanted.
pub const FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Header flag: video mode information wanted (not supported here).
pub const FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Header flag: the a.out-kludge address fields are valid.
pub const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Required-feature bits (0–15) this loader honours.
const SUPPORTED_REQUIRED: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO;

/// Errors parsing a multiboot kernel.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MultibootError {
    /// No header with a valid checksum in the first 8 KiB.
    #[error("no multiboot v1 header (magic {HEADER_MAGIC:#x} with a valid checksum) in the first 8 KiB")]
    NoHeader,
    /// The header asks for something this loader does not provide.
    #[error("the multiboot header requires features {0:#x} this loader does not provide (video mode information)")]
    UnsupportedFlags(u32),
    /// Not ELF and no a.out-kludge addresses.
    #[error("the kernel is not ELF and its multiboot header has no load addresses (flag 16)")]
    NotElf,
    /// An ELF structure is malformed.
    #[error("bad ELF kernel: {0}")]
    BadElf(String),
    /// The a.out-kludge addresses are inconsistent.
    #[error("bad multiboot load addresses: {0}")]
    BadKludge(String),
    /// No loadable segment.
    #[error("the kernel has no loadable segment")]
    Empty,
    /// The entry point lies outside every segment or above 4 GiB.
    #[error("the entry point {0:#x} is not inside a loaded segment below 4 GiB")]
    BadEntry(u64),
}

/// One piece of the image to place in guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub paddr: u64,
    /// Bytes of the file copied there.
    pub file: Range<usize>,
    /// Bytes occupied in memory (the rest after the file bytes is zeroed).
    pub mem_size: u64,
}

impl Segment {
    /// Exclusive guest-physical end.
    pub fn end(&self) -> u64 {
        self.paddr.saturating_add(self.mem_size)
    }
}

/// A parsed kernel: what to copy where, and where to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Header flags.
    pub flags: u32,
    /// Segments, sorted by address, not overlapping.
    pub segments: Vec<Segment>,
    /// Guest-physical entry point (32-bit protected mode).
    pub entry: u32,
}

/// Finds the header: its offset in the file and its flags.
pub fn find_header(bytes: &[u8]) -> Option<(usize, u32)> {
    let limit = bytes.len().min(SEARCH_LEN);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let magic = u32_at(bytes, off)?;
        let flags = u32_at(bytes, off + 4)?;
        let sum = u32_at(bytes, off + 8)?;
        (magic == HEADER_MAGIC && magic.wrapping_add(flags).wrapping_add(sum) == 0).then_some((off, flags))
    })
}

/// Parses a multiboot v1 kernel image.
pub fn parse(bytes: &[u8]) -> Result<Kernel, MultibootError> {
    let (hdr, flags) = find_header(bytes).ok_or(MultibootError::NoHeader)?;
    let unsupported = flags & 0xffff & !SUPPORTED_REQUIRED;
    if unsupported != 0 {
        return Err(MultibootError::UnsupportedFlags(unsupported));
    }
    let (segments, entry) = if bytes.starts_with(b"\x7fELF") {
        elf_segments(bytes)?
    } else if flags & FLAG_AOUT_KLUDGE != 0 {
        kludge_segments(bytes, hdr)?
    } else {
        return Err(MultibootError::NotElf);
    };
    let mut segments: Vec<Segment> = segments.into_iter().filter(|s| s.mem_size > 0).collect();
    if segments.is_empty() {
        return Err(MultibootError::Empty);
    }
    segments.sort_by_key(|s| s.paddr);
    for w in segments.windows(2) {
        if w[0].end() > w[1].paddr {
            return Err(MultibootError::BadElf(format!("segments at {:#x} and {:#x} overlap", w[0].paddr, w[1].paddr)));
        }
    }
    let entry = u32::try_from(entry).map_err(|_| MultibootError::BadEntry(entry))?;
    if !segments.iter().any(|s| (s.paddr..s.end()).contains(&u64::from(entry))) {
        return Err(MultibootError::BadEntry(u64::from(entry)));
    }
    Ok(Kernel { flags, segments, entry })
}

/// Segments from the a.out-kludge fields (header offsets 12..32).
fn kludge_segments(bytes: &[u8], hdr: usize) -> Result<(Vec<Segment>, u64), MultibootError> {
    let bad = |m: &str| MultibootError::BadKludge(m.into());
    let field = |i: usize| u32_at(bytes, hdr + 12 + 4 * i).ok_or_else(|| bad("header truncated"));
    let (header_addr, load_addr, load_end, bss_end, entry) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if load_addr > header_addr {
        return Err(bad("load_addr is above header_addr"));
    }
    // The file offset that load_addr corresponds to.
    let start = (hdr as u64)
        .checked_sub(u64::from(header_addr - load_addr))
        .ok_or_else(|| bad("load_addr before file start"))?;
    let file_len = bytes.len() as u64 - start;
    let load_len = if load_end == 0 {
        file_len
    } else {
        u64::from(load_end.checked_sub(load_addr).ok_or_else(|| bad("load_end_addr below load_addr"))?)
    };
    if load_len > file_len {
        return Err(bad("load_end_addr lies beyond the end of the file"));
    }
    let mem_end = if bss_end == 0 { u64::from(load_addr) + load_len } else { u64::from(bss_end) };
    if mem_end < u64::from(load_addr) + load_len {
        return Err(bad("bss_end_addr below load_end_addr"));
    }
    let seg = Segment {
        paddr: u64::from(load_addr),
        file: start as usize..(start + load_len) as usize,
        mem_size: mem_end - u64::from(load_addr),
    };
    Ok((vec![seg], u64::from(entry)))
}

/// Most program headers read (a kernel has a handful).
const MAX_PHDRS: u16 = 256;

/// `PT_LOAD` segments at their physical addresses, and the entry point
/// translated from its virtual address to the physical one. The ELF
/// structures are read by the VMM's one reader ([`crate::elf`]); the
/// checks here are multiboot's.
fn elf_segments(bytes: &[u8]) -> Result<(Vec<Segment>, u64), MultibootError> {
    let bad = |m: String| MultibootError::BadElf(m);
    let elf = Elf::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let machine = elf.machine();
    if machine != if elf.class() == Class::Elf64 { EM_X86_64 } else { EM_386 } {
        return Err(bad(format!("machine {machine} is not x86 for this class")));
    }
    if elf.phnum() > MAX_PHDRS {
        return Err(bad(format!("{} program headers, more than {MAX_PHDRS}", elf.phnum())));
    }
    let entry = elf.entry().0;
    let mut segs = Vec::new();
    let mut entry_pa = None;
    for ph in elf.program_headers().map_err(|e| bad(e.to_string()))? {
        if ph.kind != PT_LOAD {
            continue;
        }
        let (i, p_vaddr, p_paddr, p_filesz, p_memsz) = (ph.index, ph.vaddr.0, ph.paddr.0, ph.filesz, ph.memsz);
        if p_filesz > p_memsz {
            return Err(bad(format!("segment {i}: file size {p_filesz:#x} exceeds memory size {p_memsz:#x}")));
        }
        let file = elf.segment_range(&ph).map_err(|e| bad(e.to_string()))?;
        if p_paddr.checked_add(p_memsz).is_none_or(|e| e > 1 << 52) || p_vaddr.checked_add(p_memsz).is_none() {
            return Err(bad(format!("segment {i}: address {p_paddr:#x} + {p_memsz:#x} is out of range")));
        }
        if (p_vaddr..p_vaddr + p_memsz).contains(&entry) {
            entry_pa = Some(entry - p_vaddr + p_paddr);
        }
        segs.push(Segment { paddr: p_paddr, file, mem_size: p_memsz });
    }
    Ok((segs, entry_pa.unwrap_or(entry)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF32 multiboot kernel: one PT_LOAD of `code` at `pa`
    /// with `bss` extra bytes, entry at its start.
    pub(crate) fn elf32(pa: u32, code: &[u8], bss: u32) -> Vec<u8> {
        let mut f = vec![0u8; 0x100];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&EM_386.to_le_bytes());
        f[24..28].copy_from_slice(&pa.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&1u16.to_le_bytes());
        let ph = 52;
        let body = 0x100u32;
        let len = code.len() as u32 + 12;
        for (i, v) in [PT_LOAD, body, pa, pa, len, len + bss, 5, 0x1000].iter().enumerate() {
            f[ph + 4 * i..ph + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        // Multiboot header first in the segment, then the code.
        for v in [HEADER_MAGIC, 0, 0u32.wrapping_sub(HEADER_MAGIC)] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(code);
        // Entry after the header.
        f[24..28].copy_from_slice(&(pa + 12).to_le_bytes());
        f
    }

    #[test]
    fn parses_elf32() {
        let img = elf32(0x10_0000, &[0xf4; 20], 0x1000);
        let k = parse(&img).unwrap();
        assert_eq!(k.entry, 0x10_000c);
        assert_eq!(k.segments, vec![Segment { paddr: 0x10_0000, file: 0x100..0x100 + 32, mem_size: 32 + 0x1000 }]);
    }

    #[test]
    fn header_needs_checksum_and_first_8k() {
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        img[0x108] ^= 1;
        assert_eq!(parse(&img), Err(MultibootError::NoHeader));
        // A valid header beyond 8 KiB is not found.
        let mut far = vec![0u8; SEARCH_LEN];
        for v in [HEADER_MAGIC, 0, 0u32.wrapping_sub(HEADER_MAGIC)] {
            far.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(find_header(&far), None);
        // A header ending exactly at 8 KiB is found.
        let mut edge = vec![0u8; SEARCH_LEN - 12];
        for v in [HEADER_MAGIC, 0, 0u32.wrapping_sub(HEADER_MAGIC)] {
            edge.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(find_header(&edge), Some((SEARCH_LEN - 12, 0)));
        assert_eq!(parse(&[]), Err(MultibootError::NoHeader));
    }

    #[test]
    fn refuses_video_mode_flag() {
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        let flags = FLAG_VIDEO_MODE;
        img[0x104..0x108].copy_from_slice(&flags.to_le_bytes());
        img[0x108..0x10c].copy_from_slice(&0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)).to_le_bytes());
        assert_eq!(parse(&img), Err(MultibootError::UnsupportedFlags(FLAG_VIDEO_MODE)));
    }

    #[test]
    fn segment_outside_file_is_refused() {
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        // p_filesz beyond the file.
        img[52 + 16..52 + 20].copy_from_slice(&0x10_0000u32.to_le_bytes());
        img[52 + 20..52 + 24].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(parse(&img), Err(MultibootError::BadElf(m)) if m.contains("outside the file")));
        // filesz > memsz.
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        img[52 + 20..52 + 24].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(parse(&img), Err(MultibootError::BadElf(m)) if m.contains("exceeds")));
        // Program headers beyond the file.
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        img[28..32].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(parse(&img), Err(MultibootError::BadElf(m)) if m.contains("outside the file")));
    }

    #[test]
    fn entry_must_be_loaded() {
        let mut img = elf32(0x10_0000, &[0x90; 4], 0);
        img[24..28].copy_from_slice(&0x20_0000u32.to_le_bytes());
        assert_eq!(parse(&img), Err(MultibootError::BadEntry(0x20_0000)));
    }

    #[test]
    fn aout_kludge() {
        // Header at offset 0, file loaded at 0x20_0000, 0x100 bytes of bss.
        let flags = FLAG_AOUT_KLUDGE | FLAG_MEMORY_INFO;
        let mut f = Vec::new();
        for v in [HEADER_MAGIC, flags, 0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags))] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0x20_0000u32, 0x20_0000, 0, 0x20_0000 + 0x200, 0x20_0020] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.resize(0x100, 0x90);
        let k = parse(&f).unwrap();
        assert_eq!(k.entry, 0x20_0020);
        assert_eq!(k.segments, vec![Segment { paddr: 0x20_0000, file: 0..0x100, mem_size: 0x200 }]);
        // load_end beyond the file.
        f[20..24].copy_from_slice(&0x20_1000u32.to_le_bytes());
        assert!(matches!(parse(&f), Err(MultibootError::BadKludge(_))));
        // Not ELF, no kludge flag.
        let flags = 0u32;
        f[4..8].copy_from_slice(&flags.to_le_bytes());
        f[8..12].copy_from_slice(&0u32.wrapping_sub(HEADER_MAGIC).to_le_bytes());
        assert_eq!(parse(&f), Err(MultibootError::NotElf));
    }

    /// Random corruptions of a valid kernel: never a panic, and whatever
    /// parses stays inside the file with its entry inside a segment.
    #[test]
    fn corrupted_images_parse_safely() {
        let base = elf32(0x10_0000, &[0x90; 64], 0x100);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut img = base.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % img.len() as u64) as usize;
                img[i] = next() as u8;
            }
            if next() % 8 == 0 {
                img.truncate((next() % img.len() as u64) as usize);
            }
            if let Ok(k) = parse(&img) {
                for s in &k.segments {
                    assert!(s.file.end <= img.len() && s.file.start <= s.file.end);
                    assert!(s.file.len() as u64 <= s.mem_size);
                }
                assert!(k.segments.iter().any(|s| (s.paddr..s.end()).contains(&u64::from(k.entry))));
                assert!(k.segments.windows(2).all(|w| w[0].end() <= w[1].paddr));
            }
        }
    }

    #[test]
    fn parses_the_real_flat_files_if_present() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/testguests/kvm-unit-tests/x86/dummy.flat");
        let Ok(bytes) = std::fs::read(&p) else {
            eprintln!("skipped: {} is absent", p.display());
            return;
        };
        let k = parse(&bytes).unwrap();
        assert_eq!(k.segments.len(), 2);
        assert_eq!(k.segments[0].paddr, 0x4000b0);
        assert!(k.segments.iter().any(|s| (s.paddr..s.end()).contains(&u64::from(k.entry))));
    }
}
