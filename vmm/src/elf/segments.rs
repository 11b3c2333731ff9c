//! The program header table and the segments it describes: the table is
//! checked as a whole (entry size, at most [`PHDR_TABLE_MAX`] bytes,
//! inside the file) before any entry is read, so iterating it costs at
//! most 64 KiB of reads and allocates nothing; a segment's bytes are
//! handed out only after its range is checked against the file.

use std::ops::Range;

use vm_memory::GuestAddress;

use super::error::ElfError;
use super::fields::{u32_at, u64_at};
use super::header::Elf;
use super::types::{Class, VirtAddr};

/// The largest program header table read (Linux's loader refuses larger
/// ones too): 1,170 64-bit entries.
pub const PHDR_TABLE_MAX: u64 = 64 << 10;
/// The longest `PT_INTERP` path read (`PATH_MAX`).
pub const INTERP_MAX: u64 = 4096;

/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type` of the interpreter path of a dynamically linked program.
pub const PT_INTERP: u32 = 3;
/// `p_type` of a segment of notes.
pub const PT_NOTE: u32 = 4;
/// `p_flags` bit: executable.
pub const PF_X: u32 = 1;
/// `p_flags` bit: writable.
pub const PF_W: u32 = 2;
/// `p_flags` bit: readable.
pub const PF_R: u32 = 4;

/// One program header, the same for both classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Its index in the table (for messages).
    pub index: u16,
    /// `p_type` ([`PT_LOAD`], [`PT_INTERP`], [`PT_NOTE`], ...).
    pub kind: u32,
    /// `p_flags` ([`PF_X`], [`PF_W`], [`PF_R`]).
    pub flags: u32,
    /// `p_offset`: where its bytes start in the file (unchecked; see
    /// [`Elf::segment_range`]).
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: VirtAddr,
    /// `p_paddr`: the physical load address (multiboot kernels use it).
    pub paddr: GuestAddress,
    /// `p_filesz`: bytes in the file.
    pub filesz: u64,
    /// `p_memsz`: bytes in memory.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

/// The entries of a checked program header table, in order.
#[derive(Clone, Debug)]
pub struct ProgramHeaders<'a> {
    table: &'a [u8],
    class: Class,
    stride: usize,
    next: u16,
    count: u16,
}

impl Iterator for ProgramHeaders<'_> {
    type Item = ProgramHeader;

    fn next(&mut self) -> Option<ProgramHeader> {
        if self.next >= self.count {
            return None;
        }
        let index = self.next;
        self.next += 1;
        // The table was checked to hold `count` entries of `stride` bytes,
        // each at least the class's header size: every read is inside it.
        let ph = self.table.get(usize::from(index) * self.stride..)?;
        let w = |off: usize| u32_at(ph, off).unwrap_or_default();
        let d = |off: usize| u64_at(ph, off).unwrap_or_default();
        Some(match self.class {
            Class::Elf32 => ProgramHeader {
                index,
                kind: w(0),
                offset: w(4).into(),
                vaddr: VirtAddr(w(8).into()),
                paddr: GuestAddress(w(12).into()),
                filesz: w(16).into(),
                memsz: w(20).into(),
                flags: w(24),
                align: w(28).into(),
            },
            Class::Elf64 => ProgramHeader {
                index,
                kind: w(0),
                flags: w(4),
                offset: d(8),
                vaddr: VirtAddr(d(16)),
                paddr: GuestAddress(d(24)),
                filesz: d(32),
                memsz: d(40),
                align: d(48),
            },
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.count - self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for ProgramHeaders<'_> {}

impl<'a> Elf<'a> {
    /// The program header table, after checking that its entries are at
    /// least a program header each, that it is at most
    /// [`PHDR_TABLE_MAX`] bytes, and that it lies inside the file.
    pub fn program_headers(&self) -> Result<ProgramHeaders<'a>, ElfError> {
        let min = self.class().phdr_size();
        if self.phentsize < min {
            return Err(ElfError::EntrySize { size: self.phentsize, min });
        }
        let size = u64::from(self.phnum) * u64::from(self.phentsize);
        if size > PHDR_TABLE_MAX {
            return Err(ElfError::TableTooLarge { count: self.phnum, size: self.phentsize });
        }
        let len = self.bytes.len() as u64;
        let outside = ElfError::TableOutside { off: self.phoff, size, len };
        let end = self.phoff.checked_add(size).filter(|&e| e <= len).ok_or(outside.clone())?;
        // Both ends are at most the file's length, so they fit a usize.
        let table = self.bytes.get(self.phoff as usize..end as usize).ok_or(outside)?;
        Ok(ProgramHeaders {
            table,
            class: self.class(),
            stride: usize::from(self.phentsize),
            next: 0,
            count: self.phnum,
        })
    }

    /// Where `ph`'s file bytes lie in the file, checked to be inside it.
    pub fn segment_range(&self, ph: &ProgramHeader) -> Result<Range<usize>, ElfError> {
        let len = self.bytes.len() as u64;
        let end = ph.offset.checked_add(ph.filesz).filter(|&e| e <= len);
        let Some(end) = end else {
            return Err(ElfError::SegmentOutside { index: ph.index, off: ph.offset, size: ph.filesz, len });
        };
        // Both at most the file's length.
        Ok(ph.offset as usize..end as usize)
    }

    /// `ph`'s file bytes, checked to lie inside the file.
    pub fn segment_data(&self, ph: &ProgramHeader) -> Result<&'a [u8], ElfError> {
        let r = self.segment_range(ph)?;
        Ok(&self.bytes[r])
    }

    /// The interpreter path of a dynamically linked program (the first
    /// `PT_INTERP` segment's bytes up to its NUL), or `None` for a static
    /// one. At most [`INTERP_MAX`] bytes are read.
    pub fn interpreter(&self) -> Result<Option<&'a [u8]>, ElfError> {
        let Some(ph) = self.program_headers()?.find(|p| p.kind == PT_INTERP) else {
            return Ok(None);
        };
        if ph.filesz > INTERP_MAX {
            return Err(ElfError::InterpTooLong { index: ph.index, size: ph.filesz, max: INTERP_MAX });
        }
        let path = self.segment_data(&ph)?;
        Ok(Some(path.split(|&c| c == 0).next().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{elf32, elf64, Ph};
    use super::*;

    #[test]
    fn reads_both_layouts() {
        let ph = Ph {
            kind: PT_LOAD,
            flags: PF_R | PF_X,
            offset: 0x100,
            vaddr: 0x40_1000,
            paddr: 0x1000,
            filesz: 2,
            memsz: 0x10,
        };
        for mut b in [elf64(0, &[ph]), elf32(0, &[ph])] {
            b.resize(0x102, 0);
            let e = Elf::parse(&b).unwrap();
            let all: Vec<ProgramHeader> = e.program_headers().unwrap().collect();
            assert_eq!(all.len(), 1);
            let p = all[0];
            assert_eq!(
                (p.kind, p.flags, p.offset, p.vaddr, p.paddr),
                (PT_LOAD, 5, 0x100, VirtAddr(0x40_1000), GuestAddress(0x1000))
            );
            assert_eq!((p.filesz, p.memsz), (2, 0x10));
            assert_eq!(e.segment_range(&p).unwrap(), 0x100..0x102);
        }
    }

    /// Sets `e_phoff`, `e_phentsize`, `e_phnum` of a 64-bit file.
    fn table(b: &mut [u8], off: u64, size: u16, count: u16) {
        b[32..40].copy_from_slice(&off.to_le_bytes());
        b[54..56].copy_from_slice(&size.to_le_bytes());
        b[56..58].copy_from_slice(&count.to_le_bytes());
    }

    #[test]
    fn the_table_is_checked_before_any_entry_is_read() {
        let mut b = elf64(0, &[Ph::default()]);
        let len = b.len() as u64;
        table(&mut b, 64, 40, 1);
        assert_eq!(Elf::parse(&b).unwrap().program_headers().unwrap_err(), ElfError::EntrySize { size: 40, min: 56 });
        // The largest count claimed by a tiny file.
        table(&mut b, 64, 56, 0xffff);
        assert_eq!(
            Elf::parse(&b).unwrap().program_headers().unwrap_err(),
            ElfError::TableTooLarge { count: 0xffff, size: 56 }
        );
        // Huge entries: the table's size, not the count, is bounded.
        table(&mut b, 64, 0xffff, 2);
        assert!(matches!(Elf::parse(&b).unwrap().program_headers(), Err(ElfError::TableTooLarge { .. })));
        // A table that runs past the end of the file.
        table(&mut b, 64, 56, 2);
        assert_eq!(
            Elf::parse(&b).unwrap().program_headers().unwrap_err(),
            ElfError::TableOutside { off: 64, size: 112, len }
        );
        // Offsets at the end of the address space: no overflow.
        for off in [u64::MAX, u64::MAX - 60, len + 1] {
            table(&mut b, off, 56, 1);
            assert!(matches!(Elf::parse(&b).unwrap().program_headers(), Err(ElfError::TableOutside { .. })));
        }
        // Larger entries than the class's are stepped over.
        let mut b = elf64(0, &[Ph { kind: PT_NOTE, ..Ph::default() }, Ph { kind: PT_LOAD, ..Ph::default() }]);
        b.extend_from_slice(&[0; 56]);
        b.copy_within(64 + 56..64 + 112, 64 + 64);
        table(&mut b, 64, 64, 2);
        let kinds: Vec<u32> = Elf::parse(&b).unwrap().program_headers().unwrap().map(|p| p.kind).collect();
        assert_eq!(kinds, [PT_NOTE, PT_LOAD]);
        let msg = ElfError::TableOutside { off: 64, size: 112, len: 0x50 }.to_string();
        assert_eq!(msg, "program header table outside the file: [0x40, +0x70) in a file of 0x50 bytes");
    }

    #[test]
    fn segment_bytes_must_lie_in_the_file() {
        let b = elf64(0, &[]);
        let e = Elf::parse(&b).unwrap();
        let len = b.len() as u64;
        let ph = |offset, filesz| ProgramHeader {
            index: 3,
            kind: PT_LOAD,
            flags: 0,
            offset,
            vaddr: VirtAddr(0),
            paddr: GuestAddress(0),
            filesz,
            memsz: filesz,
            align: 0,
        };
        assert_eq!(e.segment_data(&ph(0, len)).unwrap().len() as u64, len);
        assert_eq!(e.segment_data(&ph(len, 0)).unwrap(), &[] as &[u8]);
        for (off, size) in [(0, len + 1), (len + 1, 0), (u64::MAX, 1), (1, u64::MAX)] {
            assert_eq!(
                e.segment_range(&ph(off, size)).unwrap_err(),
                ElfError::SegmentOutside { index: 3, off, size, len }
            );
        }
        let msg = e.segment_range(&ph(0x10, 0x1000)).unwrap_err().to_string();
        assert_eq!(msg, "segment 3: bytes [0x10, +0x1000) lie outside the file (0x40 bytes)");
    }

    #[test]
    fn the_interpreter_of_a_dynamic_program() {
        let mut b = elf64(0, &[Ph { kind: PT_INTERP, offset: 0x78, filesz: 20, ..Ph::default() }]);
        b.extend_from_slice(b"/lib/ld-linux.so.2\0\0");
        assert_eq!(Elf::parse(&b).unwrap().interpreter().unwrap(), Some(&b"/lib/ld-linux.so.2"[..]));
        let b = elf64(0, &[Ph { kind: PT_LOAD, ..Ph::default() }]);
        assert_eq!(Elf::parse(&b).unwrap().interpreter().unwrap(), None);
        // Longer than a path: refused before it is read.
        let b = elf64(0, &[Ph { kind: PT_INTERP, filesz: 1 << 40, ..Ph::default() }]);
        assert!(matches!(Elf::parse(&b).unwrap().interpreter(), Err(ElfError::InterpTooLong { index: 0, .. })));
        // Outside the file.
        let b = elf64(0, &[Ph { kind: PT_INTERP, offset: 0x70, filesz: 0x100, ..Ph::default() }]);
        assert!(matches!(Elf::parse(&b).unwrap().interpreter(), Err(ElfError::SegmentOutside { .. })));
    }
}
