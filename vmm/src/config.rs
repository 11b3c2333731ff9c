//! Run configuration: defaults, the TOML file (`--config`) and validation.
//!
//! ```toml
//! memory_mib = 128
//! vcpus = 2
//! timeout_secs = 30
//!
//! [[bar]]                 # trapped: every access exits to the BAR model
//! base = 0xe0000000
//! size = 0x10000
//!
//! [[bar]]                 # passed through: a host file as a memory slot
//! base = 0xe0010000
//! size = 0x10000
//! backing = "/dev/shm/bar1"
//! cache = "wc"            # write-combining entries ("uc", the default: uncached)
//!
//! [[block]]               # an entry a kind owns: Solo5's --block
//! name = "storage"
//! path = "disk.img"
//! ```
//!
//! Top-level keys other than the machine's belong to a kind of guest
//! (`guest::registry::KindSpec::config_keys`) and become values of that
//! kind's options. A `[[bar]]` with `passthrough = true` and no `backing` gets an anonymous
//! shared-memory object; a `backing` must be a regular file or a character
//! device (never a FIFO). Command-line options override the file, which
//! must be a regular file of at most [`CONFIG_FILE_MAX`] bytes.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::guest::options::KindArgs;
use crate::input_file::{read_input, InputError};
use crate::layout::{self, DEFAULT_BAR_BASE, MIN_MEM_SIZE, PAGE_SIZE};

/// The largest configuration file read (a real one is a few hundred bytes).
pub const CONFIG_FILE_MAX: u64 = 1 << 20;

/// Errors reading or validating a configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (or is not a regular file of at most
    /// [`CONFIG_FILE_MAX`] bytes).
    #[error(transparent)]
    Read(#[from] InputError),
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// How a BAR window is backed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BarBacking {
    /// Accesses exit to the VMM's BAR model.
    Trapped,
    /// A host file mapped as a KVM memory slot.
    File(PathBuf),
    /// An anonymous shared-memory object mapped as a KVM memory slot.
    Anonymous,
}

/// One BAR window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarConfig {
    /// Guest-physical base.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Backing.
    pub backing: BarBacking,
    /// Cache mode of the guest's page-table entries for it.
    pub cache: BarCache,
}

/// The cache mode a BAR window's mappings get (`cache = "uc"` or `"wc"`
/// in a `[[bar]]` entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum BarCache {
    /// Uncached (`"uc"`, the default): every access reaches the device.
    #[default]
    #[serde(rename = "uc")]
    Uncached,
    /// Write-combining (`"wc"`, PAT index 4): writes may be buffered and
    /// merged, as drivers set for framebuffers and doorbell pages.
    #[serde(rename = "wc")]
    WriteCombining,
}

impl BarCache {
    /// The mapper's cache mode.
    pub fn mode(self) -> guest_mm::CacheMode {
        match self {
            BarCache::Uncached => guest_mm::CacheMode::Uncached,
            BarCache::WriteCombining => guest_mm::CacheMode::WriteCombining,
        }
    }
}

/// Which program to run.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum GuestChoice {
    /// Nothing chosen: the built-in test guest, unless an option of a
    /// kind chooses that kind (`--kernel`).
    #[default]
    Builtin,
    /// An ELF file (`--guest`), run by the kind `abi` names or the first
    /// that claims it.
    Elf(PathBuf),
    /// A kind by name (`vmm fuzz-guest` chooses `fuzz`), configured by
    /// its options.
    Kind(String),
}

/// Everything a run needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// vCPUs.
    pub vcpus: u8,
    /// BAR windows as configured (none by default; the built-in guest
    /// then gets [`default_bars`]).
    pub bars: Vec<BarConfig>,
    /// Watchdog, in seconds.
    pub timeout_secs: Option<u64>,
    /// The program.
    pub guest: GuestChoice,
    /// The kind that runs an ELF guest (`--abi NAME`); `None`: told by
    /// the file.
    pub abi: Option<String>,
    /// Arguments for the guest (a Solo5 unikernel's command line).
    pub guest_args: Vec<String>,
    /// `mem_size` was given (on the command line or in the file), rather
    /// than defaulted: a kind with a default of its own uses it otherwise.
    pub mem_explicit: bool,
    /// Values of the options kinds declare (`--block`, `--kernel`, ...).
    pub kind_args: KindArgs,
    /// Most VMAs the guest may have (`vm.max_map_count`); more mappings
    /// fail with `ENOMEM`.
    pub max_map_count: usize,
}

