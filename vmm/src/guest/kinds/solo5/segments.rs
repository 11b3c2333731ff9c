//! The rules `solo5-spt` applies to a unikernel's loadable segments
//! before it maps them (Solo5's `tenders/common/elf.c`), checked on every
//! `PT_LOAD` header of the file, empty ones included: a segment may not be
//! both writable and executable, and may not have more bytes in the file
//! than in memory. A unikernel that breaks either is refused at load, as
//! there, never run.
//!
//! What it does not do: check addresses against the unikernel's memory
//! or segments against each other (that is [`super::layout`]), or read
//! the segments' bytes (that is [`crate::guest::elf_program`]).

use thiserror::Error;

use crate::elf::{Elf, ElfError, PF_W, PF_X, PT_LOAD};

/// A segment `solo5-spt` refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SegmentError {
    /// The ELF reader refused the file or its program header table.
    #[error("malformed ELF: {0}")]
    Malformed(#[from] ElfError),
    /// A `PT_LOAD` segment asks for write and execute access.
    #[error("segment {0} is both writable and executable (solo5-spt refuses W+X)")]
    WriteExec(u16),
    /// A `PT_LOAD` segment has more file bytes than memory bytes.
    #[error("segment {index}: file size {filesz:#x} exceeds memory size {memsz:#x}")]
    FileLargerThanMemory {
        /// Its index in the program header table.
        index: u16,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
}

/// Checks every `PT_LOAD` header of the ELF image `bytes`.
pub fn check(bytes: &[u8]) -> Result<(), SegmentError> {
    for ph in Elf::parse(bytes)?.program_headers()? {
        if ph.kind != PT_LOAD {
            continue;
        }
        if ph.flags & (PF_W | PF_X) == PF_W | PF_X {
            return Err(SegmentError::WriteExec(ph.index));
        }
        if ph.filesz > ph.memsz {
            return Err(SegmentError::FileLargerThanMemory { index: ph.index, filesz: ph.filesz, memsz: ph.memsz });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::PF_R;
    use crate::guest::elf_program::build_elf;

    #[test]
    fn text_and_data_as_solo5_links_them_pass() {
        let img = build_elf(0x10_0000, &[(0x10_0000, &[0xf4], 1, PF_R | PF_X), (0x10_1000, b"d", 0x1000, PF_R | PF_W)]);
        assert_eq!(check(&img), Ok(()));
    }

    #[test]
    fn write_and_execute_together_are_refused() {
        let img = build_elf(0x10_0000, &[(0x10_0000, &[0xf4], 1, PF_R | PF_X), (0x10_1000, b"d", 1, PF_W | PF_X)]);
        assert_eq!(check(&img), Err(SegmentError::WriteExec(1)));
        assert_eq!(
            check(&img).unwrap_err().to_string(),
            "segment 1 is both writable and executable (solo5-spt refuses W+X)"
        );
        // Even an empty one: solo5-spt checks every PT_LOAD header.
        let img = build_elf(0x10_0000, &[(0x10_0000, &[], 0, PF_R | PF_W | PF_X)]);
        assert_eq!(check(&img), Err(SegmentError::WriteExec(0)));
    }

    #[test]
    fn more_file_bytes_than_memory_bytes_are_refused() {
        let img = build_elf(0x10_0000, &[(0x10_0000, &[0x90; 16], 15, PF_R | PF_X)]);
        assert_eq!(check(&img), Err(SegmentError::FileLargerThanMemory { index: 0, filesz: 16, memsz: 15 }));
        assert_eq!(check(&img).unwrap_err().to_string(), "segment 0: file size 0x10 exceeds memory size 0xf");
        // A bss-only segment (no file bytes) is fine.
        let img = build_elf(0x10_0000, &[(0x10_0000, &[], 0x1000, PF_R | PF_W)]);
        assert_eq!(check(&img), Ok(()));
    }

    #[test]
    fn a_malformed_table_is_an_error_not_a_panic() {
        let mut img = build_elf(0x10_0000, &[(0x10_0000, &[0xf4], 1, PF_R | PF_X)]);
        img[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(check(&img), Err(SegmentError::Malformed(ElfError::TableTooLarge { .. }))));
        assert!(matches!(check(b"MZ"), Err(SegmentError::Malformed(ElfError::NotElf))));
    }
}
