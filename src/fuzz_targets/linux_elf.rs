//! The Linux ELF target: a file through the Linux kind's image reader
//! (`guest::kinds::linux::image::parse`, what `vmm run` does with a
//! static program) and its constructor (`Linux::detached`), checked
//! against a reading of the headers of its own (a few fixed offsets of
//! the ELF64 header and program header table, nothing of the VMM's
//! reader):
//!
//! - a refusal names a reason that matches the file (no magic: not ELF;
//!   `NotExecutable`/`Machine` carry the header's own field; `Dynamic`
//!   only with a `PT_INTERP` entry) and has a message;
//! - an image has one segment per `PT_LOAD` entry with memory bytes, in
//!   order, at its address plus the bias, with the entry's file bytes and
//!   rights; every segment lies in `[PAGE_SIZE, TASK_SIZE)` and holds no
//!   more file bytes than memory bytes, and all of them together no more
//!   than the file;
//! - the bias is 0 for `ET_EXEC`, a page multiple at or above
//!   `ET_DYN_BASE` for `ET_DYN`; the entry and `AT_PHDR` are the header's
//!   plus the bias; `end` is the page-aligned end of the highest segment;
//!   another random base moves everything by the difference only;
//! - an image whose pages fit the load region loads into a fresh guest as
//!   the ELF target checks (`super::elf::check_loaded`).

use vm_memory::GuestAddress;
use vmm::guest::kinds::linux::image::{self, Image, ImageError, ET_DYN, ET_DYN_BASE, TASK_SIZE};
use vmm::guest::kinds::linux::Linux;
use vmm::hosted::mapper::Mapper;
use vmm::hosted::program::{load, Program};
use vmm::layout::{LOAD_PA, LOAD_SIZE, MIN_MEM_SIZE, PAGE_SIZE};
use vmm::memory::{create_guest_memory, BootFrames};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// One program header, read with plain loads.
#[derive(Clone, Copy, Debug)]
struct Ph {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
}

