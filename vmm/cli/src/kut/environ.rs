//! The guest's environment, as upstream's `scripts/arch-run.bash` builds
//! it for every test (`ENVIRON_DEFAULT=yes`) and passes it with
//! `-initrd`: `QEMU_ACCEL` and the empty QEMU version fields (there is no
//! QEMU here), the host kernel's version (`KERNEL_VERSION_STRING`,
//! `KERNEL_VERSION`, `KERNEL_PATCHLEVEL`, `KERNEL_SUBLEVEL`,
//! `KERNEL_EXTRAVERSION`), the variables of the user's
//! `KVM_UNIT_TESTS_ENV` file ([`super::env_file`]), one
//! `ERRATA_<commit>=y|n` per line of `errata.txt` (`y` when the host
//! kernel is at least the line's version), and every `ERRATA_*` variable
//! of the runner's own environment (`ERRATA_FORCE=y` from `-a`, or one the
//! user set); one the file or the runner's environment gives keeps
//! `errata.txt` from deciding that entry, and the file's wins.
//!
//! `errata.txt` comes from the tree, so it is read bounded by the caller
//! and every line is checked: a commit that is not a variable name or a
//! version that is not `MAJOR.MINOR[.SUB[-EXTRA]]` is an error naming the
//! line, never text copied into the guest's environment. What it does not
//! do: run anything.

use kut_cfg::excerpt;

/// The host kernel's version, as `uname -r` prints it and upstream splits
/// it: `MAJOR.PATCHLEVEL.SUBLEVEL-EXTRAVERSION...`, each of the last two
/// the digits it starts with (empty when none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVersion {
    /// `uname -r`.
    pub string: String,
    /// The major version.
    pub version: String,
    /// The minor version.
    pub patchlevel: String,
    /// The digits the third component starts with.
    pub sublevel: String,
    /// The digits the part after the first `-` starts with.
    pub extraversion: String,
}

impl KernelVersion {
    /// Splits a release string such as `6.1.0-18-amd64`.
    pub fn parse(release: &str) -> KernelVersion {
        let release = release.trim();
        let mut parts = release.splitn(3, '.');
        let version = parts.next().unwrap_or("").to_string();
        let patchlevel = parts.next().unwrap_or("").to_string();
        let rest = parts.next().unwrap_or("");
        let (sub, extra) = rest.split_once('-').unwrap_or((rest, ""));
        KernelVersion {
            string: release.to_string(),
            version,
            patchlevel,
            sublevel: leading_digits(sub).to_string(),
            extraversion: leading_digits(extra).to_string(),
        }
    }

    /// The running host's (`/proc/sys/kernel/osrelease`, as `uname -r`).
    pub fn host() -> std::io::Result<KernelVersion> {
        let text = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        Ok(KernelVersion::parse(&text))
    }

    /// Whether this kernel is at least `min` (an `errata.txt` version), by
    /// upstream's `env_generate_errata` rules: a missing sublevel or
    /// extraversion on either side matches unless the other side asks
    /// for a non-zero one.
    fn at_least(&self, min: &MinVersion) -> Result<bool, String> {
        let num = |s: &str| if s.is_empty() { Ok(None) } else { s.parse::<u64>().map(Some) };
        let bad = |e: std::num::ParseIntError| format!("the host kernel version {} is not numeric ({e})", self.string);
        let (k, p) = (num(&self.version).map_err(bad)?, num(&self.patchlevel).map_err(bad)?);
        let (Some(k), Some(p)) = (k, p) else {
            return Err(format!("the host kernel version {} has no MAJOR.MINOR", self.string));
        };
        let (ks, kx) = (num(&self.sublevel).map_err(bad)?, num(&self.extraversion).map_err(bad)?);
        if (k, p) != (min.version, min.patchlevel) {
            return Ok((k, p) > (min.version, min.patchlevel));
        }
        Ok(match (ks, min.sublevel) {
            (Some(ks), Some(s)) if ks != s => ks > s,
            (Some(_), Some(_)) => match (kx, min.extraversion) {
                (Some(kx), Some(x)) => kx >= x,
                (_, x) => x.unwrap_or(0) == 0,
            },
            (_, s) => s.unwrap_or(0) == 0,
        })
    }
}

