//! What one `unittests.cfg` test needs, and whether `vmm` can give it:
//! either the `vmm run --kernel` arguments that run it, or why it is
//! skipped, in the words `run_tests.sh` uses where it has them.
//!
//! A test that needs something this VMM lacks (a QEMU device or machine
//! type, Hyper-V enlightenments, nested virtualization, a CPU feature
//! *removed*) is skipped with that reason, never run to a false failure.
//! `-cpu` is followed (`vmm run --cpu`, [`vmm::vstate::cpu_model`]): the
//! model, `+feat`/`-feat` and `vendor=`; a value it cannot follow
//! (Hyper-V enlightenments, nested virtualization, another
//! physical-address width, an unknown model or feature) is a skip naming
//! it, and so is a feature KVM cannot give on this host (found when the
//! test starts, [`super::run`]).
//!
//! `run_tests.sh`'s environment is honoured here: `TIMEOUT` overrides
//! every test's timeout (0: none), `ACCEL` other than `kvm` skips every
//! test naming it, and `disabled_if` is evaluated as far as
//! [`super::cond`] can (what it cannot evaluate is a skip naming it).
//!
//! Everything the tree names is checked here, before anything runs: the
//! kernel must be a regular file inside the tree ([`Tree`]), `check =`
//! files are read bounded ([`super::check`]), a log name must stay in the
//! log directory ([`super::logs`]), and every number (vCPUs, memory,
//! timeout) is range-checked before use.

use std::path::PathBuf;

use kut_cfg::cut;

use super::cfg::TestSpec;
use super::check::check;
use super::logs::log_name;
use super::subst::Template;
use super::tree::Tree;
use vmm::config::DEFAULT_MEM;
use vmm::layout::DEFAULT_BAR_BASE;
use vmm::vstate::cpu_model::CpuSpec;

/// How to run a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The kernel.
    pub kernel: PathBuf,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest RAM in bytes.
    pub mem: u64,
    /// The kernel's arguments, as written: a backquoted command in them
    /// (checked here, [`super::subst`]) runs when the test starts.
    pub append: String,
    /// Seconds before the guest is stopped (`None`: never, as
    /// `timeout = 0` or `TIMEOUT=0` ask).
    pub timeout_secs: Option<u64>,
    /// The guest's environment file (its first multiboot module), if any.
    pub initrd: Option<PathBuf>,
    /// The `-cpu` value, checked ([`CpuSpec::parse`]), if any.
    pub cpu: Option<String>,
}

/// The decision for one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run it.
    Run(Launch),
    /// Skip it, for this reason.
    Skip(String),
}

/// What the runner was asked for.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Timeout of a test whose section gives none (0: none).
    pub default_timeout: u64,
    /// The `TIMEOUT` environment variable: every test's timeout (0: none).
    pub timeout_env: Option<u64>,
    /// Upper bound on any test's timeout (CI keeps runs short).
    pub max_timeout: Option<u64>,
    /// Tests in group `nodefault` run too (`-a`, or `-g` was given, as
    /// upstream: naming a test does not run it).
    pub nodefault: bool,
    /// The `ACCEL` environment variable.
    pub accel_env: Option<String>,
    /// The guest environment file every test gets (`-a`: `ERRATA_FORCE=y`).
    pub initrd: Option<PathBuf>,
    /// Each test's log is written to a directory (`--logs`): a test whose
    /// name cannot be a file name there is skipped.
    pub logs: bool,
    /// The `CHECK` environment variable: replaces every test's `check =`
    /// conditions, as upstream's `${CHECK:-$check}`.
    pub check_env: Option<Vec<(String, String)>>,
    /// The `MACHINE` environment variable: a test whose `machine =`
    /// names another is skipped.
    pub machine_env: Option<String>,
}

/// Most vCPUs `vmm` runs.
const MAX_VCPUS: u64 = vmm::layout::MAX_VCPUS as u64;

/// Longest timeout a test may have, in seconds (a year): anything longer
/// is a skip (from `unittests.cfg`) or refused (`--timeout`), so that no
/// sum of a timeout and a grace period, and no deadline, can overflow.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// Most bytes of a skip reason (reasons quote the configuration).
const MAX_REASON: usize = 600;

/// Decides how to run `t` from the tree `tree`.
pub fn plan(t: &TestSpec, tree: &Tree, o: &PlanOptions) -> Plan {
    match decide(t, tree, o) {
        Ok(l) => Plan::Run(l),
        Err(why) => Plan::Skip(cut(&why, MAX_REASON).into_owned()),
    }
}

