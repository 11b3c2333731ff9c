//! The ELF reader target: any file through `vmm::elf` (header, program
//! header table, every segment's range, the notes, the interpreter) and
//! through the multiboot parser that sits on it. What the reader returns
//! is checked against an independent decoding of the same bytes here, and
//! against its bounds: the program header table and the notes it reads,
//! and everything it hands out lying inside the file.

use vmm::elf::{Class, Elf, ElfError, INTERP_MAX, NOTE_BYTES_MAX, PHDR_TABLE_MAX, PT_INTERP};
use vmm::guest::kinds::multiboot::header;

/// The little-endian integer of `n` bytes at `off`, read independently of
/// the reader (`None` outside `data`).
fn le(data: &[u8], off: u64, n: usize) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let s = data.get(off..off.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)))
}

/// Whether `part` is a view of `data` (not a copy, not outside it).
fn inside(data: &[u8], part: &[u8]) -> bool {
    let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
    let p = part.as_ptr() as usize;
    part.is_empty() || (p >= start && p + part.len() <= end)
}

/// Runs one input.
pub fn elf_reader(data: &[u8]) {
    reader(data);
    multiboot_kernel(data);
}

fn reader(data: &[u8]) {
    let len = data.len() as u64;
    let elf = match Elf::parse(data) {
        Ok(e) => e,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error says what is wrong");
            return;
        }
    };
    let (class, entry_at, phoff_at, phent_at, width) = match elf.class() {
        Class::Elf32 => (1u8, 24, 28, 42, 4),
        Class::Elf64 => (2, 24, 32, 54, 8),
    };
    assert_eq!(data[4], class, "the class is EI_CLASS");
    assert_eq!(le(data, entry_at, width), Some(elf.entry().0), "e_entry");
    assert_eq!(le(data, 18, 2), Some(u64::from(elf.machine())), "e_machine");
    let phoff = le(data, phoff_at, width).expect("e_phoff inside the header");
    let phentsize = le(data, phent_at, 2).expect("e_phentsize");
    let phnum = le(data, phent_at + 2, 2).expect("e_phnum");

    match elf.program_headers() {
        Ok(headers) => {
            assert!(phnum * phentsize <= PHDR_TABLE_MAX, "table within its bound");
            assert!(phoff + phnum * phentsize <= len, "table inside the file");
            assert_eq!(headers.len() as u64, phnum, "one entry per e_phnum");
            for ph in headers {
                let at = phoff + u64::from(ph.index) * phentsize;
                let (filesz, memsz) = match elf.class() {
                    Class::Elf32 => (le(data, at + 16, 4), le(data, at + 20, 4)),
                    Class::Elf64 => (le(data, at + 32, 8), le(data, at + 40, 8)),
                };
                assert_eq!(le(data, at, 4), Some(u64::from(ph.kind)), "p_type of {}", ph.index);
                assert_eq!((filesz, memsz), (Some(ph.filesz), Some(ph.memsz)), "sizes of {}", ph.index);
                match elf.segment_data(&ph) {
                    Ok(bytes) => {
                        assert!(inside(data, bytes), "segment bytes are a view of the file");
                        assert_eq!(bytes.len() as u64, ph.filesz);
                        assert_eq!(bytes.as_ptr() as usize - data.as_ptr() as usize, ph.offset as usize);
                    }
                    Err(e) => assert!(matches!(e, ElfError::SegmentOutside { .. }), "{e}"),
                }
            }
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    ElfError::EntrySize { .. } | ElfError::TableTooLarge { .. } | ElfError::TableOutside { .. }
                ),
                "{e}"
            );
            return;
        }
    }

    let Ok(mut notes) = elf.notes() else { panic!("the table read once reads again") };
    let mut count = 0u64;
    for n in notes.by_ref() {
        let Ok(n) = n else { break };
        count += 1;
        assert!(inside(data, n.name) && inside(data, n.desc), "notes are views of the file");
        assert_eq!(le(data, n.at, 4), Some(n.name.len() as u64), "namesz");
        assert_eq!(le(data, n.at + 8, 4), Some(u64::from(n.kind)), "type");
    }
    assert!(notes.examined() <= NOTE_BYTES_MAX, "note budget");
    // Every note has a 12-byte header inside the budget.
    assert!(count <= NOTE_BYTES_MAX / 12, "{count} notes");
    assert_eq!(notes.next(), None, "nothing after the end or an error");

    match elf.interpreter() {
        Ok(Some(path)) => {
            assert!(inside(data, path) && path.len() as u64 <= INTERP_MAX && !path.contains(&0));
            let mut hs = elf.program_headers().expect("checked above");
            assert!(hs.any(|p| p.kind == PT_INTERP));
        }
        Ok(None) => assert!(elf.program_headers().expect("checked above").all(|p| p.kind != PT_INTERP)),
        Err(e) => assert!(matches!(e, ElfError::InterpTooLong { .. } | ElfError::SegmentOutside { .. }), "{e}"),
    }
}

/// The multiboot parser over the reader: what parses stays inside the
/// file, sorted and disjoint, with the entry in a segment.
fn multiboot_kernel(data: &[u8]) {
    let Ok(k) = header::parse(data) else { return };
    for s in &k.segments {
        assert!(s.file.start <= s.file.end && s.file.end <= data.len(), "segment file bytes inside the file");
        assert!(s.file.len() as u64 <= s.mem_size, "file bytes fit the memory size");
    }
    assert!(k.segments.windows(2).all(|w| w[0].end() <= w[1].paddr), "sorted, not overlapping");
    assert!(k.segments.iter().any(|s| (s.paddr..s.end()).contains(&u64::from(k.entry))), "entry in a segment");
}
