//! The Solo5 ELF notes: the ABI note (which tender target and ABI
//! version the unikernel was built for) and the application manifest
//! (the devices it declares). Read from `PT_NOTE` segments, every offset
//! bounds-checked.

use thiserror::Error;

/// Note owner name of Solo5's notes.
const OWNER: &[u8] = b"Solo5\0";
/// `"ABI1"`.
const NT_ABI1: u32 = 0x3149_4241;
/// `"MFT1"`.
const NT_MFT1: u32 = 0x3154_464d;
const PT_NOTE: u32 = 4;
/// The `spt` tender target.
pub const TARGET_SPT: u32 = 2;
/// ABI versions of `spt` this VMM serves (the boot-info block with the
/// manifest, epoll and timerfd descriptors).
pub const SPT_ABI_VERSIONS: [u32; 1] = [2];
/// Largest manifest accepted (Solo5 allows 64 entries).
pub const MAX_MANIFEST: usize = 8 + 64 * ENTRY;

/// Errors reading the notes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NoteError {
    /// A note header or its data lies outside the file.
    #[error("malformed ELF note: {0}")]
    Malformed(&'static str),
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

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off.checked_add(4)?).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off.checked_add(8)?).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes)
}

/// Every note in the `PT_NOTE` segments of the ELF image `b`: (type,
/// owner name, descriptor).
/// One note: (type, owner name, descriptor).
type Note<'a> = (u32, &'a [u8], &'a [u8]);

fn notes(b: &[u8]) -> Result<Vec<Note<'_>>, NoteError> {
    let phoff = u64_at(b, 32).ok_or(NoteError::Malformed("no program headers"))?;
    let phentsize = u64::from(b.get(54..56).map_or(0, |s| u16::from_le_bytes([s[0], s[1]])));
    let phnum = u64::from(b.get(56..58).map_or(0, |s| u16::from_le_bytes([s[0], s[1]])));
    if phentsize < 56 {
        return Err(NoteError::Malformed("program header entries too small"));
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let off = usize::try_from(phoff.saturating_add(i * phentsize)).map_err(|_| NoteError::Malformed("offset"))?;
        let p_type = u32_at(b, off).ok_or(NoteError::Malformed("program header outside the file"))?;
        if p_type != PT_NOTE {
            continue;
        }
        let start = u64_at(b, off + 8).and_then(|v| usize::try_from(v).ok());
        let size = u64_at(b, off + 32).and_then(|v| usize::try_from(v).ok());
        let seg = start
            .zip(size)
            .and_then(|(s, n)| b.get(s..s.checked_add(n)?))
            .ok_or(NoteError::Malformed("note segment outside the file"))?;
        let mut p = 0usize;
        while p + 12 <= seg.len() {
            let namesz = u32_at(seg, p).ok_or(NoteError::Malformed("note header"))? as usize;
            let descsz = u32_at(seg, p + 4).ok_or(NoteError::Malformed("note header"))? as usize;
            let ty = u32_at(seg, p + 8).ok_or(NoteError::Malformed("note header"))?;
            let name_at = p + 12;
            let desc_at = name_at.checked_add(namesz.div_ceil(4) * 4).ok_or(NoteError::Malformed("note name"))?;
            let name = seg.get(name_at..name_at + namesz).ok_or(NoteError::Malformed("note name"))?;
            let desc = desc_at
                .checked_add(descsz)
                .and_then(|e| seg.get(desc_at..e))
                .ok_or(NoteError::Malformed("note descriptor"))?;
            out.push((ty, name, desc));
            p = desc_at + descsz.div_ceil(4) * 4;
        }
    }
    Ok(out)
}

/// Whether `b` carries a Solo5 ABI note (of any target).
pub fn is_solo5(b: &[u8]) -> bool {
    notes(b).is_ok_and(|n| n.iter().any(|&(ty, name, _)| ty == NT_ABI1 && name == OWNER))
}

/// Reads and checks the notes of an `spt` unikernel.
pub fn read(b: &[u8]) -> Result<Notes, NoteError> {
    let all = notes(b)?;
    let find = |t: u32| all.iter().find(|&&(ty, name, _)| ty == t && name == OWNER).map(|&(_, _, d)| d);
    let abi = find(NT_ABI1).ok_or(NoteError::NoAbi)?;
    let (target, version) = (u32_at(abi, 0), u32_at(abi, 4));
    let (Some(target), Some(version)) = (target, version) else { return Err(NoteError::Malformed("ABI note")) };
    if target != TARGET_SPT {
        return Err(NoteError::WrongTarget(target));
    }
    if !SPT_ABI_VERSIONS.contains(&version) {
        return Err(NoteError::WrongVersion(version));
    }
    let mft = find(NT_MFT1).ok_or(NoteError::NoManifest)?;
    // The descriptor starts with 4 bytes of padding that align the
    // manifest to 8 (Solo5's MFT1_NOTE_ALIGN); the manifest follows.
    let manifest = mft.get(4..).ok_or(NoteError::BadManifest("too short"))?.to_vec();
    Ok(Notes { target, version, manifest })
}

/// A device the manifest declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its name.
    pub name: String,
    /// Its type (1 = block, 2 = net).
    pub kind: u32,
}

/// Size of one manifest entry (`struct mft_entry`: a 68-byte name, the
/// type, two 8-aligned unions and the `attached` flag, padded to 8).
/// Only the name and the type are read here.
const ENTRY: usize = 104;
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
        let name = e[..68].split(|&c| c == 0).next().unwrap_or_default();
        out.push(Device { name: String::from_utf8_lossy(name).into_owned(), kind });
    }
    Ok(out)
}
