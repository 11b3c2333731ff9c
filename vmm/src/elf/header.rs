//! The ELF header: identification (magic, class, byte order) and the
//! fields every caller needs (type, machine, entry, where the program
//! header table is). Parsing it reads the header's own bytes and nothing
//! else; the program header table is checked when it is first asked for
//! ([`Elf::program_headers`]).

use super::error::ElfError;
use super::fields::{u16_at, u32_at, u64_at};
use super::types::{Class, VirtAddr};

/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_machine` of i386.
pub const EM_386: u16 = 3;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;

/// A little-endian ELF file whose header has been read. Borrowing the
/// file's bytes, it allocates nothing; everything it hands out is a view
/// of those bytes, checked against their length.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    pub(super) bytes: &'a [u8],
    class: Class,
    file_type: u16,
    machine: u16,
    entry: VirtAddr,
    pub(super) phoff: u64,
    pub(super) phentsize: u16,
    pub(super) phnum: u16,
}

impl<'a> Elf<'a> {
    /// Reads the header of `bytes`: the magic, then the class, then the
    /// byte order (in that order, so a caller can tell which it refuses),
    /// then the header's fields, which must all lie in the file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if !bytes.starts_with(b"\x7fELF") {
            return Err(ElfError::NotElf);
        }
        let class_byte = bytes.get(4).copied().unwrap_or(0);
        let class = match class_byte {
            1 => Class::Elf32,
            2 => Class::Elf64,
            c => return Err(ElfError::Class(c)),
        };
        let data = bytes.get(5).copied().unwrap_or(0);
        if data != 1 {
            return Err(ElfError::Encoding { class: class_byte, data });
        }
        let truncated = ElfError::Truncated { class, need: class.header_size(), len: bytes.len() as u64 };
        if (bytes.len() as u64) < class.header_size() {
            return Err(truncated);
        }
        // Every offset below is inside the header, which is in the file.
        let field = |v: Option<u64>| v.ok_or(truncated.clone());
        let (entry, phoff, phentsize_at) = match class {
            Class::Elf32 => (field(u32_at(bytes, 24).map(u64::from))?, field(u32_at(bytes, 28).map(u64::from))?, 42),
            Class::Elf64 => (field(u64_at(bytes, 24))?, field(u64_at(bytes, 32))?, 54),
        };
        let half = |off: usize| u16_at(bytes, off).ok_or(truncated.clone());
        Ok(Elf {
            bytes,
            class,
            file_type: half(16)?,
            machine: half(18)?,
            entry: VirtAddr(entry),
            phoff,
            phentsize: half(phentsize_at)?,
            phnum: half(phentsize_at + 2)?,
        })
    }

    /// The file's class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// `e_type` ([`ET_EXEC`] for an executable).
    pub fn file_type(&self) -> u16 {
        self.file_type
    }

    /// `e_machine` ([`EM_X86_64`], [`EM_386`]).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// `e_entry`, as the file states it.
    pub fn entry(&self) -> VirtAddr {
        self.entry
    }

    /// `e_phnum`: how many program headers the file claims (checked when
    /// the table is read).
    pub fn phnum(&self) -> u16 {
        self.phnum
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{elf32, elf64};
    use super::*;

    #[test]
    fn reads_both_classes() {
        let b = elf64(0x40_1000, &[]);
        let e = Elf::parse(&b).unwrap();
        assert_eq!(
            (e.class(), e.file_type(), e.machine(), e.entry()),
            (Class::Elf64, ET_EXEC, EM_X86_64, VirtAddr(0x40_1000))
        );
        let b = elf32(0x10_000c, &[]);
        let e = Elf::parse(&b).unwrap();
        assert_eq!(
            (e.class(), e.file_type(), e.machine(), e.entry()),
            (Class::Elf32, ET_EXEC, EM_386, VirtAddr(0x10_000c))
        );
    }

    #[test]
    fn identification_is_checked_in_order() {
        assert_eq!(Elf::parse(b"").unwrap_err(), ElfError::NotElf);
        assert_eq!(Elf::parse(b"\x7fEL").unwrap_err(), ElfError::NotElf);
        assert_eq!(Elf::parse(b"\x7fELF").unwrap_err(), ElfError::Class(0));
        assert_eq!(Elf::parse(b"\x7fELF\x03\x01").unwrap_err(), ElfError::Class(3));
        assert_eq!(Elf::parse(b"\x7fELF\x01not really").unwrap_err(), ElfError::Encoding { class: 1, data: b'n' });
        assert_eq!(Elf::parse(b"\x7fELF\x02\x02").unwrap_err(), ElfError::Encoding { class: 2, data: 2 });
    }

    #[test]
    fn a_truncated_header_is_refused_whatever_the_cut() {
        let b = elf64(0, &[]);
        for cut in 6..64 {
            assert_eq!(
                Elf::parse(&b[..cut]).unwrap_err(),
                ElfError::Truncated { class: Class::Elf64, need: 64, len: cut as u64 }
            );
        }
        let b = elf32(0, &[]);
        for cut in 6..52 {
            assert!(matches!(Elf::parse(&b[..cut]), Err(ElfError::Truncated { need: 52, .. })));
        }
        let msg = Elf::parse(&b[..40]).unwrap_err().to_string();
        assert_eq!(msg, "header truncated: a 32-bit ELF header is 0x34 bytes, the file has 0x28");
    }
}
