//! The notes of the `PT_NOTE` segments, read lazily and within a fixed
//! budget: at most [`NOTE_BYTES_MAX`] bytes of notes in all, counted per
//! segment (by its `p_filesz`) before any of its notes is read. A file
//! whose note segments claim more is refused with
//! [`ElfError::NotesTooLarge`], whatever the notes hold; so a file cannot
//! make the reader walk the same bytes once per header (issue 20: 100
//! headers over 1 MiB of zeros made the old Solo5 reader collect 8.7
//! million empty notes, 337 MiB). Nothing is allocated: each [`Note`] is
//! a view of the file.
//!
//! Notes are laid out as the gABI's 4-byte format: a 12-byte header
//! (`namesz`, `descsz`, `type`), the name and the descriptor each padded
//! to 4 bytes. Bytes left at the end of a segment too short for a header
//! are padding and ignored.

use super::error::ElfError;
use super::fields::u32_at;
use super::header::Elf;
use super::segments::{ProgramHeaders, PT_NOTE};

/// The most note bytes examined in one file (Solo5's notes are under
/// 300 bytes; a Linux program's build-id, ABI tag and property notes
/// under 100).
pub const NOTE_BYTES_MAX: u64 = 64 << 10;
/// Size of a note header.
const HEADER: usize = 12;

/// One note, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// File offset of its header.
    pub at: u64,
    /// Its type (`n_type`).
    pub kind: u32,
    /// Its owner's name, `namesz` bytes (with the NUL if the file has it).
    pub name: &'a [u8],
    /// Its descriptor, `descsz` bytes.
    pub desc: &'a [u8],
}

/// The notes of every `PT_NOTE` segment, in table order; after an error,
/// nothing more.
#[derive(Clone, Debug)]
pub struct Notes<'a> {
    elf: Elf<'a>,
    headers: ProgramHeaders<'a>,
    /// The segment being read, its file offset, and the next note in it.
    seg: &'a [u8],
    seg_off: u64,
    pos: usize,
    examined: u64,
    done: bool,
}

impl<'a> Notes<'a> {
    /// Bytes of note segments taken on so far (at most
    /// [`NOTE_BYTES_MAX`]).
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// The note at `pos` of the current segment, and where the next one
    /// starts.
    fn note_at(&self, pos: usize) -> Result<(Note<'a>, usize), ElfError> {
        let seg = self.seg;
        let at = self.seg_off + pos as u64;
        let end = self.seg_off + seg.len() as u64;
        let field = |k: usize| u32_at(seg, pos + 4 * k).map_or(0, |v| v as usize);
        let (namesz, descsz, kind) = (field(0), field(1), field(2) as u32);
        let name_at = pos + HEADER;
        let name = name_at.checked_add(namesz).and_then(|e| seg.get(name_at..e)).ok_or(ElfError::Note {
            at,
            what: "name",
            end,
        })?;
        let desc_at = name_at.saturating_add(namesz.next_multiple_of(4));
        let desc = desc_at.checked_add(descsz).and_then(|e| seg.get(desc_at..e)).ok_or(ElfError::Note {
            at,
            what: "descriptor",
            end,
        })?;
        // `desc_at + descsz` is inside the segment, so this cannot overflow.
        let next = desc_at + descsz.next_multiple_of(4);
        Ok((Note { at, kind, name, desc }, next))
    }

