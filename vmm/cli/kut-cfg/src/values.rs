//! The values of `key = value` lines: quotes, times, and the `-append`
//! hidden in QEMU parameters.

use crate::excerpt::excerpt;

/// `v` without surrounding whitespace and one pair of `'` or `"` quotes.
pub(crate) fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// A time like `90`, `90s`, `2m`, `1h`, `1d` (the suffixes `timeout(1)`
/// takes) in seconds; `None` when it is not one or does not fit in a
/// `u64`.
pub fn parse_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.as_bytes().last()? {
        b's' => (&v[..v.len() - 1], 1),
        b'm' => (&v[..v.len() - 1], 60),
        b'h' => (&v[..v.len() - 1], 3600),
        b'd' => (&v[..v.len() - 1], 86400),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `check` conditions (the `check =` key, or the `CHECK` environment
/// variable that replaces it): space-separated `PATH=VALUE` words, split
/// at the first `=`; a word without one is an error naming it.
pub fn parse_checks(value: &str) -> Result<Vec<(String, String)>, String> {
    value
        .split_whitespace()
        .map(|c| {
            c.split_once('=').map(|(p, v)| (p.into(), v.into())).ok_or_else(|| format!("bad check {}", excerpt(c)))
        })
        .collect()
}

/// Splits `-append 'args'` (or `"args"`, or one word) out of QEMU
/// parameters: the other parameters, and the arguments if there were any.
pub fn split_append(params: &str) -> (String, Option<String>) {
    let Some(pos) = params.find("-append") else { return (params.trim().into(), None) };
    let before = params[..pos].trim_end();
    let rest = params[pos + "-append".len()..].trim_start();
    let (arg, after) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => match rest[1..].find(q) {
            Some(end) => (&rest[1..1 + end], &rest[2 + end..]),
            None => (&rest[1..], ""),
        },
        _ => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
    };
    let joined = format!("{before} {}", after.trim()).trim().to_string();
    (joined, Some(arg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_append() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("18446744073709551615"), Some(u64::MAX));
        // Overflow is "not a time", never a wrap or a panic.
        assert_eq!(parse_duration("18446744073709551615m"), None);
        assert_eq!(parse_duration("18446744073709551616"), None);
        assert_eq!(parse_duration("é"), None);
        assert_eq!(split_append("-append one -m 2"), ("-m 2".into(), Some("one".into())));
        assert_eq!(split_append("-smp 2"), ("-smp 2".into(), None));
        assert_eq!(split_append("-append 'x"), ("".into(), Some("x".into())));
        assert_eq!(unquote(" 'a b' "), "a b");
        assert_eq!(parse_checks(" /a=Y  /b=N=x "), Ok(vec![("/a".into(), "Y".into()), ("/b".into(), "N=x".into())]));
        assert_eq!(parse_checks(""), Ok(vec![]));
        assert!(parse_checks("/a=Y oops").unwrap_err().contains("oops"));
    }
}
