//! `/sys/kernel/mm/transparent_hugepage/`: the transparent huge page
//! settings as Linux 6.12 shows them, read and written by root.
//!
//! `enabled`, `hpage_pmd_size`, `use_zero_page` and the per-size
//! `hugepages-<N>kB/enabled` (16 KiB to 2 MiB) are the guest-mm THP
//! policy every address space of the guest shares
//! ([`guest_mm::ThpPolicy`]); a write changes what later faults do.
//! `defrag`, `shmem_enabled` and the `khugepaged/` numbers are kept as
//! written and read back, but nothing here acts on them (allocation never
//! waits, shared memory gets no THPs, and no khugepaged runs). The files
//! are nodes the kind serves ([`Special::Tag`]), rendered at each read.

use guest_mm::{ThpMode, ThpPolicy, ThpSizeMode, THP_MIN_ORDER, THP_PMD_ORDER};

use super::fs::{Errno, Special, Vfs};

/// The directory.
const DIR: &str = "/sys/kernel/mm/transparent_hugepage/";
/// First tag of these files.
pub const THP_TAG_BASE: u32 = 0x40;

/// `defrag`'s words, in Linux's order.
const DEFRAG: [&str; 5] = ["always", "defer", "defer+madvise", "madvise", "never"];
/// `shmem_enabled`'s words, in Linux's order.
const SHMEM: [&str; 6] = ["always", "within_size", "advise", "never", "deny", "force"];
/// `khugepaged/` numbers with Linux's defaults for 4 KiB pages.
const KHUGEPAGED: [(&str, u64); 9] = [
    ("defrag", 1),
    ("alloc_sleep_millisecs", 60000),
    ("scan_sleep_millisecs", 10000),
    ("max_ptes_none", 511),
    ("max_ptes_swap", 64),
    ("max_ptes_shared", 256),
    ("pages_to_scan", 4096),
    ("full_scans", 0),
    ("pages_collapsed", 0),
];
/// How many `khugepaged/` numbers may be written (the counters may not).
const KHUGEPAGED_WRITABLE: usize = 7;

/// One file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum File {
    Enabled,
    Defrag,
    ShmemEnabled,
    UseZeroPage,
    PmdSize,
    Khugepaged(usize),
    SizeEnabled(u32),
}

/// Every file, in tag order.
fn files() -> Vec<File> {
    let mut v = vec![File::Enabled, File::Defrag, File::ShmemEnabled, File::UseZeroPage, File::PmdSize];
    v.extend((0..KHUGEPAGED.len()).map(File::Khugepaged));
    v.extend((THP_MIN_ORDER..=THP_PMD_ORDER).map(File::SizeEnabled));
    v
}

impl File {
    fn path(self) -> String {
        match self {
            File::Enabled => format!("{DIR}enabled"),
            File::Defrag => format!("{DIR}defrag"),
            File::ShmemEnabled => format!("{DIR}shmem_enabled"),
            File::UseZeroPage => format!("{DIR}use_zero_page"),
            File::PmdSize => format!("{DIR}hpage_pmd_size"),
            File::Khugepaged(i) => format!("{DIR}khugepaged/{}", KHUGEPAGED.get(i).map_or("", |k| k.0)),
            File::SizeEnabled(order) => format!("{DIR}hugepages-{}kB/enabled", 4u64 << order),
        }
    }

    fn writable(self) -> bool {
        match self {
            File::PmdSize => false,
            File::Khugepaged(i) => i < KHUGEPAGED_WRITABLE,
            _ => true,
        }
    }
}

/// The settings only these files keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThpKnobs {
    defrag: usize,
    shmem: usize,
    khugepaged: [u64; 9],
}

impl Default for ThpKnobs {
    /// Linux's defaults: `defrag` `madvise`, `shmem_enabled` `never`.
    fn default() -> Self {
        ThpKnobs { defrag: 3, shmem: 3, khugepaged: KHUGEPAGED.map(|k| k.1) }
    }
}

/// Registers the files in `vfs`.
pub fn register(vfs: &mut Vfs) -> Result<(), Errno> {
    for (i, f) in files().into_iter().enumerate() {
        let mode = if f.writable() { 0o100644 } else { 0o100444 };
        vfs.register_special(&f.path(), Special::Tag(THP_TAG_BASE + i as u32), mode)?;
    }
    Ok(())
}

