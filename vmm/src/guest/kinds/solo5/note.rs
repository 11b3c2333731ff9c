//! The Solo5 ELF notes: the ABI note (which tender target and ABI
//! version the unikernel was built for) and the application manifest
//! (the devices it declares). The notes are read by the VMM's one ELF
//! reader ([`crate::elf`]), every offset bounds-checked and at most
//! [`NOTE_BYTES_MAX`](crate::elf::NOTE_BYTES_MAX) bytes of notes examined per file; the manifest is
//! read, checked and normalized here as `solo5-spt`'s `mft_validate`
//! does ([`validate`]).

use thiserror::Error;

use crate::elf::fields::u32_at;
use crate::elf::{Elf, ElfError};

/// Note owner name of Solo5's notes.
const OWNER: &[u8] = b"Solo5\0";
/// `"ABI1"`.
const NT_ABI1: u32 = 0x3149_4241;
/// `"MFT1"`.
const NT_MFT1: u32 = 0x3154_464d;
/// The `spt` tender target.
pub const TARGET_SPT: u32 = 2;
/// ABI versions of `spt` this VMM serves (the boot-info block with the
/// manifest, epoll and timerfd descriptors).
pub const SPT_ABI_VERSIONS: [u32; 1] = [2];
/// Largest manifest accepted (Solo5 allows [`MAX_ENTRIES`] entries).
pub const MAX_MANIFEST: usize = 8 + MAX_ENTRIES * ENTRY;

/// Errors reading the notes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    /// The ELF reader refused the file or its notes (a note header or its
    /// data outside the file, more than
    /// [`NOTE_BYTES_MAX`](crate::elf::NOTE_BYTES_MAX) bytes of
    /// notes, ...).
    #[error("malformed ELF note: {0}")]
    Malformed(#[from] ElfError),
    /// The ABI note's descriptor is too short.
    #[error("malformed ELF note: the ABI note's descriptor has {0} bytes, fewer than 8")]
    ShortAbi(usize),
    /// No ABI note: not a Solo5 unikernel.
    #[error("no Solo5 ABI note")]
    NoAbi,
    /// Built for another Solo5 target.
    #[error("built for Solo5 target {0} (hvt = 1, spt = 2, virtio = 3, muen = 4, genode = 5); only spt runs here")]
    WrongTarget(u32),
    /// An ABI version this VMM does not serve.
    #[error("Solo5 spt ABI version {0} is not supported (supported: {SPT_ABI_VERSIONS:?})")]
    WrongVersion(u32),
    /// No manifest note.
    #[error("no Solo5 manifest note")]
    NoManifest,
    /// The manifest is malformed.
    #[error("invalid Solo5 manifest: {0}")]
    BadManifest(&'static str),
}

/// What the notes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notes {
    /// Tender target (2 = spt).
    pub target: u32,
    /// ABI version.
    pub version: u32,
    /// The manifest's bytes, as the unikernel expects to find them.
    pub manifest: Vec<u8>,
}

/// The descriptors of the first Solo5 ABI note and of the first
/// manifest note.
#[derive(Default)]
struct Found<'a> {
    abi: Option<&'a [u8]>,
    manifest: Option<&'a [u8]>,
}

/// Solo5's notes, after reading every note of the file (within the
/// reader's bound): a malformed note anywhere is an error.
fn find(b: &[u8]) -> Result<Found<'_>, NoteError> {
    let mut found = Found::default();
    for n in Elf::parse(b)?.notes()? {
        let n = n?;
        if n.name != OWNER {
            continue;
        }
        match n.kind {
            NT_ABI1 => found.abi = found.abi.or(Some(n.desc)),
            NT_MFT1 => found.manifest = found.manifest.or(Some(n.desc)),
            _ => {}
        }
    }
    Ok(found)
}

/// Whether `b` carries a Solo5 ABI note (of any target), and its notes
/// read.
pub fn is_solo5(b: &[u8]) -> bool {
    find(b).is_ok_and(|f| f.abi.is_some())
}

/// Reads and checks the notes of an `spt` unikernel.
pub fn read(b: &[u8]) -> Result<Notes, NoteError> {
    let found = find(b)?;
    let abi = found.abi.ok_or(NoteError::NoAbi)?;
    let (target, version) = (u32_at(abi, 0), u32_at(abi, 4));
    let (Some(target), Some(version)) = (target, version) else { return Err(NoteError::ShortAbi(abi.len())) };
    if target != TARGET_SPT {
        return Err(NoteError::WrongTarget(target));
    }
    if !SPT_ABI_VERSIONS.contains(&version) {
        return Err(NoteError::WrongVersion(version));
    }
    let mft = found.manifest.ok_or(NoteError::NoManifest)?;
    // The descriptor starts with 4 bytes of padding that align the
    // manifest to 8 (Solo5's MFT1_NOTE_ALIGN); the manifest follows.
    let mut manifest = mft.get(4..).ok_or(NoteError::BadManifest("too short"))?.to_vec();
    validate(&mut manifest)?;
    Ok(Notes { target, version, manifest })
}