fn decide(t: &TestSpec, tree: &Tree, o: &PlanOptions) -> Result<Launch, String> {
    if t.groups.iter().any(|g| g == "nodefault") && !o.nodefault {
        return Err("test marked as manual run only".into());
    }
    if let Some(arch) = t.arch.as_deref().filter(|a| *a != "x86_64") {
        return Err(format!("{arch} only"));
    }
    if let (Some(m), Some(env)) = (t.machine.as_deref(), o.machine_env.as_deref()) {
        if m != env {
            return Err(format!("{m} only"));
        }
    }
    match (o.accel_env.as_deref(), t.accel.as_deref()) {
        (Some(env), _) if env != "kvm" => return Err(format!("ACCEL={env}, and vmm runs guests with kvm only")),
        (Some(env), Some(a)) if a != env => return Err(format!("{a} only, but ACCEL={env}")),
        (None, Some(a)) if a != "kvm" => return Err(format!("{a} only")),
        _ => {}
    }
    if let Some(cond) = &t.disabled_if {
        let var = |name: &str| variable(name, o);
        match super::cond::evaluate(cond, &var) {
            Ok(true) => return Err(format!("disabled because: {cond}")),
            Ok(false) => {}
            Err(why) => return Err(format!("cannot evaluate disabled_if = {cond}: {why}")),
        }
    }
    if o.logs {
        log_name(&t.name)?;
    }
    let secs = o.timeout_env.or(t.timeout_secs).unwrap_or(o.default_timeout);
    let mut timeout = (secs != 0).then_some(secs);
    if let Some(max) = o.max_timeout {
        timeout = Some(timeout.map_or(max, |t| t.min(max)).max(1));
    }
    if let Some(timeout) = timeout.filter(|t| *t > MAX_TIMEOUT_SECS) {
        return Err(format!("needs a timeout of {timeout} s; vmm kut allows at most {MAX_TIMEOUT_SECS} s (a year)"));
    }
    for (path, want) in o.check_env.as_ref().unwrap_or(&t.check) {
        check(path, want)?;
    }
    // Upstream's shell runs backquoted commands; here only fixed ones run,
    // those in the parameters now (they decide vCPUs and memory), those
    // in the arguments when the test starts.
    let params = Template::parse(&t.qemu_params)?.expand()?;
    Template::parse(&t.test_args)?;
    let mut mem = DEFAULT_MEM;
    let mut vcpus = t.smp;
    let mut needs = Vec::new();
    let mut cpu = None;
    let mut words = params.split_whitespace();
    while let Some(w) = words.next() {
        let needs_value = matches!(w, "-cpu" | "-m" | "-device" | "-M" | "-machine" | "-smp" | "-overcommit");
        let v = if needs_value { words.next().unwrap_or("") } else { "" };
        let skip = match w {
            "-cpu" => match CpuSpec::parse(v) {
                Ok(_) => {
                    cpu = Some(v.to_string());
                    None
                }
                Err(e) => Some(format!("-cpu {v}: {e}")),
            },
            "-m" => match parse_mem(v) {
                Some(m) if m <= DEFAULT_BAR_BASE => {
                    mem = m;
                    None
                }
                _ => Some(format!("needs -m {v}; vmm gives a raw kernel at most {} MiB", DEFAULT_BAR_BASE >> 20)),
            },
            "-device" => Some(format!("needs the QEMU device {}", v.split(',').next().unwrap_or(v))),
            "-M" | "-machine" => machine_skip(v),
            "-smp" => match v.split(',').next().and_then(|n| n.parse().ok()) {
                Some(n) => {
                    vcpus = n;
                    None
                }
                None => Some(format!("cannot read -smp {v}")),
            },
            "-enable-kvm" => None,
            "-overcommit" => Some(format!("needs -overcommit {v}")),
            other => Some(format!("needs the QEMU option {other}")),
        };
        needs.extend(skip);
    }
    if !needs.is_empty() {
        return Err(needs.join("; "));
    }
    let vcpus = match u32::try_from(vcpus) {
        Ok(n) if (1..=MAX_VCPUS).contains(&vcpus) => n,
        _ => return Err(format!("needs {vcpus} vCPUs; vmm runs 1 to {MAX_VCPUS}")),
    };
    let kernel = tree.test_file(&t.file)?;
    Ok(Launch { kernel, vcpus, mem, append: t.test_args.clone(), timeout_secs: timeout, initrd: o.initrd.clone(), cpu })
}