/// The file of `tag`, if it is one of these.
fn file_of(tag: u32) -> Option<File> {
    let i = usize::try_from(tag.checked_sub(THP_TAG_BASE)?).ok()?;
    files().get(i).copied()
}

/// Is `tag` one of these files?
pub fn is_ours(tag: u32) -> bool {
    file_of(tag).is_some()
}

/// `words` with the one at `current` in brackets, as sysfs lists a choice.
fn choice(words: &[&str], current: usize) -> String {
    let shown: Vec<String> =
        words.iter().enumerate().map(|(i, w)| if i == current { format!("[{w}]") } else { (*w).to_string() }).collect();
    format!("{}\n", shown.join(" "))
}

/// The whole text of file `tag`.
pub fn render(tag: u32, policy: &ThpPolicy, knobs: &ThpKnobs) -> Option<Vec<u8>> {
    let text = match file_of(tag)? {
        File::Enabled => {
            let at = ["always", "madvise", "never"].iter().position(|w| *w == policy.mode().name()).unwrap_or(2);
            choice(&["always", "madvise", "never"], at)
        }
        File::Defrag => choice(&DEFRAG, knobs.defrag),
        File::ShmemEnabled => choice(&SHMEM, knobs.shmem),
        File::UseZeroPage => format!("{}\n", u8::from(policy.use_zero_page())),
        File::PmdSize => format!("{}\n", 2u64 << 20),
        File::Khugepaged(i) => format!("{}\n", knobs.khugepaged.get(i).copied().unwrap_or(0)),
        File::SizeEnabled(order) => {
            let words = ["always", "inherit", "madvise", "never"];
            let now = policy.size_mode(order).map_or("never", ThpSizeMode::name);
            choice(&words, words.iter().position(|w| *w == now).unwrap_or(3))
        }
    };
    Some(text.into_bytes())
}

/// `len` bytes of file `tag` from `at`.
pub fn read(tag: u32, policy: &ThpPolicy, knobs: &ThpKnobs, at: u64, len: usize) -> Result<Vec<u8>, i32> {
    let text = render(tag, policy, knobs).ok_or(libc::EINVAL)?;
    let from = usize::try_from(at).unwrap_or(usize::MAX).min(text.len());
    Ok(text[from..text.len().min(from.saturating_add(len))].to_vec())
}

