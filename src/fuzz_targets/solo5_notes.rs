//! The Solo5 target: a file through what `vmm run --guest` asks of a
//! Solo5 unikernel before it runs: the note reader (`note::is_solo5`,
//! `note::read`), the manifest reader (`note::devices`, on the manifest
//! found and on the raw input as a manifest) and the segment rules
//! `solo5-spt` applies (`segments::check`). What they accept is checked
//! against a decoding of the same bytes here: the ABI note's target and
//! version, each device's entry and type, and every `PT_LOAD` header of an
//! accepted file read independently for W+X and `filesz > memsz`.

use vmm::guest::kinds::solo5::note::{self, Device, NoteError, ENTRY, MAX_MANIFEST, SPT_ABI_VERSIONS, TARGET_SPT};
use vmm::guest::kinds::solo5::segments::{self, SegmentError};

/// The little-endian integer of `n` bytes at `off` (`None` outside `data`).
fn le(data: &[u8], off: u64, n: usize) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let s = data.get(off..off.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)))
}

/// Runs one input.
pub fn solo5_notes(data: &[u8]) {
    notes(data);
    manifest(data);
    load_rules(data);
}

fn notes(data: &[u8]) {
    let solo5 = note::is_solo5(data);
    match note::read(data) {
        Ok(n) => {
            assert!(solo5, "notes that read carry the ABI note");
            assert_eq!(n.target, TARGET_SPT);
            assert!(SPT_ABI_VERSIONS.contains(&n.version));
            assert!(n.manifest.len() as u64 <= vmm::elf::NOTE_BYTES_MAX, "the manifest is bounded by the note budget");
            manifest(&n.manifest);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                NoteError::Malformed(_) | NoteError::NoAbi => assert!(!solo5, "{e}: yet taken for Solo5"),
                NoteError::ShortAbi(_)
                | NoteError::WrongTarget(_)
                | NoteError::WrongVersion(_)
                | NoteError::NoManifest
                | NoteError::BadManifest(_) => assert!(solo5, "{e}: the ABI note was there"),
            }
        }
    }
}

/// The manifest reader on `m`, checked entry by entry.
fn manifest(m: &[u8]) {
    let Ok(devices) = note::devices(m) else { return };
    assert!(m.len() <= MAX_MANIFEST, "a manifest that reads is within Solo5's size");
    assert_eq!(le(m, 0, 4), Some(1), "version 1");
    let entries = le(m, 4, 4).expect("entry count") as usize;
    assert!(devices.len() <= entries, "no more devices than entries");
    let mut last = None;
    for Device { name, kind, at } in devices {
        assert!(at >= 8 && (at - 8) % ENTRY == 0 && at + ENTRY <= m.len(), "entry at {at} inside");
        assert!(last.is_none_or(|l| l < at), "in order");
        last = Some(at);
        assert_eq!(le(m, at as u64 + 68, 4), Some(u64::from(kind)), "type of the entry at {at}");
        assert!(kind < 1 << 30, "reserved entries are left out");
        // A name is at most 67 bytes (`MFT_NAME_MAX`): `mft_validate`
        // writes the terminator over the field's last byte.
        let raw = m[at..at + 67].split(|&c| c == 0).next().unwrap_or_default();
        assert_eq!(name, String::from_utf8_lossy(raw), "name of the entry at {at}");
    }
}

/// The segment rules against an independent reading of the ELF64
/// program header table.
fn load_rules(data: &[u8]) {
    let r = segments::check(data);
    let elf64 = data.starts_with(b"\x7fELF") && data.get(4) == Some(&2) && data.get(5) == Some(&1);
    // ELF32 files are checked by the reader's own target (`elf_reader`);
    // the fields below are ELF64's.
    let (Some(phoff), Some(phentsize), Some(phnum)) = (le(data, 32, 8), le(data, 54, 2), le(data, 56, 2)) else {
        assert!(!elf64 || r.is_err(), "no program header table, yet accepted");
        return;
    };
    let header = |i: u64| {
        let at = phoff.checked_add(i * phentsize)?;
        Some((
            le(data, at, 4)?,
            le(data, at.checked_add(4)?, 4)?,
            le(data, at.checked_add(32)?, 8)?,
            le(data, at.checked_add(40)?, 8)?,
        ))
    };
    match r {
        Ok(()) if elf64 => {
            for i in 0..phnum {
                let (kind, flags, filesz, memsz) = header(i).expect("an accepted table lies in the file");
                if kind == 1 {
                    assert_ne!(flags & 3, 3, "segment {i} is W+X, yet accepted");
                    assert!(filesz <= memsz, "segment {i} has filesz > memsz, yet accepted");
                }
            }
        }
        Ok(()) => {}
        Err(SegmentError::WriteExec(i)) if elf64 => {
            let (kind, flags, _, _) = header(u64::from(i)).expect("the refused header lies in the file");
            assert_eq!((kind, flags & 3), (1, 3), "segment {i} refused as W+X");
        }
        Err(SegmentError::FileLargerThanMemory { index, filesz, memsz }) if elf64 => {
            let h = header(u64::from(index)).expect("the refused header lies in the file");
            assert_eq!((h.0, h.2, h.3), (1, filesz, memsz), "segment {index} refused for its sizes");
            assert!(filesz > memsz);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
