//! What a kind of guest tells the registry about itself ([`KindSpec`]):
//! its name, the options and configuration entries it owns, whether it
//! claims a `--guest` file, and how it is opened for a run ([`Launch`]).
//! The registry (`super::registry`) lists the specs; each kind's folder
//! implements one.

use std::path::Path;

use super::kind::{KindError, SharedKind};
use super::options::{KindArgs, KindOption};
use crate::config::VmConfig;

/// What a kind is opened with.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The run's configuration (`cfg.kind_args` holds this kind's option
    /// values).
    pub cfg: &'a VmConfig,
    /// The `--guest` file and its bytes, when the kind was chosen for it.
    pub file: Option<(&'a Path, &'a [u8])>,
}

impl Launch<'_> {
    /// The values of this kind's options.
    pub fn args(&self) -> &KindArgs {
        &self.cfg.kind_args
    }
}

/// One kind of guest as the registry knows it.
pub trait KindSpec: Send + Sync {
    /// The kind's name (`--abi NAME`, messages).
    fn name(&self) -> &'static str;

    /// One line saying what the kind runs.
    fn about(&self) -> &'static str;

    /// The options this kind adds to `vmm run`.
    fn options(&self) -> &'static [KindOption] {
        &[]
    }

    /// Top-level keys of the configuration file this kind owns.
    fn config_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Turns the configuration file's entry `key` (one of
    /// [`KindSpec::config_keys`]) into values of this kind's options:
    /// `(option, value)` pairs.
    fn config_entry(&self, key: &str, _value: &toml::Value) -> Result<Vec<(&'static str, String)>, String> {
        Err(format!("{}: no configuration entry '{key}'", self.name()))
    }

    /// Whether this kind runs the ELF file `bytes` given with `--guest`
    /// when `--abi` does not say.
    fn claims(&self, _bytes: &[u8]) -> bool {
        false
    }

    /// Whether this kind can run a `--guest` file at all (`--abi NAME`).
    fn runs_files(&self) -> bool {
        false
    }

    /// Builds the kind for a run.
    fn open(&self, launch: &Launch<'_>) -> Result<SharedKind, KindError>;
}