    /// Moves to the next `PT_NOTE` segment, charging it to the budget;
    /// `None` when there is none left.
    fn next_segment(&mut self) -> Option<Result<(), ElfError>> {
        let ph = self.headers.find(|p| p.kind == PT_NOTE)?;
        let step = self.elf.segment_data(&ph).and_then(|data| {
            let total = self.examined.saturating_add(ph.filesz);
            if total > NOTE_BYTES_MAX {
                return Err(ElfError::NotesTooLarge { index: ph.index, off: ph.offset, total, max: NOTE_BYTES_MAX });
            }
            self.examined = total;
            (self.seg, self.seg_off, self.pos) = (data, ph.offset, 0);
            Ok(())
        });
        Some(step)
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, ElfError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if self.seg.len().saturating_sub(self.pos) >= HEADER {
                let r = self.note_at(self.pos);
                match &r {
                    Ok((_, next)) => self.pos = *next,
                    Err(_) => self.done = true,
                }
                return Some(r.map(|(n, _)| n));
            }
            match self.next_segment() {
                None => self.done = true,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl<'a> Elf<'a> {
    /// The notes of the `PT_NOTE` segments, read within
    /// [`NOTE_BYTES_MAX`] (after checking the program header table).
    pub fn notes(&self) -> Result<Notes<'a>, ElfError> {
        Ok(Notes {
            elf: *self,
            headers: self.program_headers()?,
            seg: &[],
            seg_off: 0,
            pos: 0,
            examined: 0,
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{elf32, elf64, note, Ph};
    use super::*;

    /// A 64-bit file whose one `PT_NOTE` segment holds `body` (appended
    /// after the single program header, at 0x78).
    fn with_notes(body: &[u8]) -> Vec<u8> {
        let mut b = elf64(0, &[Ph { kind: PT_NOTE, offset: 0x78, filesz: body.len() as u64, ..Ph::default() }]);
        b.extend_from_slice(body);
        b
    }

    /// A note's offset, type, name and descriptor.
    type Owned = (u64, u32, Vec<u8>, Vec<u8>);

    fn all(b: &[u8]) -> Result<Vec<Owned>, ElfError> {
        Elf::parse(b)?.notes()?.map(|n| n.map(|n| (n.at, n.kind, n.name.to_vec(), n.desc.to_vec()))).collect()
    }

    #[test]
    fn reads_notes_in_both_classes() {
        let mut body = note(b"Solo5\0", 7, &[1, 2, 3, 4, 5]);
        body.extend(note(b"GNU\0", 3, &[9; 4]));
        body.extend_from_slice(&[0; 11]); // padding too short for a header
        let want =
            vec![(0x78, 7, b"Solo5\0".to_vec(), vec![1, 2, 3, 4, 5]), (0x78 + 28, 3, b"GNU\0".to_vec(), vec![9; 4])];
        assert_eq!(all(&with_notes(&body)).unwrap(), want);
        let mut b = elf32(0, &[Ph { kind: PT_NOTE, offset: 0x54, filesz: body.len() as u64, ..Ph::default() }]);
        b.extend_from_slice(&body);
        let want32: Vec<_> = want.into_iter().map(|(at, k, n, d)| (at - 0x78 + 0x54, k, n, d)).collect();
        assert_eq!(all(&b).unwrap(), want32);
    }

    #[test]
    fn a_note_running_past_its_segment_is_refused() {
        let mut body = note(b"Solo5\0", 7, &[1; 8]);
        body[0..4].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(all(&with_notes(&body)).unwrap_err(), ElfError::Note { at: 0x78, what: "name", end: 0x78 + 28 });
        let mut body = note(b"Solo5\0", 7, &[1; 8]);
        body[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            all(&with_notes(&body)).unwrap_err(),
            ElfError::Note { at: 0x78, what: "descriptor", end: 0x78 + 28 }
        );
        assert_eq!(
            ElfError::Note { at: 0x78, what: "descriptor", end: 0x94 }.to_string(),
            "note at 0x78: descriptor runs past the end of its segment at 0x94"
        );
        // After an error, nothing more.
        let b = with_notes(&body);
        let mut it = Elf::parse(&b).unwrap().notes().unwrap();
        assert!(matches!(it.next(), Some(Err(_))));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn a_note_segment_outside_the_file_is_refused() {
        let b = elf64(0, &[Ph { kind: PT_NOTE, offset: 0x70, filesz: 0x100, ..Ph::default() }]);
        assert!(matches!(all(&b), Err(ElfError::SegmentOutside { index: 0, off: 0x70, size: 0x100, .. })));
    }

    /// Notes of exactly the budget are read; one byte more is refused
    /// before any note of the segment that goes over is examined, however
    /// many headers point at the same bytes.
    #[test]
    fn the_note_budget_is_fixed() {
        let half = (NOTE_BYTES_MAX / 2) as usize;
        let ph = Ph { kind: PT_NOTE, offset: 0x100, filesz: half as u64, ..Ph::default() };
        let mut b = elf64(0, &[ph, ph]);
        b.resize(0x100 + half, 0);
        let e = Elf::parse(&b).unwrap();
        assert_eq!(e.notes().unwrap().count(), 2 * (half / HEADER));
        let mut b = elf64(0, &[ph, ph, Ph { filesz: 1, ..ph }]);
        b.resize(0x100 + half, 0);
        let e = Elf::parse(&b).unwrap();
        let mut it = e.notes().unwrap();
        let r: Result<Vec<_>, _> = it.by_ref().collect();
        assert_eq!(
            r.unwrap_err(),
            ElfError::NotesTooLarge { index: 2, off: 0x100, total: NOTE_BYTES_MAX + 1, max: NOTE_BYTES_MAX }
        );
        assert_eq!(it.examined(), NOTE_BYTES_MAX);
        // A claim near u64::MAX does not wrap the count.
        let mut b = elf64(0, &[ph, Ph { offset: 0, filesz: u64::MAX, ..ph }]);
        b.resize(0x100 + half, 0);
        assert!(matches!(all(&b), Err(ElfError::SegmentOutside { index: 1, .. })));
    }

    /// Issue 20 item 5 at the reader: 100 headers over 1 MiB of zeros.
    #[test]
    fn a_hundred_headers_over_a_mebibyte_examine_nothing() {
        let ph = Ph { kind: PT_NOTE, offset: 0x1000, filesz: 1 << 20, ..Ph::default() };
        let mut b = elf64(0, &[ph; 100]);
        b.resize(0x1000 + (1 << 20), 0);
        let e = Elf::parse(&b).unwrap();
        let mut it = e.notes().unwrap();
        assert!(matches!(it.next(), Some(Err(ElfError::NotesTooLarge { index: 0, .. }))));
        assert_eq!(it.next(), None);
        assert_eq!(it.examined(), 0);
    }
}
