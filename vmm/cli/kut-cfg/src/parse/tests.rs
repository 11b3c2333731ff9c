//! The parser's tests: the format, the errors, and the bounds a file
//! written elsewhere must not break (work linear in the size, errors of a
//! few hundred bytes, binary data refused).

use super::*;

const CFG: &str = r#"
# comment
[smptest]
file = smptest.flat
smp = 2

[vmexit_cpuid]
file = vmexit.flat
test_args = 'cpuid'
groups = vmexit fast

[old]
file = old.flat
extra_params = -cpu max -append "a b" -m 256
timeout = 2m
arch = x86_64
accel = kvm
check = /sys/x=Y /sys/y=N
machine = q35
"#;

#[test]
fn parses_sections_and_keys() {
    let t = parse(CFG).unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!((t[0].name.as_str(), t[0].file.as_str(), t[0].smp), ("smptest", "smptest.flat", 2));
    assert_eq!(t[1].test_args, "cpuid");
    assert_eq!(t[1].groups, ["vmexit", "fast"]);
    assert_eq!(t[1].smp, 1);
    assert_eq!(t[2].qemu_params, "-cpu max -m 256");
    assert_eq!(t[2].test_args, "a b");
    assert_eq!(t[2].timeout_secs, Some(120));
    assert_eq!(t[2].arch.as_deref(), Some("x86_64"));
    assert_eq!(t[2].accel.as_deref(), Some("kvm"));
    assert_eq!(t[2].check, [("/sys/x".into(), "Y".into()), ("/sys/y".into(), "N".into())]);
    // Issue 21: `machine =` was ignored.
    assert_eq!(t[2].machine.as_deref(), Some("q35"));
    assert_eq!(t[1].machine, None);
    // CRLF line ends and a byte-order mark are text too.
    let t = parse("\u{feff}[a]\r\nfile = a.flat\r\n").unwrap();
    assert_eq!((t[0].name.as_str(), t[0].file.as_str()), ("a", "a.flat"));
}

#[test]
fn errors_name_the_line() {
    assert_eq!(parse("file = x\n"), Err(CfgError::Syntax { line: 1, message: "key before any [section]".into() }));
    assert!(matches!(parse("[a]\nfile = a\nsmp = two\n"), Err(CfgError::Syntax { line: 3, .. })));
    assert!(matches!(parse("[a\n"), Err(CfgError::Syntax { line: 1, .. })));
    assert!(matches!(parse("[a]\nfile=a\n[a]\nfile=b\n"), Err(CfgError::Syntax { line: 3, .. })));
    assert_eq!(
        parse("[a]\nfile = a\n\n[b]\nsmp = 1\n"),
        Err(CfgError::Syntax { line: 4, message: "[\"b\"] has no file".into() })
    );
    assert!(matches!(parse("[a]\nfile = a\njunk\n"), Err(CfgError::Syntax { line: 3, .. })));
}

#[test]
fn huge_values_are_kept_or_refused_never_wrapped() {
    // Any smp that fits is kept for the runner to refuse (a SKIP there).
    let t = parse("[a]\nfile = a\nsmp = 100000\n").unwrap();
    assert_eq!(t[0].smp, 100_000);
    let e = parse("[a]\nfile = a\nsmp = 99999999999999999999999\n").unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    let t = parse("[a]\nfile = a\ntimeout = 18446744073709551615\n").unwrap();
    assert_eq!(t[0].timeout_secs, Some(u64::MAX));
    let e = parse("[a]\nfile = a\ntimeout = 18446744073709551615d\n").unwrap_err();
    assert!(matches!(e, CfgError::Syntax { line: 3, .. }), "{e}");
}

#[test]
fn binary_data_is_refused_with_its_line() {
    let e = parse_bytes(b"[a]\nfile = a\n\xff\xfe garbage\n").unwrap_err();
    assert_eq!(e, CfgError::Binary { line: 3, offset: 13, what: "byte 0xff that is not UTF-8".into() });
    let e = parse_bytes(b"[a]\nfile = a\0b\n").unwrap_err();
    assert_eq!(e, CfgError::Binary { line: 2, offset: 12, what: "control character 0x00".into() });
    assert!(e.to_string().contains("not a text file"), "{e}");
    // Tabs are text.
    assert!(parse("[a]\n\tfile\t=\ta\n").is_ok());
}

