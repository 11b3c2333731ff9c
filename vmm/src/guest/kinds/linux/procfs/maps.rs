//! `/proc/self/maps`: one line per [`Region`] in Linux 6.12's
//! `show_map_vma` format.
//!
//! The header is `%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu ` (the
//! trailing space is always there); `seq_setwidth` set the pad column to
//! `25 + 6 * sizeof(void *) - 1 = 72`, and a named line is padded with
//! spaces to it, then one more space and the name (`seq_pad(m, ' ')`), so
//! names start at column 73 unless the header is longer.

use std::io::Write;

use guest_mm::VmFlags;

use super::region::{FileId, ProcView, Region};

/// The column `seq_pad` pads to (`25 + sizeof(void *) * 6 - 1`).
pub const PAD_COLUMN: usize = 72;

/// Appends formatted text; writing to a `Vec` cannot fail.
pub(super) fn put(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // A Vec's `write_fmt` only fails if a `Display` impl does, and
    // these are integers and strings.
    let _ = out.write_fmt(args);
}

/// Appends one header line: the prefix, then the name padded as
/// `seq_pad` pads it, then a newline.
pub(super) fn line(
    out: &mut Vec<u8>,
    start: u64,
    end: u64,
    flags: VmFlags,
    offset: u64,
    file: FileId,
    name: Option<&str>,
) {
    let begin = out.len();
    let bit = |f: VmFlags, c: char| if flags.contains(f) { c } else { '-' };
    put(
        out,
        format_args!(
            "{start:08x}-{end:08x} {}{}{}{} {offset:08x} {:02x}:{:02x} {} ",
            bit(VmFlags::READ, 'r'),
            bit(VmFlags::WRITE, 'w'),
            bit(VmFlags::EXEC, 'x'),
            if flags.contains(VmFlags::MAYSHARE) { 's' } else { 'p' },
            file.major,
            file.minor,
            file.ino,
        ),
    );
    if let Some(name) = name {
        let width = out.len() - begin;
        if width < PAD_COLUMN {
            out.resize(begin + PAD_COLUMN, b' ');
        }
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
}

/// Appends `region`'s line.
pub(super) fn region_line(out: &mut Vec<u8>, r: &Region<'_>) {
    line(out, r.start.raw(), r.end.raw(), r.flags(), r.offset, r.file, r.name.as_deref());
}

/// The contents of `/proc/self/maps`.
pub fn maps(view: &ProcView<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    view.for_each_region(|r| region_line(&mut out, &r));
    out
}
