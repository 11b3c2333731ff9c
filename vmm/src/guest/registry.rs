//! The kinds a VMM knows, and the one place a run's kind is chosen.
//!
//! Each kind registers a [`KindSpec`]: its name, the options and
//! configuration entries it owns, whether it claims a `--guest` file, and
//! how it is opened for a run. [`Registry::standard`] lists the kinds of
//! this crate, one line each; a program embedding the VMM adds its own
//! with [`Registry::with`]. The `vmm` command builds `vmm run`'s options
//! from the registry, so a kind's flags never appear anywhere else.
//!
//! Choosing ([`Registry::open`]):
//! 1. an option that selects a kind (`--kernel`) chooses it;
//! 2. a `--guest FILE` goes to the kind `--abi` names, else to the first
//!    kind in registry order that claims the file (a Solo5 note means
//!    Solo5, the VMM's ABI note the VMM's own ABI; Linux takes the rest);
//! 3. [`GuestChoice::Kind`] names a kind directly (`vmm fuzz-guest`);
//! 4. nothing chosen runs the built-in test guest.
//!
//! Every option given must belong to the kind chosen.

use super::kind::{KindError, SharedKind};
use super::kinds::{abi_elf, builtin, fuzz, linux, multiboot, solo5};
use super::options::{KindArgs, KindOption};
use super::spec::{KindSpec, Launch};
use crate::config::{ConfigOwners, GuestChoice, VmConfig};

/// The kinds a VMM knows, in the order they claim `--guest` files.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<&'static dyn KindSpec>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.iter().map(|k| k.name())).finish()
    }
}

/// The name of the kind that runs when nothing else is chosen.
pub const DEFAULT_KIND: &str = "builtin";

impl Registry {
    /// The kinds of this crate, one line each.
    pub fn standard() -> Self {
        Registry {
            kinds: vec![
                &builtin::SPEC,
                &fuzz::SPEC,
                &multiboot::SPEC,
                &solo5::SPEC,
                // Claims ELFs with the VMM's ABI note.
                &abi_elf::SPEC,
                // Claims every other ELF: last among the kinds that run
                // files.
                &linux::SPEC,
            ],
        }
    }

    /// This registry with `spec` added. A kind that claims files is asked
    /// before the standard ones.
    ///
    /// # Errors
    /// A kind of the same name, or an option name another kind declares.
    pub fn with(mut self, spec: &'static dyn KindSpec) -> Result<Self, String> {
        if self.kinds.iter().any(|k| k.name() == spec.name()) {
            return Err(format!("a kind named '{}' is already registered", spec.name()));
        }
        for o in spec.options() {
            if let Some((k, _)) = self.option(o.name) {
                return Err(format!("option --{}: kind '{}' declares it already", o.name, k.name()));
            }
        }
        self.kinds.insert(0, spec);
        Ok(self)
    }