/// The digits `s` starts with.
fn leading_digits(s: &str) -> &str {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    &s[..end]
}

/// An `errata.txt` minimum version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MinVersion {
    version: u64,
    patchlevel: u64,
    sublevel: Option<u64>,
    extraversion: Option<u64>,
}

impl MinVersion {
    fn parse(v: &str) -> Option<MinVersion> {
        let mut parts = v.splitn(3, '.');
        let version = parts.next()?.parse().ok()?;
        let patchlevel = parts.next()?.parse().ok()?;
        let rest = parts.next().unwrap_or("");
        let (sub, extra) = rest.split_once('-').unwrap_or((rest, ""));
        let opt = |s: &str| match leading_digits(s) {
            "" => Some(None),
            d => d.parse().ok().map(Some),
        };
        Some(MinVersion { version, patchlevel, sublevel: opt(sub)?, extraversion: opt(extra)? })
    }
}

/// Whether `s` can follow `ERRATA_` in a variable name.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `ERRATA_<commit>` entries `errata.txt` (its text) gives for
/// `kernel`, in file order, leaving out those `set` (the runner's own
/// `ERRATA_*` variables) already names; or why the file is bad.
pub fn errata_entries(text: &str, kernel: &KernelVersion, set: &[(String, String)]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let line: String = line.chars().filter(|c| *c != ' ' && *c != '\t').collect();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(':');
        let commit = fields.next().unwrap_or("");
        if commit.is_empty() {
            continue;
        }
        let shown = || format!("errata.txt line {}: {}", i + 1, excerpt(&line));
        if !is_name(commit) {
            return Err(format!("{}: the commit is not a variable name", shown()));
        }
        let name = format!("ERRATA_{commit}");
        if set.iter().any(|(n, v)| *n == name && !v.is_empty()) {
            continue;
        }
        let min = fields
            .next()
            .and_then(MinVersion::parse)
            .ok_or_else(|| format!("{}: bad minimum kernel version", shown()))?;
        let have = if kernel.at_least(&min)? { "y" } else { "n" };
        out.push(format!("{name}={have}"));
    }
    Ok(out)
}

/// The runner's own `ERRATA_*` variables (name, value), sorted; a value
/// with a control character in it (it would add lines to the guest's
/// environment) or a name or value that is not UTF-8 is an error.
pub fn errata_variables(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in vars {
        let Some(k) = k.to_str().filter(|k| k.starts_with("ERRATA_")) else { continue };
        let v = v.to_str().ok_or_else(|| format!("{k} is not UTF-8"))?;
        if !is_name(&k["ERRATA_".len()..]) || v.chars().any(char::is_control) {
            return Err(format!("{}={} cannot be passed to the guest", excerpt(k), excerpt(v)));
        }
        out.push((k.to_string(), v.to_string()));
    }
    out.sort();
    Ok(out)
}

/// The variables the generated part of the environment has, which a
/// `KVM_UNIT_TESTS_ENV` file cannot change.
pub const GENERATED: &[&str] = &[
    "QEMU_ACCEL",
    "QEMU_VERSION_STRING",
    "QEMU_MAJOR",
    "QEMU_MINOR",
    "QEMU_MICRO",
    "KERNEL_VERSION_STRING",
    "KERNEL_VERSION",
    "KERNEL_PATCHLEVEL",
    "KERNEL_SUBLEVEL",
    "KERNEL_EXTRAVERSION",
];

