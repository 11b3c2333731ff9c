//! Builders of small ELF files for the reader's tests.

use super::header::{EM_386, EM_X86_64, ET_EXEC};

/// A program header to write (both classes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ph {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// A 64-bit x86-64 executable: the header and `phs` right after it,
/// nothing else.
pub fn elf64(entry: u64, phs: &[Ph]) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56 * phs.len()];
    b[0..4].copy_from_slice(b"\x7fELF");
    (b[4], b[5], b[6]) = (2, 1, 1);
    b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    for (i, p) in phs.iter().enumerate() {
        let h = 64 + 56 * i;
        b[h..h + 4].copy_from_slice(&p.kind.to_le_bytes());
        b[h + 4..h + 8].copy_from_slice(&p.flags.to_le_bytes());
        for (k, v) in [p.offset, p.vaddr, p.paddr, p.filesz, p.memsz, 0x1000].iter().enumerate() {
            b[h + 8 + 8 * k..h + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// A 32-bit i386 executable: the header and `phs` right after it.
pub fn elf32(entry: u32, phs: &[Ph]) -> Vec<u8> {
    let mut b = vec![0u8; 52 + 32 * phs.len()];
    b[0..4].copy_from_slice(b"\x7fELF");
    (b[4], b[5], b[6]) = (1, 1, 1);
    b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    b[18..20].copy_from_slice(&EM_386.to_le_bytes());
    b[24..28].copy_from_slice(&entry.to_le_bytes());
    b[28..32].copy_from_slice(&52u32.to_le_bytes());
    b[40..42].copy_from_slice(&52u16.to_le_bytes());
    b[42..44].copy_from_slice(&32u16.to_le_bytes());
    b[44..46].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    for (i, p) in phs.iter().enumerate() {
        let h = 52 + 32 * i;
        let f =
            [p.kind, p.offset as u32, p.vaddr as u32, p.paddr as u32, p.filesz as u32, p.memsz as u32, p.flags, 0x1000];
        for (k, v) in f.iter().enumerate() {
            b[h + 4 * k..h + 4 * k + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// One note in the 4-byte layout.
pub fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    for v in [name.len() as u32, desc.len() as u32, kind] {
        n.extend_from_slice(&v.to_le_bytes());
    }
    n.extend_from_slice(name);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}