/// Most entries a manifest may have (`MFT_MAX_ENTRIES`).
pub const MAX_ENTRIES: usize = 64;
/// Bytes of an entry's name field, terminator included (`MFT_NAME_SIZE`).
const NAME_SIZE: usize = 68;
/// The longest device name (`MFT_NAME_MAX`).
pub const NAME_MAX: usize = NAME_SIZE - 1;
/// An entry's device properties (`union u`: capacity and block size, or
/// MAC and MTU), which the tender fills in.
const PROPERTIES: std::ops::Range<usize> = 72..88;

/// Checks the manifest as `solo5-spt`'s `mft_validate` does, and
/// normalizes it as that does: version 1, at most [`MAX_ENTRIES`]
/// entries, exactly as many bytes as the entries it counts; every name
/// terminated at its last byte and every entry's device properties
/// cleared, so that the unikernel finds only what the VMM writes there.
pub fn validate(manifest: &mut [u8]) -> Result<(), NoteError> {
    let version = u32_at(manifest, 0).ok_or(NoteError::BadManifest("too short"))?;
    if version != 1 {
        return Err(NoteError::BadManifest("version is not 1"));
    }
    let entries = u32_at(manifest, 4).ok_or(NoteError::BadManifest("too short"))? as usize;
    if entries > MAX_ENTRIES {
        return Err(NoteError::BadManifest("more than 64 entries"));
    }
    if manifest.len() != 8 + entries * ENTRY {
        return Err(NoteError::BadManifest("its size is not 8 bytes + 104 per entry"));
    }
    for e in manifest[8..].chunks_exact_mut(ENTRY) {
        e[NAME_SIZE - 1] = 0;
        e[PROPERTIES].fill(0);
    }
    Ok(())
}

/// A device the manifest declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// Its type (1 = block, 2 = net).
    pub kind: u32,
    /// Where its `struct mft_entry` starts in the manifest.
    pub at: usize,
}

/// Type of a basic block device (`MFT_DEV_BLOCK_BASIC`).
pub const BLOCK_BASIC: u32 = 1;
/// Type of a basic network device (`MFT_DEV_NET_BASIC`).
pub const NET_BASIC: u32 = 2;

/// Size of one manifest entry (`struct mft_entry`: a 68-byte name, the
/// type, two 8-aligned unions and the `attached` flag, padded to 8).
/// Only the name and the type are read here; `block` fills in the rest
/// of an attached block device's entry.
pub const ENTRY: usize = 104;
/// Types at and above this are reserved (the manifest's first entry).
const RESERVED_FIRST: u32 = 1 << 30;