/// The runner's `ERRATA_*` variables (`set`) with those the
/// `KVM_UNIT_TESTS_ENV` file gives (`file`) in their place, sorted: what
/// decides `errata.txt`'s entries, as upstream's `env_file` exports the
/// file's variables before `env_generate_errata` looks.
pub fn with_file(set: &[(String, String)], file: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        set.iter().filter(|(n, _)| !file.iter().any(|(f, _)| f == n)).cloned().collect();
    out.extend(file.iter().filter(|(n, _)| n.starts_with("ERRATA_")).cloned());
    out.sort();
    out
}

/// The guest environment file's text: the QEMU and kernel fields, then
/// the `KVM_UNIT_TESTS_ENV` file's variables (`file`, from
/// [`super::env_file::assignments`] with [`GENERATED`]), then the
/// `errata.txt` entries (`errata`, from [`errata_entries`]), then the
/// runner's `ERRATA_*` variables (`set`) the file does not give, one
/// `NAME=VALUE` per line.
pub fn environment(
    kernel: &KernelVersion,
    file: &[(String, String)],
    errata: &[String],
    set: &[(String, String)],
) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut lines = vec![
        // What QEMU would add: vmm runs every guest with kvm, and is no QEMU.
        "QEMU_ACCEL=kvm".to_string(),
        "QEMU_VERSION_STRING=".into(),
        "QEMU_MAJOR=".into(),
        "QEMU_MINOR=".into(),
        "QEMU_MICRO=".into(),
        format!("KERNEL_VERSION_STRING={}", clean(&kernel.string)),
        format!("KERNEL_VERSION={}", clean(&kernel.version)),
        format!("KERNEL_PATCHLEVEL={}", clean(&kernel.patchlevel)),
        format!("KERNEL_SUBLEVEL={}", kernel.sublevel),
        format!("KERNEL_EXTRAVERSION={}", kernel.extraversion),
    ];
    lines.extend(file.iter().map(|(k, v)| format!("{k}={v}")));
    lines.extend(errata.iter().cloned());
    let given = |k: &String| file.iter().any(|(f, _)| f == k);
    lines.extend(set.iter().filter(|(k, _)| !given(k)).map(|(k, v)| format!("{k}={v}")));
    lines.into_iter().map(|l| l + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(r: &str) -> KernelVersion {
        KernelVersion::parse(r)
    }

    #[test]
    fn kernel_versions_split_as_upstream() {
        let v = k("6.1.0-18-amd64\n");
        assert_eq!(
            (v.version.as_str(), v.patchlevel.as_str(), v.sublevel.as_str(), v.extraversion.as_str()),
            ("6", "1", "0", "18")
        );
        let v = k("6.12");
        assert_eq!((v.sublevel.as_str(), v.extraversion.as_str()), ("", ""));
        let v = k("5.15.0rc1-x");
        assert_eq!((v.sublevel.as_str(), v.extraversion.as_str()), ("0", ""));
    }

    /// `env_generate_errata`'s comparison, case by case.
    #[test]
    fn errata_versions_compare_as_upstream() {
        let at = |kernel: &str, min: &str| k(kernel).at_least(&MinVersion::parse(min).unwrap()).unwrap();
        assert!(at("6.1.0-18-amd64", "4.11"));
        assert!(at("6.1.0", "6.0"));
        assert!(!at("6.1.0", "6.2"));
        assert!(!at("5.19.0", "6.0"));
        assert!(at("6.1.5", "6.1.5"));
        assert!(at("6.1.6", "6.1.5"));
        assert!(!at("6.1.4", "6.1.5"));
        assert!(at("6.1", "6.1.0"));
        assert!(!at("6.1", "6.1.3"));
        assert!(at("6.1.5-3", "6.1.5-3"));
        assert!(!at("6.1.5-2", "6.1.5-3"));
        assert!(!at("6.1.5", "6.1.5-3"));
        assert!(at("6.1.5", "6.1.5-0"));
        assert!(at("6.1.5-9", "6.1.5"));
    }

    #[test]
    fn errata_txt_entries() {
        let text = "# comment\n\n9e3f7a296940 : 4.9 : arm64: KVM: pmu: Fix AArch32 cycle counter access\n\
                    7b6b46311a85:99.0:future\n  abc  :6.1.0-18 : blanks anywhere\n";
        let set = vec![];
        assert_eq!(
            errata_entries(text, &k("6.1.0-18-amd64"), &set).unwrap(),
            ["ERRATA_9e3f7a296940=y", "ERRATA_7b6b46311a85=n", "ERRATA_abc=y"]
        );
        // A variable the user set decides that entry.
        let set = vec![("ERRATA_7b6b46311a85".to_string(), "y".to_string())];
        assert_eq!(errata_entries(text, &k("6.1.0"), &set).unwrap(), ["ERRATA_9e3f7a296940=y", "ERRATA_abc=n"]);
        for bad in ["x:y\n", "c0ffee\n", "c0ffee:6\n", "$(id):6.1\n", "a-b:6.1\n", "c:6.1.99999999999999999999999\n"] {
            assert!(errata_entries(bad, &k("6.1.0"), &[]).unwrap_err().contains("line 1"), "{bad}");
        }
        assert!(errata_entries("c:6.1\n", &k("foo"), &[]).is_err());
    }

    #[test]
    fn variables_and_the_file() {
        use std::ffi::OsString;
        let v = |k: &str, v: &str| (OsString::from(k), OsString::from(v));
        let set = errata_variables([v("PATH", "/bin"), v("ERRATA_FORCE", "y"), v("ERRATA_abc", "n")]).unwrap();
        assert_eq!(set, [("ERRATA_FORCE".into(), "y".into()), ("ERRATA_abc".into(), "n".into())]);
        assert!(errata_variables([v("ERRATA_X", "y\nKERNEL_VERSION=99")]).is_err());
        assert!(errata_variables([v("ERRATA_a.b", "y")]).is_err());
        let text = environment(&k("6.1.0-18-amd64"), &[], &["ERRATA_c=y".into()], &set);
        assert_eq!(
            text,
            "QEMU_ACCEL=kvm\nQEMU_VERSION_STRING=\nQEMU_MAJOR=\nQEMU_MINOR=\nQEMU_MICRO=\n\
             KERNEL_VERSION_STRING=6.1.0-18-amd64\nKERNEL_VERSION=6\nKERNEL_PATCHLEVEL=1\nKERNEL_SUBLEVEL=0\n\
             KERNEL_EXTRAVERSION=18\nERRATA_c=y\nERRATA_FORCE=y\nERRATA_abc=n\n"
        );
    }

    /// The `KVM_UNIT_TESTS_ENV` file's variables: after the generated
    /// part, before `errata.txt`'s entries; its `ERRATA_*` ones decide
    /// `errata.txt`'s entries and replace the runner's.
    #[test]
    fn the_users_file_comes_after_the_generated_part_and_wins_errata() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        let runner = vec![pair("ERRATA_FORCE", "y"), pair("ERRATA_abc", "y")];
        let file = vec![pair("FOO", "1"), pair("ERRATA_abc", "n"), pair("ERRATA_def", "y")];
        let set = with_file(&runner, &file);
        assert_eq!(set, [pair("ERRATA_FORCE", "y"), pair("ERRATA_abc", "n"), pair("ERRATA_def", "y")]);
        let errata = errata_entries("abc:4.0\ndef:99.0\nghi:4.0\n", &k("6.1.0"), &set).unwrap();
        assert_eq!(errata, ["ERRATA_ghi=y"]);
        let text = environment(&k("6.1.0"), &file, &errata, &runner);
        let tail: Vec<&str> = text.lines().skip(GENERATED.len()).collect();
        assert_eq!(tail, ["FOO=1", "ERRATA_abc=n", "ERRATA_def=y", "ERRATA_ghi=y", "ERRATA_FORCE=y"]);
        let head: Vec<&str> = text.lines().take(GENERATED.len()).map(|l| l.split('=').next().unwrap()).collect();
        assert_eq!(head, GENERATED);
    }
}
