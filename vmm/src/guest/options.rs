//! Options a kind of guest declares for itself: the command-line options
//! it adds to `vmm run` ([`KindOption`]) and the values a run was given
//! for them ([`KindArgs`]).
//!
//! The library has no command-line parser: a kind declares its options as
//! data, the `vmm` binary turns every registered kind's declarations into
//! options of `vmm run` (with their usage text), and the configuration
//! file's entries a kind owns become values of the same options
//! ([`super::registry::KindSpec::config_entry`]). A kind reads its values
//! back from [`KindArgs`] when it is opened; the runner and the command
//! line never learn what they mean.
//!
//! What this module does not do: decide which kind runs (that is
//! [`super::registry`]).

use std::collections::BTreeMap;

/// Checks one value of an option: `Err` says what is wrong with it.
pub type CheckValue = fn(&str) -> Result<(), String>;

/// One command-line option of a kind (`--NAME VALUE`).
#[derive(Clone, Copy, Debug)]
pub struct KindOption {
    /// The long name, without `--`.
    pub name: &'static str,
    /// The value's placeholder in the usage text (`NAME=FILE`).
    pub value_name: &'static str,
    /// The usage text.
    pub help: &'static str,
    /// May be given more than once (the values keep their order).
    pub repeatable: bool,
    /// Giving it chooses this kind (as `--kernel` chooses a multiboot
    /// kernel); it cannot go with `--guest`.
    pub selects: bool,
    /// Not shown by `vmm run --help` (set by another subcommand, e.g.
    /// `vmm fuzz-guest`).
    pub hidden: bool,
    /// Its value may start with `-` (a command line to pass on).
    pub hyphen_values: bool,
    /// Checks one value as typed, so that a bad one is refused before
    /// anything runs (`None`: any value).
    pub check: Option<CheckValue>,
    /// Its value is `KEY=VALUE` (a device name and what it gets), which
    /// may also be written `--NAME:KEY=VALUE`, as Solo5's tenders spell
    /// it (`--block:storage=disk.img`). The command line rewrites that
    /// form for any kind's keyed option ([`colon_form`]).
    pub keyed: bool,
    /// Takes no value (`--NAME`); a run given it holds the one value
    /// [`FLAG_SET`].
    pub flag: bool,
}

/// The value a run holds for a [`KindOption::flag`] that was given.
pub const FLAG_SET: &str = "true";

/// The `--NAME=KEY=VALUE` that `arg` stands for when it is written
/// `--NAME:KEY=VALUE` and `keyed(NAME)` says `NAME` is a keyed option
/// ([`KindOption::keyed`]); `None` for any other argument.
pub fn colon_form(arg: &str, keyed: impl Fn(&str) -> bool) -> Option<String> {
    let rest = arg.strip_prefix("--")?;
    let (name, value) = rest.split_once(':')?;
    // `--opt=a:b` is an ordinary option whose value holds a colon.
    if name.contains('=') || !keyed(name) {
        return None;
    }
    Some(format!("--{name}={value}"))
}

impl KindOption {
    /// An option taking one value, shown in the usage, with no check.
    pub const fn new(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        KindOption {
            name,
            value_name,
            help,
            repeatable: false,
            selects: false,
            hidden: false,
            hyphen_values: false,
            check: None,
            keyed: false,
            flag: false,
        }
    }

    /// The same option, keyed: its value is `KEY=VALUE`, also written
    /// `--NAME:KEY=VALUE`.
    pub const fn keyed(mut self) -> Self {
        self.keyed = true;
        self
    }

    /// The same option, taking no value.
    pub const fn flag(mut self) -> Self {
        self.flag = true;
        self
    }

    /// The same option, repeatable.
    pub const fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// The same option, choosing its kind.
    pub const fn selects(mut self) -> Self {
        self.selects = true;
        self
    }

    /// The same option, hidden from `vmm run --help`.
    pub const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// The same option, taking values that start with `-`.
    pub const fn hyphen_values(mut self) -> Self {
        self.hyphen_values = true;
        self
    }

    /// The same option, with a check of each value.
    pub const fn checked(mut self, check: CheckValue) -> Self {
        self.check = Some(check);
        self
    }
}

/// The values a run was given for kinds' options, by option name, in the
/// order given. The command line replaces what the configuration file
/// gave for the same option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindArgs(BTreeMap<String, Vec<String>>);

impl KindArgs {
    /// No values.
    pub fn new() -> Self {
        KindArgs::default()
    }

    /// Adds one value of `option`.
    pub fn push(&mut self, option: &str, value: impl Into<String>) {
        self.0.entry(option.to_owned()).or_default().push(value.into());
    }

    /// Replaces every value of `option`.
    pub fn set(&mut self, option: &str, values: Vec<String>) {
        self.0.insert(option.to_owned(), values);
    }

    /// Every value of `option` (empty if it was not given).
    pub fn values(&self, option: &str) -> &[String] {
        self.0.get(option).map_or(&[], Vec::as_slice)
    }

    /// The value of a non-repeatable `option`, if given.
    pub fn value(&self, option: &str) -> Option<&str> {
        self.values(option).last().map(String::as_str)
    }

    /// Whether `option` was given.
    pub fn has(&self, option: &str) -> bool {
        !self.values(option).is_empty()
    }

    /// The options given, with their values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Takes over every option `other` gives (the command line over the
    /// file).
    pub fn override_with(&mut self, other: &KindArgs) {
        for (k, v) in other.iter() {
            self.set(k, v.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colon_form_of_keyed_options_only() {
        let keyed = |n: &str| n == "block" || n == "block-sector-size";
        assert_eq!(colon_form("--block:disk=/a:b", keyed).as_deref(), Some("--block=disk=/a:b"));
        assert_eq!(
            colon_form("--block-sector-size:disk=4096", keyed).as_deref(),
            Some("--block-sector-size=disk=4096")
        );
        // Not keyed, not an option, or a colon only inside the value.
        assert_eq!(colon_form("--net:a=b", keyed), None);
        assert_eq!(colon_form("block:a=b", keyed), None);
        assert_eq!(colon_form("--block=a:b", keyed), None);
        assert_eq!(colon_form("--block", keyed), None);
        // The missing `=` is left for the option's own check to refuse.
        assert_eq!(colon_form("--block:disk", keyed).as_deref(), Some("--block=disk"));
    }

    #[test]
    fn values_keep_their_order_and_override_replaces_whole_options() {
        let mut file = KindArgs::new();
        file.push("block", "a=1");
        file.push("block", "b=2");
        file.push("other", "x");
        assert_eq!(file.values("block"), ["a=1", "b=2"]);
        assert_eq!(file.value("block"), Some("b=2"));
        assert!(file.has("other") && !file.has("none"));
        let mut cli = KindArgs::new();
        cli.push("block", "c=3");
        file.override_with(&cli);
        assert_eq!(file.values("block"), ["c=3"]);
        assert_eq!(file.values("other"), ["x"]);
        assert_eq!(file.iter().count(), 2);
    }
}
