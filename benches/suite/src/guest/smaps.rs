//! Reading `/proc/<pid>/smaps`: the resident memory of every mapping of a
//! process, and how much of it is guest memory.
//!
//! Item 9 asks for the VMM's resident memory *beyond* guest memory. Guest
//! RAM is one anonymous mapping exactly the configured size (vm-memory
//! maps it in one piece), and a passed-through BAR's window is a
//! `/memfd:vmm-bar` mapping registered as a KVM memory slot; both are
//! memory the guest owns and are subtracted. Everything else — the `vmm`
//! binary's resident text and data, libraries, heap, thread stacks, the
//! page of the zap slot — is the VMM's; file-backed pages are split into
//! the executable's and the shared libraries'. Only parsing and
//! arithmetic live here; sampling a live process is `launch`'s.

/// One mapping's sizes, in KiB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// The path or pseudo-path (`[heap]`, `/memfd:...`), empty if anonymous.
    pub path: String,
    /// `Size:` (virtual).
    pub size_kib: u64,
    /// `Rss:`.
    pub rss_kib: u64,
}

/// Parses the text of a `smaps` file. Lines that are neither a mapping
/// header nor a `Key: N kB` line of a known key are ignored.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(path) = header_path(line) {
            out.push(Mapping { path, ..Mapping::default() });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        let Some((key, rest)) = line.split_once(':') else { continue };
        let kib = rest.trim().strip_suffix("kB").and_then(|v| v.trim().parse::<u64>().ok());
        match (key, kib) {
            ("Size", Some(v)) => cur.size_kib = v,
            ("Rss", Some(v)) => cur.rss_kib = v,
            _ => {}
        }
    }
    out
}

/// The path of a header line (`start-end perms offset dev inode [path]`),
/// or `None` if `line` is not one.
fn header_path(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    u64::from_str_radix(start, 16).ok()?;
    u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    // offset, device, inode; the rest (which may contain spaces) is the path.
    for _ in 0..3 {
        fields.next()?;
    }
    Some(fields.collect::<Vec<_>>().join(" "))
}

/// Resident memory split into the guest's and the VMM's, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Every mapping's `Rss`.
    pub total_kib: u64,
    /// Resident guest RAM.
    pub guest_ram_kib: u64,
    /// Resident passed-through BAR windows.
    pub windows_kib: u64,
    /// Resident file-backed mappings of the `vmm` executable.
    pub binary_kib: u64,
    /// Resident file-backed mappings of everything else (shared libraries).
    pub libraries_kib: u64,
}

impl Breakdown {
    /// What is left for the VMM itself.
    pub fn beyond_guest_kib(&self) -> u64 {
        self.total_kib.saturating_sub(self.guest_ram_kib + self.windows_kib)
    }
}

/// Splits `maps` for a VMM whose guest RAM is `guest_bytes` and whose
/// executable is `binary`; `None` unless exactly one anonymous mapping has
/// that size.
pub fn breakdown(maps: &[Mapping], guest_bytes: u64, binary: &str) -> Option<Breakdown> {
    let guest_kib = guest_bytes / 1024;
    let mut guest = maps.iter().filter(|m| m.path.is_empty() && m.size_kib == guest_kib);
    let ram = guest.next()?;
    if guest.next().is_some() {
        return None;
    }
    let sum = |f: &dyn Fn(&Mapping) -> bool| maps.iter().filter(|m| f(m)).map(|m| m.rss_kib).sum::<u64>();
    Some(Breakdown {
        total_kib: sum(&|_| true),
        guest_ram_kib: ram.rss_kib,
        windows_kib: sum(&|m| m.path.starts_with("/memfd:vmm-bar")),
        binary_kib: sum(&|m| m.path == binary),
        libraries_kib: sum(&|m| m.path.starts_with('/') && !m.path.starts_with("/memfd:") && m.path != binary),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
5581b0a00000-5581b0b00000 r-xp 00000000 fd:01 1234                       /work/target/release/vmm
Size:               1024 kB
Rss:                 900 kB
Pss:                 900 kB
VmFlags: rd ex mr mw me
5581b1000000-5581b1100000 rw-p 00000000 00:00 0                          [heap]
Size:               1024 kB
Rss:                 300 kB
7f0000000000-7f0008000000 rw-p 00000000 00:00 0 
Size:             131072 kB
Rss:               20480 kB
7f0010000000-7f0010010000 rw-s 00000000 00:01 77                         /memfd:vmm-bar (deleted)
Size:                 64 kB
Rss:                  64 kB
7f0020000000-7f0020001000 rw-p 00000000 00:00 0 
Size:                  4 kB
Rss:                   4 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  16 kB
";

    #[test]
    fn headers_and_sizes_are_read() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[0], Mapping { path: "/work/target/release/vmm".into(), size_kib: 1024, rss_kib: 900 });
        assert_eq!(m[2].path, "");
        assert_eq!(m[3].path, "/memfd:vmm-bar (deleted)");
        assert_eq!(m[5].rss_kib, 16);
        // A key line before any header, and junk, are ignored.
        assert_eq!(parse("Rss: 5 kB\nnot a header\n"), vec![]);
        assert!(header_path("VmFlags: rd wr mr").is_none());
    }

    #[test]
    fn guest_memory_is_subtracted() {
        let text = format!("{SAMPLE}7f3000000000-7f3000100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6\nRss: 40 kB\n");
        let b = breakdown(&parse(&text), 128 << 20, "/work/target/release/vmm").unwrap();
        assert_eq!(
            b,
            Breakdown {
                total_kib: 900 + 300 + 20480 + 64 + 4 + 16 + 40,
                guest_ram_kib: 20480,
                windows_kib: 64,
                binary_kib: 900,
                libraries_kib: 40,
            }
        );
        assert_eq!(b.beyond_guest_kib(), 900 + 300 + 4 + 16 + 40);
    }

    #[test]
    fn guest_memory_must_be_found_exactly_once() {
        assert!(breakdown(&parse(SAMPLE), 256 << 20, "").is_none(), "no mapping of that size");
        let twice = format!("{SAMPLE}7f1000000000-7f1008000000 rw-p 00000000 00:00 0 \nSize: 131072 kB\nRss: 0 kB\n");
        assert!(breakdown(&parse(&twice), 128 << 20, "").is_none(), "ambiguous");
    }
}
