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
//! ```
//!
//! A `[[bar]]` with `passthrough = true` and no `backing` gets an anonymous
//! shared-memory object; a `backing` must be a regular file or a character
//! device (never a FIFO). Command-line options override the file, which
//! must be a regular file of at most [`CONFIG_FILE_MAX`] bytes.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

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
}

/// Which program to run.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum GuestChoice {
    /// The built-in test guest.
    #[default]
    Builtin,
    /// A freestanding x86-64 ELF.
    Elf(PathBuf),
}

/// Which ABI an ELF guest is run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Abi {
    /// Told by the file: a Solo5 ABI note makes it a Solo5 unikernel.
    #[default]
    Auto,
    /// The VMM's own ABI (`docs/guest-abi.md`).
    Vmm,
    /// A Solo5 `spt` unikernel.
    Solo5,
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
    /// The ABI of an ELF guest.
    pub abi: Abi,
    /// Arguments for the guest (a Solo5 unikernel's command line).
    pub guest_args: Vec<String>,
    /// `mem_size` was given (on the command line or in the file), rather
    /// than defaulted: a kind with a default of its own uses it otherwise.
    pub mem_explicit: bool,
}

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
            abi: Abi::Auto,
            guest_args: Vec::new(),
            mem_explicit: false,
        }
    }
}

/// The windows the built-in guest gets when none are configured: a
/// trapped one, then a passed-through one right after it. Other guests
/// get only the windows configured (each costs a KVM memory slot or an
/// ioeventfd at start).
pub fn default_bars() -> Vec<BarConfig> {
    vec![
        BarConfig { base: DEFAULT_BAR_BASE, size: DEFAULT_BAR_SIZE, backing: BarBacking::Trapped },
        BarConfig { base: DEFAULT_BAR_BASE + DEFAULT_BAR_SIZE, size: DEFAULT_BAR_SIZE, backing: BarBacking::Anonymous },
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    memory_mib: Option<u64>,
    vcpus: Option<u8>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    bar: Vec<FileBar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBar {
    base: u64,
    size: u64,
    backing: Option<PathBuf>,
    #[serde(default)]
    passthrough: bool,
}

impl VmConfig {
    /// Reads `path` on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let bytes = read_input(path, CONFIG_FILE_MAX)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::Parse { path: path.to_owned(), message: "not UTF-8 text".into() })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses a TOML document on top of the defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let f: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        let mut c = VmConfig::default();
        if let Some(m) = f.memory_mib {
            c.mem_size = m.checked_mul(1 << 20).ok_or_else(|| ConfigError::Invalid("memory_mib too large".into()))?;
            c.mem_explicit = true;
        }
        if let Some(v) = f.vcpus {
            c.vcpus = v;
        }
        c.timeout_secs = f.timeout_secs;
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
                })
                .collect();
        }
        Ok(c)
    }

    /// Checks the configuration as a whole.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv = |m: String| Err(ConfigError::Invalid(m));
        if self.mem_size < MIN_MEM_SIZE || self.mem_size > DEFAULT_BAR_BASE || self.mem_size & ((2 << 20) - 1) != 0 {
            return inv(format!(
                "memory must be a multiple of 2 MiB between {} MiB and {} MiB, not {:#x} bytes",
                MIN_MEM_SIZE >> 20,
                DEFAULT_BAR_BASE >> 20,
                self.mem_size
            ));
        }
        if self.vcpus == 0 || self.vcpus > layout::MAX_VCPUS {
            return inv(format!("vcpus must be 1..={}, not {}", layout::MAX_VCPUS, self.vcpus));
        }
        if self.timeout_secs == Some(0) {
            return inv("timeout must be at least 1 second".into());
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
            "#,
        )
        .unwrap();
        assert_eq!(c.mem_size, 256 << 20);
        assert_eq!(c.vcpus, 2);
        assert_eq!(c.timeout_secs, Some(5));
        assert_eq!(c.bars[1].backing, BarBacking::File("/tmp/x".into()));
        assert_eq!(c.bars[2].backing, BarBacking::Anonymous);
        c.validate().unwrap();
    }

    #[test]
    fn bad_configs() {
        assert!(matches!(VmConfig::from_toml("memory = 1"), Err(ConfigError::Parse { .. })));
        let mut c = VmConfig { vcpus: 0, ..Default::default() };
        assert!(c.validate().is_err());
        c.vcpus = 1;
        c.mem_size = 1 << 20;
        assert!(c.validate().is_err());
        c.mem_size = DEFAULT_MEM;
        c.bars = default_bars();
        c.bars.push(BarConfig { base: DEFAULT_BAR_BASE + 0x8000, size: 0x1000, backing: BarBacking::Trapped });
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
        c.bars = vec![BarConfig { base: 0x100_0000, size: 0x1000, backing: BarBacking::Trapped }];
        assert!(c.validate().unwrap_err().to_string().contains("guest RAM"));
        c.bars = vec![BarConfig { base: DEFAULT_BAR_BASE + 1, size: 0x1000, backing: BarBacking::Trapped }];
        assert!(c.validate().is_err());
        c.bars = vec![BarConfig { base: 0xfff0_0000, size: 0x10_0000, backing: BarBacking::Trapped }];
        assert!(c.validate().unwrap_err().to_string().contains("KVM uses"));
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