/// The value of `$name` in a `disabled_if` condition: what
/// `run_tests.sh` would see for a tree configured for x86_64 with QEMU as
/// the target (`vmm` runs the tests' QEMU parameters, translated), with
/// `ACCEL` from the environment (else `kvm`, the only one `vmm` has) and
/// `MACHINE` from the environment (else empty).
/// Any other variable is unknown: the condition cannot be evaluated.
fn variable(name: &str, o: &PlanOptions) -> Option<String> {
    Some(match name {
        "TARGET" => "qemu".into(),
        "ARCH" => "x86_64".into(),
        "TEST_DIR" => "x86".into(),
        "CONFIG_EFI" => "n".into(),
        "ACCEL" => o.accel_env.clone().unwrap_or_else(|| "kvm".into()),
        "MACHINE" => o.machine_env.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// A reason to skip for `-machine OPTIONS`, if any.
fn machine_skip(v: &str) -> Option<String> {
    let needs: Vec<String> = v
        .split(',')
        .filter_map(|opt| match opt {
            // The PIT exists either way; a test that wants it off still runs.
            "pit=off" | "accel=kvm" | "pc" => None,
            "q35" => Some("needs the q35 machine (-M q35)".into()),
            o => Some(format!("needs -machine {o}")),
        })
        .collect();
    (!needs.is_empty()).then(|| needs.join("; "))
}

/// A QEMU `-m` size: MiB by default, or with a K/M/G suffix.
fn parse_mem(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 10),
        'm' | 'M' => (&v[..v.len() - 1], 20),
        'g' | 'G' => (&v[..v.len() - 1], 30),
        _ => (v, 20),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// A tree with `t.flat`, shared by the tests of this process.
    fn tree() -> &'static Tree {
        static T: OnceLock<Tree> = OnceLock::new();
        T.get_or_init(|| {
            let d = std::env::temp_dir().join(format!("vmm-kut-plan-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("t.flat"), b"k").unwrap();
            Tree::new(&d, &d).unwrap()
        })
    }

    fn spec(params: &str) -> TestSpec {
        TestSpec { name: "t".into(), file: "t.flat".into(), smp: 1, qemu_params: params.into(), ..Default::default() }
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            default_timeout: 90,
            timeout_env: None,
            max_timeout: None,
            nodefault: false,
            accel_env: None,
            initrd: None,
            logs: false,
            check_env: None,
            machine_env: None,
        }
    }

    fn skip(p: Plan) -> String {
        match p {
            Plan::Skip(r) => r,
            Plan::Run(l) => panic!("runs: {l:?}"),
        }
    }

    #[test]
    fn runs_with_translated_params() {
        let mut t = spec("-cpu qemu64,+x2apic,+tsc-deadline -m 256 -enable-kvm");
        t.smp = 2;
        t.test_args = "ipi".into();
        t.timeout_secs = Some(30);
        let Plan::Run(l) = plan(&t, tree(), &opts()) else { panic!() };
        let kernel = tree().root().join("t.flat");
        assert_eq!(
            l,
            Launch {
                kernel,
                vcpus: 2,
                mem: 256 << 20,
                append: "ipi".into(),
                timeout_secs: Some(30),
                initrd: None,
                cpu: Some("qemu64,+x2apic,+tsc-deadline".into())
            }
        );
        let o = PlanOptions { max_timeout: Some(10), ..opts() };
        let Plan::Run(l) = plan(&t, tree(), &o) else { panic!() };
        assert_eq!(l.timeout_secs, Some(10));
    }

    #[test]
    fn skips_name_what_is_missing() {
        let d = tree();
        let why =
            skip(plan(&spec("-M q35,kernel-irqchip=split -device intel-iommu,intremap=on -device edu"), d, &opts()));
        assert_eq!(
            why,
            "needs the q35 machine (-M q35); needs -machine kernel-irqchip=split; needs the QEMU device intel-iommu; \
             needs the QEMU device edu"
        );
        assert!(skip(plan(&spec("-device edu"), d, &opts())).contains("QEMU device edu"));
        assert!(skip(plan(&spec("-cpu host,hv_passthrough"), d, &opts())).contains("Hyper-V"));
        assert!(skip(plan(&spec("-cpu max,+vmx"), d, &opts())).contains("nested"));
        // Issue 21: -cpu is followed; what cannot be is a skip naming it.
        let Plan::Run(l) = plan(&spec("-cpu qemu64,-x2apic"), d, &opts()) else { panic!() };
        assert_eq!(l.cpu.as_deref(), Some("qemu64,-x2apic"));
        assert_eq!(
            skip(plan(&spec("-cpu IvyBridge,phys-bits=36,host-phys-bits=off"), d, &opts())),
            "-cpu IvyBridge,phys-bits=36,host-phys-bits=off: phys-bits=36: needs physical-address widths other than \
             the host's, which vmm does not offer"
        );
        assert!(skip(plan(&spec("-cpu Pentium9"), d, &opts())).contains("unknown CPU model Pentium9"));
        assert!(skip(plan(&spec("-cpu max,host-phys-bits,+vmx,-vmx-mbec"), d, &opts())).contains("nested"));
        assert!(skip(plan(&spec("-m 4g"), d, &opts())).contains("-m 4g"));
        assert!(skip(plan(&spec("-machine vmport=on"), d, &opts())).contains("vmport"));
        assert!(skip(plan(&spec("-foo"), d, &opts())).contains("-foo"));
        let mut t = spec("");
        t.arch = Some("i386".into());
        assert_eq!(skip(plan(&t, d, &opts())), "i386 only");
        let mut t = spec("");
        t.groups = vec!["vmx".into(), "nodefault".into()];
        assert_eq!(skip(plan(&t, d, &opts())), "test marked as manual run only");
        assert!(matches!(plan(&t, d, &PlanOptions { nodefault: true, ..opts() }), Plan::Run(_)));
        let mut t = spec("");
        t.check = vec![("/nonexistent/param".into(), "Y".into())];
        assert_eq!(skip(plan(&t, d, &opts())), "/nonexistent/param not equal to Y");
        let mut t = spec("");
        t.smp = 99;
        assert!(skip(plan(&t, d, &opts())).contains("99 vCPUs"));
    }

    /// Issue 21's bad input: `smp = 100000` and shell syntax in the
    /// parameters are skips; test arguments are passed as they are (to a
    /// program, never a shell).
    #[test]
    fn huge_counts_and_shell_syntax_are_skips() {
        for n in [0, 100_000, u64::from(u32::MAX) + 1, u64::MAX] {
            let mut t = spec("");
            t.smp = n;
            assert!(skip(plan(&t, tree(), &opts())).contains(&format!("needs {n} vCPUs")), "{n}");
        }
        assert!(skip(plan(&spec("-smp 99999999999999999999"), tree(), &opts())).contains("cannot read -smp"));
        assert!(skip(plan(&spec("-m 99999999999999999g"), tree(), &opts())).contains("-m 99999999999999999g"));
        let why = skip(plan(&spec("$(touch /tmp/x) `id` ; rm -rf ~ | cat"), tree(), &opts()));
        assert_eq!(why, "command substitution not supported: $(touch /tmp/x)");
        let why = skip(plan(&spec("; rm -rf ~ | cat"), tree(), &opts()));
        assert!(why.contains("needs the QEMU option ;"), "{why}");
        // Test arguments go to a program, never a shell: a backquoted
        // command in them that is not a fixed one is a skip (issue 21).
        let mut t = spec("");
        t.test_args = "`touch x`; $(id) | cat".into();
        assert_eq!(skip(plan(&t, tree(), &opts())), "backquoted command not supported: touch x");
        t.test_args = "x; y | cat $HOME".into();
        let Plan::Run(l) = plan(&t, tree(), &opts()) else { panic!() };
        assert_eq!(l.append, "x; y | cat $HOME");
        // A reason quoting a huge parameter is cut.
        let why = skip(plan(&spec(&format!("-{}", "x".repeat(1 << 20))), tree(), &opts()));
        assert!(why.len() <= MAX_REASON + 4 && why.ends_with('…'), "{} bytes", why.len());
    }

    /// Item 6 of issue 20: a timeout of 2^63 - 1 s panicked the runner, one
    /// of 2^64 - 1 s made `vmm run`'s watchdog fail.
    #[test]
    fn timeouts_beyond_a_year_are_skips() {
        for secs in [MAX_TIMEOUT_SECS + 1, i64::MAX as u64, u64::MAX] {
            let mut t = spec("");
            t.timeout_secs = Some(secs);
            assert!(skip(plan(&t, tree(), &opts())).contains(&format!("timeout of {secs} s")), "{secs}");
            // Capped by --max-timeout, it runs.
            let o = PlanOptions { max_timeout: Some(60), ..opts() };
            assert!(matches!(plan(&t, tree(), &o), Plan::Run(Launch { timeout_secs: Some(60), .. })));
        }
        let o = PlanOptions { default_timeout: u64::MAX, ..opts() };
        assert!(skip(plan(&spec(""), tree(), &o)).contains("timeout"));
        let mut t = spec("");
        t.timeout_secs = Some(MAX_TIMEOUT_SECS);
        assert!(matches!(plan(&t, tree(), &opts()), Plan::Run(_)));
    }

    /// Items 8 and 10 of issue 20: the kernel and the log name stay in
    /// their directories (the cases are in `tree` and `logs`).
    #[test]
    fn files_and_log_names_outside_are_skips() {
        let mut t = spec("");
        t.file = "../../../etc/passwd".into();
        assert!(skip(plan(&t, tree(), &opts())).contains("outside the tree"));
        let mut t = spec("");
        t.name = "../../x".into();
        assert!(matches!(plan(&t, tree(), &opts()), Plan::Run(_)));
        let o = PlanOptions { logs: true, ..opts() };
        assert!(skip(plan(&t, tree(), &o)).contains("leave the log directory"));
    }

    /// Issue 21: `timeout = 0` killed the guest after 1 s; `TIMEOUT` was
    /// not read.
    #[test]
    fn timeout_zero_is_none_and_the_environment_overrides() {
        let timeout = |cfg: Option<u64>, env: Option<u64>, max: Option<u64>| {
            let mut t = spec("");
            t.timeout_secs = cfg;
            match plan(&t, tree(), &PlanOptions { timeout_env: env, max_timeout: max, ..opts() }) {
                Plan::Run(l) => l.timeout_secs,
                Plan::Skip(why) => panic!("{why}"),
            }
        };
        assert_eq!(timeout(Some(0), None, None), None);
        assert_eq!(timeout(None, None, None), Some(90));
        assert_eq!(timeout(Some(5), Some(0), None), None);
        assert_eq!(timeout(Some(5), Some(7), None), Some(7));
        assert_eq!(timeout(None, Some(7), None), Some(7));
        // --max-timeout still caps, "none" included.
        assert_eq!(timeout(Some(0), None, Some(60)), Some(60));
        assert_eq!(timeout(Some(0), Some(0), Some(0)), Some(1));
        let mut t = spec("");
        t.timeout_secs = Some(5);
        let o = PlanOptions { timeout_env: Some(u64::MAX), ..opts() };
        assert!(skip(plan(&t, tree(), &o)).contains("timeout of 18446744073709551615 s"));
    }

    /// Issue 21: any `accel` but kvm was a skip whatever `ACCEL` said, and
    /// `ACCEL` was not read.
    #[test]
    fn accel_from_the_environment() {
        let with = |cfg: Option<&str>, env: Option<&str>| {
            let mut t = spec("");
            t.accel = cfg.map(Into::into);
            plan(&t, tree(), &PlanOptions { accel_env: env.map(Into::into), ..opts() })
        };
        assert!(matches!(with(None, None), Plan::Run(_)));
        assert!(matches!(with(None, Some("kvm")), Plan::Run(_)));
        assert!(matches!(with(Some("kvm"), Some("kvm")), Plan::Run(_)));
        assert_eq!(skip(with(None, Some("tcg"))), "ACCEL=tcg, and vmm runs guests with kvm only");
        assert_eq!(skip(with(Some("kvm"), Some("tcg"))), "ACCEL=tcg, and vmm runs guests with kvm only");
        assert_eq!(skip(with(Some("tcg"), None)), "tcg only");
        assert_eq!(skip(with(Some("tcg"), Some("kvm"))), "tcg only, but ACCEL=kvm");
    }

    /// Issue 21: `disabled_if` was ignored (a `disabled_if = true` test
    /// ran); `nodefault` tests ran when named.
    #[test]
    fn disabled_if_and_nodefault() {
        let with = |cond: &str, accel: Option<&str>| {
            let mut t = spec("");
            t.disabled_if = Some(cond.into());
            plan(&t, tree(), &PlanOptions { accel_env: accel.map(Into::into), ..opts() })
        };
        assert_eq!(skip(with("true", None)), "disabled because: true");
        assert!(matches!(with(r#"[[ "$TARGET" != qemu ]]"#, None), Plan::Run(_)));
        assert!(matches!(with(r#"[[ "$ACCEL" == tcg ]]"#, None), Plan::Run(_)));
        let why = skip(with(r#"[[ "$TARGET" != qemu ]] && [[ "$CONFIG_EFI" = y ]] || [[ $ARCH == x86_64 ]]"#, None));
        assert!(why.starts_with("disabled because: "), "{why}");
        let why = skip(with("[[ $(touch /tmp/x) == y ]]", None));
        assert!(why.starts_with("cannot evaluate disabled_if = [[ $(touch"), "{why}");
        let mut t = spec("");
        t.groups = vec!["nodefault".into()];
        assert_eq!(skip(plan(&t, tree(), &opts())), "test marked as manual run only");
    }

    /// Issue 21: `CHECK` was not read; it replaces every test's `check =`
    /// (upstream's `${CHECK:-$check}`).
    #[test]
    fn check_from_the_environment_replaces_the_section() {
        let y = tree().root().join("y");
        std::fs::write(&y, "Y\n").unwrap();
        let y = y.to_str().unwrap().to_string();
        let with = |cfg: &[(&str, &str)], env: Option<&[(&str, &str)]>| {
            let mut t = spec("");
            t.check = cfg.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect();
            let check_env = env.map(|e| e.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect());
            plan(&t, tree(), &PlanOptions { check_env, ..opts() })
        };
        assert_eq!(skip(with(&[("/nonexistent/p", "Y")], None)), "/nonexistent/p not equal to Y");
        assert!(matches!(with(&[("/nonexistent/p", "Y")], Some(&[(&y, "Y")])), Plan::Run(_)));
        assert_eq!(skip(with(&[(&y, "Y")], Some(&[(&y, "N")]))), format!("{y} not equal to N"));
        assert!(matches!(with(&[(&y, "N")], Some(&[])), Plan::Run(_)));
    }

    /// Issue 21: `machine =` was ignored and `MACHINE` not read: a test
    /// for another machine than `MACHINE` is skipped as upstream does
    /// ("q35 only"); without `MACHINE`, or with the same, it runs.
    #[test]
    fn machine_from_the_environment() {
        let with = |cfg: Option<&str>, env: Option<&str>| {
            let mut t = spec("");
            t.machine = cfg.map(Into::into);
            plan(&t, tree(), &PlanOptions { machine_env: env.map(Into::into), ..opts() })
        };
        assert_eq!(skip(with(Some("q35"), Some("pc"))), "q35 only");
        assert!(matches!(with(Some("q35"), None), Plan::Run(_)));
        assert!(matches!(with(Some("pc"), Some("pc")), Plan::Run(_)));
        assert!(matches!(with(None, Some("pc")), Plan::Run(_)));
        let mut t = spec("");
        t.disabled_if = Some(r#"[[ "$MACHINE" == pc ]]"#.into());
        let o = PlanOptions { machine_env: Some("pc".into()), ..opts() };
        assert_eq!(skip(plan(&t, tree(), &o)), r#"disabled because: [[ "$MACHINE" == pc ]]"#);
        assert!(matches!(plan(&t, tree(), &opts()), Plan::Run(_)));
    }

    /// Issue 21: a backquoted fixed command in the parameters runs before
    /// they are read; any other is a skip.
    #[test]
    fn backquoted_commands_in_the_parameters() {
        let Plan::Run(l) = plan(&spec("-smp `nproc`"), tree(), &opts()) else { panic!() };
        assert!(l.vcpus >= 1);
        let why = skip(plan(&spec("-smp `cat /etc/passwd`"), tree(), &opts()));
        assert_eq!(why, "backquoted command not supported: cat /etc/passwd");
        let mut t = spec("");
        t.test_args = "10000000 `date +%s`".into();
        let Plan::Run(l) = plan(&t, tree(), &opts()) else { panic!() };
        assert_eq!(l.append, "10000000 `date +%s`", "run when the test starts");
    }

    #[test]
    fn machine_pit_off_runs() {
        assert!(matches!(plan(&spec("-machine pit=off"), tree(), &opts()), Plan::Run(_)));
        assert_eq!(parse_mem("2048"), Some(2048 << 20));
        assert_eq!(parse_mem("4g"), Some(4 << 30));
        assert_eq!(parse_mem("x"), None);
        assert_eq!(parse_mem("99999999999999999g"), None);
    }
}