    /// Every kind, in order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static dyn KindSpec> + '_ {
        self.kinds.iter().copied()
    }

    /// The kind named `name`.
    pub fn get(&self, name: &str) -> Option<&'static dyn KindSpec> {
        self.kinds().find(|k| k.name() == name)
    }

    /// The kind declaring option `name`, with the option.
    pub fn option(&self, name: &str) -> Option<(&'static dyn KindSpec, &'static KindOption)> {
        self.kinds().find_map(|k| k.options().iter().find(|o| o.name == name).map(|o| (k, o)))
    }

    /// The kind owning the configuration file's top-level `key`.
    pub fn config_owner(&self, key: &str) -> Option<&'static dyn KindSpec> {
        self.kinds().find(|k| k.config_keys().contains(&key))
    }

    /// Checks every value in `args`: the option exists, is given once
    /// unless repeatable, and passes its own check.
    pub fn check_args(&self, args: &KindArgs) -> Result<(), KindError> {
        for (name, values) in args.iter() {
            let Some((_, opt)) = self.option(name) else {
                return Err(KindError::Invalid(format!("no kind has an option --{name}")));
            };
            if values.len() > 1 && !opt.repeatable {
                return Err(KindError::Invalid(format!("--{name} is given {} times", values.len())));
            }
            if let Some(check) = opt.check {
                for v in values {
                    check(v).map_err(|e| KindError::Invalid(format!("--{name}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// The kind that runs `cfg`'s guest, opened.
    pub fn open(&self, cfg: &VmConfig) -> Result<SharedKind, KindError> {
        self.check_args(&cfg.kind_args)?;
        let selected: Vec<&'static dyn KindSpec> = cfg
            .kind_args
            .iter()
            .filter_map(|(name, _)| self.option(name).filter(|(_, o)| o.selects).map(|(k, _)| k))
            .collect();
        let named = |name: &str| self.get(name).ok_or_else(|| KindError::Invalid(format!("no kind named '{name}'")));
        let (spec, file) = match (&cfg.guest, selected.first()) {
            (GuestChoice::Elf(p), Some(k)) => {
                return Err(KindError::Invalid(format!(
                    "--guest {} cannot go with an option that chooses a {} guest",
                    p.display(),
                    k.name()
                )))
            }
            (GuestChoice::Kind(name), Some(k)) if name != k.name() => {
                return Err(KindError::Invalid(format!("a {name} guest cannot take {} options", k.name())))
            }
            (_, Some(k)) => (*k, None),
            (GuestChoice::Kind(name), None) => (named(name)?, None),
            (GuestChoice::Builtin, None) => (named(DEFAULT_KIND)?, None),
            (GuestChoice::Elf(path), None) => {
                let bytes = super::elf_program::read_file(path)?;
                let spec = match &cfg.abi {
                    Some(name) => {
                        let k = named(name)?;
                        if !k.runs_files() {
                            return Err(KindError::Invalid(format!("--abi {name}: that kind does not run files")));
                        }
                        k
                    }
                    None => self.kinds().find(|k| k.runs_files() && k.claims(&bytes)).ok_or_else(|| {
                        KindError::Invalid(format!("{}: no kind of guest runs this file", path.display()))
                    })?,
                };
                (spec, Some((path.as_path(), bytes)))
            }
        };
        for (name, _) in cfg.kind_args.iter() {
            if let Some((owner, _)) = self.option(name) {
                if owner.name() != spec.name() {
                    return Err(KindError::Invalid(format!(
                        "--{name} is an option of {} guests; this guest is run as {}",
                        owner.name(),
                        spec.name()
                    )));
                }
            }
        }
        spec.open(&Launch { cfg, file: file.as_ref().map(|(p, b)| (*p, b.as_slice())) })
    }
}

impl ConfigOwners for Registry {
    fn config_entry(&self, key: &str, value: &toml::Value) -> Option<Result<Vec<(&'static str, String)>, String>> {
        let kind = self.config_owner(key)?;
        Some(kind.config_entry(key, value).and_then(|pairs| {
            for (option, v) in &pairs {
                let check = kind.options().iter().find(|o| o.name == *option).and_then(|o| o.check);
                if let Some(check) = check {
                    check(v)?;
                }
            }
            Ok(pairs)
        }))
    }

    fn keys(&self) -> Vec<&'static str> {
        self.kinds().flat_map(|k| k.config_keys().iter().copied()).collect()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_kinds_have_unique_names_and_options() {
        let r = Registry::standard();
        let mut names: Vec<&str> = r.kinds().map(|k| k.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "{names:?}");
        let mut opts: Vec<&str> = r.kinds().flat_map(|k| k.options().iter().map(|o| o.name)).collect();
        let n = opts.len();
        opts.sort_unstable();
        opts.dedup();
        assert_eq!(opts.len(), n, "{opts:?}");
        assert!(r.get(DEFAULT_KIND).is_some());
        // A name or an option twice is refused.
        assert!(Registry::standard().with(&solo5::SPEC).is_err());
    }

    #[test]
    fn options_are_checked_and_belong_to_the_chosen_kind() {
        let r = Registry::standard();
        let mut cfg = VmConfig::default();
        cfg.kind_args.push("no-such-option", "x");
        assert!(r.open(&cfg).unwrap_err().to_string().contains("--no-such-option"));

        let mut cfg = VmConfig::default();
        cfg.kind_args.push("block", "storage=/tmp/x");
        let e = r.open(&cfg).unwrap_err().to_string();
        assert!(e.contains("--block is an option of solo5 guests"), "{e}");

        let mut cfg = VmConfig::default();
        cfg.kind_args.push("block", "bad name=/tmp/x");
        let e = r.open(&cfg).unwrap_err().to_string();
        assert!(e.contains("ASCII letters and digits"), "{e}");

        let mut cfg = VmConfig::default();
        cfg.kind_args.push("append", "a");
        cfg.kind_args.push("append", "b");
        assert!(r.open(&cfg).unwrap_err().to_string().contains("given 2 times"));

        let cfg = VmConfig { guest: GuestChoice::Kind("nope".into()), ..VmConfig::default() };
        assert!(r.open(&cfg).unwrap_err().to_string().contains("no kind named 'nope'"));
    }
}