/// The program headers the file's header points at (as far as the file
/// holds them; an image that parsed has them all).
fn program_headers(b: &[u8]) -> Vec<Ph> {
    let (Some(phoff), Some(phent), Some(phnum)) = (u64_at(b, 32), u16_at(b, 54), u16_at(b, 56)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..u64::from(phnum) {
        let Some(at) = phoff.checked_add(i * u64::from(phent)).and_then(|a| usize::try_from(a).ok()) else { break };
        let ph = (|| {
            Some(Ph {
                kind: u32_at(b, at)?,
                flags: u32_at(b, at + 4)?,
                offset: u64_at(b, at + 8)?,
                vaddr: u64_at(b, at + 16)?,
                filesz: u64_at(b, at + 32)?,
                memsz: u64_at(b, at + 40)?,
            })
        })();
        match ph {
            Some(ph) if phent >= 56 => out.push(ph),
            _ => break,
        }
    }
    out
}

/// Runs one input.
pub fn linux_elf(data: &[u8]) {
    let parsed = image::parse(data, 0);
    // The constructor the fuzz and test harnesses use refuses exactly
    // what the reader refuses.
    assert_eq!(Linux::detached("fuzz", data, 0).is_ok(), parsed.is_ok(), "Linux::detached agrees with parse");
    match parsed {
        Err(e) => check_refusal(data, &e),
        Ok(img) => {
            check_image(data, &img);
            let other = image::parse(data, 0x1234_5678).expect("a file that parsed parses with another base");
            check_rebased(data, &img, &other);
            check_loads(&img);
        }
    }
}

fn check_refusal(data: &[u8], e: &ImageError) {
    assert!(!e.to_string().is_empty(), "a refusal says why");
    assert_eq!(matches!(e, ImageError::NotElf), !image::is_elf(data), "NotElf exactly without the magic: {e}");
    match e {
        ImageError::NotExecutable(t) => {
            assert_eq!(Some(*t), u16_at(data, 16), "e_type in the message");
            assert!(*t != ET_EXEC && *t != ET_DYN, "an executable type refused as one: {t}");
        }
        ImageError::Machine(m) => {
            assert_eq!(Some(*m), u16_at(data, 18), "e_machine in the message");
            assert_ne!(*m, EM_X86_64, "x86-64 refused as another architecture");
        }
        ImageError::Dynamic(_) => {
            assert!(program_headers(data).iter().any(|p| p.kind == PT_INTERP), "Dynamic without PT_INTERP");
        }
        _ => {}
    }
}

fn check_image(data: &[u8], img: &Image) {
    let e_type = u16_at(data, 16).expect("header");
    let phs = program_headers(data);
    let loads: Vec<&Ph> = phs.iter().filter(|p| p.kind == PT_LOAD && p.memsz > 0).collect();
    assert!(!img.segments.is_empty(), "an image has segments");
    assert_eq!(img.segments.len(), loads.len(), "one segment per PT_LOAD with memory bytes");
    match e_type {
        ET_EXEC => assert_eq!(img.bias, 0, "ET_EXEC is not moved"),
        ET_DYN => {
            assert!(img.bias.is_multiple_of(PAGE_SIZE), "bias {:#x} page aligned", img.bias);
            let low = loads.iter().map(|p| p.vaddr & !(PAGE_SIZE - 1)).min().expect("segments");
            assert!(low.wrapping_add(img.bias) >= ET_DYN_BASE, "a PIE starts at or above ET_DYN_BASE");
        }
        t => panic!("e_type {t} accepted"),
    }
    let mut file_bytes = 0u64;
    let mut end = 0u64;
    for (s, p) in img.segments.iter().zip(&loads) {
        assert_eq!(s.va, p.vaddr.wrapping_add(img.bias), "segment address is the header's plus the bias");
        assert_eq!(s.mem_len, p.memsz, "memory size of {:#x}", s.va);
        let seg_end = s.va.checked_add(s.mem_len).expect("segment end does not wrap");
        assert!(
            s.va >= PAGE_SIZE && seg_end <= TASK_SIZE,
            "segment {:#x}+{:#x} outside [PAGE_SIZE, TASK_SIZE)",
            s.va,
            s.mem_len
        );
        assert!(s.bytes.len() as u64 <= s.mem_len, "more file bytes than memory bytes at {:#x}", s.va);
        assert_eq!(s.bytes.len() as u64, p.filesz, "file size of {:#x}", s.va);
        let from = usize::try_from(p.offset).expect("offset inside the file");
        assert!(data.get(from..from + s.bytes.len()) == Some(&s.bytes[..]), "the file's bytes at {:#x}", s.va);
        assert_eq!(s.write, p.flags & 2 != 0, "write right of {:#x}", s.va);
        assert_eq!(s.exec, p.flags & 1 != 0, "exec right of {:#x}", s.va);
        file_bytes += s.bytes.len() as u64;
        end = end.max(seg_end.div_ceil(PAGE_SIZE) * PAGE_SIZE);
    }
    assert!(file_bytes <= data.len() as u64, "segments hold more bytes than the file");
    assert!(img.end.is_multiple_of(PAGE_SIZE), "end {:#x} page aligned", img.end);
    assert_eq!(img.end, end, "end is the page after the highest segment");
    assert_eq!(img.entry, u64_at(data, 24).expect("e_entry").wrapping_add(img.bias), "entry plus bias");
    assert_eq!(img.phent, u64::from(u16_at(data, 54).expect("e_phentsize")), "AT_PHENT");
    assert_eq!(img.phnum, u64::from(u16_at(data, 56).expect("e_phnum")), "AT_PHNUM");
    let phoff = u64_at(data, 32).expect("e_phoff");
    let phdr = match phs.iter().find(|p| p.kind == PT_PHDR) {
        Some(p) => p.vaddr.wrapping_add(img.bias),
        None => loads
            .iter()
            .find(|p| p.offset <= phoff && phoff - p.offset < p.filesz)
            .map_or(0, |p| p.vaddr.wrapping_add(img.bias) + (phoff - p.offset)),
    };
    assert_eq!(img.phdr, phdr, "AT_PHDR");
    let parts: Vec<_> = img.segments.iter().filter(|s| !s.bytes.is_empty()).collect();
    assert_eq!(img.file_parts.len(), parts.len(), "one file part per segment with file bytes");
    for (&(first, file_end, _), s) in img.file_parts.iter().zip(parts) {
        assert_eq!(first, s.va & !(PAGE_SIZE - 1), "file part start");
        assert!(file_end.is_multiple_of(PAGE_SIZE) && file_end >= s.va + s.bytes.len() as u64, "file part end");
        assert!(file_end <= img.end, "file part inside the image");
    }
}

/// Another random base moves a PIE as a whole and an executable not at all.
fn check_rebased(data: &[u8], a: &Image, b: &Image) {
    let d = b.bias.wrapping_sub(a.bias);
    if u16_at(data, 16) == Some(ET_EXEC) {
        assert_eq!(a, b, "an executable's image does not depend on the random base");
        return;
    }
    assert_eq!(a.segments.len(), b.segments.len());
    for (x, y) in a.segments.iter().zip(&b.segments) {
        assert_eq!(y.va, x.va.wrapping_add(d), "segments move by the bias difference");
        assert_eq!((&x.bytes, x.mem_len, x.write, x.exec), (&y.bytes, y.mem_len, y.write, y.exec));
    }
    assert_eq!(b.entry, a.entry.wrapping_add(d), "entry moves with the image");
    assert_eq!(b.end, a.end.wrapping_add(d), "end moves with the image");
}

/// Loads an image small enough for the load region into a fresh guest and
/// checks it by walking the tables.
fn check_loads(img: &Image) {
    let pages: u64 = img.segments.iter().map(|s| (s.va % PAGE_SIZE + s.mem_len).div_ceil(PAGE_SIZE)).sum();
    if pages > LOAD_SIZE / PAGE_SIZE {
        return;
    }
    let prog = Program { segments: img.segments.clone(), entry: img.entry };
    let mem = create_guest_memory(MIN_MEM_SIZE).expect("guest memory");
    let mut mapper = Mapper::new(mem.clone()).expect("address space");
    let mut frames = BootFrames::new(GuestAddress(LOAD_PA), GuestAddress(LOAD_PA + LOAD_SIZE));
    if load(&prog, &mem, &mut frames, &mut mapper).is_err() {
        return;
    }
    super::elf::check_loaded(&prog, &mem, mapper.cr3());
}
