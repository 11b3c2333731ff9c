//! `KVM_UNIT_TESTS_ENV`: a user's environment file, whose variables
//! upstream's `scripts/arch-run.bash` (`env_file`, with
//! `ENVIRON_DEFAULT=yes`) adds to the environment it generates for every
//! guest. Its rules, followed here: only lines that start (after blanks)
//! with `NAME=` count, every other line is ignored; such a line is split
//! into words at blanks (the shell's `for line in $(grep ...)`), and each
//! word `NAME=VALUE` is one variable; a variable the generated part
//! already has (`QEMU_ACCEL`, the QEMU and host kernel version fields) or
//! an earlier word gave is left out; the rest come after the generated
//! part, in file order, and decide their `ERRATA_*` entries over
//! `errata.txt` and over the runner's own environment.
//!
//! Upstream `eval`s every word; here a word is taken only when the shell
//! would take it literally: a plain value, or one wholly inside `"..."` or
//! `'...'` (the quotes removed). A word that needs the shell (`$`, a
//! backquote, a backslash, a glob, a redirection, a quote inside the
//! value, `~`) or that is not `NAME=VALUE` is an error naming the line,
//! never passed on changed or dropped silently. What it does not do:
//! expand variables or run commands, or read a file that is not a
//! regular file (upstream's `[ -f ... ]` ignores it; the caller says so).

use kut_cfg::excerpt;

/// Characters a shell word's value may not hold for it to be literal.
const SHELL_SPECIAL: &[char] =
    &['$', '`', '\\', '"', '\'', ';', '&', '|', '<', '>', '(', ')', '*', '?', '[', ']', '{', '}', '~'];

/// Whether `s` is a shell variable name.
fn is_var_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether `line` is one `env_file` reads (`^[[:blank:]]*NAME=`).
fn counts(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).split_once('=').is_some_and(|(name, _)| is_var_name(name))
}

/// The literal value of a word's right-hand side, or `None` when only a
/// shell could say what it is.
fn literal(value: &str) -> Option<&str> {
    let inner = ['"', '\'']
        .iter()
        .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)).filter(|_| value.len() >= 2));
    let v = inner.unwrap_or(value);
    (!v.contains(SHELL_SPECIAL) && !v.chars().any(char::is_control)).then_some(v)
}

/// The variables `text` (the file) adds to an environment that already
/// has the variables `generated` names, in file order; or why a line
/// cannot be followed.
pub fn assignments(text: &str, generated: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !counts(line) {
            continue;
        }
        let shown = || format!("KVM_UNIT_TESTS_ENV line {}: {}", i + 1, excerpt(line));
        for word in line.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let (name, value) = word
                .split_once('=')
                .filter(|(n, _)| is_var_name(n))
                .ok_or_else(|| format!("{}: `{}` is not NAME=VALUE", shown(), excerpt(word)))?;
            let value = literal(value)
                .ok_or_else(|| format!("{}: `{}` needs a shell to expand (not supported)", shown(), excerpt(word)))?;
            if generated.contains(&name) || out.iter().any(|(n, _)| n == name) {
                continue;
            }
            out.push((name.to_string(), value.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> Result<Vec<(String, String)>, String> {
        assignments(text, &["QEMU_ACCEL", "KERNEL_VERSION"])
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lines_words_and_precedence_as_env_file() {
        let text = "# a comment\nFOO=1\n  BAR=\"two\"\tBAZ='3'\nnot an assignment = here\n\
                    QEMU_ACCEL=tcg\nFOO=again\nERRATA_abc=y\n\n_X=a=b\nEMPTY=\n";
        assert_eq!(
            a(text).unwrap(),
            pairs(&[("FOO", "1"), ("BAR", "two"), ("BAZ", "3"), ("ERRATA_abc", "y"), ("_X", "a=b"), ("EMPTY", "")])
        );
        // Lines that do not start with NAME= are not read at all.
        assert_eq!(a("export FOO=1\n1A=2\n-x=3\n=4\n").unwrap(), pairs(&[]));
    }

    #[test]
    fn what_needs_a_shell_is_refused_naming_the_line() {
        for bad in [
            "A=$HOME\n",
            "A=`id`\n",
            "A=$(id)\n",
            "A=x\\ y\n",
            "A=\"x y\"\n",
            "A=*\n",
            "A=~\n",
            "A=1;B=2\n",
            "A=it's\n",
            "A='x\n",
            "A=1 B\n",
            "A=1 -x=2\n",
            "A=a\u{1b}b\n",
        ] {
            let e = a(&format!("OK=1\n{bad}")).unwrap_err();
            assert!(e.contains("line 2"), "{bad:?}: {e}");
        }
        // A quote alone is not a quoted empty value.
        assert!(a("A=\"\n").is_err());
        assert_eq!(a("A=\"\"\n").unwrap(), pairs(&[("A", "")]));
    }
}
