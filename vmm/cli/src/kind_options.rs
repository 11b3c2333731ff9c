//! `vmm run`'s options that belong to kinds of guest: built from the
//! registry's declarations (`vmm::guest::options::KindOption`), so this
//! crate never names a kind's flags, and read back into
//! [`KindArgs`] for the run.

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Command};
use vmm::guest::options::{KindArgs, KindOption};
use vmm::guest::registry::Registry;

/// `run` with every kind's options added, and `--abi` limited to the
/// kinds that run files.
pub fn add(run: Command, registry: &Registry) -> Command {
    let mut abi_values = vec!["auto"];
    abi_values.extend(registry.kinds().filter(|k| k.runs_files()).map(|k| k.name()));
    let mut run = run.mut_arg("abi", |a| a.value_parser(PossibleValuesParser::new(abi_values)));
    for kind in registry.kinds() {
        let selector = kind.options().iter().find(|o| o.selects).map(|o| o.name);
        // One heading per kind in `vmm run --help`. Leaked once per kind
        // when the command is built (clap keeps `&'static str` headings).
        let heading: &'static str = Box::leak(format!("Options of {} guests", kind.name()).into_boxed_str());
        for opt in kind.options() {
            run = run.arg(arg(opt, selector).help_heading(heading));
        }
    }
    run
}

/// One kind option as a clap argument. An option of a kind that has a
/// selecting option requires it; a selecting option cannot go with
/// `--guest`.
fn arg(opt: &'static KindOption, selector: Option<&'static str>) -> Arg {
    let mut a = Arg::new(opt.name)
        .long(opt.name)
        .value_name(opt.value_name)
        .help(opt.help.trim_end_matches('.'))
        .hide(opt.hidden)
        .allow_hyphen_values(opt.hyphen_values)
        .action(if opt.repeatable { ArgAction::Append } else { ArgAction::Set });
    if let Some(check) = opt.check {
        a = a.value_parser(move |s: &str| check(s).map(|()| s.to_owned()));
    }
    match selector {
        Some(sel) if sel == opt.name => a.conflicts_with("guest"),
        Some(sel) => a.requires(sel),
        None => a,
    }
}

/// The kind options `matches` (of `run`) holds.
pub fn collect(matches: &ArgMatches, registry: &Registry) -> KindArgs {
    let mut args = KindArgs::new();
    for opt in registry.kinds().flat_map(|k| k.options()) {
        if let Some(values) = matches.get_many::<String>(opt.name) {
            args.set(opt.name, values.cloned().collect());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;
    use vmm::guest::kind::{KindError, SharedKind};
    use vmm::guest::spec::{KindSpec, Launch};

    use super::*;
    use crate::Cli;

    /// A kind this crate does not know, declaring one option.
    struct Outside;

    impl KindSpec for Outside {
        fn name(&self) -> &'static str {
            "outside"
        }
        fn about(&self) -> &'static str {
            "a kind from outside the vmm crate"
        }
        fn options(&self) -> &'static [KindOption] {
            const O: &[KindOption] = &[KindOption::new("outside-level", "N", "how far outside").selects()];
            O
        }
        fn open(&self, _launch: &Launch<'_>) -> Result<SharedKind, KindError> {
            Err(KindError::Invalid("not opened in this test".into()))
        }
    }

    static OUTSIDE: Outside = Outside;

    fn parse(registry: &Registry, argv: &[&str]) -> Result<KindArgs, clap::Error> {
        let cmd = crate::command(registry);
        let m = cmd.try_get_matches_from(argv)?;
        let _ = Cli::from_arg_matches(&m)?;
        let (_, run) = m.subcommand().expect("a subcommand");
        Ok(collect(run, registry))
    }

    #[test]
    fn kinds_options_come_from_the_registry() {
        let std = Registry::standard();
        let a = parse(&std, &["vmm", "run", "--guest", "u.spt", "--block", "disk=/tmp/d", "--block", "log=/tmp/l"])
            .unwrap();
        assert_eq!(a.values("block"), ["disk=/tmp/d", "log=/tmp/l"]);
        let a = parse(&std, &["vmm", "run", "--kernel", "k.flat", "--append", "-x y", "--module", "m"]).unwrap();
        assert_eq!(a.value("kernel"), Some("k.flat"));
        assert_eq!(a.value("append"), Some("-x y"));
        // The kind's own check runs at parse time; its option needs its selector.
        assert!(parse(&std, &["vmm", "run", "--block", "bad name=/x"]).is_err());
        assert!(parse(&std, &["vmm", "run", "--append", "x"]).is_err());
        assert!(parse(&std, &["vmm", "run", "--kernel", "k", "--guest", "g"]).is_err());
        assert!(parse(&std, &["vmm", "run", "--abi", "nope", "--guest", "g"]).is_err());
        let help = crate::command(&std).find_subcommand_mut("run").unwrap().render_long_help().to_string();
        assert!(help.contains("--block <NAME=FILE>") && help.contains("solo5-spt --block:NAME=FILE"), "{help}");
        assert!(!help.contains("--fuzz-seed"), "hidden options stay hidden");
        assert!(help.contains("Options of solo5 guests") && help.contains("Options of multiboot guests"), "{help}");
    }

    #[test]
    fn a_kind_from_outside_adds_its_option() {
        let reg = Registry::standard().with(&OUTSIDE).unwrap();
        let a = parse(&reg, &["vmm", "run", "--outside-level", "3"]).unwrap();
        assert_eq!(a.value("outside-level"), Some("3"));
        assert!(parse(&Registry::standard(), &["vmm", "run", "--outside-level", "3"]).is_err());
    }
}