/// Largest `max_map_count` accepted: about 6 GiB of host memory for the
/// VMA tree at its measured ~365 bytes per VMA (docs/guest-mm.md).
pub const MAX_MAX_MAP_COUNT: usize = 1 << 24;

/// Longest watchdog accepted: a year (the watchdog's timer and the
/// deadlines computed from it must not overflow).
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Default guest RAM.
pub const DEFAULT_MEM: u64 = 128 << 20;
/// Default size of each default BAR window.
pub const DEFAULT_BAR_SIZE: u64 = 0x1_0000;

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            mem_size: DEFAULT_MEM,
            vcpus: 1,
            bars: Vec::new(),
            timeout_secs: None,
            guest: GuestChoice::Builtin,
            abi: None,
            guest_args: Vec::new(),
            mem_explicit: false,
            kind_args: KindArgs::new(),
            max_map_count: guest_mm::DEFAULT_MAX_MAP_COUNT,
        }
    }
}

/// The windows the built-in guest gets when none are configured: a
/// trapped one, then a passed-through one right after it. Other guests
/// get only the windows configured (each costs a KVM memory slot or an
/// ioeventfd at start).
pub fn default_bars() -> Vec<BarConfig> {
    vec![
        BarConfig {
            base: DEFAULT_BAR_BASE,
            size: DEFAULT_BAR_SIZE,
            backing: BarBacking::Trapped,
            cache: BarCache::Uncached,
        },
        BarConfig {
            base: DEFAULT_BAR_BASE + DEFAULT_BAR_SIZE,
            size: DEFAULT_BAR_SIZE,
            backing: BarBacking::Anonymous,
            cache: BarCache::Uncached,
        },
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    memory_mib: Option<u64>,
    vcpus: Option<u8>,
    timeout_secs: Option<u64>,
    max_map_count: Option<usize>,
    #[serde(default)]
    bar: Vec<FileBar>,
}

/// Who takes the configuration file's top-level keys that are not the
/// machine's: the registry of kinds (`guest::registry::Registry`).
pub trait ConfigOwners {
    /// `None` if no one owns `key`; else the entry as `(option, value)`
    /// pairs of its owner's options, or why it is wrong.
    fn config_entry(&self, key: &str, value: &toml::Value) -> Option<Result<Vec<(&'static str, String)>, String>>;

    /// Every key the owners take (for messages).
    fn keys(&self) -> Vec<&'static str>;
}

/// No owners: only the machine's keys are accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineOnly;

impl ConfigOwners for MachineOnly {
    fn config_entry(&self, _key: &str, _value: &toml::Value) -> Option<Result<Vec<(&'static str, String)>, String>> {
        None
    }

    fn keys(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// The machine's own keys; every other top-level key belongs to a kind.
const MACHINE_KEYS: &[&str] = &["memory_mib", "vcpus", "timeout_secs", "max_map_count", "bar"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBar {
    base: u64,
    size: u64,
    backing: Option<PathBuf>,
    #[serde(default)]
    passthrough: bool,
    #[serde(default)]
    cache: BarCache,
}

impl VmConfig {
    /// Reads `path` on top of the defaults; `owners` (the registry of
    /// kinds) take the keys that are not the machine's.
    pub fn from_file(path: &Path, owners: &dyn ConfigOwners) -> Result<Self, ConfigError> {
        let bytes = read_input(path, CONFIG_FILE_MAX)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::Parse { path: path.to_owned(), message: "not UTF-8 text".into() })?;
        Self::from_toml(&text, owners).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses a TOML document on top of the defaults; `owners` (the
    /// registry of kinds) take the keys that are not the machine's.
    pub fn from_toml(text: &str, owners: &dyn ConfigOwners) -> Result<Self, ConfigError> {
        let parse = |message: String| ConfigError::Parse { path: PathBuf::new(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let mut c = VmConfig::default();
        let kind_keys: Vec<String> = table.keys().filter(|k| !MACHINE_KEYS.contains(&k.as_str())).cloned().collect();
        for key in kind_keys {
            let value = table.remove(&key).unwrap_or(toml::Value::Boolean(false));
            let Some(values) = owners.config_entry(&key, &value) else {
                let mut known: Vec<&str> = MACHINE_KEYS.to_vec();
                known.extend(owners.keys());
                let known = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                return Err(parse(format!("unknown field `{key}`, expected one of {known}")));
            };
            let values = values.map_err(|e| parse(format!("{key}: {e}")))?;
            for (option, v) in values {
                c.kind_args.push(option, v);
            }
        }
        let f: FileConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| parse(e.to_string()))?;
        if let Some(m) = f.memory_mib {
            c.mem_size = m.checked_mul(1 << 20).ok_or_else(|| ConfigError::Invalid("memory_mib too large".into()))?;
            c.mem_explicit = true;
        }
        if let Some(v) = f.vcpus {
            c.vcpus = v;
        }
        c.timeout_secs = f.timeout_secs;
        if let Some(n) = f.max_map_count {
            c.max_map_count = n;
        }
        if !f.bar.is_empty() {
            c.bars = f
                .bar
                .into_iter()
                .map(|b| BarConfig {
                    base: b.base,
                    size: b.size,
                    backing: match (b.backing, b.passthrough) {
                        (Some(p), _) => BarBacking::File(p),
                        (None, true) => BarBacking::Anonymous,
                        (None, false) => BarBacking::Trapped,
                    },
                    cache: b.cache,
                })
                .collect();
        }
        Ok(c)
    }

    /// Checks the configuration as a whole: [`VmConfig::check_mem`] and
    /// [`VmConfig::validate_machine`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_mem()?;
        self.validate_machine()
    }

    /// The memory rule of the VMM's own layout: a multiple of 2 MiB from
    /// [`MIN_MEM_SIZE`] to [`DEFAULT_BAR_BASE`]. A kind whose `mem_size`
    /// means something else (a Solo5 unikernel's own memory) applies its
    /// own rule instead (`GuestKind::check_mem`).
    pub fn check_mem(&self) -> Result<(), ConfigError> {
        if self.mem_size < MIN_MEM_SIZE || self.mem_size > DEFAULT_BAR_BASE || self.mem_size & ((2 << 20) - 1) != 0 {
            return Err(ConfigError::Invalid(format!(
                "memory must be a multiple of 2 MiB between {} MiB and {} MiB, not {:#x} bytes",
                MIN_MEM_SIZE >> 20,
                DEFAULT_BAR_BASE >> 20,
                self.mem_size
            )));
        }
        Ok(())
    }

    /// Checks everything but the memory size (vCPUs, timeout, map count,
    /// BAR windows); the runner asks the guest's kind about the memory.
    pub fn validate_machine(&self) -> Result<(), ConfigError> {
        let inv = |m: String| Err(ConfigError::Invalid(m));
        if self.vcpus == 0 || self.vcpus > layout::MAX_VCPUS {
            return inv(format!("vcpus must be 1..={}, not {}", layout::MAX_VCPUS, self.vcpus));
        }
        if self.timeout_secs == Some(0) {
            return inv("timeout must be at least 1 second".into());
        }
        if let Some(t) = self.timeout_secs.filter(|&t| t > MAX_TIMEOUT_SECS) {
            return inv(format!("timeout must be at most {MAX_TIMEOUT_SECS} seconds (a year), not {t}"));
        }
        if self.max_map_count == 0 || self.max_map_count > MAX_MAX_MAP_COUNT {
            return inv(format!("max_map_count must be 1..={MAX_MAX_MAP_COUNT}, not {}", self.max_map_count));
        }
        let mut windows: Vec<(u64, u64)> = Vec::new();
        for (i, b) in self.bars.iter().enumerate() {
            let end = b.base.checked_add(b.size).filter(|&e| e <= 1 << 46);
            let Some(end) = end else { return inv(format!("bar {i}: window wraps or lies beyond 64 TiB")) };
            if (b.base | b.size) & (PAGE_SIZE - 1) != 0 || b.size == 0 {
                return inv(format!("bar {i}: base {:#x} and size {:#x} must be page aligned", b.base, b.size));
            }
            if b.backing == BarBacking::Trapped && b.size < devices::bar::registers::REGISTER_FILE_LEN {
                return inv(format!("bar {i}: a trapped window needs at least 4 KiB"));
            }
            if b.base < self.mem_size {
                return inv(format!("bar {i}: window at {:#x} overlaps guest RAM", b.base));
            }
            let (ks, ke) = layout::KVM_RESERVED;
            if b.base < ke && ks < end {
                return inv(format!("bar {i}: window overlaps [{ks:#x}, {ke:#x}), which KVM uses"));
            }
            if let Some((s, e)) = windows.iter().find(|&&(s, e)| b.base < e && s < end) {
                return inv(format!("bar {i}: window [{:#x}, {end:#x}) overlaps [{s:#x}, {e:#x})", b.base));
            }
            windows.push((b.base, end));
        }
        Ok(())
    }
}

/// Parses a size: a number of MiB, or a number with a `K`, `M` or `G`
/// suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1 << 20),
    };
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {s:?} (try 128M or 1G)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        VmConfig::default().validate().unwrap();
    }

    #[test]
    fn toml_file() {
        let c = VmConfig::from_toml(
            r#"
            memory_mib = 256
            vcpus = 2
            timeout_secs = 5
            max_map_count = 200000
            [[bar]]
            base = 0xe0000000
            size = 0x10000
            [[bar]]
            base = 0xe0010000
            size = 0x2000
            backing = "/tmp/x"
            [[bar]]
            base = 0xe0020000
            size = 0x1000
            passthrough = true
            cache = "wc"
            "#,
            &MachineOnly,
        )
        .unwrap();
        assert_eq!(c.mem_size, 256 << 20);
        assert_eq!(c.vcpus, 2);
        assert_eq!(c.timeout_secs, Some(5));
        assert_eq!(c.max_map_count, 200_000);
        assert_eq!(c.bars[1].backing, BarBacking::File("/tmp/x".into()));
        assert_eq!(c.bars[2].backing, BarBacking::Anonymous);
        assert_eq!(
            c.bars.iter().map(|b| b.cache).collect::<Vec<_>>(),
            [BarCache::Uncached, BarCache::Uncached, BarCache::WriteCombining]
        );
        assert_eq!(BarCache::WriteCombining.mode(), guest_mm::CacheMode::WriteCombining);
        // Anything else is refused, naming what is allowed.
        let e = VmConfig::from_toml("[[bar]]\nbase = 0xe0000000\nsize = 0x1000\ncache = \"wb\"\n", &MachineOnly)
            .unwrap_err();
        assert!(e.to_string().contains("`uc`") && e.to_string().contains("`wc`"), "{e}");
        c.validate().unwrap();
    }

    #[test]
    fn bad_configs() {
        assert!(matches!(VmConfig::from_toml("memory = 1", &MachineOnly), Err(ConfigError::Parse { .. })));
        let mut c = VmConfig { vcpus: 0, ..Default::default() };
        assert!(c.validate().is_err());
        c.vcpus = 1;
        c.mem_size = 1 << 20;
        assert!(c.validate().is_err());
        // The layout's memory rule is separate: a kind with its own
        // range (Solo5) is checked by everything else alone.
        assert!(c.check_mem().unwrap_err().to_string().contains("multiple of 2 MiB"));
        c.validate_machine().unwrap();
        c.mem_size = DEFAULT_MEM;
        c.bars = default_bars();
        c.bars.push(BarConfig {
            base: DEFAULT_BAR_BASE + 0x8000,
            size: 0x1000,
            backing: BarBacking::Trapped,
            cache: BarCache::Uncached,
        });
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
        c.bars =
            vec![BarConfig { base: 0x100_0000, size: 0x1000, backing: BarBacking::Trapped, cache: BarCache::Uncached }];
        assert!(c.validate().unwrap_err().to_string().contains("guest RAM"));
        c.bars = vec![BarConfig {
            base: DEFAULT_BAR_BASE + 1,
            size: 0x1000,
            backing: BarBacking::Trapped,
            cache: BarCache::Uncached,
        }];
        assert!(c.validate().is_err());
        c.bars = vec![BarConfig {
            base: 0xfff0_0000,
            size: 0x10_0000,
            backing: BarBacking::Trapped,
            cache: BarCache::Uncached,
        }];
        assert!(c.validate().unwrap_err().to_string().contains("KVM uses"));
        c.bars = default_bars();
        for n in [0, MAX_MAX_MAP_COUNT + 1] {
            c.max_map_count = n;
            assert!(c.validate().unwrap_err().to_string().contains("max_map_count"), "{n}");
        }
        c.max_map_count = MAX_MAX_MAP_COUNT;
        c.validate().unwrap();
        for t in [MAX_TIMEOUT_SECS + 1, i64::MAX as u64, u64::MAX] {
            c.timeout_secs = Some(t);
            assert!(c.validate().unwrap_err().to_string().contains("at most"), "{t}");
        }
        c.timeout_secs = Some(MAX_TIMEOUT_SECS);
        c.validate().unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128"), Ok(128 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999G").is_err());
    }
}
