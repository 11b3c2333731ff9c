//! The registry's entry for Linux programs: the name (`--abi linux`), the
//! options (`--env K=V`, `--file`, `--uid`, `--hugepages N`, `--thp MODE`), and which files it claims: every ELF the kinds
//! before it did not (a Solo5 note means Solo5, the VMM's ABI note means
//! the VMM's own ABI). A file it cannot run is refused when it is opened,
//! with the reason and what to do.

use std::sync::Arc;

use super::image;
use super::process::Linux;
use crate::guest::kind::{KindError, SharedKind};
use crate::guest::options::KindOption;
use crate::guest::spec::{KindSpec, Launch};

/// Option: one environment variable (`K=V`).
pub const ENV: &str = "env";

/// Option: a host file the program may open (`GUEST=HOST[:rw]`).
pub const FILE: &str = "file";

/// Parses `--file GUEST=HOST[:rw]`: an absolute guest path, a host path,
/// and whether the program may write it.
pub fn parse_file(s: &str) -> Result<(String, std::path::PathBuf, bool), String> {
    let Some((guest, host)) = s.split_once('=') else {
        return Err(format!("'{s}': expected GUEST_PATH=HOST_PATH[:rw]"));
    };
    if !guest.starts_with('/') || guest.contains('\0') || guest.len() > 4095 {
        return Err(format!("'{s}': the guest path must be absolute"));
    }
    let (host, rw) = match host.strip_suffix(":rw") {
        Some(h) => (h, true),
        None => (host.strip_suffix(":ro").unwrap_or(host), false),
    };
    if host.is_empty() {
        return Err(format!("'{s}': no host path"));
    }
    Ok((guest.to_owned(), std::path::PathBuf::from(host), rw))
}

fn check_file(s: &str) -> Result<(), String> {
    parse_file(s).map(|_| ())
}

/// Option: the user (and group) id the program runs as.
pub const UID: &str = "uid";

/// Option: 2 MiB pages reserved for `MAP_HUGETLB` (`vm.nr_hugepages`).
pub const HUGEPAGES: &str = "hugepages";

/// Option: the transparent huge page mode the program starts with.
pub const THP: &str = "thp";

/// Parses `--thp MODE`: `always`, `madvise` or `never`.
pub fn parse_thp(s: &str) -> Result<guest_mm::ThpMode, String> {
    guest_mm::ThpMode::parse(s).map_err(|_| format!("'{s}': expected always, madvise or never"))
}

fn check_thp(s: &str) -> Result<(), String> {
    parse_thp(s).map(|_| ())
}

/// Guest RAM a program keeps besides its huge pages: the VMM's own low
/// RAM and at least this much of the page pool.
const MIN_POOL_RAM: u64 = 16 << 20;

/// Parses `--hugepages N`: a count of 2 MiB pages.
pub fn parse_hugepages(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| format!("'{s}': expected a number of 2 MiB pages"))
}

fn check_hugepages(s: &str) -> Result<(), String> {
    parse_hugepages(s).map(|_| ())
}

/// The most 2 MiB pages `--hugepages` may take out of `mem_size` bytes of
/// RAM: what lies above the VMM's own RAM, less [`MIN_POOL_RAM`].
pub fn max_hugepages(mem_size: u64) -> u64 {
    mem_size.saturating_sub(crate::layout::POOL_RAM_PA + MIN_POOL_RAM) / (2 << 20)
}

/// The environment a program gets when no `--env` is given.
pub const DEFAULT_ENV: &[&str] = &["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C"];

fn check_env(s: &str) -> Result<(), String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() && !s.contains('\0') => Ok(()),
        _ => Err(format!("'{s}': expected NAME=VALUE (a non-empty name, no NUL)")),
    }
}

fn check_uid(s: &str) -> Result<(), String> {
    parse_uid(s).map(|_| ())
}

/// Parses `--uid`: a number below 2^32 - 1.
pub fn parse_uid(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|&u| u != u32::MAX)
        .ok_or_else(|| format!("'{s}': expected a user id (0 to 4294967294)"))
}

