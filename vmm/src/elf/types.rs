//! The small types the reader's other files share: an ELF file's
//! [`Class`] and a [`VirtAddr`] as a file states it.

use std::fmt;

/// The `EI_CLASS` of a file: the size of its addresses and structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

impl Class {
    /// Size of the ELF header.
    pub const fn header_size(self) -> u64 {
        match self {
            Class::Elf32 => 52,
            Class::Elf64 => 64,
        }
    }

    /// Size of one program header.
    pub const fn phdr_size(self) -> u16 {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => 56,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Elf32 => "32-bit",
            Class::Elf64 => "64-bit",
        })
    }
}

/// A virtual address as the file states it: nothing checked yet (it may
/// be non-canonical, or out of any guest's reach); each kind checks it
/// against its own address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(pub u64);