/// The devices declared in `manifest` (reserved entries left out).
pub fn devices(manifest: &[u8]) -> Result<Vec<Device>, NoteError> {
    if manifest.len() > MAX_MANIFEST {
        return Err(NoteError::BadManifest("too large"));
    }
    let version = u32_at(manifest, 0).ok_or(NoteError::BadManifest("too short"))?;
    if version != 1 {
        return Err(NoteError::BadManifest("version is not 1"));
    }
    let entries = u32_at(manifest, 4).ok_or(NoteError::BadManifest("too short"))? as usize;
    let mut out = Vec::new();
    for i in 0..entries {
        let at = 8usize.saturating_add(i.saturating_mul(ENTRY));
        let e = manifest.get(at..at.saturating_add(ENTRY)).ok_or(NoteError::BadManifest("entries beyond its end"))?;
        let kind = u32_at(e, 68).ok_or(NoteError::BadManifest("entry"))?;
        if kind >= RESERVED_FIRST {
            continue;
        }
        let name = e[..NAME_SIZE - 1].split(|&c| c == 0).next().unwrap_or_default();
        out.push(Device { name: String::from_utf8_lossy(name).into_owned(), kind, at });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One note as Solo5's toolchain lays it out: 4-byte aligned name and
    /// descriptor.
    fn note(owner: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(owner.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(owner);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    /// A synthetic `test_hello.spt`: the program headers Solo5's `spt`
    /// linker script gives it (INTERP, four LOADs, TLS, and one NOTE per
    /// note: not-OpenBSD, ABI, manifest), then `junk_notes` more `PT_NOTE`
    /// headers each covering the same `junk_len` zero bytes appended to
    /// the file.
    pub(crate) fn hello_spt(junk_notes: usize, junk_len: u64) -> Vec<u8> {
        let mut mft = vec![0u8; 4];
        mft.extend_from_slice(&1u32.to_le_bytes());
        mft.extend_from_slice(&1u32.to_le_bytes());
        let mut reserved = vec![0u8; ENTRY];
        reserved[68..72].copy_from_slice(&RESERVED_FIRST.to_le_bytes());
        mft.extend_from_slice(&reserved);
        let mut abi = Vec::new();
        for v in [TARGET_SPT, 2, 0, 0] {
            abi.extend_from_slice(&v.to_le_bytes());
        }
        let notes = [note(OWNER, NT_MFT1, &mft), note(OWNER, NT_ABI1, &abi), note(b"OpenBSD\0", 0x4f70_656e, &[0; 4])];
        let phnum = 9 + junk_notes;
        let (text, notes_at, data) = (0x2000u64, 0x5000u64, 0x6000u64);
        let junk_at = data + 0x1000;
        let mut b = vec![0u8; (junk_at + junk_len) as usize];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x10_0020u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        assert!(64 + 56 * phnum as u64 <= text, "program headers fit before the text");
        let mut phdrs: Vec<(u32, u32, u64, u64, u64, u64)> = vec![
            (3, 4, text, 0x10_0000, 0x18, 0x18),
            (1, 5, text, 0x10_0000, 0x3e48, 0x3e48),
            (1, 6, data, 0x10_4000, 0xc, 0xc),
            (1, 4, 0x238, 0, 0, 0),
            (7, 4, 0, 0, 0, 0),
            (1, 6, 0, 0x10_5000, 0, 0x58),
        ];
        let mut at = notes_at;
        // Laid out manifest, ABI, not-OpenBSD; listed in reverse, as there.
        let mut offsets = Vec::new();
        for n in &notes {
            offsets.push((at, n.len() as u64));
            b[at as usize..at as usize + n.len()].copy_from_slice(n);
            at += n.len() as u64;
        }
        for &(off, len) in offsets.iter().rev() {
            phdrs.push((4, 4, off, 0x10_3000 + off - notes_at, len, len));
        }
        for _ in 0..junk_notes {
            phdrs.push((4, 4, junk_at, 0, junk_len, junk_len));
        }
        b[text as usize] = 0xf4;
        for (i, &(ty, flags, off, va, filesz, memsz)) in phdrs.iter().enumerate() {
            let h = 64 + 56 * i;
            b[h..h + 4].copy_from_slice(&ty.to_le_bytes());
            b[h + 4..h + 8].copy_from_slice(&flags.to_le_bytes());
            b[h + 8..h + 16].copy_from_slice(&off.to_le_bytes());
            b[h + 16..h + 24].copy_from_slice(&va.to_le_bytes());
            b[h + 24..h + 32].copy_from_slice(&va.to_le_bytes());
            b[h + 32..h + 40].copy_from_slice(&filesz.to_le_bytes());
            b[h + 40..h + 48].copy_from_slice(&memsz.to_le_bytes());
            b[h + 48..h + 56].copy_from_slice(&4u64.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_a_hello_like_unikernel() {
        let img = hello_spt(0, 0);
        assert!(is_solo5(&img));
        let n = read(&img).unwrap();
        assert_eq!((n.target, n.version), (TARGET_SPT, 2));
        assert_eq!(n.manifest.len(), 8 + ENTRY);
        assert_eq!(devices(&n.manifest).unwrap(), vec![]);
    }

    /// Issue 20 item 5: `test_hello.spt` plus 1 MiB of zeros covered by
    /// 100 `PT_NOTE` headers. The old reader walked all 100 MiB of notes
    /// (8.7 million empty notes) into a vector (337 MiB); the notes a file
    /// may make the reader examine are bounded.
    ///
    /// Run against the old reader, this test failed at its first assertion
    /// (the file was taken for a Solo5 unikernel after collecting
    /// 8,738,103 notes, 344 MB peak RSS).
    #[test]
    fn a_hundred_note_headers_over_a_mebibyte_are_refused() {
        let img = hello_spt(100, 1 << 20);
        assert!(!is_solo5(&img), "more notes than the reader examines: not recognised");
        assert!(read(&img).is_err(), "more notes than the reader examines: refused");
        // The bound: the three real notes (0xc4 bytes) were examined, and
        // the first junk header (index 9, at 0x7000) was refused before
        // any of its bytes was.
        let real = 0x88 + 0x24 + 0x18;
        let too_large =
            ElfError::NotesTooLarge { index: 9, off: 0x7000, total: real + (1 << 20), max: crate::elf::NOTE_BYTES_MAX };
        assert_eq!(read(&img), Err(NoteError::Malformed(too_large.clone())));
        let elf = Elf::parse(&img).unwrap();
        let mut notes = elf.notes().unwrap();
        assert_eq!(notes.by_ref().filter_map(Result::err).collect::<Vec<_>>(), vec![too_large]);
        assert_eq!(notes.examined(), real);
        assert!(notes.examined() <= crate::elf::NOTE_BYTES_MAX);
    }

    #[test]
    fn malformed_notes_are_refused_with_their_offsets() {
        let mut img = hello_spt(0, 0);
        // The manifest note (first, at 0x5000) claims a longer descriptor.
        img[0x5004..0x5008].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(!is_solo5(&img));
        let e = read(&img).unwrap_err();
        assert_eq!(e, NoteError::Malformed(ElfError::Note { at: 0x5000, what: "descriptor", end: 0x5088 }));
        assert_eq!(
            e.to_string(),
            "malformed ELF note: note at 0x5000: descriptor runs past the end of its segment at 0x5088"
        );
        // Not ELF at all.
        assert_eq!(read(b"MZ"), Err(NoteError::Malformed(ElfError::NotElf)));
        // An ABI note too short to hold target and version.
        let mut img = hello_spt(0, 0);
        let abi = 0x5088;
        img[abi + 4..abi + 8].copy_from_slice(&4u32.to_le_bytes());
        // What followed is now an empty note.
        img[abi + 24..abi + 36].fill(0);
        assert_eq!(read(&img), Err(NoteError::ShortAbi(4)));
    }

    /// Where `hello_spt`'s manifest starts in the image (after the note
    /// header, the padded owner name and the 4 alignment bytes).
    const MFT_AT: usize = 0x5000 + 12 + 8 + 4;

    /// `solo5-spt`'s `mft_validate`: the version must be 1.
    #[test]
    fn a_manifest_of_another_version_is_refused() {
        let mut img = hello_spt(0, 0);
        img[MFT_AT..MFT_AT + 4].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(read(&img), Err(NoteError::BadManifest("version is not 1")));
    }

    /// `mft_validate`: at most `MFT_MAX_ENTRIES` (64) entries.
    #[test]
    fn a_manifest_of_more_than_64_entries_is_refused() {
        let mut img = hello_spt(0, 0);
        img[MFT_AT + 4..MFT_AT + 8].copy_from_slice(&65u32.to_le_bytes());
        assert_eq!(read(&img), Err(NoteError::BadManifest("more than 64 entries")));
    }

    /// `mft_validate`: the note holds exactly the entries it counts, no
    /// more and no fewer bytes.
    #[test]
    fn a_manifest_whose_size_is_not_its_entries_is_refused() {
        // One entry's bytes, but zero entries counted: bytes left over.
        let mut img = hello_spt(0, 0);
        img[MFT_AT + 4..MFT_AT + 8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(read(&img), Err(NoteError::BadManifest("its size is not 8 bytes + 104 per entry")));
        // Two entries counted, one present.
        img[MFT_AT + 4..MFT_AT + 8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(read(&img), Err(NoteError::BadManifest("its size is not 8 bytes + 104 per entry")));
    }

    /// `mft_validate` terminates every name at its last byte, so a name
    /// is at most 67 characters whatever the note holds.
    #[test]
    fn a_name_filling_its_field_is_cut_at_67_characters() {
        let mut img = hello_spt(0, 0);
        let e = MFT_AT + 8;
        img[e..e + 68].fill(b'a');
        img[e + 68..e + 72].copy_from_slice(&BLOCK_BASIC.to_le_bytes());
        let n = read(&img).unwrap();
        assert_eq!(n.manifest[8 + 67], 0);
        let d = devices(&n.manifest).unwrap();
        assert_eq!(d[0].name, "a".repeat(67));
    }

    /// `mft_validate` clears every entry's device properties (capacity
    /// and block size, MAC and MTU): the unikernel cannot preset what the
    /// tender fills in.
    #[test]
    fn device_properties_the_note_presets_are_cleared() {
        let mut img = hello_spt(0, 0);
        let e = MFT_AT + 8;
        img[e + 72..e + 88].fill(0xab);
        // Outside the properties: the host descriptor and `attached` are
        // left as they are (the tender writes them when it attaches).
        img[e + 88] = 0xcd;
        let n = read(&img).unwrap();
        assert_eq!(&n.manifest[8 + 72..8 + 88], &[0u8; 16]);
        assert_eq!(n.manifest[8 + 88], 0xcd);
    }
}