/// Item 9 of issue 20: a 10 MB malformed line was echoed whole.
#[test]
fn a_huge_line_is_echoed_cut() {
    let line = "x".repeat(10 << 20);
    for text in [
        format!("[a]\nfile = a\n{line}\n"),
        format!("[{line}\n"),
        format!("[{line}]\n"),
        format!("[a]\nfile = a\nsmp = {line}\n"),
        format!("[a]\nfile = a\ntimeout = {line}\n"),
        format!("[a]\nfile = a\ncheck = {line}\n"),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.len() < 400, "{} bytes: {}…", e.len(), &e[..400]);
        assert!(e.contains("… (10485"), "{e}");
    }
}

/// `n` sections of three lines, each name distinct.
fn sections(n: usize) -> String {
    (0..n).map(|i| format!("[test_{i}]\nfile = t{i}.flat\nsmp = 2\n")).collect()
}

/// Item 9 of issue 20: parsing was quadratic in the number of sections
/// (each new name was compared with every earlier one). Ten times the
/// sections must be (about) ten times the work, not a hundred.
#[test]
fn work_grows_linearly_with_the_sections() {
    let (small, w1) = parse_counted(&sections(2_000));
    let (large, w10) = parse_counted(&sections(20_000));
    assert_eq!((small.unwrap().len(), large.unwrap().len()), (2_000, 20_000));
    assert_eq!(w1.name_probes, 2_000);
    assert_eq!(w10.name_probes, 20_000);
    assert_eq!((w1.lines, w10.lines), (6_001, 60_001));
    assert!(w10.bytes <= 11 * w1.bytes + 1000, "{w1:?} {w10:?}");
}

/// A 10 MB file (283k sections, as in the issue) parses, with one name
/// probe per section and one visit per line.
#[test]
fn a_ten_megabyte_file_parses_in_one_pass() {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 10 << 20 {
        text.push_str(&format!("[t{n}]\nfile=x.flat\n"));
        n += 1;
    }
    let (r, w) = parse_counted(&text);
    assert_eq!(r.unwrap().len(), n);
    assert!(n > 280_000, "{n}");
    assert_eq!(w.name_probes, n);
    assert_eq!(w.lines, 2 * n + 1);
    assert_eq!(w.bytes + w.lines - 1, text.len());
}

#[test]
fn parses_the_shipped_file_if_present() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/testguests/kvm-unit-tests/x86/unittests.cfg");
    let Ok(text) = std::fs::read_to_string(&p) else {
        eprintln!("skipped: {} is absent", p.display());
        return;
    };
    let t = parse(&text).unwrap();
    assert!(t.len() > 80, "{} sections", t.len());
    let v = t.iter().find(|t| t.name == "vmexit_ipi").unwrap();
    assert_eq!((v.smp, v.test_args.as_str(), v.qemu_params.as_str()), (2, "ipi", "-machine pit=off"));
}

/// Issue 21: a value of several lines between `"""` made the whole file
/// fail to parse ("expected key = value" on its second line).
#[test]
fn triple_quoted_values_span_lines() {
    let cfg = "[a]\nfile = a.flat\nextra_params = \"\"\"-smp 2\n   -m 64\r\n\n   -append 'x y'\"\"\"\n\
               test_args = \"\"\"one\n two \"\"\"\n[b]\nfile = b.flat\nextra_params = \"\"\"-m 32\"\"\"\n\
               kvmtool_params = \"\"\"--irqchip\n x\"\"\"\ndisabled_if = [[ \"$TARGET\" != qemu ]]\n";
    let t = parse(cfg).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].qemu_params.as_str(), t[0].test_args.as_str()), ("-smp 2 -m 64", "one two"));
    assert_eq!(t[1].qemu_params, "-m 32");
    assert_eq!(t[1].disabled_if.as_deref(), Some("[[ \"$TARGET\" != qemu ]]"));
    assert_eq!(t[0].disabled_if, None);
    // Unclosed: an error naming the line it opened on.
    let e = parse("[a]\nfile = a\nextra_params = \"\"\"-smp 2\n-m 64\n").unwrap_err();
    assert_eq!(e, CfgError::Syntax { line: 3, message: "the value opened with \"\"\" on line 3 is not closed".into() });
    // Binary data inside is still refused with its line.
    let e = parse_bytes(b"[a]\nfile = a\nextra_params = \"\"\"-m 2\n\0\n\"\"\"\n").unwrap_err();
    assert!(matches!(e, CfgError::Binary { line: 4, .. }), "{e}");
}