/// A write of `data` to file `tag` (sysfs takes the whole value in one
/// write; a trailing newline is allowed): `EINVAL` for a word or number
/// the file does not take, `EACCES` for a read-only file. Returns the
/// bytes taken.
pub fn write(tag: u32, policy: &ThpPolicy, knobs: &mut ThpKnobs, data: &[u8]) -> Result<usize, i32> {
    let file = file_of(tag).ok_or(libc::EINVAL)?;
    if !file.writable() {
        return Err(libc::EACCES);
    }
    let text = std::str::from_utf8(data).map_err(|_| libc::EINVAL)?;
    let word = text.strip_suffix('\n').unwrap_or(text);
    let number = || word.trim().parse::<u64>().map_err(|_| libc::EINVAL);
    match file {
        File::Enabled => policy.set_mode(ThpMode::parse(word).map_err(|_| libc::EINVAL)?),
        File::Defrag => knobs.defrag = DEFRAG.iter().position(|w| *w == word).ok_or(libc::EINVAL)?,
        File::ShmemEnabled => knobs.shmem = SHMEM.iter().position(|w| *w == word).ok_or(libc::EINVAL)?,
        File::UseZeroPage => match number()? {
            0 => policy.set_use_zero_page(false),
            1 => policy.set_use_zero_page(true),
            _ => return Err(libc::EINVAL),
        },
        File::Khugepaged(i) => {
            let v = number()?;
            // max_ptes_* are at most 511 (HPAGE_PMD_NR - 1); the sleeps and
            // pages_to_scan at most u32; defrag is 0 or 1.
            let ok = match KHUGEPAGED.get(i).map(|k| k.0) {
                Some("defrag") => v <= 1,
                Some(n) if n.starts_with("max_ptes") => v <= 511,
                Some("pages_to_scan") => (1..=u64::from(u32::MAX)).contains(&v),
                Some(_) => v <= u64::from(u32::MAX),
                None => false,
            };
            let slot = knobs.khugepaged.get_mut(i).filter(|_| ok).ok_or(libc::EINVAL)?;
            *slot = v;
        }
        File::SizeEnabled(order) => {
            let m = ThpSizeMode::parse(word).map_err(|_| libc::EINVAL)?;
            policy.set_size_mode(order, m).map_err(|_| libc::EINVAL)?;
        }
        File::PmdSize => return Err(libc::EACCES),
    }
    Ok(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(path: &str) -> u32 {
        let i = files().iter().position(|f| f.path() == path).unwrap_or(usize::MAX);
        THP_TAG_BASE + i as u32
    }

    fn text(t: u32, p: &ThpPolicy, k: &ThpKnobs) -> String {
        String::from_utf8(render(t, p, k).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn files_read_as_linux_shows_them() {
        let p = ThpPolicy::new(ThpMode::Always);
        let k = ThpKnobs::default();
        let en = tag("/sys/kernel/mm/transparent_hugepage/enabled");
        assert_eq!(text(en, &p, &k), "[always] madvise never\n");
        assert_eq!(text(tag(&format!("{DIR}defrag")), &p, &k), "always defer defer+madvise [madvise] never\n");
        assert_eq!(text(tag(&format!("{DIR}shmem_enabled")), &p, &k), "always within_size advise [never] deny force\n");
        assert_eq!(text(tag(&format!("{DIR}hpage_pmd_size")), &p, &k), "2097152\n");
        assert_eq!(text(tag(&format!("{DIR}use_zero_page")), &p, &k), "1\n");
        assert_eq!(text(tag(&format!("{DIR}khugepaged/max_ptes_none")), &p, &k), "511\n");
        assert_eq!(text(tag(&format!("{DIR}hugepages-2048kB/enabled")), &p, &k), "always [inherit] madvise never\n");
        assert_eq!(text(tag(&format!("{DIR}hugepages-16kB/enabled")), &p, &k), "always inherit madvise [never]\n");
        assert!(!is_ours(tag(&format!("{DIR}hugepages-8kB/enabled"))), "order 1 is no THP size");
        assert_eq!(files().len(), 5 + 9 + 8);
        assert_eq!(read(en, &p, &k, 1, 6), Ok(b"always".to_vec()));
    }

    #[test]
    fn writes_change_the_shared_policy_or_are_refused() {
        let p = ThpPolicy::new(ThpMode::Always);
        let mut k = ThpKnobs::default();
        let other = p.clone();
        let en = tag(&format!("{DIR}enabled"));
        assert_eq!(write(en, &p, &mut k, b"madvise\n"), Ok(8));
        assert_eq!(other.mode(), ThpMode::Madvise, "every space's handle sees it");
        assert_eq!(write(en, &p, &mut k, b"sometimes"), Err(libc::EINVAL));
        assert_eq!(write(en, &p, &mut k, b"[never]"), Err(libc::EINVAL));
        let pmd = tag(&format!("{DIR}hugepages-2048kB/enabled"));
        assert_eq!(write(pmd, &p, &mut k, b"never\n"), Ok(6));
        assert_eq!(p.size_mode(THP_PMD_ORDER), Some(ThpSizeMode::Never));
        let small = tag(&format!("{DIR}hugepages-64kB/enabled"));
        assert_eq!(write(small, &p, &mut k, b"always"), Ok(6));
        assert_eq!(p.size_mode(4), Some(ThpSizeMode::Always));
        assert_eq!(write(tag(&format!("{DIR}use_zero_page")), &p, &mut k, b"0\n"), Ok(2));
        assert!(!p.use_zero_page());
        assert_eq!(write(tag(&format!("{DIR}use_zero_page")), &p, &mut k, b"2\n"), Err(libc::EINVAL));
        assert_eq!(write(tag(&format!("{DIR}hpage_pmd_size")), &p, &mut k, b"4096\n"), Err(libc::EACCES));
        let df = tag(&format!("{DIR}defrag"));
        assert_eq!(write(df, &p, &mut k, b"defer+madvise\n"), Ok(14));
        assert_eq!(text(df, &p, &k), "always defer [defer+madvise] madvise never\n");
        let none = tag(&format!("{DIR}khugepaged/max_ptes_none"));
        assert_eq!(write(none, &p, &mut k, b"512\n"), Err(libc::EINVAL));
        assert_eq!(write(none, &p, &mut k, b"0\n"), Ok(2));
        assert_eq!(text(none, &p, &k), "0\n");
        assert_eq!(write(tag(&format!("{DIR}khugepaged/full_scans")), &p, &mut k, b"1"), Err(libc::EACCES));
    }
}
