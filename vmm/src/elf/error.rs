//! The reader's one error type: every way a file can be refused, each
//! message naming the offsets and sizes involved.

use thiserror::Error;

use super::types::Class;

/// Why an ELF file (or the part of it a caller asked for) was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// `EI_CLASS` is neither 1 (32-bit) nor 2 (64-bit).
    #[error("unknown ELF class {0} (1 = 32-bit, 2 = 64-bit)")]
    Class(u8),
    /// `EI_DATA` is not 1 (little-endian).
    #[error("not little-endian (EI_DATA {data})")]
    Encoding {
        /// `EI_CLASS` of the file.
        class: u8,
        /// `EI_DATA` of the file.
        data: u8,
    },
    /// The file ends inside the ELF header.
    #[error("header truncated: a {class} ELF header is {need:#x} bytes, the file has {len:#x}")]
    Truncated {
        /// The file's class.
        class: Class,
        /// Size of the header.
        need: u64,
        /// Size of the file.
        len: u64,
    },
    /// `e_phentsize` is smaller than a program header of the class.
    #[error("program header entries of {size:#x} bytes are smaller than {min:#x}")]
    EntrySize {
        /// `e_phentsize`.
        size: u16,
        /// The class's program header size.
        min: u16,
    },
    /// The program header table is larger than [`super::PHDR_TABLE_MAX`].
    #[error("program header table larger than 64 KiB: {count} entries of {size:#x} bytes")]
    TableTooLarge {
        /// `e_phnum`.
        count: u16,
        /// `e_phentsize`.
        size: u16,
    },
    /// The program header table does not lie inside the file.
    #[error("program header table outside the file: [{off:#x}, +{size:#x}) in a file of {len:#x} bytes")]
    TableOutside {
        /// `e_phoff`.
        off: u64,
        /// `e_phnum * e_phentsize`.
        size: u64,
        /// Size of the file.
        len: u64,
    },
    /// A segment's file bytes do not lie inside the file.
    #[error("segment {index}: bytes [{off:#x}, +{size:#x}) lie outside the file ({len:#x} bytes)")]
    SegmentOutside {
        /// Index of its program header.
        index: u16,
        /// `p_offset`.
        off: u64,
        /// `p_filesz`.
        size: u64,
        /// Size of the file.
        len: u64,
    },
    /// The `PT_NOTE` segments together hold more than
    /// [`super::NOTE_BYTES_MAX`] bytes.
    #[error("PT_NOTE segments hold more than {max:#x} bytes of notes (segment {index} at {off:#x} brings them to {total:#x})")]
    NotesTooLarge {
        /// Index of the program header that went over the bound.
        index: u16,
        /// Its `p_offset`.
        off: u64,
        /// The note bytes counted with it.
        total: u64,
        /// The bound.
        max: u64,
    },
    /// A note's name or descriptor runs past the end of its segment.
    #[error("note at {at:#x}: {what} runs past the end of its segment at {end:#x}")]
    Note {
        /// File offset of the note's header.
        at: u64,
        /// `"name"` or `"descriptor"`.
        what: &'static str,
        /// File offset of the end of the segment.
        end: u64,
    },
    /// The `PT_INTERP` path is longer than [`super::INTERP_MAX`].
    #[error("PT_INTERP segment {index}: a path of {size:#x} bytes, more than {max:#x}")]
    InterpTooLong {
        /// Index of the program header.
        index: u16,
        /// `p_filesz`.
        size: u64,
        /// The bound.
        max: u64,
    },
}
