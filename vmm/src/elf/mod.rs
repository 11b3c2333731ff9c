//! The one ELF reader of the VMM: every kind that takes an ELF file (the
//! own-ABI loader, multiboot kernels, Solo5 unikernels, and the Linux
//! programs to come) reads its header, program headers and notes here.
//!
//! What it does: checks the identification (magic, class, little-endian)
//! and that the header lies in the file ([`Elf::parse`]); checks the
//! program header table as a whole before reading an entry (entries at
//! least a program header, at most [`PHDR_TABLE_MAX`] bytes, inside the
//! file: [`Elf::program_headers`]); hands out a segment's bytes only after
//! checking its range ([`Elf::segment_data`]); reads notes lazily within
//! a fixed budget of [`NOTE_BYTES_MAX`] bytes in all ([`Elf::notes`]);
//! finds the interpreter of a dynamic program ([`Elf::interpreter`]).
//! Both classes (ELF32, ELF64), little-endian only. It never allocates:
//! everything it returns borrows the file, so no count in the file can
//! make it allocate, and its reads are bounded by the header, 64 KiB of
//! program headers and 64 KiB of notes. Every refusal is one
//! [`ElfError`], whose message names the offsets involved.
//!
//! What it does not do: policy. Which types and machines a kind runs,
//! whether `p_filesz > p_memsz` is refused, how segments may overlap or
//! how many file bytes they may copy is each caller's to check. Nor does
//! it read section headers, symbols, dynamic tables or relocations: no
//! kind needs them. Big-endian files are refused.
//!
//! # Why our own reader, not `goblin` or `object`
//!
//! Both crates were measured (`goblin` 0.10.7, `object` 0.40.0) on the
//! hostile files of our tests. `goblin`'s `Elf::parse` reads eagerly what
//! we never use (section headers, symbol tables, dynamic section,
//! relocations): a 4 MiB file claiming 65,535 section headers made it
//! allocate 4.6 MiB; it ignores `e_phentsize` (it steps 56 bytes whatever
//! the header says, so a file with 64-byte entries is misread); its note
//! iterator has no bound. `object`'s `read::elf` is lazy and zero-copy
//! and survived every hostile case without allocating, so it would fit as
//! the byte layer, but not more: its note iterator walked all 100 MiB of
//! the issue-20 file (8.7 million notes) with no way to bound it, its
//! errors are fixed strings without offsets, and it refuses files the
//! VMM accepts today (`EI_VERSION` other than 1, `e_phentsize` larger
//! than a program header, trailing bytes after the last note). The
//! checks that make the reader safe for us (the 64 KiB table, the note
//! budget, the per-segment range with offsets in the message) would all
//! sit in front of it as our code, leaving `object` only the decoding of
//! little-endian fields: not worth a dependency and a behaviour change.
//! What is left is about 300 lines, fuzzed by the `elf_reader` target.

mod error;
pub(crate) mod fields;
mod header;
mod notes;
mod segments;
#[cfg(test)]
mod test_util;
mod types;

pub use error::ElfError;
pub use header::{Elf, EM_386, EM_X86_64, ET_EXEC};
pub use notes::{Note, Notes, NOTE_BYTES_MAX};
pub use segments::{
    ProgramHeader, ProgramHeaders, INTERP_MAX, PF_R, PF_W, PF_X, PHDR_TABLE_MAX, PT_INTERP, PT_LOAD, PT_NOTE,
};
pub use types::{Class, VirtAddr};