/// The registry's entry (`guest::registry`).
pub struct Spec;

/// The one value of [`Spec`].
pub static SPEC: Spec = Spec;

impl KindSpec for Spec {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn about(&self) -> &'static str {
        "an unmodified static x86-64 Linux program (any ELF without a Solo5 or VMM ABI note)"
    }

    fn options(&self) -> &'static [KindOption] {
        const OPTIONS: &[KindOption] = &[
            KindOption::new(
                ENV,
                "NAME=VALUE",
                "Set an environment variable of the Linux program (repeatable). Without any, it gets \
                 PATH, HOME=/tmp, TMPDIR=/tmp and LANG=C.",
            )
            .repeatable()
            .checked(check_env),
            KindOption::new(
                FILE,
                "GUEST=HOST[:rw]",
                "Let the Linux program open the host file HOST as GUEST (an absolute path in its \
                 file tree); read-only unless `:rw`. Nothing else on the host is reachable. Repeatable.",
            )
            .repeatable()
            .checked(check_file),
            KindOption::new(
                UID,
                "ID",
                "The user and group id the Linux program runs as (default 0, root, with every \
                 capability); any other id has no capabilities (RLIMIT_MEMLOCK then applies).",
            )
            .checked(check_uid),
            KindOption::new(
                HUGEPAGES,
                "N",
                "Reserve N 2 MiB pages of guest RAM for the Linux program's MAP_HUGETLB mappings (as \
                 vm.nr_hugepages; default 0). They come out of --mem: at most what leaves the program \
                 16 MiB besides the VMM's own RAM.",
            )
            .checked(check_hugepages),
            KindOption::new(
                THP,
                "MODE",
                "The transparent huge page mode the Linux program starts with \
                 (/sys/kernel/mm/transparent_hugepage/enabled): always, madvise (the default) or never.",
            )
            .checked(check_thp),
        ];
        OPTIONS
    }

    fn runs_files(&self) -> bool {
        true
    }

    fn claims(&self, bytes: &[u8]) -> bool {
        image::is_elf(bytes)
    }

    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError> {
        let Some((path, bytes)) = launch.file else {
            return Err(KindError::Invalid("a Linux program needs --guest FILE".into()));
        };
        let env: Vec<String> = match launch.args().values(ENV) {
            [] => DEFAULT_ENV.iter().map(|s| s.to_string()).collect(),
            v => v.to_vec(),
        };
        let uid = match launch.args().value(UID) {
            Some(v) => parse_uid(v).map_err(KindError::Invalid)?,
            None => 0,
        };
        let hugepages = match launch.args().value(HUGEPAGES) {
            Some(v) => parse_hugepages(v).map_err(KindError::Invalid)?,
            None => 0,
        };
        let thp = match launch.args().value(THP) {
            Some(v) => parse_thp(v).map_err(KindError::Invalid)?,
            None => guest_mm::ThpMode::Madvise,
        };
        let most = max_hugepages(launch.cfg.mem_size);
        if hugepages > most {
            return Err(KindError::Invalid(format!(
                "--hugepages {hugepages}: {} MiB of huge pages do not fit in --mem {} MiB (at most {most} \
                 pages leave the program {} MiB besides the VMM's own RAM)",
                hugepages.saturating_mul(2),
                launch.cfg.mem_size >> 20,
                MIN_POOL_RAM >> 20
            )));
        }
        let linux = Linux::new(path, bytes, launch.cfg, env)?;
        linux.set_uid(uid);
        linux.set_hugepages(hugepages);
        linux.set_thp_mode(thp);
        for f in launch.args().values(FILE) {
            let (guest, host, rw) = parse_file(f).map_err(KindError::Invalid)?;
            if !host.is_file() {
                return Err(KindError::Invalid(format!("--file {f}: {} is not a regular file", host.display())));
            }
            linux.add_host_file(&guest, host, rw)?;
        }
        Ok(Arc::new(linux))
    }
}
