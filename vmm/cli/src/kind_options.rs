//! `vmm run`'s options that belong to kinds of guest: built from the
//! registry's declarations (`vmm::guest::options::KindOption`), so this
//! crate never names a kind's flags, and read back into
//! [`KindArgs`] for the run. A keyed option's colon form
//! (`--NAME:KEY=VALUE`, as Solo5's tenders take it) cannot be a clap
//! option: [`rewrite`] turns it into `--NAME=KEY=VALUE` before clap
//! parses, for any kind's keyed option.

use std::ffi::OsString;

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Command};
use vmm::guest::options::{colon_form, KindArgs, KindOption, FLAG_SET};
use vmm::guest::registry::Registry;

/// `argv` with every `--NAME:KEY=VALUE` of `vmm run` (before `--`) whose
/// NAME is a keyed option of a kind in `registry` written
/// `--NAME=KEY=VALUE`. The value of an option that takes values starting
/// with `-` (a command line to pass on) is left as it is.
pub fn rewrite(argv: impl IntoIterator<Item = OsString>, registry: &Registry) -> Vec<OsString> {
    let options: Vec<&KindOption> = registry.kinds().flat_map(|k| k.options()).collect();
    let keyed = |n: &str| options.iter().any(|o| o.keyed && o.name == n);
    let takes_hyphen_value = |a: &str| {
        a.strip_prefix("--").is_some_and(|n| options.iter().any(|o| o.hyphen_values && !o.flag && o.name == n))
    };
    let mut out: Vec<OsString> = argv.into_iter().collect();
    if out.get(1).is_none_or(|a| a != "run") {
        return out;
    }
    let mut skip_next = false;
    for a in out.iter_mut().skip(2) {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        if std::mem::take(&mut skip_next) {
            continue;
        }
        skip_next = takes_hyphen_value(s);
        if let Some(r) = colon_form(s, keyed) {
            *a = r.into();
        }
    }
    out
}

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
    let mut a = Arg::new(opt.name).long(opt.name).help(opt.help.trim_end_matches('.')).hide(opt.hidden);
    a = if opt.flag {
        a.action(ArgAction::SetTrue)
    } else {
        a.value_name(opt.value_name).allow_hyphen_values(opt.hyphen_values).action(if opt.repeatable {
            ArgAction::Append
        } else {
            ArgAction::Set
        })
    };
    if let Some(check) = opt.check.filter(|_| !opt.flag) {
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
        if opt.flag {
            if matches.get_flag(opt.name) {
                args.set(opt.name, vec![FLAG_SET.to_owned()]);
            }
        } else if let Some(values) = matches.get_many::<String>(opt.name) {
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
            const O: &[KindOption] = &[
                KindOption::new("outside-level", "N", "how far outside").selects(),
                KindOption::new("outside-port", "NAME=N", "a named port").keyed().repeatable(),
                KindOption::new("outside-loud", "", "no value").flag(),
            ];
            O
        }
        fn open(&self, _launch: &Launch<'_>) -> Result<SharedKind, KindError> {
            Err(KindError::Invalid("not opened in this test".into()))
        }
    }

    static OUTSIDE: Outside = Outside;

    fn parse(registry: &Registry, argv: &[&str]) -> Result<KindArgs, clap::Error> {
        let cmd = crate::command(registry);
        let m = cmd.try_get_matches_from(rewrite(argv.iter().map(OsString::from), registry))?;
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
        // Solo5's own spelling: the colon forms, after `run` and before `--`
        // only, and not as the value of an option that takes `-` values.
        let argv = ["vmm", "run", "--guest", "u.spt", "--block:disk=/tmp/d", "--block-sector-size:disk=4096"];
        let a = parse(&std, &argv).unwrap();
        assert_eq!(a.values("block"), ["disk=/tmp/d"]);
        assert_eq!(a.values("block-sector-size"), ["disk=4096"]);
        let argv = ["vmm", "run", "--guest", "u.spt", "--x-exec-heap", "--", "--block:disk=/tmp/d"];
        let a = parse(&std, &argv).unwrap();
        assert!(!a.has("block") && a.has("x-exec-heap"));
        let argv = ["vmm", "run", "--kernel", "k", "--append", "--block:a=b"];
        assert_eq!(parse(&std, &argv).unwrap().value("append"), Some("--block:a=b"));
        assert!(parse(&std, &["vmm", "run", "--block-sector-size:disk=1000"]).is_err());
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
        assert!(!a.has("outside-loud"));
        // Its keyed option's colon form and its flag, with nothing here
        // naming them.
        let argv =
            ["vmm", "run", "--outside-level", "3", "--outside-port:a=1", "--outside-port", "b=2", "--outside-loud"];
        let a = parse(&reg, &argv).unwrap();
        assert_eq!(a.values("outside-port"), ["a=1", "b=2"]);
        assert_eq!(a.value("outside-loud"), Some(FLAG_SET));
        assert!(parse(&Registry::standard(), &["vmm", "run", "--outside-level", "3"]).is_err());
    }
}
